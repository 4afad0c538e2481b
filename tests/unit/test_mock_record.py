"""`mmbot exchange record`: the mock's public data in the Binance recording format, read back by the
replay's own parser and sync (the code that reads the real recordings) into the same events."""

import gzip
from pathlib import Path

import orjson

from bot.cli import main
from bot.config import load_settings
from bot.domain import BookDelta, BookSnapshot, TradePrint
from bot.venues.binance import infer_instrument
from bot.venues.mock.record import START_NS, market_events, record, recording_exchange
from bot.venues.replay import ReplaySource

SECONDS = 60.0


def _key(event: object) -> tuple:
    """What a recording keeps of an event (venue times are whole milliseconds in Binance's format)."""
    if isinstance(event, BookSnapshot):
        return ("snapshot", event.seq, event.bids, event.asks, event.ts_recv_ns)
    if isinstance(event, BookDelta):
        return ("delta", event.first_seq, event.last_seq, event.bids, event.asks, event.ts_recv_ns)
    assert isinstance(event, TradePrint)
    ms = event.ts_venue_ns // 1_000_000
    return ("trade", event.price_ticks, event.size_lots, event.aggressor, event.trade_id, ms, event.ts_recv_ns)


def test_record_round_trips_through_the_replay_parser_and_sync(tmp_path: Path) -> None:
    config = load_settings(None).mock
    spot, perp = tmp_path / "spot.gz", tmp_path / "perp.gz"
    with gzip.GzipFile(spot, "wb", mtime=0) as s, gzip.GzipFile(perp, "wb", mtime=0) as p:
        lines = record(config, SECONDS, 7, s, p)
    assert all(n > 100 for n in lines.values())

    # the mock's own events, from an independent run with the same seed
    exchange = recording_exchange(config, 7)
    expected: dict[str, list[tuple]] = {symbol: [] for symbol in exchange.instruments}
    for event in market_events(exchange, START_NS + int(SECONDS * 1e9)):
        if isinstance(event, BookSnapshot | BookDelta | TradePrint):
            expected[event.symbol].append(_key(event))

    source = ReplaySource([spot, perp])
    got: dict[str, list[tuple]] = {symbol: [] for symbol in exchange.instruments}
    for _, event in source:
        got[event.symbol].append(_key(event))
    for symbol in exchange.instruments:
        assert got[symbol] == expected[symbol], symbol
        stats = source.stats[symbol]
        assert stats["sync_synced"] == 1 and stats["sync_gap"] == 0
        assert not any(k.startswith("dropped_") for k in stats)
    # the instrument is inferred from the file's data as for a real recording (perp: from `pu`)
    for path, (symbol, inst) in zip((spot, perp), exchange.instruments.items(), strict=True):
        inferred = infer_instrument(path)
        assert (inferred.symbol, inferred.kind, inferred.tick_size, inferred.lot_size) == (
            symbol,
            inst.kind,
            inst.tick_size,
            inst.lot_size,
        )


def test_record_is_deterministic_and_the_cli_writes_what_replay_reads(tmp_path: Path, capsys) -> None:
    a, b, perp = tmp_path / "a.gz", tmp_path / "b.gz", tmp_path / "p.gz"
    assert (
        main(["exchange", "record", "--minutes", "0.5", "--seed", "3", "--out", str(a), "--perp-out", str(perp)]) == 0
    )
    assert main(["exchange", "record", "--minutes", "0.5", "--seed", "3", "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    first = orjson.loads(gzip.decompress(a.read_bytes()).split(b"\n")[0].split(b" ", 1)[1])
    assert "lastUpdateId" in first
    capsys.readouterr()
    assert main(["replay", str(a), str(perp), "--json", "--log-format", "json"]) == 0
    summary = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["stop_reason"] == "replay_finished"
    assert all(s["sync_synced"] == 1 for s in summary["replay"].values())


def test_record_refuses_bad_minutes_and_a_missing_directory(tmp_path: Path, capsys) -> None:
    assert main(["exchange", "record", "--minutes", "0", "--out", str(tmp_path / "x.gz")]) == 2
    assert "--minutes" in capsys.readouterr().err
    assert main(["exchange", "record", "--minutes", "1", "--out", str(tmp_path / "nope" / "x.gz")]) == 2
    assert "does not exist" in capsys.readouterr().err
