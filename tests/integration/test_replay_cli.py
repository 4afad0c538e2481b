"""`mmbot replay` end to end: the shipped BTCUSDT pair through the full bot (default config), inference
on another pair, pacing, the progress bar, and the refusals (exit 2)."""

from __future__ import annotations

import functools
import gzip
import io
from collections.abc import Iterable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import orjson
import pytest

from bot.cli import main
from bot.config import load_settings
from bot.domain import Instrument, InstrumentKind
from bot.replay_cli import WALL_CLOCK_FIELDS, ProgressBar, ReplayUsageError, for_instruments, split_venue
from bot.venues.replay import pace

DATA = Path(__file__).resolve().parent.parent / "data" / "binance"
SPOT_FILE = DATA / "spot_btcusdt_20240808.gz"
PERP_FILE = DATA / "usdm_btcusdt_20240808.gz"
SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"


class Run:
    """One `mmbot replay ... --json --log-format json`: exit code, the summary (stdout holds that one JSON
    document and nothing else), the log lines (on stderr with --json, every one JSON), stderr."""

    def __init__(self, argv: Iterable[str | Path], stderr: io.StringIO | None = None) -> None:
        out, self.err_stream = io.StringIO(), stderr or io.StringIO()
        with redirect_stdout(out), redirect_stderr(self.err_stream):
            self.code = main(["replay", *map(str, argv), "--json", "--log-format", "json"])
        self.stdout = out.getvalue()
        self.stderr = self.err_stream.getvalue()
        assert len(self.stdout.splitlines()) <= 1, "stdout: the summary only"
        self.summary: dict[str, Any] = orjson.loads(self.stdout) if self.stdout else {}
        # the log lines, among the progress bar's redraws (which start with "\r") and error lines
        lines = self.stderr.replace("\r", "\n").splitlines()
        self.logs: list[dict[str, Any]] = [orjson.loads(line) for line in lines if line.startswith("{")]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.logs if r.get("event") == name]

    def steady(self) -> dict[str, Any]:
        """The summary without the fields that measure the machine rather than the replay."""
        return {k: v for k, v in self.summary.items() if k not in WALL_CLOCK_FIELDS}


def signed_lots(fills: list[dict[str, Any]], lot_size: float) -> int:
    return sum(round(f["size"] / lot_size) * (1 if f["side"] == "buy" else -1) for f in fills)


@functools.cache
def recorded_lines(src: Path) -> list[bytes]:
    with gzip.open(src, "rb") as fh:
        return fh.readlines()


def cut(src: Path, dst: Path, seconds: float, rename: tuple[bytes, bytes] | None = None) -> Path:
    """The first `seconds` of a recording (by receive time), optionally with the symbol renamed;
    gzipped when `dst` ends in .gz, plain text otherwise."""
    lines = recorded_lines(src)
    t0 = int(lines[0].split(b" ", 1)[0])
    keep = [line for line in lines if int(line.split(b" ", 1)[0]) < t0 + seconds * 1e9]
    if rename is not None:
        old, new = rename
        keep = [line.replace(old.upper(), new.upper()).replace(old.lower(), new.lower()) for line in keep]
    with gzip.open(dst, "wb") if dst.suffix == ".gz" else dst.open("wb") as out:
        out.writelines(keep)
    return dst


@pytest.fixture(scope="module")
def shipped() -> tuple[Run, Run]:
    """The shipped pair replayed twice with the default config (the test asserts they agree)."""
    return Run([SPOT_FILE, PERP_FILE]), Run([SPOT_FILE, PERP_FILE])


