"""TopOfBook: the replay applies each book update once, to the full book, and hands the engine only the
top levels; the engine's book must then be, after every update, exactly the top of the full book with
the same sequence state and status, on the recorded data and on adversarial sequences; and a whole
replay through the bot must give the same summary as handing the engine every update whole."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import load_settings
from bot.core.book import BookStatus, OrderBook
from bot.domain import (
    BookDelta,
    BookSnapshot,
    Command,
    Event,
    Instrument,
    InstrumentKind,
    OrderFilled,
    PlaceOrder,
    Side,
    TradePrint,
)
from bot.logs import configure_logging
from bot.replay_cli import WALL_CLOCK_FIELDS, for_instruments, plan_replay, run_session
from bot.venues.paper import PaperExecution
from bot.venues.replay import ReplaySource, TopOfBook, run_replay

DATA = Path(__file__).resolve().parent.parent / "data" / "binance"
SPOT_FILE = DATA / "spot_btcusdt_20240808.gz"
PERP_FILE = DATA / "usdm_btcusdt_20240808.gz"
SPOT = Instrument("BTC/USDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 0.000001)
PERP = Instrument("BTC/USDT:USDT", InstrumentKind.PERP, "BTC", "USDT", 0.1, 0.001)
SYM = "X/USDT"


def check_step(view: TopOfBook, reference: OrderBook, engine: OrderBook, event: BookSnapshot | BookDelta) -> None:
    """Apply `event` to the view, the original to `reference`, and the view's output to `engine`."""
    expected = reference.apply(event)
    changed, handed = view.apply(event)
    got = engine.apply(handed)
    assert got == expected  # same status and the same reason (gap and crossed reasons name the seqs)
    assert changed == expected.changed
    assert engine.seq == reference.seq and engine.is_valid == reference.is_valid
    if expected.status is not BookStatus.INVALID_INPUT and reference.is_valid:
        depth = view.depth
        assert engine.top_bids(depth + 2) == reference.top_bids(depth)  # exactly the top, nothing more
        assert engine.top_asks(depth + 2) == reference.top_asks(depth)
        assert engine.best_bid_ticks == reference.best_bid_ticks and engine.best_ask_ticks == reference.best_ask_ticks


def test_the_engine_book_is_the_top_of_the_full_book_after_every_recorded_update() -> None:
    source = ReplaySource([SPOT_FILE, PERP_FILE], [SPOT, PERP])
    depths = (1, 5)
    views = {(s, d): TopOfBook(OrderBook(s), d) for s in source.instruments for d in depths}
    references = {key: OrderBook(key[0]) for key in views}
    engines = {key: OrderBook(key[0]) for key in views}
    deltas = 0
    for _, event in source:
        if isinstance(event, BookDelta | BookSnapshot):
            for depth in depths:
                key = (event.symbol, depth)
                check_step(views[key], references[key], engines[key], event)
            deltas += isinstance(event, BookDelta)
    assert deltas > 9000
    for (symbol, depth), view in views.items():
        assert view.book.bid_level_count > 1000  # the full book is kept once, in the view
        assert engines[symbol, depth].bid_level_count == depth and engines[symbol, depth].is_valid


def test_a_delta_that_leaves_the_top_alone_reaches_the_engine_with_no_levels() -> None:
    view = TopOfBook(OrderBook(SYM), 1)
    _, snap = view.apply(BookSnapshot(SYM, 10, ((99, 5), (98, 1)), ((101, 7), (102, 2)), 1, 2))
    assert snap == BookSnapshot(SYM, 10, ((99, 5),), ((101, 7),), 1, 2)
    deep = BookDelta(SYM, 11, 12, ((98, 3), (97, 4)), ((103, 1),), 3, 4)
    assert view.apply(deep) == (True, BookDelta(SYM, 11, 12, (), (), 3, 4))
    # the best bid deleted: the engine is told to delete it and the new best (98 x 3) appears
    assert view.apply(BookDelta(SYM, 13, 13, ((99, 0),), (), 5, 6)) == (
        True,
        BookDelta(SYM, 13, 13, ((98, 3), (99, 0)), (), 5, 6),
    )
    # a size change at the best ask
    assert view.apply(BookDelta(SYM, 14, 14, (), ((101, 9),), 7, 8))[1].asks == ((101, 9),)
    # a gap: nothing applied, the engine gets the same sequence numbers and sees the gap itself
    assert view.apply(BookDelta(SYM, 20, 21, ((98, 1),), (), 9, 10)) == (False, BookDelta(SYM, 20, 21, (), (), 9, 10))


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TopOfBook(OrderBook(SYM), 0)


# ------------------------------------------------------------------------------------------------
# adversarial sequences: gaps, duplicates, crossed and invalid updates, snapshots at any time
# ------------------------------------------------------------------------------------------------


def side(low: int, high: int) -> st.SearchStrategy[list[tuple[int, int]]]:
    """Levels of one side; bids at 1..15 and asks at 12..30 overlap a little, so some updates cross."""
    return st.lists(st.tuples(st.integers(low, high), st.integers(0, 4)), max_size=5)


