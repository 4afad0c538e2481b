"""CcxtVenue order paths, feeds and safety, through a hand-written fake of a ccxt.pro exchange.

The fake returns ccxt-unified structures (orders, trades, positions, balances, order books) and raises
ccxt's own error classes, scripted per call. No network, no fixed sleeps: waits are on conditions.
"""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro
import pytest
from conftest import until

from bot.cli import main
from bot.config import CcxtConfig, ConfigError, load_settings
from bot.domain import (
    BookSnapshot,
    CancelAll,
    CancelOrder,
    CancelRejected,
    Command,
    Event,
    FeedStatus,
    Instrument,
    Liquidity,
    OpenOrder,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    RequestSnapshot,
    Side,
    TradePrint,
)
from bot.venues.ccxt_errors import ERROR_TABLE, Action, VenueFatalError
from bot.venues.ccxt_orders import venue_client_id
from bot.venues.ccxt_safety import build_exchange
from bot.venues.ccxt_venue import CcxtVenue

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
KEYS = {"api_key": "k", "api_secret": "s", "api_password": "p"}

MARKETS: dict[str, dict[str, Any]] = {
    "BTC/USDT": {
        "id": "BTCUSDT",
        "symbol": "BTC/USDT",
        "base": "BTC",
        "quote": "USDT",
        "spot": True,
        "swap": False,
        "linear": None,
        "contractSize": None,
        "precision": {"price": 0.01, "amount": 0.001},
        "limits": {"cost": {"min": 5.0}},
        "maker": 0.001,
        "taker": 0.001,
    },
    "BTC/USDT:USDT": {
        "id": "BTCUSDT",
        "symbol": "BTC/USDT:USDT",
        "base": "BTC",
        "quote": "USDT",
        "spot": False,
        "swap": True,
        "linear": True,
        "contractSize": 1.0,
        "precision": {"price": 0.1, "amount": 0.001},
        "limits": {"cost": {"min": 5.0}},
        "maker": 0.0002,
        "taker": 0.00055,
    },
}


