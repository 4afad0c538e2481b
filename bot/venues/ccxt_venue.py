"""A real exchange through ccxt.pro (bybit, binance, okx), implementing `bot.venues.base.Venue`.

Two shapes, chosen by `ccxt.mode` when the venue is built (paper trading is an adapter, not a flag):

- **testnet / demo**: public data and our orders both go to the exchange's sandbox. Orders are REST
  `create_order` / `cancel_order` with our client id; their fate comes back from `watch_orders` and
  `watch_my_trades` (or polling where a venue lacks them) through `OrderTracker`.
- **paper**: public data from mainnet, no keys at all; commands go to a simulated execution
  (`bot.venues.paper.PaperExecution`) fed with the same public book and trade events.

Market data: `watch_order_book` -> `BookTracker` (snapshot, then contiguous deltas) and `watch_trades`
-> `TradePrint`. Every feed runs under `_supervise`: a ccxt error is classified once by
`ccxt_errors.classify`, the feed reports `FeedStatus(connected=False, reason)`, waits a capped,
jittered backoff and resubscribes (a book then restarts from a fresh snapshot). ccxt checks the
sequence of binance books (InvalidNonce) and okx books (InvalidNonce on a seqId gap); bybit checks nothing, so a
book silent for `book_stale_ms` is resubscribed too. A STOP-class error (bad keys, unknown symbol)
ends `stream` with `VenueFatalError`, which stops the runner cleanly.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any, Protocol

import ccxt

from bot.config import CcxtConfig, ConfigError
from bot.domain import (
    BookDelta,
    BookSnapshot,
    CancelAll,
    CancelOrder,
    CancelRejected,
    Command,
    Event,
    FeedStatus,
    Instrument,
    InstrumentKind,
    OpenOrder,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    PositionSnapshot,
    RequestSnapshot,
    TradePrint,
)
from bot.logs import get_logger
from bot.venues.base import EventSink, backoff_delays_s
from bot.venues.ccxt_book import BookTracker, MalformedMessage, trade_print
from bot.venues.ccxt_errors import Action, ErrorRule, VenueFatalError, classify
from bot.venues.ccxt_markets import MarketSpec, market_spec
from bot.venues.ccxt_orders import OrderTracker, build_order_request, cancel_params, side_of, venue_client_id
from bot.venues.ccxt_safety import ExchangeFactory, build_exchange


class SimulatedExecution(Protocol):
    """The simulated execution's interface (bot/venues/paper.py `PaperExecution`), one per symbol."""

    position_lots: int

    def submit(self, command: Command, now_ns: int) -> None: ...
    def on_market(self, event: Event, now_ns: int) -> list[Event]: ...
    def advance(self, now_ns: int) -> list[Event]: ...
    def open_orders(self) -> list[OpenOrder]: ...


PaperFactory = Callable[[Instrument, int], SimulatedExecution]
"""Builds the simulated execution of one instrument, given the one-way latency in ns."""
FeedBody = Callable[[str, Callable[[], None]], Awaitable[None]]
"""A feed's body: runs until an error, calls its second argument once connected."""


def default_paper_factory(instrument: Instrument, latency_ns: int) -> SimulatedExecution:
    from bot.venues.paper import PaperExecution  # imported lazily: only paper mode needs it

    return PaperExecution(instrument, order_latency_ns=latency_ns, report_latency_ns=latency_ns)


class StaleFeedError(Exception):
    """No book update for `book_stale_ms` (bybit has no sequence numbers to detect a dead feed)."""