def test_the_shipped_pair_quotes_fills_and_hedges(shipped: tuple[Run, Run]) -> None:
    run = shipped[0]
    assert run.code == 0 and "\r" not in run.stderr and "replay " not in run.stderr  # no progress bar off a terminal
    summary = run.summary
    assert summary["fills"] > 0 and summary["hedges"] > 0 and summary["hedge_fills"] > 0
    assert summary["stop_reason"] == "replay_finished"
    assert summary["messages"] == 41_249 + 93_954  # every recorded line was read
    assert summary["duration_s"] == pytest.approx(346, abs=2)  # the recording's span, not the wall time
    assert set(summary["replay"]) == {SPOT, PERP}
    # the last log line is session.summary with the same fields; the engine's notes were logged
    assert run.logs[-1]["event"] == "session.summary"
    assert {k: v for k, v in run.logs[-1].items() if k in summary} == summary
    assert len(run.events("order.filled")) == summary["fills"]
    assert len(run.events("hedge.sent")) == summary["hedges"]
    assert run.events("quote.updated")


def test_engine_positions_are_the_sum_of_the_simulated_fills(shipped: tuple[Run, Run]) -> None:
    run = shipped[0]
    summary = run.summary
    positions = summary["positions_lots"]
    for symbol in (SPOT, PERP):
        assert positions[symbol] == summary["replay"][symbol]["position_lots"]  # engine == simulated venue
    spot_fills = run.events("order.filled")
    hedge_fills = run.events("hedge.filled")
    assert all(f["symbol"] == SPOT for f in spot_fills) and all(f["symbol"] == PERP for f in hedge_fills)
    assert signed_lots(spot_fills, 0.000001) == positions[SPOT] != 0
    assert signed_lots(hedge_fills, 0.001) == positions[PERP]
    assert summary["position_mismatches"] == 0 and summary["duplicate_fills_dropped"] == 0


def test_no_order_is_left_open_at_exit(shipped: tuple[Run, Run]) -> None:
    summary = shipped[0].summary
    assert summary["open_orders_at_exit"] == 0
    assert all(stats["open_orders"] == 0 for stats in summary["replay"].values())
    assert not shipped[0].events("shutdown.stragglers")


def test_two_replays_of_the_same_files_are_identical(shipped: tuple[Run, Run]) -> None:
    first, second = shipped
    assert first.steady() == second.steady()

    def stream(run: Run) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in ("ts", "run_id", *WALL_CLOCK_FIELDS)} for r in run.logs]

    assert stream(first) == stream(second)


def test_any_pair_is_inferred_and_pacing_changes_nothing_but_the_wall_time(tmp_path: Path) -> None:
    """ETHUSDC made from the first 60 s of the shipped files, spot as plain text, perp gzipped."""
    spot = cut(SPOT_FILE, tmp_path / "spot_ethusdc.txt", 60, (b"btcusdt", b"ethusdc"))
    perp = cut(PERP_FILE, tmp_path / "perp_ethusdc.gz", 60, (b"btcusdt", b"ethusdc"))
    fast = Run([spot, perp])
    assert fast.code == 0, fast.stderr
    started = fast.events("session.started")[0]
    assert (started["spot"], started["perp"]) == ("ETH/USDC", "ETH/USDC:USDC")
    summary = fast.summary
    assert set(summary["replay"]) == set(summary["positions_lots"]) == {"ETH/USDC", "ETH/USDC:USDC"}
    assert summary["fills"] > 0 and summary["open_orders_at_exit"] == 0
    for symbol, lots in summary["positions_lots"].items():
        assert lots == summary["replay"][symbol]["position_lots"]
    assert {r["symbol"] for r in fast.logs if "symbol" in r} == {"ETH/USDC", "ETH/USDC:USDC"}
    paced = Run([spot, perp, "--speed", "2000"])  # 60 s of recording in ~30 ms of pacing
    assert paced.code == 0 and paced.summary["speed"] == 2000.0
    assert {**paced.steady(), "speed": "max"} == fast.steady()


def test_a_spot_file_alone_is_quoted_without_hedging(tmp_path: Path) -> None:
    run = Run([cut(SPOT_FILE, tmp_path / "spot.gz", 30)])
    assert run.code == 0, run.stderr
    assert set(run.summary["positions_lots"]) == {SPOT}
    assert run.summary["hedges"] == 0 and run.summary["quotes"] > 0


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    run = Run([cut(SPOT_FILE, tmp_path / "spot.gz", 20)], stderr=Terminal())
    assert run.code == 0
    assert "\rreplay " in run.stderr and run.stderr.endswith("\n")
    assert "100%" in run.stderr.rsplit("\r", 1)[-1]  # the last redraw shows every byte read
    # the bar went to stderr only: stdout is the summary alone (Run)
    assert run.summary["stop_reason"] == "replay_finished"


