"""The ccxt adapter's synchronous parts: error table, precision modes, book snapshot/delta tracker."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain import BookDelta, BookSnapshot, Instrument, InstrumentKind
from bot.venues.ccxt_book import BookTracker
from bot.venues.ccxt_errors import ERROR_TABLE, Action, classify
from bot.venues.ccxt_markets import MarketSpec, market_spec, precision_step

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "ccxt" / "binance_btcusdt_market.json"

# ---- error table --------------------------------------------------------------------------------

CCXT_ERRORS = [
    cls
    for _, cls in inspect.getmembers(importlib.import_module("ccxt.base.errors"), inspect.isclass)
    if issubclass(cls, ccxt.BaseError)
]


@pytest.mark.parametrize("cls", CCXT_ERRORS, ids=lambda c: c.__name__)
def test_every_ccxt_error_class_has_a_row(cls: type[Exception]) -> None:
    assert cls in ERROR_TABLE, f"{cls.__name__} is not mapped explicitly"
    assert classify(cls("x")) is ERROR_TABLE[cls]


@pytest.mark.parametrize(
    ("exc", "action", "reason"),
    [
        (ccxt.OrderImmediatelyFillable("x"), Action.REJECT, "post_only_would_cross"),
        (ccxt.InsufficientFunds("x"), Action.REJECT, "insufficient_balance"),
        (ccxt.OrderNotFound("x"), Action.REJECT, "unknown_order"),
        (ccxt.RateLimitExceeded("x"), Action.BACKOFF, "rate_limited"),
        (ccxt.DDoSProtection("x"), Action.BACKOFF, "rate_limited"),
        (ccxt.RequestTimeout("x"), Action.RETRY, "timeout"),
        (ccxt.InvalidNonce("x"), Action.RESYNC, "book_gap"),
        (ccxt.ChecksumError("x"), Action.RESYNC, "book_checksum"),
        (ccxt.AuthenticationError("x"), Action.STOP, "auth_failed"),
        (ccxt.BadSymbol("x"), Action.STOP, "bad_symbol"),
        (ConnectionResetError(), Action.RETRY, "network"),
    ],
)
def test_rows(exc: Exception, action: Action, reason: str) -> None:
    rule = classify(exc)
    assert rule is not None and (rule.action, rule.reason) == (action, reason)


def test_unknown_subclass_falls_back_to_its_parent_and_bugs_are_not_venue_errors() -> None:
    class NewCcxtError(ccxt.InsufficientFunds):
        pass

    rule = classify(NewCcxtError("x"))
    assert rule is not None and rule.reason == "insufficient_balance"
    assert classify(ValueError("bug")) is None


# ---- markets and precision modes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mode", "step"),
    [
        (0.01, ccxt.TICK_SIZE, 0.01),
        ("0.5", ccxt.TICK_SIZE, 0.5),
        (2, ccxt.DECIMAL_PLACES, 0.01),
        (0, ccxt.DECIMAL_PLACES, 1.0),
    ],
)
def test_precision_step(value: Any, mode: int, step: float) -> None:
    assert precision_step(value, mode, "price", "X/Y") == pytest.approx(step)


def test_significant_digits_and_missing_precision_are_refused() -> None:
    with pytest.raises(ValueError, match="significant digits"):
        precision_step(5, ccxt.SIGNIFICANT_DIGITS, "price", "X/Y")
    with pytest.raises(ValueError, match="no price precision"):
        precision_step(None, ccxt.TICK_SIZE, "price", "X/Y")


def binance_market() -> dict[str, Any]:
    exchange = ccxt.pro.binance()
    exchange.options["crossMarginPairsData"] = []
    exchange.options["isolatedMarginPairsData"] = []
    market: dict[str, Any] = exchange.parse_market(json.loads(FIXTURE.read_text())["exchange_info_symbol"])
    return market


def test_recorded_binance_market_gives_the_exchange_grid() -> None:
    spec = market_spec(binance_market(), ccxt.pro.binance().precisionMode)
    inst = spec.instrument
    assert (inst.symbol, inst.kind, inst.base, inst.quote) == ("BTC/USDT", InstrumentKind.SPOT, "BTC", "USDT")
    assert inst.tick_size == pytest.approx(0.01) and inst.lot_size == pytest.approx(0.00001)
    assert inst.min_notional == 5.0 and inst.maker_fee == 0.001 and inst.taker_fee == 0.001
    assert spec.market_id == "BTCUSDT"
    assert spec.lots(0.02) == 2000 and spec.amount(2000) == 0.02


def test_contract_sized_perp_lots_are_in_base_units() -> None:
    # OKX BTC-USDT-SWAP: amount in contracts of 0.01 BTC, 1 contract step, decimal-places precision
    market = {
        "symbol": "BTC/USDT:USDT",
        "id": "BTC-USDT-SWAP",
        "base": "BTC",
        "quote": "USDT",
        "swap": True,
        "linear": True,
        "contractSize": 0.01,
        "precision": {"price": 1, "amount": 0},
        "limits": {"cost": {"min": None}},
        "maker": 0.0002,
        "taker": 0.0005,
    }
    spec = market_spec(market, ccxt.DECIMAL_PLACES)
    assert spec.instrument.kind is InstrumentKind.PERP
    assert spec.instrument.tick_size == pytest.approx(0.1)
    assert spec.instrument.lot_size == pytest.approx(0.01)  # one contract = 0.01 BTC
    assert spec.lots(3.0) == 3 and spec.amount(3) == 3.0
    with pytest.raises(ValueError, match="only spot and linear"):
        market_spec({**market, "linear": False, "inverse": True}, ccxt.DECIMAL_PLACES)


# ---- book tracker -------------------------------------------------------------------------------

SPEC = MarketSpec(
    Instrument("BTC/USDT", InstrumentKind.SPOT, "BTC", "USDT", tick_size=0.5, lot_size=0.1), "BTCUSDT", 0.1
)


def book(
    bids: list[list[float]], asks: list[list[float]], nonce: int | None, ts_ms: int | None = 1000
) -> dict[str, Any]:
    return {"bids": bids, "asks": asks, "nonce": nonce, "timestamp": ts_ms}


def test_first_book_is_a_snapshot_then_contiguous_deltas() -> None:
    tracker = BookTracker(SPEC, depth_levels=2)
    first = tracker.update(book([[100.0, 1.0], [99.5, 0.3], [99.0, 9.0]], [[100.5, 0.2]], nonce=41), 5)
    assert first == BookSnapshot("BTC/USDT", 41, ((200, 10), (199, 3)), ((201, 2),), 1_000_000_000, 5)
    # 100.0 shrinks, 99.5 vanishes so 99.0 slides into the top 2, 101.0 appears; nonce jumps to 45
    second = tracker.update(book([[100.0, 0.5], [99.0, 9.0]], [[100.5, 0.2], [101.0, 1.0]], nonce=45), 6)
    assert isinstance(second, BookDelta)
    assert (second.first_seq, second.last_seq) == (42, 45)
    assert sorted(second.bids) == [(198, 90), (199, 0), (200, 5)]
    assert second.asks == ((202, 10),)
    # no venue nonce (or one that did not move): a synthetic step keeps the sequence contiguous
    third = tracker.update(book([[100.0, 0.5], [99.0, 9.0]], [[100.5, 0.2], [101.0, 1.0]], nonce=None), 7)
    assert isinstance(third, BookDelta) and (third.first_seq, third.last_seq) == (46, 46)
    assert third.bids == () and third.asks == ()  # still sent: the feed is alive
    tracker.reset()
    assert isinstance(tracker.update(book([[100.0, 0.5]], [], nonce=3, ts_ms=None), 8), BookSnapshot)


levels = st.dictionaries(st.integers(1, 40), st.integers(1, 5), max_size=12)


@given(st.lists(st.tuples(levels, levels, st.one_of(st.none(), st.integers(0, 50))), min_size=1, max_size=15))
def test_applying_the_events_reproduces_the_top_of_every_book(
    books: list[tuple[dict[int, int], dict[int, int], Any]],
) -> None:
    depth = 4
    tracker = BookTracker(SPEC, depth_levels=depth)
    view_bids: dict[int, int] = {}
    view_asks: dict[int, int] = {}
    last = None
    for raw_bids, raw_asks, nonce in books:
        # bids below 100, asks above: ccxt sorts best first
        bids = [[(200 - t) * 0.5, s * 0.1] for t, s in sorted(raw_bids.items())]
        asks = [[(200 + t) * 0.5, s * 0.1] for t, s in sorted(raw_asks.items())]
        event = tracker.update(book(bids, asks, nonce), 0)
        if isinstance(event, BookSnapshot):
            view_bids, view_asks, last = dict(event.bids), dict(event.asks), event.seq
        else:
            assert last is not None and event.first_seq == last + 1 and event.last_seq >= event.first_seq
            for view, changes in ((view_bids, event.bids), (view_asks, event.asks)):
                for px, size in changes:
                    view.pop(px) if size == 0 else view.__setitem__(px, size)
            last = event.last_seq
        assert sorted(view_bids.items(), reverse=True) == [(200 - t, s) for t, s in sorted(raw_bids.items())][:depth]
        assert sorted(view_asks.items()) == [(200 + t, s) for t, s in sorted(raw_asks.items())][:depth]
