"""`mmbot exchange record`: the mock market's public data written as a Binance recording.

The output is the format of the bundled real recordings (tests/data/binance/README.md), which
`mmbot replay` and `bot.market_stats` read: one line per message, `<receive ns> <JSON>`, the JSON
being a REST depth snapshot (`lastUpdateId`, `bids`, `asks`) or a combined-stream message
(`<sym>@depth@100ms` diff depth with `U`/`u`, plus `pu` on the perp as USD-M futures send it;
`<sym>@trade` with `t`, `p`, `q`, `T`, `m`). Binance's field meanings, as documented for the spot and
USD-M websocket streams: `U`/`u` first/last update id of the diff, `pu` the previous diff's `u`
(futures), `m` true when the buyer was the maker (the aggressor sold), `E`/`T` event/trade time in ms.

The mock runs with no order of ours and with its fault injection off (a recording of the market, not
of the chaos the soak adds), from `start_ns` (a fixed epoch, so files are byte-identical per seed).
One file per symbol, as Binance recordings are: the spot file, and the perp file when asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO

import orjson

from bot.config import ConfigError, MockExchangeConfig, MockFaultConfig, load_settings
from bot.domain import BookDelta, BookSnapshot, Instrument, InstrumentKind, Level, Side, TradePrint
from bot.venues.mock.exchange import MockExchange

START_NS = 1_700_000_000 * 1_000_000_000  # 2023-11-14 22:13:20 UTC: a fixed, realistic epoch
_NS_PER_MS = 1_000_000


def binance_symbol(instrument: Instrument) -> str:
    """ "TOKEN/USDT" or "TOKEN/USDT:USDT" -> "TOKENUSDT" (what Binance's `s` field carries)."""
    return instrument.symbol.split(":")[0].replace("/", "")


def _decimals(step: float) -> int:
    return max(0, -int(Decimal(repr(step)).normalize().as_tuple().exponent))


class RecordingWriter:
    """Writes one instrument's public events as Binance recording lines."""

    def __init__(self, out: IO[bytes], instrument: Instrument) -> None:
        self.out = out
        self.instrument = instrument
        self.futures = instrument.kind is InstrumentKind.PERP
        self.s = binance_symbol(instrument)
        self.lower = self.s.lower()
        self._px_fmt = f"{{:.{_decimals(instrument.tick_size)}f}}"
        self._qty_fmt = f"{{:.{_decimals(instrument.lot_size)}f}}"
        self._last_u: int | None = None
        self.lines = 0

    def _px(self, ticks: int) -> str:
        return self._px_fmt.format(ticks * self.instrument.tick_size)

    def _qty(self, lots: int) -> str:
        return self._qty_fmt.format(lots * self.instrument.lot_size)

    def _levels(self, levels: tuple[Level, ...]) -> list[list[str]]:
        return [[self._px(p), self._qty(q)] for p, q in levels]

    def _line(self, recv_ns: int, message: dict[str, object]) -> None:
        self.out.write(b"%d %s\n" % (recv_ns, orjson.dumps(message)))
        self.lines += 1

    def write(self, event: object) -> None:
        if isinstance(event, BookSnapshot):
            snapshot: dict[str, object] = {
                "lastUpdateId": event.seq,
                "bids": self._levels(event.bids),
                "asks": self._levels(event.asks),
            }
            if self.futures:  # USD-M's REST depth carries the message and transaction times
                snapshot["E"] = snapshot["T"] = event.ts_venue_ns // _NS_PER_MS
            self._line(event.ts_recv_ns, snapshot)
            self._last_u = event.seq
        elif isinstance(event, BookDelta):
            data: dict[str, object] = {
                "e": "depthUpdate",
                "E": event.ts_venue_ns // _NS_PER_MS,
                "s": self.s,
                "U": event.first_seq,
                "u": event.last_seq,
            }
            if self.futures:
                data["T"] = data["E"]
                data["pu"] = event.first_seq - 1 if self._last_u is None else self._last_u
            data["b"] = self._levels(event.bids)
            data["a"] = self._levels(event.asks)
            stream = f"{self.lower}@depth@0ms" if self.futures else f"{self.lower}@depth@100ms"
            self._line(event.ts_recv_ns, {"stream": stream, "data": data})
            self._last_u = event.last_seq
        elif isinstance(event, TradePrint):
            ms = event.ts_venue_ns // _NS_PER_MS
            trade = {
                "e": "trade",
                "E": ms,
                "s": self.s,
                "t": int(event.trade_id),
                "p": self._px(event.price_ticks),
                "q": self._qty(event.size_lots),
                "T": ms,
                "m": event.aggressor is Side.SELL,  # the buyer was the maker: the aggressor sold
            }
            if not self.futures:
                trade["M"] = True
            self._line(event.ts_recv_ns, {"stream": f"{self.lower}@trade", "data": trade})


def record(
    config: MockExchangeConfig,
    seconds: float,
    seed: int,
    spot_out: IO[bytes],
    perp_out: IO[bytes] | None = None,
    start_ns: int = START_NS,
) -> dict[str, int]:
    """Run the mock market alone for `seconds` and write its public data; returns lines per file."""
    exchange = recording_exchange(config, seed, start_ns)
    spot_inst, perp_inst = exchange.instruments.values()
    writers = {spot_inst.symbol: RecordingWriter(spot_out, spot_inst)}
    if perp_out is not None:
        writers[perp_inst.symbol] = RecordingWriter(perp_out, perp_inst)
    for event in market_events(exchange, start_ns + round(seconds * 1e9)):
        writer = writers.get(getattr(event, "symbol", ""))
        if writer is not None:
            writer.write(event)
    return {symbol: w.lines for symbol, w in writers.items()}


def recording_exchange(config: MockExchangeConfig, seed: int, start_ns: int = START_NS) -> MockExchange:
    """The mock as `record` runs it: the config's market with fault injection off."""
    return MockExchange(config.model_copy(update={"faults": MockFaultConfig()}), seed=seed, start_ns=start_ns)


def market_events(exchange: MockExchange, end_ns: int) -> Iterator[object]:
    """Every event the exchange delivers up to `end_ns`, with nobody trading on it, in delivery order."""
    while True:
        t = exchange.next_event_ns()
        if t is None or t > end_ns:
            return
        yield from exchange.advance(t)


@contextlib.contextmanager
def _open(path: Path) -> Iterator[IO[bytes]]:
    """The file for writing, gzipped when it ends in .gz, with no name or time in the gzip header: the
    same seed gives the same bytes."""
    with open(path, "wb") as raw:
        if path.suffix != ".gz":
            yield raw
            return
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
            yield out  # type: ignore[misc]


def cmd_exchange_record(args: argparse.Namespace) -> int:
    """`mmbot exchange record --config CFG --minutes M --seed S --out FILE.gz [--perp-out FILE.gz]`."""
    settings = load_settings(args.config)  # ConfigError -> exit 2 in the CLI
    if not (math.isfinite(args.minutes) and args.minutes > 0):
        raise ConfigError(f"--minutes must be a finite number > 0, got {args.minutes!r}")
    seed = settings.mock.seed if args.seed is None else int(args.seed)
    spot_path = Path(args.out)
    perp_path = Path(args.perp_out) if args.perp_out else None
    for path in (spot_path, perp_path):
        if path is not None and not path.parent.is_dir():
            raise ConfigError(f"--out: directory {str(path.parent)!r} does not exist")
    with _open(spot_path) as spot_out:
        if perp_path is None:
            lines = record(settings.mock, args.minutes * 60.0, seed, spot_out)
        else:
            with _open(perp_path) as perp_out:
                lines = record(settings.mock, args.minutes * 60.0, seed, spot_out, perp_out)
    paths = [spot_path] if perp_path is None else [spot_path, perp_path]
    for (symbol, n), path in zip(lines.items(), paths, strict=True):
        print(f"{symbol}: {n} lines -> {path}")
    return 0