class FakeExchange:
    """Just enough of a ccxt.pro exchange. Calls are recorded; results are scripted per method."""

    def __init__(self, options: dict[str, Any], exchange_id: str = "bybit", move_urls: bool = True) -> None:
        real = getattr(ccxt.pro, exchange_id)()
        self.id = exchange_id
        self.options = options
        self.urls = copy.deepcopy(real.urls)
        self.headers: dict[str, str] = {}
        self.precisionMode = ccxt.TICK_SIZE
        self.has: dict[str, Any] = {"watchOrders": True, "watchMyTrades": True, "unWatchOrderBook": True}
        self.move_urls = move_urls  # False: a broken sandbox switch that leaves mainnet urls in place
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.results: dict[str, list[Any]] = defaultdict(list)  # method -> scripted results/exceptions
        self.feeds: dict[tuple[str, str], asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self.next_id = 0
        self.closed = False

    # environment switches, as ccxt does them
    def set_sandbox_mode(self, enabled: bool) -> None:
        if self.move_urls:
            self.urls["api"] = copy.deepcopy(self.urls["test"])
        if self.id == "okx" and self.move_urls:
            self.headers["x-simulated-trading"] = "1"

    def enable_demo_trading(self, enabled: bool) -> None:
        if self.move_urls:
            self.urls["api"] = copy.deepcopy(self.urls.get("demotrading") or self.urls["demo"])

    def _scripted(self, method: str, default: Callable[[], Any]) -> Any:
        script = self.results[method]
        result = script.pop(0) if script else default()
        if isinstance(result, BaseException):
            raise result
        return result

    async def load_markets(self) -> dict[str, Any]:
        self.calls.append(("load_markets", ()))
        return self._scripted("load_markets", lambda: MARKETS)

    async def create_order(self, symbol: str, type: str, side: str, amount: float, price: Any, params: Any) -> Any:
        self.calls.append(("create_order", (symbol, type, side, amount, price, dict(params))))

        def ack() -> dict[str, Any]:  # bybit answers a create with ids only
            self.next_id += 1
            return {"id": f"oid-{self.next_id}", "clientOrderId": None, "status": None, "symbol": symbol}

        return self._scripted("create_order", ack)

    async def cancel_order(self, id: Any, symbol: str, params: Any) -> Any:
        self.calls.append(("cancel_order", (id, symbol, dict(params))))
        return self._scripted("cancel_order", lambda: {"id": id, "status": "canceled", "symbol": symbol})

    async def fetch_open_orders(self, symbol: str) -> Any:
        self.calls.append(("fetch_open_orders", (symbol,)))
        return self._scripted("fetch_open_orders", list)

    async def fetch_balance(self) -> Any:
        self.calls.append(("fetch_balance", ()))
        return self._scripted("fetch_balance", lambda: {"total": {"BTC": 1.0, "USDT": 1000.0}})

    async def fetch_positions(self, symbols: list[str]) -> Any:
        self.calls.append(("fetch_positions", (symbols,)))
        return self._scripted("fetch_positions", list)

    async def is_unified_enabled(self) -> Any:  # bybit: [unified margin, unified trading account]
        self.calls.append(("is_unified_enabled", ()))
        return self._scripted("is_unified_enabled", lambda: [False, True])

    async def _feed(self, method: str, symbol: str) -> Any:
        item = await self.feeds[(method, symbol)].get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def watch_order_book(self, symbol: str, limit: int | None = None) -> Any:
        self.calls.append(("watch_order_book", (symbol, limit)))
        return await self._feed("watch_order_book", symbol)

    async def un_watch_order_book(self, symbol: str, params: dict[str, Any] | None = None) -> Any:
        self.calls.append(("un_watch_order_book", (symbol, dict(params or {}))))

    async def watch_trades(self, symbol: str) -> Any:
        return await self._feed("watch_trades", symbol)

    async def watch_orders(self, symbol: str | None = None) -> Any:  # None: account-wide, keyed "*"
        return await self._feed("watch_orders", symbol or "*")

    async def watch_my_trades(self, symbol: str | None = None) -> Any:
        return await self._feed("watch_my_trades", symbol or "*")

    async def close(self) -> None:
        self.closed = True

    def called(self, method: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == method]


class Clock:
    def __init__(self) -> None:
        self.now_ns = 1_700_000_000_000_000_000

    def __call__(self) -> int:
        return self.now_ns


def make_venue(
    exchange: str = "bybit", mode: str = "testnet", **overrides: Any
) -> tuple[CcxtVenue, FakeExchange, Clock]:
    fakes: list[FakeExchange] = []

    def factory(options: dict[str, Any]) -> FakeExchange:
        fakes.append(FakeExchange(options, exchange))
        return fakes[-1]

    fields: dict[str, Any] = {"exchange": exchange, "mode": mode, "reconnect_base_ms": 1, "reconnect_cap_ms": 2}
    if mode != "paper":
        fields.update(KEYS)
    fields.update(overrides)
    clock = Clock()
    venue = CcxtVenue(CcxtConfig(**fields), exchange_factory=factory, clock_ns=clock)
    return venue, fakes[0], clock


async def connected(exchange: str = "bybit", mode: str = "testnet", **overrides: Any):  # type: ignore[no-untyped-def]
    venue, fake, clock = make_venue(exchange, mode, **overrides)
    await venue.connect()
    events: list[Event] = []
    venue._sink = events.append  # execute() results without running the feeds
    return venue, fake, clock, events


def place(client_id: str = "mm-1", **kw: Any) -> PlaceOrder:
    fields: dict[str, Any] = {"symbol": "BTC/USDT", "client_id": client_id, "side": Side.BUY}
    fields.update({"price_ticks": 6_000_000, "size_lots": 2})
    fields.update(kw)
    return PlaceOrder(**fields)


# ---- safety -------------------------------------------------------------------------------------


def test_testnet_without_keys_is_refused_before_any_network() -> None:
    with pytest.raises(ConfigError, match="MMBOT__CCXT__API_KEY") as info:
        CcxtVenue(CcxtConfig(exchange="bybit", mode="testnet"), exchange_factory=lambda o: pytest.fail("built"))
    assert "\n" not in str(info.value)


def test_okx_demo_needs_the_passphrase() -> None:
    config = CcxtConfig(exchange="okx", mode="demo", api_key="k", api_secret="s")
    with pytest.raises(ConfigError, match="MMBOT__CCXT__API_PASSWORD"):
        CcxtVenue(config)


@pytest.mark.parametrize("exchange", ["bybit", "binance", "okx"])
def test_a_sandbox_switch_that_leaves_mainnet_urls_is_refused(exchange: str) -> None:
    mode = "demo" if exchange == "okx" else "testnet"
    config = CcxtConfig(
        exchange=exchange, mode=mode, perp_symbol="" if exchange == "binance" else "BTC/USDT:USDT", **KEYS
    )
    with pytest.raises(ConfigError, match="mainnet") as info:
        build_exchange(config, lambda options: FakeExchange(options, exchange, move_urls=False))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("exchange", "mode", "perp"),
    [
        ("bybit", "testnet", "BTC/USDT:USDT"),
        ("bybit", "demo", "BTC/USDT:USDT"),
        ("binance", "testnet", ""),
        ("binance", "demo", "BTC/USDT:USDT"),
        ("okx", "demo", "BTC/USDT:USDT"),
    ],
)
def test_real_ccxt_classes_reach_their_sandbox(exchange: str, mode: str, perp: str) -> None:
    ex = build_exchange(CcxtConfig(exchange=exchange, mode=mode, perp_symbol=perp, **KEYS))  # no network
    mainnet = getattr(ccxt.pro, exchange)()
    if exchange == "okx":
        assert ex.headers.get("x-simulated-trading") == "1"
    else:
        assert ex.urls["api"]["private"] != mainnet.urls["api"]["private"]
    assert ex.apiKey == "k"


