"""Restart reconciliation on a multi-venue session (the embedded default's shape: spot on main, second
and third, the perp on perpx), on a real ledger and engine and a scripted venue set.

The ledger keys every fill by its market (`market_key(venue, symbol)`), so the positions a restart
rebuilds are per (venue, symbol): the same TOKEN/USDT bought on main and sold on second are two
positions, not one net position. Fills a venue made while the bot was down are recovered from that
venue's history once, and a later replay of one of them (the websocket mock replays what it held
while nobody listened) reaches the order manager of its own venue's quoter, which must know it."""

from __future__ import annotations

from pathlib import Path

from bot.app import build_engine
from bot.config import load_settings
from bot.core.engine import Engine
from bot.domain import (
    BookSnapshot,
    Command,
    Instrument,
    InstrumentKind,
    Liquidity,
    OpenOrder,
    OrderFilled,
    Side,
    market_key,
)
from bot.runtime.ledger import Ledger
from bot.runtime.recovery import reconcile

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
PERP = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
S = 1_000_000_000
T0 = 1_700_000_000 * S
MAIN, SECOND = market_key("main", SPOT.symbol), market_key("second", SPOT.symbol)
THIRD, HEDGE = market_key("third", SPOT.symbol), market_key("perpx", PERP.symbol)
MARKETS = {MAIN: SPOT, SECOND: SPOT, THIRD: SPOT, HEDGE: PERP}


def fill(venue: str, n: int, side: Side, lots: int, ts_ns: int, symbol: str = SPOT.symbol) -> OrderFilled:
    """A fill as the venue set delivers it: stamped with its venue, its id prefixed with it."""
    return OrderFilled(
        symbol, f"q-old-{venue}-{n}", f"{venue}:F{n}", side, 10_000, lots, 0.01, Liquidity.MAKER, 0, ts_ns, ts_ns,
        venue=venue,
    )  # fmt: skip


class ScriptedVenues:
    """Four venues as one: positions per market key, and every venue's fill history."""

    name = "venues"
    fill_session = "main=a|second=b|third=c|perpx=d"

    def __init__(self, positions: dict[str, int], history: list[OrderFilled]) -> None:
        self._positions = positions
        self._history = history
        self.instruments = {SPOT.symbol: SPOT, PERP.symbol: PERP}

    async def positions(self) -> dict[str, int]:
        return dict(self._positions)

    async def open_orders(self) -> list[OpenOrder]:
        return []

    async def execute(self, command: Command) -> None:
        raise AssertionError(f"nothing to cancel: {command}")

    async def fills_since(self, since_ns: int) -> list[OrderFilled]:
        return [f for f in self._history if f.ts_venue_ns >= since_ns]


def new_engine() -> Engine:
    settings = load_settings(None, {"ledger": {"path": ""}})
    spots = {"main": SPOT, "second": SPOT, "third": SPOT}
    return build_engine(settings, SPOT, PERP, start_ns=T0, spot_venues=spots)


def ledger_with(tmp_path: Path, fills: list[OrderFilled]) -> Ledger:
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.start_run("r1", T0, venue=ScriptedVenues.name, instruments=MARKETS, session=ScriptedVenues.fill_session)
    for f in fills:
        assert ledger.record_fill("r1", f)
    return ledger


def test_the_ledger_keeps_a_position_per_venue_and_symbol(tmp_path: Path) -> None:
    fills = [fill("main", 1, Side.BUY, 10, T0 + S), fill("second", 1, Side.SELL, 4, T0 + S),
             fill("perpx", 1, Side.SELL, 6, T0 + 2 * S, symbol=PERP.symbol)]  # fmt: skip
    with ledger_with(tmp_path, fills) as ledger:
        state = ledger.recover(ScriptedVenues.name, ScriptedVenues.fill_session)
        # one market per (venue, symbol): not one TOKEN/USDT position of +6 for the three spot venues
        assert state.positions_lots == {MAIN: 10, SECOND: -4, HEDGE: -6}
        # a fill id repeats across venues only with its venue's prefix: both are kept
        assert ledger.record_fill("r1", fill("third", 1, Side.BUY, 1, T0 + 3 * S))
        assert not ledger.record_fill("r1", fill("third", 1, Side.BUY, 1, T0 + 3 * S))  # the same fill again
        assert ledger.recover(ScriptedVenues.name, ScriptedVenues.fill_session).positions_lots[THIRD] == 1


