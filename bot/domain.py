"""Frozen domain values shared by the core and the adapters.

Units: inside the core, prices are integer *ticks* and sizes integer *lots* of an `Instrument`
(exact and fast); fees, cash and PnL are floats in the quote currency (a real venue's fill also
carries the fee in the currency it was charged in, `VenueReport`, for the ledger). Adapters convert venue
payloads to these values at the edge; nothing past an adapter sees a raw payload.

Every event carries the venue's timestamp and the local receive time, both in ns since the epoch
(or since the simulation start), so staleness and latency are measurable everywhere.

A market is `(venue, symbol)`: every event and command names its `venue` (last field, default
`DEFAULT_VENUE` = "", the single-venue path, where the one adapter need not name itself). An
adapter of a multi-venue session stamps its venue name on every event it makes; the engine routes
events to the market they name and commands carry the venue they are for.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from enum import Enum, EnumType, StrEnum
from typing import Any, NamedTuple


class MemberEnumType(EnumType):
    """The metaclass of our enums: EnumType, with class attribute reads (`Side.BUY`) that skip its
    deprecated `__getattr__` fallback when the extension is built (`bot._native.plain_class_getattr`:
    the fallback made every read ~4x dearer, ~40,000 reads a replay). Only for enums whose members
    are all in their class dict, where the fallback finds nothing more (checked as each is made)."""

    def __new__(metacls, *args: Any, **kwargs: Any) -> Any:
        cls = super().__new__(metacls, *args, **kwargs)
        members: dict[str, Enum] = cls._member_map_
        if any(vars(cls).get(name) is not member for name, member in members.items()):
            raise TypeError(f"{cls.__name__}: a member is not in its class dict; use enum.EnumType")
        return cls


try:  # no C compiler at install: EnumType's own lookup
    from bot._native import plain_class_getattr as _plain_class_getattr

    _plain_class_getattr(MemberEnumType)
except ImportError:  # pragma: no cover
    pass


class Side(StrEnum, metaclass=MemberEnumType):
    BUY = "buy"
    SELL = "sell"

    # Plain attributes of each member (set below), not properties: a property is an interpreted call on
    # every read, ~16k of them in a replay of the bundled spot file, most from compiled code.
    sign: int  # +1 for a buy (inventory up), -1 for a sell
    opposite: Side


Side.BUY.sign, Side.SELL.sign = 1, -1
Side.BUY.opposite, Side.SELL.opposite = Side.SELL, Side.BUY


class InstrumentKind(StrEnum, metaclass=MemberEnumType):
    SPOT = "spot"
    PERP = "perp"  # linear perpetual, settled in the quote currency


class OrderType(StrEnum, metaclass=MemberEnumType):
    LIMIT = "limit"  # rests until filled or canceled (post_only optional)
    IOC = "ioc"  # limit price, immediate-or-cancel
    MARKET = "market"  # walks the book, no price limit


class Liquidity(StrEnum, metaclass=MemberEnumType):
    MAKER = "maker"
    TAKER = "taker"


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable market and its grid. `tick_size` in quote per base, `lot_size` in base units."""

    symbol: str  # ccxt-unified: "TOKEN/USDT" (spot), "TOKEN/USDT:USDT" (linear perp)
    kind: InstrumentKind
    base: str
    quote: str
    tick_size: float
    lot_size: float
    min_notional: float = 0.0  # quote currency
    maker_fee: float = 0.0  # fraction of notional, negative = rebate
    taker_fee: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tick_size", "lot_size"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{self.symbol}: {name} must be finite and > 0, got {value!r}")

    def price(self, ticks: int) -> float:
        return ticks * self.tick_size

    def size(self, lots: int) -> float:
        return lots * self.lot_size

    def ticks(self, price: float) -> int:
        """Nearest tick: for exact venue prices (parsing), not for model output (use floor/ceil)."""
        return round(price / self.tick_size)

    def lots(self, size: float) -> int:
        """Nearest lot, for exact venue sizes."""
        return round(size / self.lot_size)

    def ticks_floor(self, price: float) -> int:
        # the small epsilon keeps 100.00/0.01 from landing on 9999.999... and losing a tick
        return math.floor(price / self.tick_size + 1e-9)

    def ticks_ceil(self, price: float) -> int:
        return math.ceil(price / self.tick_size - 1e-9)

    def lots_floor(self, size: float) -> int:
        return math.floor(size / self.lot_size + 1e-9)

    def notional(self, ticks: int, lots: int) -> float:
        return ticks * self.tick_size * lots * self.lot_size


DEFAULT_VENUE = ""
"""The venue name of a single-venue path (one adapter, whose events need not name it)."""

MarketKey = tuple[str, str]
"""A market is (venue, symbol): the same TOKEN/USDT on two venues is two markets."""


def market_key(venue: str, symbol: str) -> str:
    """The portfolio's and the ledger's position key of a market: the bare symbol on the default venue
    (so a single-venue session reads as it always did), else "symbol@venue"."""
    return symbol if venue == DEFAULT_VENUE else f"{symbol}@{venue}"


Level = tuple[int, int]
"""(price_ticks, size_lots) of one book level; size 0 in a delta deletes the level."""