def test_paper_mode_gets_no_keys_and_keeps_mainnet_public_urls() -> None:
    config = CcxtConfig(exchange="binance", mode="paper", **KEYS)
    ex = build_exchange(config)
    assert not ex.apiKey and not ex.secret
    assert ex.urls["api"]["public"] == ccxt.pro.binance().urls["api"]["public"]


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('[ccxt]\nexchange = "okx"\nmode = "testnet"\n', "ccxt.mode"),
        ('[ccxt]\nexchange = "binance"\nmode = "testnet"\n', "ccxt.perp_symbol"),  # futures sandbox is gone
    ],
)
def test_unreachable_environments_are_config_errors(tmp_path: Path, toml: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=rf"^config error: {field}:"):
        load_settings(path)


@pytest.mark.parametrize("name", ["bybit-testnet", "binance-demo", "okx-demo", "binance-paper"])
def test_shipped_configs_pass_check_config(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = CONFIG_DIR / f"{name}.toml"
    assert main(["check-config", str(path)]) == 0
    capsys.readouterr()
    settings = load_settings(path)
    assert settings.runtime.venue == "ccxt"
    assert (settings.market.spot_symbol, settings.market.perp_symbol) == (
        settings.ccxt.spot_symbol,
        settings.ccxt.perp_symbol,
    )
    assert ("testnet" in name or "demo" in name) == (settings.ccxt.mode != "paper")


# ---- orders -------------------------------------------------------------------------------------


async def test_place_sends_the_venue_client_id_and_flags_then_accepts() -> None:
    venue, fake, _, events = await connected("bybit")
    await venue.execute(place(post_only=True))
    await venue.execute(
        place(
            "mm-2",
            symbol="BTC/USDT:USDT",
            side=Side.SELL,
            price_ticks=600_000,
            size_lots=5,
            order_type=OrderType.IOC,
            post_only=False,
            reduce_only=True,
        )
    )
    (spot, perp) = fake.called("create_order")
    assert spot == ("BTC/USDT", "limit", "buy", 0.002, 60000.0, {"orderLinkId": "mm-1", "postOnly": True})
    assert perp == (
        "BTC/USDT:USDT",
        "limit",
        "sell",
        0.005,
        60000.0,
        {"orderLinkId": "mm-2", "timeInForce": "IOC", "reduceOnly": True},
    )
    assert [(type(e), e.client_id) for e in events] == [(OrderAccepted, "mm-1"), (OrderAccepted, "mm-2")]
    assert isinstance(events[0], OrderAccepted) and events[0].venue_order_id == "oid-1"


@pytest.mark.parametrize(("exchange", "param"), [("binance", "clientOrderId"), ("okx", "clOrdId")])
async def test_each_venue_gets_its_client_id_param(exchange: str, param: str) -> None:
    venue, fake, _, _ = await connected(exchange, "demo")
    await venue.execute(place("mm-7", order_type=OrderType.MARKET, post_only=False))
    ((_, type_, _, _, price, params),) = fake.called("create_order")
    assert (type_, price) == ("market", None)
    expected = "mm-7" if exchange == "binance" else venue_client_id("okx", "mm-7")
    assert params == {param: expected}
    assert exchange == "binance" or expected.isalnum()  # okx accepts letters and digits only


REJECTS = [cls for cls, rule in ERROR_TABLE.items() if rule.action is Action.REJECT and issubclass(cls, ccxt.BaseError)]


@pytest.mark.parametrize("cls", REJECTS, ids=lambda c: c.__name__)
async def test_reject_class_errors_become_order_rejected(cls: type[Exception]) -> None:
    venue, fake, _, events = await connected()
    fake.results["create_order"].append(cls("venue says no"))
    await venue.execute(place())
    assert events == [
        OrderRejected("BTC/USDT", "mm-1", ERROR_TABLE[cls].reason, events[0].ts_venue_ns, events[0].ts_recv_ns)
    ]
    assert len(fake.called("create_order")) == 1


async def test_timeouts_are_resent_with_the_same_client_id() -> None:
    venue, fake, _, events = await connected()
    fake.results["create_order"] += [ccxt.RequestTimeout("t"), ccxt.NetworkError("n")]
    await venue.execute(place())
    sent = fake.called("create_order")
    assert len(sent) == 3 and sent[0] == sent[1] == sent[2]
    assert [type(e) for e in events] == [OrderAccepted]


async def test_a_duplicate_after_a_timeout_means_the_first_attempt_landed() -> None:
    venue, fake, _, events = await connected()
    fake.results["create_order"] += [ccxt.RequestTimeout("t"), ccxt.DuplicateOrderId("dup")]
    await venue.execute(place())
    assert events == []  # no false reject: the order feed will report the live order
    assert fake.called("cancel_order") == []


async def test_exhausted_retries_reject_and_make_sure_nothing_rests() -> None:
    venue, fake, _, events = await connected(order_retries=1)
    fake.results["create_order"] += [ccxt.RequestTimeout("t"), ccxt.RequestTimeout("t")]
    await venue.execute(place())
    assert [(type(e), getattr(e, "reason", "")) for e in events] == [(OrderRejected, "timeout")]
    assert fake.called("cancel_order") == [(None, "BTC/USDT", {"orderLinkId": "mm-1"})]


async def test_rate_limit_rejects_and_pauses_new_orders() -> None:
    venue, fake, clock, events = await connected(rate_limit_pause_ms=1000)
    fake.results["create_order"].append(ccxt.RateLimitExceeded("slow down"))
    await venue.execute(place("a"))
    await venue.execute(place("b"))  # inside the pause: refused locally
    assert [(e.client_id, e.reason) for e in events if isinstance(e, OrderRejected)] == [
        ("a", "rate_limited"),
        ("b", "rate_limited"),
    ]
    assert len(fake.called("create_order")) == 1
    clock.now_ns += 1_000_000_001
    await venue.execute(place("c"))
    assert len(fake.called("create_order")) == 2 and isinstance(events[-1], OrderAccepted)


@pytest.mark.parametrize("cls", [ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.BadSymbol, ccxt.NotSupported])
async def test_stop_class_errors_raise_fatal(cls: type[Exception]) -> None:
    venue, fake, _, events = await connected()
    fake.results["create_order"].append(cls("no"))
    with pytest.raises(VenueFatalError):
        await venue.execute(place())
    assert events == []


async def test_cancel_paths() -> None:
    venue, fake, _, events = await connected()
    await venue.execute(place("a"))
    await venue.execute(place("b"))
    await venue.execute(CancelOrder("BTC/USDT", "a"))
    assert fake.called("cancel_order")[-1] == ("oid-1", "BTC/USDT", {"orderLinkId": "a"})
    assert isinstance(events[-1], OrderCanceled) and events[-1].reason == "requested"
    fake.results["cancel_order"].append(ccxt.OrderNotFound("gone"))
    await venue.execute(CancelOrder("BTC/USDT", "b"))
    assert isinstance(events[-1], CancelRejected) and events[-1].reason == "unknown_order"
    await venue.execute(CancelOrder("BTC/USDT", "never-placed"))
    assert isinstance(events[-1], CancelRejected) and events[-1].client_id == "never-placed"


async def test_cancel_all_cancels_every_open_order_of_the_symbol() -> None:
    venue, fake, _, _events = await connected()
    for cid in ("a", "b"):
        await venue.execute(place(cid))
    await venue.execute(place("h", symbol="BTC/USDT:USDT", price_ticks=600_000))
    await venue.execute(CancelAll("BTC/USDT"))
    assert sorted(args[2]["orderLinkId"] for args in fake.called("cancel_order")) == ["a", "b"]
    await venue.execute(CancelAll())
    assert [args[2]["orderLinkId"] for args in fake.called("cancel_order")][-1] == "h"


async def test_reconciliation_open_orders_and_positions() -> None:
    venue, fake, _, _ = await connected()
    await venue.execute(place("mine"))
    fake.results["fetch_open_orders"] += [
        [
            {"id": "oid-1", "clientOrderId": "mine", "side": "buy", "price": 60000.0, "remaining": 0.002},
            {
                "id": "x9",
                "clientOrderId": "someone",
                "side": "sell",
                "price": 60001.0,
                "amount": 0.003,
                "filled": 0.001,
            },
        ],
        [],
    ]
    orders = await venue.open_orders()
    assert [(o.client_id, o.side, o.price_ticks, o.size_lots, o.extra) for o in orders] == [
        ("mine", Side.BUY, 6_000_000, 2, {}),
        ("someone", Side.SELL, 6_000_100, 2, {"foreign": "true"}),
    ]
    fake.results["fetch_balance"].append({"total": {"BTC": 1.004, "USDT": 700.0}})  # started at 1.0 BTC
    fake.results["fetch_positions"].append([{"symbol": "BTC/USDT:USDT", "side": "short", "contracts": 0.004}])
    assert await venue.positions() == {"BTC/USDT": 4, "BTC/USDT:USDT": -4}


# ---- feeds --------------------------------------------------------------------------------------


def ccxt_book(nonce: int, bid: float = 60000.0) -> dict[str, Any]:
    return {"bids": [[bid, 0.5]], "asks": [[bid + 0.01, 0.25]], "nonce": nonce, "timestamp": 1_700_000_000_000}


async def test_private_feed_acks_fills_once_with_leaves_and_fees() -> None:
    venue, fake, _, _ = await connected(position_poll_ms=0)
    events: list[Event] = []
    await venue.execute(place("q", size_lots=5))  # accepted by the REST answer (oid-1)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(venue.stream(events.append))
        trade = {
            "symbol": "BTC/USDT",  # ccxt's trade structure always names it: order ids are per symbol
            "id": "t1",
            "order": "oid-1",
            "amount": 0.002,
            "price": 60000.0,
            "timestamp": 1_700_000_000_001,
            "takerOrMaker": "maker",
            "fee": {"cost": 0.12, "currency": "USDT"},
        }
        # bybit shares one private socket: one account-wide watch ("*"), routed by order id
        fake.feeds[("watch_my_trades", "*")].put_nowait([trade])
        fake.feeds[("watch_my_trades", "*")].put_nowait([trade])  # duplicated push
        base_fee = dict(trade, id="t2", amount=0.003, fee={"cost": 0.000003, "currency": "BTC"})
        fake.feeds[("watch_my_trades", "*")].put_nowait([base_fee])
        fake.feeds[("watch_orders", "*")].put_nowait([{"id": "oid-1", "clientOrderId": "q", "status": "closed"}])
        await until(lambda: sum(isinstance(e, OrderFilled) for e in events) == 2)
        await until(lambda: any(isinstance(e, FeedStatus) and e.reason == "orders_subscribed" for e in events))
        task.cancel()
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(f.fill_id, f.size_lots, f.leaves_lots, f.liquidity) for f in fills] == [
        ("t1", 2, 3, Liquidity.MAKER),
        ("t2", 3, 0, Liquidity.MAKER),
    ]
    assert fills[0].fee_quote == pytest.approx(0.12) and fills[1].fee_quote == pytest.approx(0.18)
    assert not any(isinstance(e, OrderAccepted | OrderCanceled) for e in events)  # ack came with the REST answer