_STALE_RULE = ErrorRule(Action.RESYNC, "stale")
log = get_logger("mmbot.ccxt")
_MARKET_EVENTS = (BookSnapshot, BookDelta, TradePrint)
HISTORY_PAGE = 100  # trades per fetch_my_trades call (bybit's maximum; binance and okx allow more)
HISTORY_MAX_PAGES = 50  # per symbol: a restart reads at most this much history
# Venues whose spot and derivatives orders share ONE private socket (bybit v5 /v5/private, okx
# /ws/v5/private): the topic (bybit `order`/`execution`, okx `orders`) is account-wide, and ccxt sends
# a new subscribe per symbol-specific waiter, which bybit refuses ("already subscribed", ccxt/ccxt#30284).
# There we run one account-wide watch_orders() / watch_my_trades() and route by order id ourselves.
SHARED_PRIVATE_SOCKET = frozenset({"bybit", "okx"})
# Venues whose my-trades endpoint pages newest first or by cursor (bybit /v5/execution/list, okx
# fills): paging forward by `since` returns the newest page again and skips everything older, so the
# history is read with ccxt's own cursor pagination (`paginate`, fetch_paginated_call_cursor).
HISTORY_BY_CURSOR = frozenset({"bybit", "okx"})
# Order book depths a venue's websocket offers (ccxt pro bybit watch_order_book_for_symbols). The watch
# and the unwatch must name the same one: bybit's unwatch defaults to 500 for contracts while the watch
# defaults to 50, so an unwatch without it unsubscribes a topic that does not exist.
HISTORY_WINDOW_MS = {"bybit": 7 * 24 * 3600 * 1000}  # execution/list: startTime alone covers 7 days
# Oldest-first venues whose my-trades answer covers a bounded window from `startTime`: binance spot
# myTrades 24 h, USD-M userTrades 7 days (binance-spot-api-docs rest-api.md "Account trade list"; USD-M
# "Account Trade List"; ccxt's own example walks it a day at a time, ccxt/ccxt#7439, and an older
# `since` alone answers [] on USD-M, ccxt/ccxt#16986). Keyed by (exchange, instrument kind).
FORWARD_WINDOW_MS = {("binance", "spot"): 24 * 3600 * 1000, ("binance", "perp"): 7 * 24 * 3600 * 1000}
HISTORY_MAX_WINDOWS = 8  # a restart reads at most 8 windows (56 days on bybit) of history
BOOK_DEPTHS: dict[str, tuple[int, ...]] = {"bybit": (1, 50, 200, 1000)}
# Venues exempting reduce-only (closing) orders from the minimum notional: bybit derivatives ("closing
# orders are exempt from notional value but still adhere to minimum size", Bybit trading rules) and
# binance USD-M (-4164 "Order's notional must be no smaller than 100 (unless you choose reduce only)",
# quoted in TheFourGreatErrors/alpha-rptr#77).
REDUCE_ONLY_NOTIONAL_EXEMPT = frozenset({"bybit", "binance"})
PAPER_FILL_HISTORY = 100_000  # simulated fills kept for fills_since in paper mode
# the catch-up after a lost private socket reads history from this long before the loss was noticed
# (a socket can die some time before the error reaches us), and reads once more after this settle time
CATCH_UP_MARGIN_NS = 30 * 1_000_000_000
CATCH_UP_SETTLE_S = 2.0
UNKNOWN_CANCEL_LOOKBACK_NS = 10 * 60 * 1_000_000_000  # a cancel refused as unknown reads this much history