# --------------------------------------------------------------------------------------------------
# Events (past tense or nouns): venue -> core
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """Full L2 book. `seq` is the venue's update id the snapshot is valid at."""

    symbol: str
    seq: int
    bids: tuple[Level, ...]  # best first
    asks: tuple[Level, ...]  # best first
    ts_venue_ns: int
    ts_recv_ns: int
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class BookDelta:
    """Changes to the L2 book covering update ids `first_seq..last_seq` (inclusive).

    `prev_seq`, when the venue sends it (Binance futures `pu`), must equal the last applied
    `last_seq`; otherwise contiguity is `first_seq == last applied + 1`.
    """

    symbol: str
    first_seq: int
    last_seq: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_venue_ns: int
    ts_recv_ns: int
    prev_seq: int | None = None
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class TradePrint:
    """A public trade. `aggressor` is the taker's side (BUY lifted the ask)."""

    symbol: str
    price_ticks: int
    size_lots: int
    aggressor: Side
    trade_id: str
    ts_venue_ns: int
    ts_recv_ns: int
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    symbol: str
    client_id: str
    venue_order_id: str
    ts_venue_ns: int
    ts_recv_ns: int
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class OrderRejected:
    symbol: str
    client_id: str
    reason: str  # e.g. "post_only_would_cross", "insufficient_balance", "rate_limited"
    ts_venue_ns: int
    ts_recv_ns: int
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class OrderCanceled:
    symbol: str
    client_id: str
    reason: str  # "requested", "ioc_expired", "self_trade_prevented", "venue"
    ts_venue_ns: int
    ts_recv_ns: int
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class CancelRejected:
    """A cancel the venue refused (usually: the order is already gone or unknown)."""

    symbol: str
    client_id: str
    reason: str
    ts_venue_ns: int
    ts_recv_ns: int
    venue: str = DEFAULT_VENUE


class VenueReport(NamedTuple):
    """What a real venue said about one execution that the core's units drop (ccxt's trade
    structure: `amount`, `fee: {cost, currency}`), kept for the ledger, which books positions and
    fees per currency from it exactly.

    `traded_lots`: the size the venue executed, before any fee it withheld from the coins received
    (a spot buy on Binance, Bybit and OKX pays its fee in the base coin, so the fill's `size_lots` is
    the coins received, rounded to lots). `fee_cost` in `fee_currency` as the venue charged it,
    positive = paid (exact: the venue's decimal survives as the float's shortest repr); `fee_currency`
    "" when the venue reported no fee (then `OrderFilled.fee_quote` is an estimate at the market's
    rate, in the quote currency)."""

    traded_lots: int
    fee_cost: float
    fee_currency: str


@dataclass(frozen=True, slots=True)
class OrderFilled:
    """One execution of one of our orders. `fill_id` is unique per venue and symbol: the core
    drops a fill whose id it has already seen (venues and networks duplicate messages).

    `size_lots` is what the fill moves our position by, in lots. `report` is None for the fills the
    bot simulates (paper, mock, replay: the size is exact in lots and the fee is `fee_quote`, in the
    quote currency); a real venue's fill carries the venue's own figures (`VenueReport`)."""

    symbol: str
    client_id: str
    fill_id: str
    side: Side
    price_ticks: int
    size_lots: int
    fee_quote: float  # quote currency, positive = paid
    liquidity: Liquidity
    leaves_lots: int  # what remains open on the order after this fill
    ts_venue_ns: int
    ts_recv_ns: int
    report: VenueReport | None = None
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """The venue's view of our position, for reconciliation. Spot: base balance change since start."""

    symbol: str
    position_lots: int
    ts_venue_ns: int
    ts_recv_ns: int
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """Perpetual mark price (reference for the quote band and for marking the perp)."""

    symbol: str
    mark_ticks: int
    ts_venue_ns: int
    ts_recv_ns: int
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class FundingPaid:
    """A funding settlement on a perp. `amount_quote` > 0 means we received it."""

    symbol: str
    rate: float
    amount_quote: float
    ts_venue_ns: int
    ts_recv_ns: int
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """The adapter's connection state for one symbol's market data (or "*" for all)."""

    symbol: str
    connected: bool
    reason: str
    ts_venue_ns: int
    ts_recv_ns: int
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class Timer:
    """A periodic tick from the runner; lets the core act on time alone (staleness, order age)."""

    ts_venue_ns: int
    ts_recv_ns: int


Event = (
    BookSnapshot
    | BookDelta
    | TradePrint
    | OrderAccepted
    | OrderRejected
    | OrderCanceled
    | CancelRejected
    | OrderFilled
    | PositionSnapshot
    | MarkPrice
    | FundingPaid
    | FeedStatus
    | Timer
)

BOOK_EVENTS = (BookSnapshot, BookDelta)
"""Book updates may be conflated by the runner; every other event must be delivered."""