async def test_a_private_feed_error_reconnects_and_keeps_delivering() -> None:
    venue, fake, _, _ = await connected(position_poll_ms=0)
    events: list[Event] = []
    await venue.execute(place("q", size_lots=5))
    orders_q = fake.feeds[("watch_orders", "*")]
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(venue.stream(events.append))
        orders_q.put_nowait(ccxt.NetworkError("socket closed"))
        orders_q.put_nowait([{"id": "oid-1", "clientOrderId": "q", "status": "canceled"}])
        await until(lambda: any(isinstance(e, OrderCanceled) for e in events))
        task.cancel()
    down = [e for e in events if isinstance(e, FeedStatus) and not e.connected]
    assert [(e.symbol, e.reason) for e in down] == [("*", "orders_network")]  # the account-wide feed
    (canceled,) = [e for e in events if isinstance(e, OrderCanceled)]
    assert (canceled.client_id, canceled.reason) == ("q", "venue")  # we never asked: the venue did it


async def test_a_fill_pushed_before_the_rest_answer_is_kept_until_the_order_id_is_known() -> None:
    venue, _fake, _, _events = await connected()
    tracker = venue._orders
    tracker.register(place("early", size_lots=2))
    fill = {"symbol": "BTC/USDT", "id": "t9", "order": "oid-77", "amount": 0.002, "price": 60000.0,
            "takerOrMaker": "taker"}  # fmt: skip
    assert tracker.on_trade(fill, 1) == []
    out = tracker.on_order({"id": "oid-77", "clientOrderId": "early", "status": None}, 2)
    assert [type(e) for e in out] == [OrderAccepted, OrderFilled]
    assert isinstance(out[1], OrderFilled) and out[1].leaves_lots == 0 and out[1].liquidity is Liquidity.TAKER
    assert tracker.on_trade(fill, 3) == []  # the same fill again: dropped


