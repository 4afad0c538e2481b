"""Types of the optional C extension built from bot/_native.c (see there)."""

from bot.domain import Event

def grid_levels(pairs: object, tick_step: float, lot_step: float, /) -> tuple[tuple[int, int], ...] | None: ...
def apply_side(
    book: dict[int, int], levels: object, best: int, dirty: bool, is_bid: bool, /
) -> tuple[int, bool, bool] | None: ...
def apply_delta(
    bids: dict[int, int],
    asks: dict[int, int],
    bid_levels: object,
    ask_levels: object,
    bid: int,
    bid_dirty: bool,
    ask: int,
    ask_dirty: bool,
    no_ask: int,
    bid_hint: bytearray,
    ask_hint: bytearray,
    /,
) -> tuple[int, bool, int, bool, bool] | None: ...
def decode_lines(
    lines: list[bytes], tick_step: float, lot_step: float, skip_tickers: bool, /
) -> tuple[list[tuple[int, ...] | bytes], int]: ...
def extreme_price(book: dict[int, int], is_bid: bool, empty: int, /) -> int | None: ...
def suffix_sums(blocks: list[list[float]], starts: list[int], /) -> list[float] | None: ...
def float_sum(blocks: list[list[float]], lo: int, hi: int, /) -> float | None: ...
def fast_init(cls: type, names: tuple[str, ...], defaults: tuple[object, ...], /) -> None: ...
def fast_constructed(cls: type, /) -> bool: ...
def fast_tuple_init(cls: type, names: tuple[str, ...], defaults: tuple[object, ...], /) -> None: ...
def fast_native_init(
    cls: type, names: tuple[str, ...], defaults: tuple[object, ...], frozen: bool, post_init: bool, /
) -> None: ...
def fast_native_installed(cls: type, /) -> bool: ...
def plain_class_getattr(meta: type, /) -> None: ...
def decode_events(
    columns: tuple[object, ...],
    start: int,
    end: int,
    level_at: int,
    trade_ids: list[str],
    trade_at: int,
    symbol: str,
    venue: str,
    sides: tuple[object, object],
    classes: tuple[type, type, type],
    /,
) -> tuple[list[tuple[int, Event]], int, int] | None: ...
