"""`mmbot replay [VENUE=]FILE ... [--speed N|max] [--json]`: recorded Binance streams through the full bot.

The files' instruments are inferred from their data (one spot file to quote, optionally one USD-M perp
file of the same pair to hedge in). `VENUE=FILE` names the venue a file was recorded on: a spot file
and a perp file named for two venues replay as two markets, the spot quoted on the first and hedged
on the second, each venue its own simulated execution, every event and command naming its venue (the
deal's shape, where the perp is on another exchange). Unnamed files are the one venue `replay`.
The engine is the one `bot.app.build_engine` builds for a live run,
and our orders are filled by the simulated execution (`PaperExecution`: queue position, latency, fees).
The engine is driven by one deterministic loop (`bot.venues.replay.run_replay`) on the recording's
clock: `--speed max` runs it as fast as it goes, `--speed N` only paces the same loop at N times the
recorded pace, so both give the same fills and the same summary. The engine's notes are logged as the
live bot logs them, and the run ends with `session.summary`.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bot.app import build_engine, secret_values
from bot.config import MarketConfig, ReplayConfig, Settings, load_settings
from bot.core.engine import Engine
from bot.domain import Command, Event, Instrument, InstrumentKind, market_key
from bot.logs import bind_context, configure_logging, get_logger, info_writer
from bot.output import write_json
from bot.venues.base import stamp
from bot.venues.binance import NATIVE_DECODER, BookTicker, read_recording_info
from bot.venues.event_cache import CachedSource
from bot.venues.replay import ReplaySource, finish_replay, make_executions, pace, parse_speed, replay_stats, run_replay

NS_PER_MS = 1_000_000
UNNAMED_VENUE = "replay"  # the venue of files given without VENUE= (one venue: spot and perp on it)
_VENUE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")  # as a config's venue names (bot.config.VenueName)
# summary fields that depend on the machine and its load, not on the replayed data
WALL_CLOCK_FIELDS = ("wall_s", "msgs_per_s", "speedup_vs_realtime")


class ReplayUsageError(Exception):
    """Files that cannot be replayed (missing, unreadable, not Binance data, not a spot/perp pair)."""


@dataclass(frozen=True)
class ReplayPlan:
    """What to replay: the files, each file's instrument, the spot to quote and the perp to hedge in."""

    paths: tuple[Path, ...]
    file_instruments: tuple[Instrument, ...]
    spot: Instrument
    perp: Instrument | None
    from_diffs: tuple[bool, ...] = ()  # per file: no REST snapshot in it, its book is built from its diffs
    venues: tuple[str, ...] = ()  # per file: the venue it was recorded on (VENUE=FILE); () when unnamed

    def venue_of(self, instrument: Instrument) -> str:
        """The venue `instrument`'s file was recorded on (`UNNAMED_VENUE` when the files are unnamed)."""
        if not self.venues:
            return UNNAMED_VENUE
        return next(v for v, i in zip(self.venues, self.file_instruments, strict=True) if i is instrument)

    @property
    def pair_venues(self) -> tuple[str, str] | None:
        """(spot venue, perp venue) when the spot and its perp were recorded on two venues, else None."""
        if self.perp is None or not self.venues:
            return None
        pair = (self.venue_of(self.spot), self.venue_of(self.perp))
        return pair if pair[0] != pair[1] else None

    def venue_of_symbol(self) -> dict[str, str]:
        return {inst.symbol: self.venue_of(inst) for inst in self.file_instruments}

    @property
    def spot_venue(self) -> str:
        return self.venue_of(self.spot)


def _utc(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns / 1e9))


def split_venue(arg: str | Path) -> tuple[str, Path]:
    """`VENUE=FILE` → (VENUE, FILE); a bare FILE (or an existing file whose name holds "=") → ("", FILE)."""
    text = str(arg)
    name, sep, rest = text.partition("=")
    if isinstance(arg, Path) or not sep or Path(text).exists():
        return "", Path(text)
    if not _VENUE_NAME.match(name):
        raise ReplayUsageError(f"{text}: a venue name is lower-case letters, digits, '-' or '_' (VENUE=FILE)")
    return name, Path(rest)