async def test_book_resyncs_after_a_checksum_error_and_trades_are_deduplicated() -> None:
    venue, fake, _, _ = await connected(position_poll_ms=0)
    events: list[Event] = []
    book_q = fake.feeds[("watch_order_book", "BTC/USDT")]
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(venue.stream(events.append))
        book_q.put_nowait(ccxt_book(10))
        book_q.put_nowait(ccxt_book(11, bid=60000.5))
        book_q.put_nowait(ccxt.ChecksumError("crc mismatch"))
        book_q.put_nowait(ccxt_book(50, bid=59999.0))
        trade = {"id": "p1", "price": 60000.0, "amount": 0.01, "side": "sell", "timestamp": 1_700_000_000_000}
        fake.feeds[("watch_trades", "BTC/USDT")].put_nowait([trade])
        fake.feeds[("watch_trades", "BTC/USDT")].put_nowait([trade, dict(trade, id="p2", side="buy")])
        await until(lambda: sum(isinstance(e, BookSnapshot) for e in events) == 2)
        await until(lambda: sum(isinstance(e, TradePrint) for e in events) == 2)
        task.cancel()
    book_events = [e for e in events if isinstance(e, BookSnapshot) or type(e).__name__ == "BookDelta"]
    assert [type(e).__name__ for e in book_events] == ["BookSnapshot", "BookDelta", "BookSnapshot"]
    assert isinstance(book_events[2], BookSnapshot) and book_events[2].seq == 50
    assert book_events[2].bids == ((5_999_900, 500),)
    statuses = [(e.connected, e.reason) for e in events if isinstance(e, FeedStatus) and e.symbol == "BTC/USDT"]
    assert (False, "book_book_checksum") in statuses
    assert [(t.trade_id, t.aggressor) for t in events if isinstance(t, TradePrint)] == [
        ("p1", Side.SELL),
        ("p2", Side.BUY),
    ]


