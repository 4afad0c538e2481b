"""Restart reconciliation with the fill-history step (bot/runtime/recovery.py), on a real ledger and
engine and a scripted venue: recovered fills land in the ledger once, tagged "recovered", the ledger
then agrees with the venue, and a later replay of those fills does not move the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.app import build_engine
from bot.config import load_settings
from bot.core.engine import Engine
from bot.domain import (
    CancelOrder,
    Command,
    Instrument,
    InstrumentKind,
    Liquidity,
    OpenOrder,
    OrderFilled,
    Side,
)
from bot.runtime.ledger import Ledger
from bot.runtime.recovery import FILL_OVERLAP_NS, reconcile

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
PERP = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", tick_size=0.01, lot_size=0.01)
S = 1_000_000_000
T0 = 1_700_000_000 * S


def fill(
    fill_id: str, side: Side, lots: int, ts_ns: int, symbol: str = SPOT.symbol, px_ticks: int = 10_000
) -> OrderFilled:
    return OrderFilled(
        symbol, f"q-old-{fill_id}", fill_id, side, px_ticks, lots, 0.01, Liquidity.MAKER, 0, ts_ns, ts_ns
    )


class ScriptedVenue:
    """Positions, open orders and a fill history; a cancel removes the order, as a venue would."""

    name = "fake"

    def __init__(
        self,
        positions: dict[str, int],
        history: list[OrderFilled] | Exception | None = None,
        orders: list[OpenOrder] | None = None,
        sticky_orders: bool = False,
    ) -> None:
        self._positions = positions
        self._history = history
        self._orders = list(orders or [])
        self._sticky = sticky_orders  # a venue that never confirms the cancel
        self.sent: list[Command] = []
        self.asked_since: list[int] = []
        self.instruments = {SPOT.symbol: SPOT, PERP.symbol: PERP}

    async def positions(self) -> dict[str, int]:
        return dict(self._positions)

    async def open_orders(self) -> list[OpenOrder]:
        return list(self._orders)

    async def execute(self, command: Command) -> None:
        self.sent.append(command)
        if isinstance(command, CancelOrder) and not self._sticky:
            self._orders = [o for o in self._orders if o.client_id != command.client_id]

    async def fills_since(self, since_ns: int) -> list[OrderFilled]:
        self.asked_since.append(since_ns)
        if isinstance(self._history, Exception):
            raise self._history
        if self._history is None:
            raise NotImplementedError
        return [f for f in self._history if f.ts_venue_ns >= since_ns]


def new_engine(tmp_path: Path) -> Engine:
    settings = load_settings(None, {"ledger": {"path": str(tmp_path / "l.sqlite")}})
    return build_engine(settings, SPOT, PERP, start_ns=T0)


def ledger_with(tmp_path: Path, fills: list[OrderFilled], venue: str = "fake") -> Ledger:
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.start_run("r1", T0, venue=venue, instruments=[SPOT, PERP])
    for f in fills:
        ledger.record_fill("r1", f)
    return ledger


def tags(ledger: Ledger) -> dict[str, str]:
    rows = ledger._db.execute("SELECT fill_id, tag FROM fills WHERE run_id = 'r1'").fetchall()
    return dict(rows)


async def run(engine: Engine, venue: ScriptedVenue, ledger: Ledger, **kw: Any) -> dict[str, Any]:
    state = ledger.recover(venue=venue.name)
    return await reconcile(engine, venue, state, ledger, **kw)  # type: ignore[arg-type]


async def test_fills_made_while_dead_are_recorded_once_and_the_ledger_then_agrees(tmp_path: Path) -> None:
    seen = fill("F1", Side.BUY, 10, T0 + 5 * S)
    dead = [fill("F2", Side.SELL, 4, T0 + 9 * S), fill("H1", Side.SELL, 3, T0 + 9 * S, symbol=PERP.symbol)]
    other = fill("X1", Side.BUY, 7, T0 + 9 * S, symbol="OTHER/USDT")
    venue = ScriptedVenue({SPOT.symbol: 6, PERP.symbol: -3}, history=[seen, *dead, other])
    engine = new_engine(tmp_path)
    with ledger_with(tmp_path, [seen]) as ledger:
        fields = await run(engine, venue, ledger)
        assert venue.asked_since == [T0 + 5 * S - FILL_OVERLAP_NS]  # from the newest recorded fill, minus overlap
        assert fields["fill_history"] == "ok"
        assert fields["fills_fetched"] == 3  # the other symbol is not ours to book
        assert fields["fills_recovered"] == 2
        assert fields["recovered_fill_ids"] == ["TOKEN/USDT:F2", "TOKEN/USDT:USDT:H1"]
        assert fields["mismatches"] == {}
        assert fields["ledger_positions_lots"] == {SPOT.symbol: 6, PERP.symbol: -3} == fields["positions_lots"]
        assert fields["ledger_fills"] == 3
        assert tags(ledger) == {"F1": "", "F2": "recovered", "H1": "recovered"}
        # a second restart finds nothing new: the recovered fills count as seen
        again = await run(new_engine(tmp_path), venue, ledger)
        assert (again["fills_recovered"], again["mismatches"]) == (0, {})


async def test_a_replay_of_a_recovered_fill_does_not_move_the_engine(tmp_path: Path) -> None:
    seen = fill("F1", Side.BUY, 10, T0 + 5 * S)
    dead = fill("F2", Side.SELL, 4, T0 + 9 * S)
    venue = ScriptedVenue({SPOT.symbol: 6, PERP.symbol: 0}, history=[seen, dead])
    engine = new_engine(tmp_path)
    with ledger_with(tmp_path, [seen]) as ledger:
        await run(engine, venue, ledger)
    assert engine.portfolio.position_lots(SPOT.symbol) == 6  # entered at the ledger's entry, at once
    engine.apply(dead, T0 + 20 * S)  # the websocket mock replays what it held while nobody listened
    assert engine.portfolio.position_lots(SPOT.symbol) == 6
    assert engine.stats.duplicate_fills == 1
    engine.apply(fill("F3", Side.SELL, 1, T0 + 21 * S), T0 + 21 * S)  # a new fill still counts
    assert engine.portfolio.position_lots(SPOT.symbol) == 5


@pytest.mark.parametrize(
    ("history", "status"),
    [(None, "unsupported"), (ConnectionError("gone"), "failed: ConnectionError: gone")],
)
async def test_without_a_history_the_mismatch_is_reported_and_the_bot_starts(
    tmp_path: Path, history: Exception | None, status: str
) -> None:
    seen = fill("F1", Side.BUY, 10, T0 + 5 * S)
    venue = ScriptedVenue({SPOT.symbol: 6, PERP.symbol: 0}, history=history)
    engine = new_engine(tmp_path)
    with ledger_with(tmp_path, [seen]) as ledger:
        fields = await run(engine, venue, ledger)
        assert tags(ledger) == {"F1": ""}
    assert fields["fill_history"] == status
    assert fields["fills_recovered"] == 0
    assert fields["mismatches"] == {SPOT.symbol: {"ledger_lots": 10, "venue_lots": 6}}
    assert fields["positions_lots"][SPOT.symbol] == 6  # the venue is the truth for the engine


async def test_no_run_on_this_venue_means_no_history_is_asked(tmp_path: Path) -> None:
    venue = ScriptedVenue({SPOT.symbol: 6, PERP.symbol: 0}, history=[fill("F2", Side.BUY, 6, T0)])
    with ledger_with(tmp_path, [], venue="elsewhere") as ledger:
        fields = await run(new_engine(tmp_path), venue, ledger)
    assert venue.asked_since == []
    assert fields["fill_history"] == "skipped"
    assert fields["mismatches"] == {SPOT.symbol: {"ledger_lots": 0, "venue_lots": 6}}


async def test_a_run_without_fills_asks_from_its_start(tmp_path: Path) -> None:
    dead = fill("F1", Side.BUY, 6, T0 + 2 * S)
    venue = ScriptedVenue({SPOT.symbol: 6, PERP.symbol: 0}, history=[dead])
    with ledger_with(tmp_path, []) as ledger:
        fields = await run(new_engine(tmp_path), venue, ledger)
    assert venue.asked_since == [T0 - FILL_OVERLAP_NS]
    assert (fields["fills_recovered"], fields["mismatches"]) == (1, {})


async def test_without_the_ledger_object_nothing_is_written(tmp_path: Path) -> None:
    venue = ScriptedVenue({SPOT.symbol: 6, PERP.symbol: 0}, history=[fill("F1", Side.BUY, 6, T0 + S)])
    with ledger_with(tmp_path, []) as ledger:
        state = ledger.recover(venue="fake")
        fields = await reconcile(new_engine(tmp_path), venue, state)  # type: ignore[arg-type]
        assert tags(ledger) == {}
    assert venue.asked_since == [] and fields["fill_history"] == "skipped"


async def test_orphans_are_canceled_and_waited_for_before_positions_are_read(tmp_path: Path) -> None:
    orphans = [OpenOrder(SPOT.symbol, f"q-old-{i}", Side.BUY, 9_990, 10) for i in range(3)]
    foreign = OpenOrder("OTHER/USDT", "someone", Side.SELL, 1, 1)
    venue = ScriptedVenue({SPOT.symbol: 0, PERP.symbol: 0}, history=[], orders=[*orphans, foreign])
    with ledger_with(tmp_path, []) as ledger:
        fields = await run(new_engine(tmp_path), venue, ledger)
    assert [c.client_id for c in venue.sent if isinstance(c, CancelOrder)] == ["q-old-0", "q-old-1", "q-old-2"]
    assert (fields["orphans_canceled"], fields["orphans_still_open"]) == (3, [])


async def test_orphans_the_venue_keeps_listing_are_reported_after_the_wait(tmp_path: Path) -> None:
    orphan = OpenOrder(SPOT.symbol, "q-old-1", Side.BUY, 9_990, 10)
    venue = ScriptedVenue({SPOT.symbol: 0, PERP.symbol: 0}, history=[], orders=[orphan], sticky_orders=True)
    with ledger_with(tmp_path, []) as ledger:
        fields = await run(new_engine(tmp_path), venue, ledger, orphan_wait_s=0.05)
    assert fields["orphans_still_open"] == ["q-old-1"]


def test_last_fill_venue_ns_is_the_newest_fill_else_the_last_start(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger:
        assert ledger.last_fill_venue_ns(venue="fake") is None
        ledger.start_run("r1", T0, venue="fake", instruments=[SPOT])
        ledger.start_run("r2", T0 + 50 * S, venue="other", instruments=[SPOT])
        assert ledger.last_fill_venue_ns(venue="fake") == T0
        ledger.record_fill("r1", fill("F1", Side.BUY, 1, T0 + 7 * S))
        ledger.record_fill("r1", fill("F2", Side.BUY, 1, T0 + 3 * S))  # out of order: the max counts
        ledger.record_fill("r2", fill("F3", Side.BUY, 1, T0 + 60 * S))
        assert ledger.last_fill_venue_ns(venue="fake") == T0 + 7 * S
        assert ledger.last_fill_venue_ns() == T0 + 60 * S


async def test_a_run_killed_before_its_first_fill_recovers_a_hedge_fill_made_while_dead(tmp_path: Path) -> None:
    """The hedge (perp) side of the same hole: a run that died with a hedge in flight and no fill in
    the ledger yet; the hedge's fill is asked from the run's start and recorded once."""
    hedge = fill("H1", Side.SELL, 3, T0 + 2 * S, symbol=PERP.symbol)
    venue = ScriptedVenue({SPOT.symbol: 0, PERP.symbol: -3}, history=[hedge])
    with ledger_with(tmp_path, []) as ledger:
        fields = await run(new_engine(tmp_path), venue, ledger)
        again = await run(new_engine(tmp_path), venue, ledger)
        assert tags(ledger) == {"H1": "recovered"}
    assert venue.asked_since[0] == T0 - FILL_OVERLAP_NS
    assert fields["recovered_fill_ids"] == ["TOKEN/USDT:USDT:H1"] and fields["mismatches"] == {}
    assert fields["ledger_positions_lots"] == {SPOT.symbol: 0, PERP.symbol: -3}
    assert (again["fills_recovered"], again["mismatches"]) == (0, {})


async def test_a_new_venue_session_killed_before_its_first_fill_recovers_from_its_own_start(tmp_path: Path) -> None:
    """A ledger from an earlier exchange (session "A", fills F1, F2) and a run on the restarted one
    (session "B", ids from F1 again) that died before its first fill: B's F1, made while the bot was
    dead, is asked from B's run start and recorded, though session A holds an F1 of its own."""
    venue = ScriptedVenue({SPOT.symbol: 2, PERP.symbol: 0}, history=[fill("F1", Side.BUY, 2, T0 + 70 * S)])
    venue.fill_session = "B"  # type: ignore[attr-defined]
    with Ledger(tmp_path / "l.sqlite") as ledger:
        ledger.start_run("a1", T0, venue="fake", instruments=[SPOT, PERP], session="A")
        for f in (fill("F1", Side.BUY, 10, T0 + S), fill("F2", Side.SELL, 10, T0 + 2 * S)):
            ledger.record_fill("a1", f)
        ledger.start_run("b1", T0 + 60 * S, venue="fake", instruments=[SPOT, PERP], session="B")
        state = ledger.recover(venue="fake", session="B")
        assert (state.last_run_id, state.fill_count) == ("b1", 0)
        fields = await reconcile(new_engine(tmp_path), venue, state, ledger)  # type: ignore[arg-type]
        rows = ledger._db.execute("SELECT venue_session, fill_id, tag FROM fills ORDER BY id").fetchall()
        assert ledger.recover(venue="fake", session="B").positions_lots == {SPOT.symbol: 2}
    assert venue.asked_since == [T0 + 60 * S - FILL_OVERLAP_NS]
    assert fields["recovered_fill_ids"] == ["TOKEN/USDT:F1"] and fields["mismatches"] == {}
    assert rows == [("A", "F1", ""), ("A", "F2", ""), ("B", "F1", "recovered")]