def test_progress_bar_redraws_at_most_every_interval() -> None:
    stream = io.StringIO()
    bar = ProgressBar(total=1000, stream=stream, every_s=3600.0)
    for done in range(0, 1000, 10):
        bar.update(done)
    assert stream.getvalue().count("\r") == 1  # the first call draws, the rest are within the interval
    bar.close(1000)
    assert stream.getvalue().count("\r") == 2 and stream.getvalue().endswith("\n")


def test_pace_waits_for_recorded_time_scaled_by_speed() -> None:
    wall = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        wall[0] += seconds

    items = [(10_000_000_000, "a"), (11_000_000_000, "b"), (11_000_000_000, "c"), (13_000_000_000, "d")]
    out = list(pace(items, 2.0, clock_s=lambda: wall[0], sleep_s=sleep))  # type: ignore[arg-type]
    assert out == items
    assert sleeps == pytest.approx([0.5, 1.0])  # b at +0.5 s, c already due, d at +1.5 s
    with pytest.raises(ValueError):
        list(pace(items, 0.0))  # type: ignore[arg-type]


def write(path: Path, lines: Iterable[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "not_binance",
        "not_gzip",
        "two_spots",
        "perp_alone",
        "other_pair",
        "bad_speed",
        "bad_config",
        "half_named",
        "bad_venue_name",
    ],
)
def test_unusable_input_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    spot = cut(SPOT_FILE, tmp_path / "spot.gz", 5)
    perp = cut(PERP_FILE, tmp_path / "perp.gz", 5)
    argv: list[str | Path] = {
        "missing": [tmp_path / "nope.gz", perp],
        "not_binance": [write(tmp_path / "x.txt", [b"hello world\n"])],
        "not_gzip": [write(tmp_path / "x.gz", [b"123 {}\n"])],
        "two_spots": [spot, cut(SPOT_FILE, tmp_path / "spot2.gz", 5, (b"btcusdt", b"ethusdt"))],
        "perp_alone": [perp],
        "other_pair": [spot, cut(PERP_FILE, tmp_path / "eth.gz", 5, (b"btcusdt", b"ethusdt"))],
        "bad_speed": [spot, "--speed", "fast"],
        "bad_config": [spot, "--config", tmp_path / "nope.toml"],
        "half_named": [f"binance={spot}", perp],
        "bad_venue_name": [f"Binance={spot}"],
    }[case]
    run = Run(argv)
    assert run.code == 2
    assert run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1