# --------------------------------------------------------------------------------------------------
# Commands (imperative): core -> venue. An order's state changes only on events, never on sending.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    symbol: str
    client_id: str
    side: Side
    price_ticks: int  # ignored for MARKET
    size_lots: int
    order_type: OrderType = OrderType.LIMIT
    post_only: bool = True
    reduce_only: bool = False
    tag: str = ""  # "quote" or "hedge": for logs and the ledger, ignored by venues
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class CancelOrder:
    symbol: str
    client_id: str
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class CancelAll:
    symbol: str | None = None  # None: every symbol
    venue: str = DEFAULT_VENUE


@dataclass(frozen=True, slots=True)
class RequestSnapshot:
    """Ask the adapter for a fresh book snapshot (after a sequence gap or a crossed book)."""

    symbol: str
    reason: str
    venue: str = DEFAULT_VENUE


Command = PlaceOrder | CancelOrder | CancelAll | RequestSnapshot


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order as the venue reports it when asked (reconciliation on start)."""

    symbol: str
    client_id: str
    side: Side
    price_ticks: int
    size_lots: int  # remaining
    venue_order_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    venue: str = DEFAULT_VENUE


def _install_fast_constructors() -> None:
    """Build the events and commands in C (`bot._native.fast_init`, when the extension is built): the
    same objects, field for field, without the generated frozen `__init__` (one `object.__setattr__`
    per field), 13 % of the instructions of a cached spot replay. A class qualifies when every field is a plain __init__
    argument (no default_factory, no kw_only) and it has no __post_init__; the others keep their
    __init__. tests/unit/test_native.py compares both constructors on every class here."""
    try:
        from bot._native import fast_init
    except ImportError:  # no C compiler at install: the dataclasses' own __init__
        return
    for cls in FAST_CONSTRUCTED:
        specs = fields(cls)
        fast_init(cls, tuple(f.name for f in specs), tuple(f.default for f in specs if f.default is not MISSING))


def _qualifies(cls: type) -> bool:
    params = getattr(cls, "__dataclass_params__", None)
    return (
        params is not None
        and params.frozen
        and "__slots__" in vars(cls)
        and "__post_init__" not in vars(cls)
        and all(f.init and not f.kw_only and f.default_factory is MISSING for f in fields(cls))
    )


_CANDIDATES: tuple[type, ...] = (
    *(BookSnapshot, BookDelta, TradePrint, OrderAccepted, OrderRejected, OrderCanceled, CancelRejected),
    *(OrderFilled, PositionSnapshot, MarkPrice, FundingPaid, FeedStatus, Timer),
    *(PlaceOrder, CancelOrder, CancelAll, RequestSnapshot, OpenOrder, Instrument),
)
FAST_CONSTRUCTED: tuple[type, ...] = tuple(cls for cls in _CANDIDATES if _qualifies(cls))
_install_fast_constructors()


def install_fast_constructors(*classes: type) -> None:
    """Build the core's own per-requote records in C, when the extension is built: a NamedTuple through
    `bot._native.fast_tuple_init` (its generated `__new__` is a Python lambda), a dataclass through
    `fast_native_init` (its generated `__init__`, which mypyc-compiled code runs for its own dataclasses,
    is Python: one call, one store per field). The same objects, stores and `__post_init__` checks;
    the error cases run the class's own constructor. A class that is neither, or whose constructor is
    not the generated one (or has a default_factory, kw_only or InitVar field), keeps it.
    tests/unit/test_native.py compares both ways on every class installed."""
    try:
        from bot._native import fast_native_init, fast_tuple_init
    except ImportError:  # no C compiler at install: the classes' own constructors
        return
    for cls in classes:
        if _generated_namedtuple(cls):
            names: tuple[str, ...] = cls._fields  # type: ignore[attr-defined]
            defaults: dict[str, object] = cls._field_defaults  # type: ignore[attr-defined]
            fast_tuple_init(cls, names, tuple(defaults[n] for n in names if n in defaults))
        elif _generated_dataclass_init(cls):
            specs = fields(cls)
            fast_native_init(
                cls,
                tuple(f.name for f in specs),
                tuple(f.default for f in specs if f.default is not MISSING),
                cls.__dataclass_params__.frozen,  # type: ignore[attr-defined]
                hasattr(cls, "__post_init__"),
            )


def _generated_namedtuple(cls: type) -> bool:
    new = cls.__new__ if "__new__" in vars(cls) else None  # (vars holds it as a staticmethod)
    code = getattr(new, "__code__", None)
    return (
        issubclass(cls, tuple)
        and type(cls) is type
        and isinstance(getattr(cls, "_fields", None), tuple)
        and code is not None
        and code.co_filename == "<string>"  # collections.namedtuple's eval'd lambda
        and getattr(new, "__globals__", {}).get("_tuple_new") is tuple.__new__
    )


def _generated_dataclass_init(cls: type) -> bool:
    init = vars(cls).get("__init__")
    code = getattr(init, "__code__", None)
    all_fields = getattr(cls, "__dataclass_fields__", None)
    return (
        all_fields is not None
        and code is not None
        and code.co_filename == "<string>"  # dataclasses' generated __init__
        and len(fields(cls)) == len(all_fields)  # no ClassVar or InitVar pseudo-fields
        and all(f.init and not f.kw_only and f.default_factory is MISSING for f in fields(cls))
    )