class CcxtVenue:
    """`Venue` over ccxt.pro. Construction validates the environment and credentials, no I/O."""

    def __init__(
        self,
        config: CcxtConfig,
        *,
        exchange_factory: ExchangeFactory | None = None,
        paper_factory: PaperFactory | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
    ) -> None:
        self.name = f"ccxt:{config.exchange}:{config.mode}"
        self._cfg = config
        self._exchange = build_exchange(config, exchange_factory)  # ConfigError before any network
        self._paper_mode = config.mode == "paper"
        # the exchange's trade ids never repeat (fill session ""); simulated fills restart at 1 each run
        self.fill_session = f"paper:{uuid.uuid4().hex[:12]}" if self._paper_mode else ""
        self._paper_factory = paper_factory or default_paper_factory
        self._paper: dict[str, SimulatedExecution] = {}  # by symbol, paper mode only
        self._clock_ns = clock_ns
        self._rng = rng or random.Random()
        self._symbols = [s for s in (config.spot_symbol, config.perp_symbol) if s]
        self._specs: dict[str, MarketSpec] = {}
        self._books: dict[str, BookTracker] = {}
        self.dropped_trades: Counter[str] = Counter()  # public trades refused as malformed, by reason
        self.dropped_history = 0  # our own past trades (fill history) refused as malformed
        self._orders = OrderTracker(config.exchange, self._specs)
        self._sink: EventSink | None = None
        self._undelivered: list[Event] = []
        self._orders_paused_until_ns = 0
        self._spot_base_at_start: dict[str, float] = {}
        self._fatal: asyncio.Future[None] | None = None
        self._paper_fills: deque[OrderFilled] = deque(maxlen=PAPER_FILL_HISTORY)  # paper mode's fill history
        # venue order id of each open order `open_orders` listed that this process did not place
        # (orphans of a run that died), so reconciliation can cancel them
        self._listed_orphans: dict[str, tuple[str, str]] = {}  # client id -> (symbol, venue order id)
        self._orders_lost_ns: dict[str, int] = {}  # order feed -> since when its fills may be missing

    @property
    def exchange(self) -> Any:
        """The ccxt.pro object (tests point its urls at a loopback server)."""
        return self._exchange

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return {symbol: spec.instrument for symbol, spec in self._specs.items()}

    # ---- lifecycle ------------------------------------------------------------------------------

    async def connect(self) -> None:
        markets = await self._call_with_retries(self._exchange.load_markets)
        for symbol in self._symbols:
            if symbol not in markets:
                field = "spot_symbol" if symbol == self._cfg.spot_symbol else "perp_symbol"
                raise ConfigError(f"config error: ccxt.{field}: {self._cfg.exchange} lists no market {symbol!r}")
            try:
                self._specs[symbol] = market_spec(markets[symbol], self._exchange.precisionMode)
            except ValueError as exc:
                raise ConfigError(f"config error: ccxt: {exc}") from None
            self._books[symbol] = BookTracker(self._specs[symbol], self._cfg.book_depth_levels)
        if self._paper_mode:
            latency_ns = self._cfg.paper_latency_ms * 1_000_000
            self._paper = {sym: self._paper_factory(spec.instrument, latency_ns) for sym, spec in self._specs.items()}
        else:
            await self._check_account_modes()
            balance = await self._call_with_retries(self._exchange.fetch_balance)
            allocation = self._cfg.spot_base_allocation
            for spec in self._specs.values():
                if spec.instrument.kind is InstrumentKind.SPOT:
                    # inventory = base balance - allocation: with a configured allocation a restart
                    # finds the position it left; without one, the balance now counts as zero inventory
                    base_now = _total(balance, spec.instrument.base)
                    start = base_now if allocation is None else allocation
                    self._spot_base_at_start[spec.instrument.symbol] = start
                    self._orders.start_spot_position(spec.instrument.symbol, base_now, start)
                    if allocation is None:
                        log.warning(
                            "ccxt.spot_inventory_from_connect", symbol=spec.instrument.symbol, base_balance=base_now
                        )

    async def _check_account_modes(self) -> None:
        """Refuse (ConfigError: one line, exit 2) an account mode or position mode the bot does not
        trade: it sends no position-side fields, so it needs one-way mode; on bybit spot and perp on
        one unified account (UTA), which is what its one private socket and one balance assume."""
        exchange = self._cfg.exchange
        if exchange == "bybit":
            _, unified_account = await self._call_with_retries(self._exchange.is_unified_enabled)
            if not unified_account:
                raise ConfigError(
                    "config error: ccxt.exchange: the bybit account is not a Unified Trading Account; "
                    "upgrade it to UTA (account menu) so spot and perp share one account"
                )
        perps = [s.instrument.symbol for s in self._specs.values() if s.instrument.kind is InstrumentKind.PERP]
        if not perps:
            return
        if self._exchange.has.get("fetchPositionMode"):  # binance, okx: the account setting itself
            mode = await self._call_with_retries(self._exchange.fetch_position_mode, perps[0])
            hedged = bool((mode or {}).get("hedged"))
        elif self._exchange.has.get("fetchPositions"):  # bybit: rows per symbol carry positionIdx
            rows = await self._call_with_retries(self._exchange.fetch_positions, perps)
            hedged = any(row.get("hedged") for row in rows)
        else:
            hedged = False
        if hedged:
            raise ConfigError(
                f"config error: ccxt.perp_symbol: {exchange} {perps[0]} is in hedge (two-way) position "
                "mode; the bot sends no position side: switch the account to one-way mode"
            )

    async def close(self) -> None:
        with suppress(Exception):  # closing is best effort: sockets may already be gone
            await self._exchange.close()

    async def stream(self, sink: EventSink) -> None:
        self._sink = sink
        pending, self._undelivered = self._undelivered, []
        for event in pending:
            sink(event)
        self._fatal = asyncio.get_running_loop().create_future()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._wait_fatal())
            for symbol in self._symbols:
                tg.create_task(self._supervise("book", symbol, self._book_feed))
                tg.create_task(self._supervise("trades", symbol, self._trade_feed))
            if not self._paper_mode:
                for symbol in self._order_feed_symbols():
                    tg.create_task(self._supervise("orders", symbol, self._order_feed))
            if self._paper_mode:
                tg.create_task(self._paper_clock())
            elif self._cfg.position_poll_ms > 0:
                tg.create_task(self._supervise("positions", "*", self._position_poll))

    async def _wait_fatal(self) -> None:
        assert self._fatal is not None
        await self._fatal  # raises the VenueFatalError an order call hit

    def _set_fatal(self, exc: VenueFatalError) -> None:
        if self._fatal is not None and not self._fatal.done():
            self._fatal.set_exception(exc)

    # ---- delivery -------------------------------------------------------------------------------

    def _emit(self, events: list[Event] | None) -> None:
        for event in events or ():
            if self._paper_mode and isinstance(event, OrderFilled):
                self._paper_fills.append(event)
            if self._sink is None:
                self._undelivered.append(event)
            else:
                self._sink(event)

    def _emit_market(self, event: Event) -> None:
        self._emit([event])
        paper = self._paper.get(getattr(event, "symbol", ""))
        if paper is not None:
            self._emit(paper.on_market(event, self._clock_ns()))

    # ---- supervision: one error table, reconnect with capped backoff and jitter -----------------

    def _delays(self) -> Iterator[float]:
        delays: Iterator[float] = backoff_delays_s(
            self._cfg.reconnect_base_ms / 1000, self._cfg.reconnect_cap_ms / 1000, self._rng
        )
        return delays

    async def _supervise(self, feed: str, symbol: str, body: FeedBody) -> None:
        """Run `body` forever; on a venue error report the feed down, back off, run it again."""
        delays = self._delays()
        up = False

        def healthy() -> None:  # the body calls this on every message: the first of a (re)connection counts
            nonlocal delays, up
            if up:
                return
            up = True
            delays = self._delays()
            now = self._clock_ns()
            self._emit([FeedStatus(symbol, True, f"{feed}_subscribed", now, now)])

        while True:
            up = False
            try:
                await body(symbol, healthy)
                return
            except Exception as raised:
                rule = self._rule_for(_leaf(raised), feed, symbol)
            now = self._clock_ns()
            self._emit([FeedStatus(symbol, False, f"{feed}_{rule.reason}", now, now)])
            wait_s = next(delays)
            if rule.action is Action.BACKOFF:
                wait_s = max(wait_s, self._cfg.rate_limit_pause_ms / 1000)
            await asyncio.sleep(wait_s)

    @staticmethod
    def _rule_for(exc: BaseException, feed: str, symbol: str) -> ErrorRule:
        """The table's verdict on a feed error; raises what must end the stream."""
        if isinstance(exc, VenueFatalError):
            raise exc
        if isinstance(exc, StaleFeedError):
            return _STALE_RULE
        rule = classify(exc)
        if rule is None:
            raise exc  # not a venue error: a bug, let it surface
        if rule.action is Action.STOP:
            raise VenueFatalError(rule.reason, f"{feed} {symbol}: {exc}") from exc
        return rule

    # ---- public feeds ---------------------------------------------------------------------------

    async def _book_feed(self, symbol: str, healthy: Callable[[], None]) -> None:
        tracker = self._books[symbol]
        tracker.reset()  # every (re)subscription starts from a fresh snapshot
        stale_s = self._cfg.book_stale_ms / 1000
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for returns a book that arrives in the
                    # turn its task is cancelled and drops the cancel (cpython gh-86296), and the stream
                    # then never ends on shutdown
                    async with asyncio.timeout(stale_s):
                        book = await self._exchange.watch_order_book(symbol, self._book_limit())
                except TimeoutError:
                    raise StaleFeedError(symbol) from None
                healthy()
                event = tracker.update(book, self._clock_ns())
                if event is None:  # malformed: dropped and counted by the tracker
                    log.warning("feed.message_dropped", symbol=symbol, feed="book", dropped=dict(tracker.dropped))
                else:
                    self._emit_market(event)
        except (StaleFeedError, ccxt.InvalidNonce):
            await self._unwatch_book(symbol)  # make ccxt drop its book so the next watch resyncs
            raise

    def _book_limit(self) -> int | None:
        """The explicit depth to watch (and unwatch) where the venue offers fixed depths: the smallest
        that covers `book_depth_levels`; None (ccxt's default) elsewhere."""
        depths = BOOK_DEPTHS.get(self._cfg.exchange)
        if not depths:
            return None
        return next((d for d in depths if d >= self._cfg.book_depth_levels), depths[-1])

    async def _unwatch_book(self, symbol: str) -> None:
        if not self._exchange.has.get("unWatchOrderBook"):
            return
        limit = self._book_limit()
        params = {} if limit is None else {"limit": limit}  # the topic the watch subscribed
        with suppress(Exception):  # the socket may be dead already; resubscribing fixes it either way
            async with asyncio.timeout(5.0):
                await self._exchange.un_watch_order_book(symbol, params)

    async def _trade_feed(self, symbol: str, healthy: Callable[[], None]) -> None:
        spec = self._specs[symbol]
        seen: deque[str] = deque(maxlen=10_000)  # trade ids already sent (ccxt may repeat on reconnect)
        seen_set: set[str] = set()
        while True:
            trades = await self._exchange.watch_trades(symbol)
            healthy()
            now = self._clock_ns()
            for trade in trades:
                if isinstance(trade, Mapping) and trade.get("side") is None:
                    continue  # some venues do not say who the aggressor was: of no use to the estimators
                try:
                    event = trade_print(spec, trade, now)
                except MalformedMessage as exc:
                    self.dropped_trades[exc.reason] += 1
                    log.warning("feed.message_dropped", symbol=symbol, feed="trades", reason=exc.reason)
                    continue
                trade_id = event.trade_id
                if trade_id in seen_set:
                    continue
                if len(seen) == seen.maxlen:
                    seen_set.discard(seen[0])
                seen.append(trade_id)
                seen_set.add(trade_id)
                self._emit_market(event)

    # ---- private feeds (testnet / demo) ---------------------------------------------------------

    def _order_feed_symbols(self) -> list[str]:
        """One order feed per symbol, or a single account-wide one ("*") where the venue shares one
        private socket across categories (SHARED_PRIVATE_SOCKET) and pushes over websockets."""
        has = self._exchange.has
        if self._cfg.exchange in SHARED_PRIVATE_SOCKET and has.get("watchOrders") and has.get("watchMyTrades"):
            return ["*"]
        return list(self._symbols)

    async def _order_feed(self, symbol: str, healthy: Callable[[], None]) -> None:
        """`symbol` "*": the account-wide watch; reports find their order by client or venue id.

        After a private socket was lost, a new subscription replays nothing: fills made while it was
        down would never be reported. So a resubscription also reads the venue's trade history from a
        little before the loss (`_catch_up`); what the feed already reported is deduplicated by trade id."""
        has = self._exchange.has
        gap_since_ns = self._orders_lost_ns.pop(symbol, None)
        try:
            if has.get("watchOrders") and has.get("watchMyTrades"):
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._watch_orders(symbol, healthy))
                    tg.create_task(self._watch_my_trades(symbol))
                    if gap_since_ns is not None and has.get("fetchMyTrades"):
                        tg.create_task(self._catch_up(symbol, gap_since_ns))
            else:
                await self._poll_orders(symbol, healthy)
        except Exception:
            lost = self._clock_ns() - CATCH_UP_MARGIN_NS
            self._orders_lost_ns[symbol] = lost if gap_since_ns is None else min(gap_since_ns, lost)
            raise

    async def _catch_up(self, symbol: str, since_ns: int) -> None:
        """Our trades since `since_ns`, through the order tracker as if pushed: once right away, and
        once more after the new subscription has had CATCH_UP_SETTLE_S to be acknowledged (a fill in
        between would be in neither the first read nor the new feed)."""
        symbols = list(self._specs) if symbol == "*" else [symbol]
        for wait_s in (0.0, CATCH_UP_SETTLE_S):
            await asyncio.sleep(wait_s)
            for sym in symbols:
                await self._read_trades(sym, since_ns)

    async def _read_trades(self, symbol: str, since_ns: int) -> None:
        """Our recent trades on `symbol` from the venue's history, through the order tracker (fills
        already reported are dropped by trade id)."""
        since_ms = since_ns // 1_000_000
        if self._cfg.exchange in HISTORY_BY_CURSOR:
            params: dict[str, Any] = {"paginate": True, "paginationCalls": 5}
            trades = await self._call_with_retries(self._exchange.fetch_my_trades, symbol, since_ms, None, params)
        else:
            trades = await self._call_with_retries(self._exchange.fetch_my_trades, symbol, since_ms, HISTORY_PAGE)
        now = self._clock_ns()
        for trade in trades:
            self._emit(self._orders.on_trade(trade, now))

    async def _watch_orders(self, symbol: str, healthy: Callable[[], None]) -> None:
        while True:
            reports = await self._exchange.watch_orders(None if symbol == "*" else symbol)
            healthy()
            now = self._clock_ns()
            for report in reports:
                self._emit(self._orders.on_order(report, now))

    async def _watch_my_trades(self, symbol: str) -> None:
        while True:
            trades = await self._exchange.watch_my_trades(None if symbol == "*" else symbol)
            now = self._clock_ns()
            for trade in trades:
                self._emit(self._orders.on_trade(trade, now))

    async def _poll_orders(self, symbol: str, healthy: Callable[[], None]) -> None:
        """Fallback where the venue has no private websocket: poll our open orders and fills."""
        since_ms = self._clock_ns() // 1_000_000
        healthy()
        while True:
            for venue_oid in list(self._orders.venue_order_ids(symbol)):
                report = await self._exchange.fetch_order(venue_oid, symbol)
                if report.get("symbol") in (None, symbol):
                    self._emit(self._orders.on_order(report, self._clock_ns()))
            for trade in await self._exchange.fetch_my_trades(symbol, since_ms):
                self._emit(self._orders.on_trade(trade, self._clock_ns()))
            await asyncio.sleep(self._cfg.private_poll_ms / 1000)

    async def _position_poll(self, symbol: str, healthy: Callable[[], None]) -> None:
        healthy()
        while True:
            positions = await self.positions()
            now = self._clock_ns()
            self._emit([PositionSnapshot(sym, lots, now, now) for sym, lots in positions.items()])
            await asyncio.sleep(self._cfg.position_poll_ms / 1000)

    async def _paper_clock(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.paper_advance_ms / 1000)
            now = self._clock_ns()
            for paper in self._paper.values():
                self._emit(paper.advance(now))

    # ---- commands -------------------------------------------------------------------------------

    async def execute(self, command: Command) -> None:
        if isinstance(command, RequestSnapshot):
            tracker = self._books.get(command.symbol)
            if tracker is not None:
                tracker.reset()  # ccxt's book is consistent: the next update goes out as a snapshot
            return
        if self._paper_mode:
            self._submit_paper(command)
            return
        try:
            if isinstance(command, PlaceOrder):
                await self._place(command)
            elif isinstance(command, CancelOrder):
                await self._cancel(command.symbol, command.client_id)
            elif isinstance(command, CancelAll):
                await self._cancel_all(command.symbol)
        except VenueFatalError as exc:
            self._set_fatal(exc)
            raise

    def _submit_paper(self, command: Command) -> None:
        if not self._paper:
            raise RuntimeError("paper mode: execute() before connect()")
        now = self._clock_ns()
        symbol = getattr(command, "symbol", None)
        if symbol is None:  # CancelAll() of every symbol
            for paper in self._paper.values():
                paper.submit(command, now)
        elif symbol in self._paper:
            self._paper[symbol].submit(command, now)
        elif isinstance(command, PlaceOrder):
            self._emit([OrderRejected(command.symbol, command.client_id, "unknown_symbol", now, now)])

    async def _place(self, command: PlaceOrder) -> None:
        now = self._clock_ns()
        spec = self._specs.get(command.symbol)
        if spec is None:
            self._emit([OrderRejected(command.symbol, command.client_id, "unknown_symbol", now, now)])
            return
        order = self._orders.register(command)
        if now < self._orders_paused_until_ns:
            self._emit(self._orders.rejected(command.client_id, "rate_limited", now))
            return
        below = self._below_minimum(command, spec)
        if below is not None:  # the venue would refuse it: do not spend a request (and rate limit) on it
            self._emit(self._orders.rejected(command.client_id, below, now))
            return
        request = build_order_request(self._cfg.exchange, command, spec, order.venue_cid)
        delays = self._delays()
        for attempt in range(self._cfg.order_retries + 1):
            try:
                response = await self._exchange.create_order(
                    request.symbol, request.type, request.side, request.amount, request.price, request.params
                )
            except Exception as exc:
                if attempt > 0 and isinstance(exc, ccxt.DuplicateOrderId):
                    return  # an earlier, timed-out attempt did land: the order feed reports it
                rule = _classify_or_raise(exc, "create_order")
                if rule.action in (Action.RETRY, Action.RESYNC) and attempt < self._cfg.order_retries:
                    await asyncio.sleep(next(delays))
                    continue
                now = self._clock_ns()
                if rule.action is Action.BACKOFF:
                    self._orders_paused_until_ns = now + self._cfg.rate_limit_pause_ms * 1_000_000
                self._emit(self._orders.rejected(command.client_id, rule.reason, now))
                if rule.action in (Action.RETRY, Action.RESYNC):
                    await self._cancel_quietly(command.symbol, order.venue_cid)  # it may have landed
                return
            report = dict(response or {})
            if not report.get("clientOrderId"):  # bybit/okx answer with ids only
                report["clientOrderId"] = order.venue_cid
            self._emit(self._orders.on_order(report, self._clock_ns()))
            return

    def _below_minimum(self, command: PlaceOrder, spec: MarketSpec) -> str | None:
        """ "below_min_size" under the market's `limits.amount.min`, "below_min_notional" under its
        `limits.cost.min` (reduce-only exempt where the venue exempts closing orders), else None.
        Market orders have no price here: only their size is checked."""
        if command.size_lots < spec.min_lots:
            return "below_min_size"
        if command.order_type is OrderType.MARKET:
            return None
        exempt = command.reduce_only and self._cfg.exchange in REDUCE_ONLY_NOTIONAL_EXEMPT
        inst = spec.instrument
        if not exempt and inst.notional(command.price_ticks, command.size_lots) < inst.min_notional - 1e-9:
            return "below_min_notional"
        return None

    async def _cancel(self, symbol: str, client_id: str) -> None:
        order = self._orders.get(client_id)
        if order is None and client_id in self._listed_orphans:
            await self._cancel_orphan(client_id)
            return
        if order is None or order.done:
            now = self._clock_ns()
            self._emit([CancelRejected(symbol, client_id, "unknown_order", now, now)])
            return
        self._orders.mark_cancel_requested(client_id)
        params = cancel_params(self._cfg.exchange, order.venue_cid)
        delays = self._delays()
        for attempt in range(self._cfg.order_retries + 1):
            try:
                response = await self._exchange.cancel_order(order.venue_order_id or None, symbol, params)
            except Exception as exc:
                rule = _classify_or_raise(exc, "cancel_order")
                if rule.action in (Action.RETRY, Action.RESYNC) and attempt < self._cfg.order_retries:
                    await asyncio.sleep(next(delays))
                    continue
                if rule.reason == "unknown_order" and self._exchange.has.get("fetchMyTrades"):
                    # the order filled before the cancel reached the venue, which answers at once
                    # (binance -2011, okx 51400) while the fill's push may still be on its way: read
                    # the fills first, so a shutdown that waits for no open order cannot lose one
                    with suppress(ccxt.BaseError, OSError):  # best effort: the feed reports it too
                        await self._read_trades(symbol, self._clock_ns() - UNKNOWN_CANCEL_LOOKBACK_NS)
                now = self._clock_ns()
                self._emit([CancelRejected(symbol, client_id, rule.reason, now, now)])
                return
            report = dict(response or {})
            if not report.get("clientOrderId"):
                report["clientOrderId"] = order.venue_cid
            if report.get("status") == "canceled":  # else: accepted for processing; the feed confirms
                self._emit(self._orders.on_order(report, self._clock_ns()))
            return

    async def _cancel_all(self, symbol: str | None) -> None:
        """Cancel our open orders concurrently (shutdown is time-bounded); a fatal error wins."""
        targets = []
        for client_id in self._orders.open_client_ids(symbol):
            order = self._orders.get(client_id)
            if order is not None:
                targets.append(self._cancel(order.command.symbol, client_id))
        results = await asyncio.gather(*targets, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _cancel_orphan(self, client_id: str) -> None:
        """Cancel an order of an earlier process by its venue order id. Its fate is not reported as
        events (no engine tracks it); reconciliation asks `open_orders` again to see it gone."""
        symbol, venue_oid = self._listed_orphans.pop(client_id)
        try:
            await self._call_with_retries(self._exchange.cancel_order, venue_oid, symbol, {})
        except Exception as exc:
            rule = _classify_or_raise(exc, "cancel_order")
            now = self._clock_ns()
            self._emit([CancelRejected(symbol, client_id, rule.reason, now, now)])

    async def _cancel_quietly(self, symbol: str, venue_cid: str) -> None:
        with suppress(Exception):
            await self._exchange.cancel_order(None, symbol, cancel_params(self._cfg.exchange, venue_cid))

    # ---- reconciliation -------------------------------------------------------------------------

    async def open_orders(self) -> list[OpenOrder]:
        if self._paper_mode:
            return [order for paper in self._paper.values() for order in paper.open_orders()]
        out: list[OpenOrder] = []
        for symbol, spec in self._specs.items():
            reports = await self._call_with_retries(self._exchange.fetch_open_orders, symbol)
            for report in reports:
                out.append(self._open_order(spec, report))
        self._listed_orphans = {
            o.client_id: (o.symbol, o.venue_order_id) for o in out if o.extra.get("foreign") and o.venue_order_id
        }
        return out

    def _open_order(self, spec: MarketSpec, report: Mapping[str, Any]) -> OpenOrder:
        venue_cid = str(report.get("clientOrderId") or "")
        ours = [
            cid
            for cid in self._orders.open_client_ids(spec.instrument.symbol)
            if venue_client_id(self._cfg.exchange, cid) == venue_cid
        ]
        remaining = report.get("remaining")
        if remaining is None:
            remaining = float(report.get("amount") or 0) - float(report.get("filled") or 0)
        return OpenOrder(
            symbol=spec.instrument.symbol,
            client_id=ours[0] if ours else venue_cid,
            side=side_of(report.get("side")),
            price_ticks=spec.instrument.ticks(float(report.get("price") or 0.0)),
            size_lots=spec.lots(float(remaining)),
            venue_order_id=str(report.get("id") or ""),
            extra={} if ours else {"foreign": "true"},
        )

    async def fills_since(self, since_ns: int) -> list[OrderFilled]:
        """Our fills with `ts_venue_ns >= since_ns`, oldest first (see `bot.venues.base.FillHistory`).

        testnet / demo: `fetch_my_trades` per symbol, page by page (each page starts at the last
        trade's time; the overlap is deduplicated by trade id), at most HISTORY_MAX_PAGES pages.
        paper: the simulated fills of this process (a restarted paper venue starts empty)."""
        if self._paper_mode:
            return [f for f in self._paper_fills if f.ts_venue_ns >= since_ns]
        if not self._exchange.has.get("fetchMyTrades"):
            raise NotImplementedError(f"{self._cfg.exchange} has no fetchMyTrades")
        fills: list[OrderFilled] = []
        for symbol in self._specs:
            fills.extend(await self._history(symbol, since_ns))
        return sorted(fills, key=lambda f: f.ts_venue_ns)

    async def _history(self, symbol: str, since_ns: int) -> list[OrderFilled]:
        if self._cfg.exchange in HISTORY_BY_CURSOR:
            return await self._history_by_cursor(symbol, since_ns)
        return await self._history_forward(symbol, since_ns)

    async def _history_by_cursor(self, symbol: str, since_ns: int) -> list[OrderFilled]:
        """Newest-first venues: ccxt's cursor pagination walks back from the newest page to `since`,
        one venue time window at a time where the venue bounds a query (bybit: 7 days from startTime)."""
        window_ms = HISTORY_WINDOW_MS.get(self._cfg.exchange)
        start_ms, now_ms = since_ns // 1_000_000, self._clock_ns() // 1_000_000
        if window_ms is not None:  # older than the windows we read: beyond what a restart recovers
            start_ms = max(start_ms, now_ms - HISTORY_MAX_WINDOWS * window_ms + 1)
        seen: set[str] = set()
        fills: list[OrderFilled] = []
        for _ in range(HISTORY_MAX_WINDOWS):
            params: dict[str, Any] = {"paginate": True, "paginationCalls": HISTORY_MAX_PAGES}
            last_window = window_ms is None or start_ms + window_ms > now_ms
            if not last_window:
                assert window_ms is not None
                params["until"] = start_ms + window_ms - 1
            trades = await self._call_with_retries(self._exchange.fetch_my_trades, symbol, start_ms, None, params)
            for fill in self._history_page(trades, symbol, self._clock_ns()):
                if fill.fill_id not in seen and fill.ts_venue_ns >= since_ns:
                    seen.add(fill.fill_id)
                    fills.append(fill)
            if last_window:
                break
            assert window_ms is not None
            start_ms += window_ms
        return sorted(fills, key=lambda f: f.ts_venue_ns)

    async def _history_forward(self, symbol: str, since_ns: int) -> list[OrderFilled]:
        """Oldest-first venues (binance): each page starts at the last trade's time; where the venue
        answers one bounded window from `startTime` (FORWARD_WINDOW_MS), an exhausted window moves on
        to the next one until now, so fills after an empty day are not skipped."""
        window_ms = FORWARD_WINDOW_MS.get((self._cfg.exchange, self._specs[symbol].instrument.kind.value))
        since_ms = since_ns // 1_000_000
        calls = HISTORY_MAX_PAGES
        if window_ms is not None:  # the same horizon as the cursor venues', one call per window more
            horizon_ms = HISTORY_MAX_WINDOWS * HISTORY_WINDOW_MS["bybit"]
            since_ms = max(since_ms, self._clock_ns() // 1_000_000 - horizon_ms)
            calls += -(-horizon_ms // window_ms)
        seen: set[str] = set()
        fills: list[OrderFilled] = []
        for _ in range(calls):
            now_ms = self._clock_ns() // 1_000_000
            until_ms = since_ms + window_ms - 1 if window_ms is not None and since_ms + window_ms <= now_ms else None
            params = {} if until_ms is None else {"until": until_ms}
            trades = await self._call_with_retries(
                self._exchange.fetch_my_trades, symbol, since_ms, HISTORY_PAGE, params
            )
            page = self._history_page(trades, symbol, self._clock_ns())
            new = [f for f in page if f.fill_id not in seen and f.ts_venue_ns >= since_ns]
            seen.update(f.fill_id for f in page)
            fills.extend(new)
            if len(trades) >= HISTORY_PAGE and new:  # a full page: more in this window
                since_ms = max(f.ts_venue_ns for f in page) // 1_000_000
            elif until_ms is not None:  # this window is done: the next one
                since_ms = until_ms + 1
            else:
                break
        return fills

    def _history_page(self, trades: list[Any], symbol: str, now_ns: int) -> list[OrderFilled]:
        """Our trades as fills; a malformed one is skipped and counted, not allowed to end recovery."""
        page: list[OrderFilled] = []
        for trade in trades:
            try:
                page.append(self._orders.history_fill(trade, symbol, now_ns))
            except MalformedMessage as exc:
                self.dropped_history += 1
                log.warning("feed.message_dropped", symbol=symbol, feed="fill_history", reason=str(exc))
        return page

    async def positions(self) -> dict[str, int]:
        """Perp: the venue's signed position. Spot: base balance less `ccxt.spot_base_allocation`
        (or, unset, less the balance at `connect`)."""
        if self._paper_mode:
            return {symbol: paper.position_lots for symbol, paper in self._paper.items()}
        out: dict[str, int] = {}
        spot = [s for s in self._specs.values() if s.instrument.kind is InstrumentKind.SPOT]
        perps = [s for s in self._specs.values() if s.instrument.kind is InstrumentKind.PERP]
        if spot:
            balance = await self._call_with_retries(self._exchange.fetch_balance)
            for spec in spot:
                sym = spec.instrument.symbol
                out[sym] = spec.lots(_total(balance, spec.instrument.base) - self._spot_base_at_start.get(sym, 0.0))
        if perps:
            symbols = [spec.instrument.symbol for spec in perps]
            rows = await self._call_with_retries(self._exchange.fetch_positions, symbols)
            for spec in perps:
                out[spec.instrument.symbol] = 0
            for row in rows:
                row_spec = self._specs.get(str(row.get("symbol")))
                if row_spec is None:
                    continue
                sign = -1 if row.get("side") == "short" else 1
                out[row_spec.instrument.symbol] += sign * row_spec.lots(abs(float(row.get("contracts") or 0.0)))
        return out

    async def balances(self) -> dict[str, float]:
        """Total balance per currency (testnet/demo); empty in paper mode."""
        if self._paper_mode:
            return {}
        balance = await self._call_with_retries(self._exchange.fetch_balance)
        totals = balance.get("total") or {}
        return {ccy: float(value) for ccy, value in totals.items() if value is not None}

    async def _call_with_retries(self, call: Callable[..., Awaitable[Any]], *args: Any, attempts: int = 5) -> Any:
        """A REST call outside the order path: retry transient errors a few times, then re-raise."""
        delays = self._delays()
        for attempt in range(attempts):
            try:
                return await call(*args)
            except Exception as exc:
                rule = _classify_or_raise(exc, getattr(call, "__name__", "call"))
                if rule.action is Action.REJECT or attempt == attempts - 1:
                    raise  # the caller's supervisor (or the runner, at connect) decides
                await asyncio.sleep(next(delays))
        raise AssertionError("unreachable")


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups from a feed's own TaskGroup."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _classify_or_raise(exc: Exception, what: str) -> ErrorRule:
    rule = classify(exc)
    if rule is None:
        raise exc
    if rule.action is Action.STOP:
        raise VenueFatalError(rule.reason, f"{what}: {exc}") from exc
    return rule


def _total(balance: Mapping[str, Any], currency: str) -> float:
    value = (balance.get("total") or {}).get(currency)
    return float(value) if value is not None else 0.0


@asynccontextmanager
async def connected(venue: CcxtVenue) -> AsyncIterator[CcxtVenue]:
    """`async with connected(venue):` connect, then always close."""
    try:
        await venue.connect()
        yield venue
    finally:
        await venue.close()