def test_a_deal_configured_for_another_market_is_not_carried_into_the_replay(shipped: tuple[Run, Run]) -> None:
    spot = Instrument("BTC/USDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 0.000001)
    perp = Instrument("BTC/USDT:USDT", InstrumentKind.PERP, "BTC", "USDT", 0.1, 0.001)
    with_deal = {"deal": {"apply_to_portfolio": True}}
    for_token = load_settings(None, {**with_deal, "market": {"spot_symbol": "TOKEN/USDT"}})
    settings = for_instruments(for_token, spot, perp)
    assert (settings.market.spot_symbol, settings.market.perp_symbol) == ("BTC/USDT", "BTC/USDT:USDT")
    assert not settings.deal.apply_to_portfolio
    for_btc = load_settings(None, {**with_deal, "market": {"spot_symbol": "BTC/USDT"}})
    assert for_instruments(for_btc, spot, perp).deal.apply_to_portfolio  # written for this market: kept
    # the default config's deal is the mock TOKEN's: the shipped BTC replay says it left it out
    if load_settings(None).deal.apply_to_portfolio:
        assert shipped[0].events("replay.deal_skipped")


@pytest.fixture(scope="module")
def two_venues() -> Run:
    """The shipped pair with the spot recorded on one venue and the perp on another (issue #14)."""
    return Run([f"binance={SPOT_FILE}", f"bybit={PERP_FILE}"])


def test_a_spot_and_a_perp_named_for_two_venues_quote_on_one_and_hedge_on_the_other(two_venues: Run) -> None:
    run = two_venues
    assert run.code == 0, run.stderr
    summary = run.summary
    assert summary["open_orders_at_exit"] == 0
    assert summary["venues"]["binance"]["role"] == "spot" and summary["venues"]["binance"]["fills"] > 0
    assert summary["venues"]["bybit"]["hedge"]["fills"] > 0
    # one market per (venue, symbol): the engine's positions are the simulated venues', market by market
    markets = {f"{SPOT}@binance", f"{PERP}@bybit"}
    assert set(summary["positions_lots"]) == set(summary["replay"]) == markets
    for market in markets:
        assert summary["positions_lots"][market] == summary["replay"][market]["position_lots"]
    fills = run.events("order.filled")
    assert fills and {f["venue"] for f in fills} == {"binance"}
    assert {h["venue"] for h in run.events("hedge.sent")} == {"bybit"}
    assert {h["venue"] for h in run.events("hedge.filled")} == {"bybit"}
    assert run.events("session.started")[0]["venues"] == {SPOT: "binance", PERP: "bybit"}


def test_the_perp_of_another_venue_is_a_venue_of_its_own(two_venues: Run, shipped: tuple[Run, Run]) -> None:
    """Until the perp venue's book syncs, no hedge can be placed there: the spot is not quoted on both
    sides (on one venue the perp's feed is the spot's, and both sides are quoted from the first book)."""
    logs = two_venues.logs
    down = next(i for i, r in enumerate(logs) if r.get("event") == "hedge.venue_down")
    assert logs[down]["venue"] == "bybit" and logs[down]["reason"] == "book not synced"
    up = next(i for i, r in enumerate(logs) if r.get("event") == "hedge.venue_up")
    before = [r for r in logs[down:up] if r.get("event") == "quote.updated"]
    assert before and all(r["bid"] is None or r["ask"] is None for r in before)
    first = shipped[0].events("quote.updated")[0]
    assert first["bid"] is not None and first["ask"] is not None
    assert not shipped[0].events("hedge.venue_down")


def test_files_named_for_one_venue_replay_as_the_unnamed_files(shipped: tuple[Run, Run]) -> None:
    named = Run([f"binance={SPOT_FILE}", f"binance={PERP_FILE}"])
    assert named.code == 0
    assert named.steady() == shipped[0].steady()
    assert {r["venue"] for r in named.logs} == {"binance"}


def test_venue_file_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert split_venue("okx-demo=data/spot.gz") == ("okx-demo", Path("data/spot.gz"))
    assert split_venue("data/spot.gz") == ("", Path("data/spot.gz"))
    assert split_venue(Path("a=b.gz")) == ("", Path("a=b.gz"))  # a Path is a file, never VENUE=FILE
    write(tmp_path / "odd=name.gz", [b""])
    assert split_venue("odd=name.gz") == ("", Path("odd=name.gz"))  # an existing file wins
    with pytest.raises(ReplayUsageError, match="venue name"):
        split_venue("OKX=spot.gz")


def test_the_perp_venue_has_its_own_latency() -> None:
    """`replay.perp_*_latency_ms`: the perp's simulated venue answers later; the spot's is unchanged."""
    from bot.config import ReplayConfig
    from bot.venues.replay import make_executions

    spot = Instrument(SPOT, InstrumentKind.SPOT, "BTC", "USDT", 0.01, 0.00001)
    perp = Instrument(PERP, InstrumentKind.PERP, "BTC", "USDT", 0.1, 0.001)
    config = ReplayConfig(order_latency_ms=20, report_latency_ms=10, perp_order_latency_ms=85.5)
    ex = make_executions({SPOT: spot, PERP: perp}, config)
    assert (ex[SPOT].order_latency_ns, ex[SPOT].report_latency_ns) == (20_000_000, 10_000_000)
    assert (ex[PERP].order_latency_ns, ex[PERP].report_latency_ns) == (85_500_000, 10_000_000)