def is_book_stale(event: Event, symbol: str) -> bool:
    """`symbol`'s book went stale: the other book feeds, which get nothing in these tests, go stale at
    about the same time, and a book put before `symbol`'s own subscription timed out would be read by it."""
    return isinstance(event, FeedStatus) and event.reason == "book_stale" and event.symbol == symbol


async def test_a_silent_book_is_resubscribed() -> None:
    venue, fake, _, _ = await connected(position_poll_ms=0, book_stale_ms=100)
    events: list[Event] = []
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(venue.stream(events.append))
        fake.feeds[("watch_order_book", "BTC/USDT")].put_nowait(ccxt_book(1))
        await until(lambda: any(is_book_stale(e, "BTC/USDT") for e in events))
        fake.feeds[("watch_order_book", "BTC/USDT")].put_nowait(ccxt_book(2))
        await until(lambda: sum(isinstance(e, BookSnapshot) and e.symbol == "BTC/USDT" for e in events) == 2)
        task.cancel()
    # unwatched with the depth it was watched with (bybit's unwatch default differs from its watch's)
    assert ("watch_order_book", ("BTC/USDT", 50)) in fake.calls
    assert ("un_watch_order_book", ("BTC/USDT", {"limit": 50})) in fake.calls


async def test_a_feed_reports_subscribed_once_per_connection() -> None:
    venue, fake, _, _ = await connected(position_poll_ms=0, book_stale_ms=100)
    events: list[Event] = []
    book = fake.feeds[("watch_order_book", "BTC/USDT")]

    def books() -> int:
        return sum(type(e).__name__ in ("BookSnapshot", "BookDelta") and e.symbol == "BTC/USDT" for e in events)

    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(venue.stream(events.append))
        for nonce, bid in ((1, 60000.0), (2, 60000.5), (3, 60001.0)):
            book.put_nowait(ccxt_book(nonce, bid))
        await until(lambda: books() == 3)
        await until(lambda: any(is_book_stale(e, "BTC/USDT") for e in events))
        book.put_nowait(ccxt_book(4))
        await until(lambda: books() == 4)
        task.cancel()
    ups = [e.reason for e in events if isinstance(e, FeedStatus) and e.symbol == "BTC/USDT" and e.connected]
    assert ups.count("book_subscribed") == 2  # one per connection, not one per message


