"""The replay event cache: the bundled pair replayed from the raw files, then while writing the cache,
then from it, gives the same log lines and the same summary (the golden check of "parse once, replay
many"); the cache's key follows the file's bytes and instrument; an interrupted replay leaves no cache;
events round-trip through the columns exactly."""

from __future__ import annotations

import io
import shutil
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.cli import main
from bot.domain import BookDelta, BookSnapshot, Event, Side, TradePrint
from bot.replay_cli import WALL_CLOCK_FIELDS
from bot.venues import event_cache
from bot.venues.binance import infer_instrument
from bot.venues.event_cache import FORMAT_VERSION, CachedSource, _Columns, cache_key, read_events
from bot.venues.replay import ReplaySource

DATA = Path(__file__).resolve().parent.parent / "data" / "binance"
SPOT_FILE = DATA / "spot_btcusdt_20240808.gz"
PERP_FILE = DATA / "usdm_btcusdt_20240808.gz"
# what differs between two runs of the same replay: the wall clock, the run id, and where events came from
UNSTABLE = {"ts", "run_id", "event_cache", *WALL_CLOCK_FIELDS}


def replay(*extra: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["replay", str(SPOT_FILE), str(PERP_FILE), "--json", "--log-format", "json", *map(str, extra)])
    assert code == 0
    # with --json the log lines are on stderr and stdout is the summary alone: logs first, summary last
    records = [orjson.loads(line) for line in err.getvalue().splitlines() if line.startswith("{")]
    records.append(orjson.loads(out.getvalue()))
    return [{k: v for k, v in r.items() if k not in UNSTABLE} for r in records], records[-1]


def test_replay_from_the_cache_takes_the_same_decisions(tmp_path: Path) -> None:
    raw_lines, _ = replay()
    miss_lines, miss = replay("--cache", tmp_path)
    hit_lines, hit = replay("--cache", tmp_path)
    assert [f["hit"] for f in miss["event_cache"]["files"]] == [False, False]
    assert [f["hit"] for f in hit["event_cache"]["files"]] == [True, True]
    assert len(list(tmp_path.glob("*.npz"))) == 2
    summary = raw_lines[-1]  # the --json line
    # a replay with decisions worth comparing (181 fills: the toxic-flow guard's self-check keeps it
    # off on this tape; 82 while the guard acted on it, issue #16)
    assert summary["fills"] > 100 and summary["hedges"] > 10
    assert sum(1 for r in raw_lines if r.get("event") == "order.filled") > 100
    assert miss_lines == raw_lines  # writing the cache changes nothing
    assert hit_lines == raw_lines  # every log line, then the summary, identical
    assert hit["messages"] == 135_203  # the recorded lines, as the raw replay counts them


def test_the_key_follows_the_bytes_and_the_instrument(tmp_path: Path) -> None:
    inst = infer_instrument(SPOT_FILE)
    copy = tmp_path / "copy.gz"
    shutil.copyfile(SPOT_FILE, copy)
    assert cache_key(copy, inst) == cache_key(SPOT_FILE, inst)  # the name and place do not matter
    other_tick = replace(inst, tick_size=inst.tick_size * 10)
    assert cache_key(SPOT_FILE, other_tick) != cache_key(SPOT_FILE, inst)
    with copy.open("ab") as fh:  # one more byte: another recording
        fh.write(b"\n")
    assert cache_key(copy, inst) != cache_key(SPOT_FILE, inst)


def test_an_interrupted_replay_leaves_no_cache(tmp_path: Path) -> None:
    inst = infer_instrument(SPOT_FILE)
    source = CachedSource([SPOT_FILE], [inst], tmp_path)
    stream = iter(source)
    for _ in range(100):
        next(stream)
    stream.close()  # type: ignore[attr-defined]
    assert list(tmp_path.iterdir()) == []
    assert not CachedSource([SPOT_FILE], [inst], tmp_path).hits[0]


def test_a_cache_file_of_another_symbol_is_refused(tmp_path: Path) -> None:
    inst = infer_instrument(SPOT_FILE)
    source = CachedSource([SPOT_FILE], [inst], tmp_path)
    raw = list(ReplaySource([SPOT_FILE], [inst]))
    assert list(source) == raw  # written while read: the raw events, unchanged
    with pytest.raises(ValueError, match="not an event cache of ETH/USDT"):
        read_events(source.files[0], "ETH/USDT")


def test_the_python_decoder_reads_the_same_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the C extension (`_native_decode` None) the columns decode to the same events."""
    inst = infer_instrument(SPOT_FILE)
    raw = list(ReplaySource([SPOT_FILE], [inst]))
    assert list(CachedSource([SPOT_FILE], [inst], tmp_path)) == raw  # writes the cache
    monkeypatch.setattr(event_cache, "_native_decode", None)
    source = CachedSource([SPOT_FILE], [inst], tmp_path)
    assert source.hits == [True]
    assert list(source) == raw


levels = st.lists(st.tuples(st.integers(1, 2**40), st.integers(0, 2**40)), max_size=5).map(tuple)
times = st.integers(0, 2**62)


def book_events_of(venue: str = "") -> st.SearchStrategy[Event]:
    """Book and trade events of one symbol on `venue`, as the cache stores them (also tests/unit/test_native.py)."""
    return st.one_of(
        st.builds(BookSnapshot, st.just("X/Y"), st.integers(0, 2**50), levels, levels, times, times, st.just(venue)),
        st.builds(
            BookDelta,
            st.just("X/Y"),
            st.integers(0, 2**50),
            st.integers(0, 2**50),
            levels,
            levels,
            times,
            times,
            st.one_of(st.none(), st.integers(-1, 2**50)),  # None and 0 must stay apart
            st.just(venue),
        ),
        st.builds(
            TradePrint,
            st.just("X/Y"),
            st.integers(1, 2**40),
            st.integers(1, 2**40),
            st.sampled_from([Side.BUY, Side.SELL]),
            st.text("0123456789abc-", min_size=1, max_size=12),
            times,
            times,
            st.just(venue),
        ),
    )


book_events = book_events_of()


@given(st.lists(st.tuples(times, book_events), max_size=40))
def test_events_round_trip_through_the_columns(events: list[tuple[int, Event]]) -> None:
    columns = _Columns()
    for now_ns, event in events:
        columns.add(now_ns, event)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npz"
        columns.write(path, {"format": FORMAT_VERSION, "symbol": "X/Y", "venue": "", "stats": {"lines": 3}})
        back, meta = read_events(path, "X/Y")
        assert list(back) == events
    assert meta["stats"] == {"lines": 3}