def plan_replay(files: Sequence[str | Path]) -> ReplayPlan:
    """Check the files and infer their instruments: exactly one spot file, at most one perp file, the
    perp (if any) of the same base and quote and recorded over the same time (at least in part); with
    `VENUE=FILE`, every file names its venue. Raises ReplayUsageError with a one-line reason naming the file."""
    named = [split_venue(f) for f in files]
    paths = tuple(path for _, path in named)
    venues = tuple(name for name, _ in named)
    if any(venues) and not all(venues):
        unnamed = ", ".join(str(p) for v, p in named if not v)
        raise ReplayUsageError(f"name the venue of every file (VENUE=FILE) or of none; unnamed: {unnamed}")
    infos = []
    for path in paths:
        try:
            infos.append(read_recording_info(path))
        except OSError as exc:  # missing, unreadable, or not gzip although named .gz
            raise ReplayUsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        except (ValueError, EOFError) as exc:  # not Binance data, or a truncated .gz
            raise ReplayUsageError(f"cannot replay {path}: {exc}") from None
    instruments = [info.instrument for info in infos]
    spots = [i for i in instruments if i.kind is InstrumentKind.SPOT]
    perps = [i for i in instruments if i.kind is InstrumentKind.PERP]
    if len(spots) != 1 or len(perps) > 1:
        found = ", ".join(f"{p} ({i.symbol})" for p, i in zip(paths, instruments, strict=True))
        raise ReplayUsageError(f"need one spot file and at most one perp file, got: {found}")
    spot = spots[0]
    perp = perps[0] if perps else None
    if perp is not None and (perp.base, perp.quote) != (spot.base, spot.quote):
        raise ReplayUsageError(f"the perp {perp.symbol} does not hedge the spot {spot.symbol}")
    if perp is not None:
        s_path, s_info = next((p, i) for p, i in zip(paths, infos, strict=True) if i.instrument is spot)
        p_path, p_info = next((p, i) for p, i in zip(paths, infos, strict=True) if i.instrument is perp)
        if p_info.last_recv_ns < s_info.first_recv_ns or p_info.first_recv_ns > s_info.last_recv_ns:
            raise ReplayUsageError(
                f"{p_path}: recorded {_utc(p_info.first_recv_ns)} to {_utc(p_info.last_recv_ns)} UTC, never at the "
                f"same time as the spot file {s_path} ({_utc(s_info.first_recv_ns)} to {_utc(s_info.last_recv_ns)})"
            )
    from_diffs = tuple(not i.has_snapshot for i in infos)
    return ReplayPlan(paths, tuple(instruments), spot, perp, from_diffs, venues if all(venues) else ())


def unsynced_reason(path: Path, stats: Mapping[str, int], from_diffs: bool, config: ReplayConfig) -> str:
    """Why a file's book never synced, in one line naming the file."""
    if from_diffs:
        return (
            f"{path}: no REST snapshot (a continuation day?), and its diffs never built a book: it takes "
            f"replay.diff_book_warmup_s = {config.diff_book_warmup_s:g} s of diffs without a gap, with levels "
            f"{config.diff_book_depth_bps:g} bps either side of the mid (replay.diff_book_depth_bps)"
        )
    return (
        f"{path}: its book never synced to its REST snapshot (snapshot older than every diff: "
        f"{stats.get('sync_snapshot_too_old', 0)}, gaps: {stats.get('sync_gap', 0)})"
    )


def deal_is_for_another_market(settings: Settings, spot: Instrument) -> bool:
    """The [deal] (token calls, DEX pool) is priced for the market the config names; replaying another
    market's recording with it would hedge and book a deal on an asset it is not about (the default
    config's deal is scaled to the mock exchange's TOKEN at ~100 USDT, not to BTC at ~60,000)."""
    return settings.deal.apply_to_portfolio and settings.market.spot_symbol != spot.symbol


def for_instruments(settings: Settings, spot: Instrument, perp: Instrument | None) -> Settings:
    """The settings with [market] set to the replayed symbols (the engine quotes `market.spot_symbol`),
    and the deal left out when the config's deal is for another market (`deal_is_for_another_market`).

    Set on the loaded model rather than passed as overrides, because environment variables outrank
    the file and overrides when settings load, and the recording's symbols must win here."""
    update: dict[str, Any] = {
        "market": MarketConfig(spot_symbol=spot.symbol, perp_symbol=perp.symbol if perp is not None else "")
    }
    if deal_is_for_another_market(settings, spot):
        update["deal"] = settings.deal.model_copy(update={"apply_to_portfolio": False})
    return settings.model_copy(update=update)