async def test_a_stop_error_in_a_feed_ends_the_stream() -> None:
    venue, fake, _, _ = await connected(position_poll_ms=0)
    fake.feeds[("watch_trades", "BTC/USDT:USDT")].put_nowait(ccxt.BadSymbol("delisted"))
    with pytest.raises(ExceptionGroup) as info:
        await venue.stream(lambda e: None)
    assert info.group_contains(VenueFatalError)


async def test_a_fatal_order_error_stops_the_stream_too() -> None:
    venue, fake, _, _ = await connected(position_poll_ms=0)
    fake.results["create_order"].append(ccxt.AuthenticationError("key revoked"))

    async def trade() -> None:
        await until(lambda: venue._fatal is not None)
        with pytest.raises(VenueFatalError):
            await venue.execute(place())

    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(venue.stream(lambda e: None))
            tg.create_task(trade())
    assert info.group_contains(VenueFatalError)


# ---- paper mode ---------------------------------------------------------------------------------


class RecordingPaper:
    """A simulated execution that records what it is given and acks every order at once."""

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.submitted: list[Command] = []
        self.position_lots = 0
        self.due: list[Event] = []

    def submit(self, command: Command, now_ns: int) -> None:
        self.submitted.append(command)
        if isinstance(command, PlaceOrder):
            self.due.append(OrderAccepted(command.symbol, command.client_id, "sim-1", now_ns, now_ns))

    def on_market(self, event: Event, now_ns: int) -> list[Event]:
        return []

    def advance(self, now_ns: int) -> list[Event]:
        due, self.due = self.due, []
        return due

    def open_orders(self) -> list[OpenOrder]:
        return []


async def test_paper_mode_never_sends_orders_to_the_exchange() -> None:
    fakes: list[FakeExchange] = []
    papers: dict[str, RecordingPaper] = {}

    def factory(options: dict[str, Any]) -> FakeExchange:
        fakes.append(FakeExchange(options, "binance"))
        return fakes[-1]

    def paper_factory(instrument: Instrument, latency_ns: int) -> RecordingPaper:
        papers[instrument.symbol] = RecordingPaper(instrument)
        return papers[instrument.symbol]

    config = CcxtConfig(exchange="binance", mode="paper", paper_advance_ms=1, **KEYS)  # keys present, unused
    venue = CcxtVenue(config, exchange_factory=factory, paper_factory=paper_factory)
    await venue.connect()
    events: list[Event] = []
    await venue.execute(place("p"))
    await venue.execute(place("h", symbol="BTC/USDT:USDT"))
    await venue.execute(CancelAll())
    await venue.execute(RequestSnapshot("BTC/USDT", "gap"))  # handled by the adapter itself
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(venue.stream(events.append))
        await until(lambda: sum(isinstance(e, OrderAccepted) for e in events) == 2)
        task.cancel()
    assert "apiKey" not in fakes[0].options and "secret" not in fakes[0].options
    assert fakes[0].called("create_order") == [] and fakes[0].called("cancel_order") == []
    assert fakes[0].called("fetch_balance") == []
    assert [type(c) for c in papers["BTC/USDT"].submitted] == [PlaceOrder, CancelAll]
    assert [type(c) for c in papers["BTC/USDT:USDT"].submitted] == [PlaceOrder, CancelAll]
    assert await venue.positions() == {"BTC/USDT": 0, "BTC/USDT:USDT": 0} and await venue.open_orders() == []
    await venue.close()
    assert fakes[0].closed