@st.composite
def book_events(draw: st.DrawFn) -> list[BookSnapshot | BookDelta]:
    """Snapshots, contiguous deltas, and now and then a gap, a duplicate or invalid input."""
    futures = draw(st.booleans())
    seq = 100
    out: list[BookSnapshot | BookDelta] = []
    later = st.sampled_from(["delta"] * 12 + ["snapshot", "gap", "stale", "bad"])
    kinds = ["snapshot", *draw(st.lists(later, max_size=30))]
    for kind in kinds:
        bids = draw(side(1, 15))
        asks = draw(side(12, 30))
        if kind == "bad":  # a price <= 0 or a negative size
            bids.append(draw(st.sampled_from([(0, 1), (5, -1), (-3, 2)])))
        if kind == "snapshot":
            seq += draw(st.integers(0, 3))
            bids = sorted({p: q for p, q in bids if q}.items(), reverse=True)
            asks = sorted({p: q for p, q in asks if q}.items())
            out.append(BookSnapshot(SYM, seq, tuple(bids), tuple(asks), seq, seq))
            continue
        first = {"gap": seq + 3, "stale": seq - 1}.get(kind, seq + 1)
        last = first + draw(st.integers(0, 2))
        prev = (first - 1 if kind == "gap" or kind == "stale" else seq) if futures else None
        out.append(BookDelta(SYM, first, last, tuple(bids), tuple(asks), last, last, prev))
        seq = max(seq, last)
    return out


@settings(max_examples=150)
@given(book_events(), st.integers(1, 4))
def test_the_engine_sees_the_top_of_the_full_book_with_the_same_status_on_any_sequence(
    events: list[BookSnapshot | BookDelta], depth: int
) -> None:
    view = TopOfBook(OrderBook(SYM), depth)
    reference, engine = OrderBook(SYM), OrderBook(SYM)
    for event in events:
        check_step(view, reference, engine, event)


@pytest.mark.parametrize("depth", [None, 1])
def test_an_order_arriving_with_a_book_update_meets_the_book_before_it(depth: int | None) -> None:
    """Our bid reaches the venue at t=5, when a delta adds 20 lots behind the 10 at its price: it joins
    behind 10 (the book before the update), so a print of 10 then 1 fills it. Joining behind 30 (the
    book after) would not fill it. The shared book must give the answer of a venue with its own."""
    inst = Instrument(SYM, InstrumentKind.SPOT, "X", "USDT", 1.0, 1.0)
    executions = {SYM: PaperExecution(inst, order_latency_ns=5)}
    stream = [
        (0, BookSnapshot(SYM, 1, ((99, 10),), ((101, 10),), 0, 0)),
        (5, BookDelta(SYM, 2, 2, ((99, 30),), (), 5, 5)),
        (6, TradePrint(SYM, 99, 10, Side.SELL, "t1", 6, 6)),
        (7, TradePrint(SYM, 99, 1, Side.SELL, "t2", 7, 7)),
    ]
    seen: list[Event] = []

    def strategy(event: Event, now_ns: int) -> list[Command]:
        seen.append(event)
        return [PlaceOrder(SYM, "b", Side.BUY, 99, 1)] if isinstance(event, BookSnapshot) else []

    run_replay(stream, executions, strategy, book_depth=depth)
    assert [e.size_lots for e in seen if isinstance(e, OrderFilled)] == [1]


# ------------------------------------------------------------------------------------------------
# the whole bot: top-of-book hand-off against whole updates
# ------------------------------------------------------------------------------------------------


def cut(src: Path, dst: Path, seconds: float) -> Path:
    """The first `seconds` of a recording, by receive time."""
    with gzip.open(src, "rb") as fh:
        lines = fh.readlines()
    t0 = int(lines[0].split(b" ", 1)[0])
    with gzip.open(dst, "wb") as out:
        out.writelines(line for line in lines if int(line.split(b" ", 1)[0]) < t0 + seconds * 1e9)
    return dst


def steady(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in WALL_CLOCK_FIELDS}


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    configure_logging("json", "WARNING", stream=io.StringIO())
    yield
    structlog.reset_defaults()


@pytest.mark.usefixtures("quiet_logs")
def test_a_replay_through_the_bot_is_the_same_whether_the_engine_gets_the_top_or_every_update(
    tmp_path: Path,
) -> None:
    plan = plan_replay([cut(SPOT_FILE, tmp_path / "spot.gz", 30), cut(PERP_FILE, tmp_path / "perp.gz", 30)])
    config = Path(__file__).resolve().parents[2] / "config" / "binance-paper.toml"  # small quotes: many fills
    settings_ = for_instruments(load_settings(config), plan.spot, plan.perp)
    top = run_session(settings_, plan, None, book_depth=1)
    whole = run_session(settings_, plan, None, book_depth=None)
    assert top["fills"] > 5 and top["hedges"] > 0 and top["quotes"] > 100
    assert steady(top) == steady(whole)