class ProgressBar:
    """A one-line progress bar on a terminal: `replay  42% |#####-------| 2.1/5.0 MB 3.2 s`.

    Redrawn at most every `every_s` of wall time; `close()` ends the line."""

    def __init__(self, total: int, stream: TextIO, every_s: float = 0.2, width: int = 30) -> None:
        self.total = max(1, total)
        self.stream = stream
        self.every_s = every_s
        self.width = width
        self.started_s = time.monotonic()
        self._drawn_s = -every_s

    def update(self, done: int) -> None:
        now_s = time.monotonic()
        if now_s - self._drawn_s < self.every_s:
            return
        self._drawn_s = now_s
        self.stream.write("\r" + self.render(done, now_s - self.started_s))
        self.stream.flush()

    def render(self, done: int, elapsed_s: float) -> str:
        fraction = min(1.0, done / self.total)
        filled = round(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        mb = 1 / 1_048_576
        return f"replay {fraction:4.0%} |{bar}| {done * mb:.1f}/{self.total * mb:.1f} MB {elapsed_s:.1f} s"

    def close(self, done: int) -> None:
        self._drawn_s = -self.every_s
        self.update(done)
        self.stream.write("\n")
        self.stream.flush()


def _with_progress(
    stream: Iterable[tuple[int, Event | BookTicker]],
    source: ReplaySource | CachedSource,
    bar: ProgressBar,
    every: int = 64,
) -> Iterator[tuple[int, Event | BookTicker]]:
    for n, item in enumerate(stream, 1):
        if n % every == 0:
            bar.update(source.bytes_read)
        yield item


class EngineDriver:
    """The engine as `run_replay` calls it: apply each event, requote (each event is its own batch:
    nothing to conflate when the replay is not waiting on I/O), and log the engine's notes."""

    def __init__(self, engine: Engine, log: Any) -> None:
        self.engine = engine
        self.log = log
        self._info = info_writer(log)  # log.info(name, **fields), the same lines with less around them
        self.now_ns = engine.start_ns  # the replay clock: the time of the last event delivered
        self.events = 0

    def __call__(self, event: Event, now_ns: int) -> list[Command]:
        self.now_ns = now_ns
        self.events += 1
        engine = self.engine
        commands = engine.apply(event, now_ns)
        requoted = engine.requote(now_ns)  # mostly nothing: the top of book did not move
        if requoted:
            commands = commands + requoted
        if engine.notes:  # most events leave no note: skip draining an empty list
            self.log_notes()
        return commands

    def log_notes(self) -> None:
        info = self._info
        for name, fields in self.engine.drain_notes():
            info(name, fields)


class VenueStamper:
    """Names the venue of every event by its symbol's file before the engine sees it: the recordings and
    their simulated executions know no venue (each symbol is one file's), the engine's markets are
    (venue, symbol). Used only when the files name two venues; the one-venue path is left as it is."""

    def __init__(self, driver: Callable[[Event, int], list[Command]], venue_of_symbol: Mapping[str, str]) -> None:
        self.driver = driver
        self._venues = dict(venue_of_symbol)

    def __call__(self, event: Event, now_ns: int) -> list[Command]:
        venue = self._venues.get(getattr(event, "symbol", ""))  # a Timer names no symbol: no venue
        return self.driver(stamp(event, venue) if venue is not None else event, now_ns)


def run_session(
    settings: Settings,
    plan: ReplayPlan,
    speed: float | None,
    progress: TextIO | None = None,
    decode_tickers: bool = False,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Replay `plan` through the bot; returns (and logs) the session summary. `decode_tickers`: decode
    the bookTicker lines too, which the bot does not use (for the benchmark's every-line figure).
    `cache_dir`: read (or write) the files' parsed events there (`bot.venues.event_cache`)."""
    # bound once: the lazy proxy `get_logger` returns rebuilds its logger on every call (~7k lines here)
    log = get_logger("mmbot.replay").bind()
    wall0 = time.perf_counter()
    source: ReplaySource | CachedSource = (
        CachedSource(plan.paths, plan.file_instruments, cache_dir)
        if cache_dir is not None
        else ReplaySource(
            plan.paths,
            plan.file_instruments,
            tickers=decode_tickers,
            from_diffs=plan.from_diffs or None,
            config=settings.replay,
            on_book_built=lambda symbol, path, builder: log.warning(
                "replay.book_from_diffs",
                symbol=symbol,
                file=str(path),
                diffs=builder.diffs,
                bid_levels=len(builder.bids),
                ask_levels=len(builder.asks),
                warmup_s=settings.replay.diff_book_warmup_s,
                depth_bps=settings.replay.diff_book_depth_bps,
            ),
        )
    )
    executions = make_executions(source.instruments, settings.replay)
    stream: Iterator[tuple[int, Event | BookTicker]] = iter(source)
    first = next(stream, None)
    if first is None:
        raise ReplayUsageError("the files hold no market events to replay")
    start_ns = first[0]
    pair = plan.pair_venues
    engine = build_engine(settings, plan.spot, plan.perp, start_ns, venue_name=plan.spot_venue, pair_venues=pair)
    driver = EngineDriver(engine, log)
    venue_of = plan.venue_of_symbol()
    on_event = driver if pair is None else VenueStamper(driver, venue_of)
    stream = itertools.chain([first], stream)
    if speed is not None:
        stream = pace(stream, speed)
    bar = ProgressBar(source.total_bytes, progress) if progress is not None else None
    if bar is not None:
        stream = _with_progress(stream, source, bar)
    named = {"venues": venue_of} if plan.venues else {}  # each file's venue, when the files name them
    log.info(
        "session.started",
        venue=plan.spot_venue,
        files=[str(p) for p in plan.paths],
        spot=plan.spot.symbol,
        perp=plan.perp.symbol if plan.perp is not None else None,
        speed=speed if speed is not None else "max",
        native_decoder=NATIVE_DECODER,
        **named,
    )
    stop_reason = "replay_finished"
    try:
        # books: the simulated venues read the engine's books (the same events: one update each, not two);
        # not across two venues, whose stamped copies the engine routes by another venue than the files'
        books = engine.book_for if pair is None else None
        run_replay(stream, executions, on_event, timer_ns=settings.runtime.timer_ms * NS_PER_MS, books=books)
    except KeyboardInterrupt:  # Ctrl-C: stop where we are, cancel, and still summarise
        stop_reason = "interrupted"
    if bar is not None:
        bar.close(source.bytes_read)
    end_ns = driver.now_ns
    log.info("session.stopping", reason=stop_reason)
    shutdown = engine.shutdown(end_ns)
    driver.log_notes()
    cancel_timeout_ns = settings.runtime.cancel_timeout_ms * NS_PER_MS
    finish_replay(executions, on_event, shutdown, end_ns, end_ns + cancel_timeout_ns)
    if engine.open_order_count() > 0:
        log.warning("shutdown.stragglers", open_orders=engine.open_order_count())
    if isinstance(source, ReplaySource) and stop_reason == "replay_finished":
        flags = plan.from_diffs or (False,) * len(plan.paths)
        for path, inst, from_diffs in zip(plan.paths, plan.file_instruments, flags, strict=True):
            stats = source.stats[inst.symbol]
            if not stats.get("sync_synced"):  # no book ever: an empty result is not a result
                raise ReplayUsageError(unsynced_reason(path, stats, from_diffs, settings.replay))
    wall_s = time.perf_counter() - wall0
    summary = engine.summary(driver.now_ns)
    duration_s = (end_ns - start_ns) / 1e9
    messages = source.lines_read
    summary.update(
        duration_s=round(duration_s, 3),
        wall_s=round(wall_s, 3),
        messages=messages,
        events=driver.events,
        msgs_per_s=round(messages / wall_s) if wall_s > 0 else None,
        speedup_vs_realtime=round(duration_s / wall_s, 1) if wall_s > 0 else None,
        speed=speed if speed is not None else "max",
        stop_reason=stop_reason,
        positions_lots=dict(engine.position_lots),
        replay=replay_stats(source, executions),
    )
    if pair is not None:  # two venues: per market key, as the engine's positions_lots
        summary["replay"] = {market_key(venue_of[s], s): v for s, v in summary["replay"].items()}
    if isinstance(source, CachedSource):
        summary["event_cache"] = source.summary()
    log.info("session.summary", **summary)
    return summary


def cmd_replay(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)  # a bad config raises ConfigError: exit 2 by the CLI
    try:
        # --speed wins; without it (None), the config's replay.speed
        speed = parse_speed(args.speed if args.speed is not None else settings.replay.speed)
        plan = plan_replay(args.files)
    except (ValueError, ReplayUsageError) as exc:  # ValueError: a bad --speed
        print(f"mmbot replay: {exc}", file=sys.stderr)
        return 2
    skip_deal = deal_is_for_another_market(settings, plan.spot)
    config_market = settings.market.spot_symbol
    settings = for_instruments(settings, plan.spot, plan.perp)
    # a batch job: its log lines go out in blocks, not a flush per line (a terminal still gets each line)
    configure_logging(args.log_format, args.log_level, secrets=secret_values(settings), flush_each_line=False)
    bind_context(run_id=uuid.uuid4().hex[:12], venue=plan.spot_venue, symbol=plan.spot.symbol)
    if skip_deal:
        log = get_logger("mmbot.replay")
        log.warning("replay.deal_skipped", config_market=config_market, replayed=plan.spot.symbol)
    progress = sys.stderr if sys.stderr.isatty() else None
    try:
        summary = run_session(settings, plan, speed, progress, cache_dir=Path(args.cache) if args.cache else None)
    except ReplayUsageError as exc:
        print(f"mmbot replay: {exc}", file=sys.stderr)
        return 2
    if args.json:
        write_json(args, summary)
    if summary["stop_reason"] == "interrupted":
        return 130
    return 0 if summary["open_orders_at_exit"] == 0 else 1