async def test_fills_each_venue_made_while_down_are_recovered_once_and_a_replay_is_a_duplicate(
    tmp_path: Path,
) -> None:
    seen = [fill("main", 1, Side.BUY, 10, T0 + 5 * S), fill("second", 1, Side.BUY, 2, T0 + 5 * S)]
    dead = [fill("second", 2, Side.SELL, 6, T0 + 9 * S), fill("third", 1, Side.BUY, 3, T0 + 9 * S),
            fill("perpx", 1, Side.SELL, 7, T0 + 9 * S, symbol=PERP.symbol)]  # fmt: skip
    venue = ScriptedVenues({MAIN: 10, SECOND: -4, THIRD: 3, HEDGE: -7}, [*seen, *dead])
    engine = new_engine()
    with ledger_with(tmp_path, seen) as ledger:
        state = ledger.recover(venue.name, venue.fill_session)
        fields = await reconcile(engine, venue, state, ledger)  # type: ignore[arg-type]
        assert fields["fill_history"] == "ok"
        assert fields["fills_recovered"] == 3
        assert fields["mismatches"] == {}
        assert fields["ledger_positions_lots"] == {MAIN: 10, SECOND: -4, THIRD: 3, HEDGE: -7}
        again = await reconcile(new_engine(), venue, ledger.recover(venue.name, venue.fill_session), ledger)  # type: ignore[arg-type]
        assert (again["fills_recovered"], again["mismatches"]) == (0, {})
    assert engine.position_lots == {MAIN: 10, SECOND: -4, THIRD: 3, HEDGE: -7}
    # the websocket mock replays what it held while nobody listened: each on its own venue
    for replayed in dead:
        engine.apply(replayed, T0 + 20 * S)
    assert engine.position_lots == {MAIN: 10, SECOND: -4, THIRD: 3, HEDGE: -7}
    assert engine.stats.duplicate_fills == len(dead)
    engine.apply(fill("second", 3, Side.BUY, 1, T0 + 21 * S), T0 + 21 * S)  # a new fill still counts
    assert engine.position_lots[SECOND] == -3


async def test_a_restored_position_counts_before_its_venue_shows_a_mid() -> None:
    """Without a ledger (or one that disagrees) a restored position is entered at its venue's first
    mid. Until then the summary showed inventory 0.0 for that venue while its exchange held the
    position, and the other venues' quotes skewed on an aggregate without it."""
    venue = ScriptedVenues({MAIN: 5, SECOND: 6, HEDGE: -11}, [])
    engine = new_engine()
    await reconcile(engine, venue, None)  # type: ignore[arg-type]
    book = BookSnapshot(SPOT.symbol, 1, ((9_999, 500),), ((10_001, 500),), T0 + S, T0 + S, venue="main")
    engine.apply(book, T0 + S)  # a mid on main only: second's book has not come yet
    engine.requote(T0 + S)
    venues = engine.summary(T0 + S)["venues"]
    assert venues["main"]["inventory"] == 0.05
    assert venues["second"]["inventory"] == 0.06
    assert engine.inventory_base() == 0.11  # what every quoter skews on
    book2 = BookSnapshot(SPOT.symbol, 1, ((9_999, 500),), ((10_001, 500),), T0 + 2 * S, T0 + 2 * S, venue="second")
    engine.apply(book2, T0 + 2 * S)  # its mid: entered there, counted once
    assert engine.summary(T0 + 2 * S)["venues"]["second"]["inventory"] == 0.06
    assert engine.inventory_base() == 0.11