async def test_paper_mode_fills_through_the_real_simulated_execution() -> None:
    venue, fake, _clock = make_venue("binance", "paper", perp_symbol="", paper_latency_ms=0, paper_advance_ms=1)
    await venue.connect()
    events: list[Event] = []
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(venue.stream(events.append))
        fake.feeds[("watch_order_book", "BTC/USDT")].put_nowait(ccxt_book(7))  # bid 60000.00 / ask 60000.01
        await until(lambda: any(isinstance(e, BookSnapshot) for e in events))
        await venue.execute(place("bid", price_ticks=5_999_900, size_lots=2))  # 59999.00, rests
        await venue.execute(place("cross", price_ticks=6_000_001, size_lots=1))  # post-only at the ask
        await until(lambda: sum(isinstance(e, OrderAccepted | OrderRejected) for e in events) == 2)
        sell = {"id": "x1", "price": 59998.0, "amount": 0.005, "side": "sell", "timestamp": 1_700_000_000_000}
        fake.feeds[("watch_trades", "BTC/USDT")].put_nowait([sell])  # trades through our bid
        await until(lambda: any(isinstance(e, OrderFilled) for e in events))
        task.cancel()
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    assert [(e.client_id, e.reason) for e in rejected] == [("cross", "post_only_would_cross")]
    (fill,) = [e for e in events if isinstance(e, OrderFilled)]
    assert (fill.client_id, fill.side, fill.price_ticks, fill.size_lots, fill.leaves_lots) == (
        "bid",
        Side.BUY,
        5_999_900,
        2,
        0,
    )
    assert fake.called("create_order") == []
    assert await venue.positions() == {"BTC/USDT": 2}


async def test_unknown_symbol_in_config_is_a_config_error() -> None:
    venue, _fake, _ = make_venue(spot_symbol="NOPE/USDT")
    with pytest.raises(ConfigError, match=r"ccxt\.spot_symbol"):
        await venue.connect()


async def test_a_hedge_mode_account_is_refused_where_the_venue_reports_its_position_mode() -> None:
    """binance and okx answer fetch_position_mode for the account (no open position needed)."""
    venue, fake, _clock = make_venue("binance", "demo")
    fake.has["fetchPositionMode"] = True

    async def fetch_position_mode(symbol: str) -> dict[str, Any]:
        fake.calls.append(("fetch_position_mode", (symbol,)))
        return {"info": {"dualSidePosition": True}, "hedged": True}

    fake.fetch_position_mode = fetch_position_mode  # type: ignore[method-assign]
    with pytest.raises(ConfigError, match=r"hedge \(two-way\) position mode"):
        await venue.connect()
    assert fake.called("fetch_position_mode") == [("BTC/USDT:USDT",)]


# ---- shutdown -----------------------------------------------------------------------------------


async def test_a_book_that_arrives_as_the_stream_is_cancelled_does_not_swallow_the_cancel() -> None:
    """A book delivered in the same loop turn as the stream's cancellation: Python 3.11's
    `asyncio.wait_for` then returned the book and dropped the cancel (cpython gh-86296), so the book
    feed kept running, the stream's TaskGroup waited for it forever and the bot never exited."""
    venue, fake, _, _ = await connected(position_poll_ms=0)
    book = fake.feeds[("watch_order_book", "BTC/USDT")]
    task = asyncio.create_task(venue.stream(lambda e: None))
    await until(lambda: len(fake.called("watch_order_book")) == 2 and book._getters)  # type: ignore[attr-defined]
    book.put_nowait(ccxt_book(1))  # the book feed's watch completes in the next turn ...
    task.cancel()  # ... the turn its cancellation lands in
    done, _ = await asyncio.wait({task}, timeout=5)  # not `await task`: a timeout there re-cancels it
    assert task in done, "the stream kept running after its cancellation"
    assert task.cancelled()
