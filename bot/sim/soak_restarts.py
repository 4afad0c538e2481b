"""Bot restarts inside the soak: the exchange keeps running, the bot stops and comes back.

A soak with restarts is several runs of the bot on one SQLite ledger against one mock exchange that
never stops. Each run but the last ends either cleanly (the engine cancels everything, the run is
ended in the ledger) or as a crash (nothing more happens: its orders stay resting at the exchange,
its run is never ended; the ledger keeps what it had committed, as after `kill -9`). Then the
exchange runs on alone for an idle gap (the market moves, orphan quotes may fill, nothing reaches a
bot), and a new engine starts through the same restart reconciliation `mmbot run` uses
(`bot.runtime.recovery.reconcile`: cancel the orphans, adopt the venue's positions, read the fill
history and record the missed fills). Right after it the soak checks that the ledger holds exactly
the exchange's fills of this session (none lost, none twice) and that the ledger's positions equal
the exchange's (`restart_reconcile`).

`SoakVenue` is the async `Venue` face that reconciliation needs, over the synchronous exchange: each
poll of the open orders lets 100 ms of market time pass (the cancels take their latency), and what
the exchange delivers meanwhile is dropped, since no bot is listening yet.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.engine import Engine
from bot.domain import Command, Instrument, OpenOrder, OrderFilled, RequestSnapshot
from bot.runtime.ledger import Ledger
from bot.runtime.recovery import reconcile
from bot.sim.soak_setup import RecordingMockExchange
from bot.venues.base import EventSink

NS_PER_S = 1_000_000_000
POLL_NS = NS_PER_S // 10  # market time per open-orders poll during reconciliation
IDLE_GAP_S = (30.0, 600.0)  # an idle gap's length, uniform, simulated seconds
SESSION = "soak"
VENUE = "mock"


class SoakVenue:
    """The soak's exchange as the async venue restart reconciliation talks to (see the module doc)."""

    name = VENUE
    fill_session = SESSION

    def __init__(self, exchange: RecordingMockExchange) -> None:
        self.exchange = exchange
        self.dropped_events = 0

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return self.exchange.instruments

    def advance(self, until_ns: int) -> None:
        """Let the market run to `until_ns` with no bot connected: its deliveries are lost."""
        self.dropped_events += len(self.exchange.advance(until_ns))

    async def open_orders(self) -> list[OpenOrder]:
        self.advance(self.exchange.now_ns + POLL_NS)
        return self.exchange.open_orders()

    async def execute(self, command: Command) -> None:
        self.exchange.submit(command, self.exchange.now_ns)

    async def positions(self) -> dict[str, int]:
        return self.exchange.positions()

    async def fills_since(self, since_ns: int) -> list[OrderFilled]:
        return self.exchange.fills_since(since_ns)

    async def connect(self) -> None:
        return None

    async def stream(self, sink: EventSink) -> None:
        raise NotImplementedError("the soak's driver delivers the exchange's events itself")

    async def close(self) -> None:
        return None


@dataclass
class RestartLog:
    """What the restarts did, for the report."""

    clean: int = 0
    crash: int = 0
    idle_s: float = 0.0
    fills_recovered: int = 0
    orphans_canceled: int = 0
    runs: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {
            "restarts": self.clean + self.crash,
            "clean_stops": self.clean,
            "crashes": self.crash,
            "idle_gap_s": round(self.idle_s, 1),
            "fills_recovered": self.fills_recovered,
            "orphans_canceled": self.orphans_canceled,
            "runs": len(self.runs),
        }


def idle_gap_ns(rng: random.Random) -> int:
    return int(rng.uniform(*IDLE_GAP_S) * NS_PER_S)


def restart(engine: Engine, venue: SoakVenue, ledger: Ledger) -> dict[str, Any]:
    """Reconcile a fresh engine with the exchange and the ledger, as `mmbot run` does at start, and
    ask for the book snapshots a (re)subscribing client gets. Returns `recovery.completed`'s fields."""
    state = ledger.recover(VENUE, SESSION)
    fields = asyncio.run(reconcile(engine, venue, state, ledger))
    now = venue.exchange.now_ns
    for symbol in venue.instruments:
        venue.exchange.submit(RequestSnapshot(symbol, "subscribe"), now)
    return fields


def ledger_matches_exchange(ledger: Ledger, exchange: RecordingMockExchange) -> dict[str, Any]:
    """Differences between the ledger (this session) and the exchange: fills missing from the
    ledger, fills it holds that the exchange never made, fills held twice, and positions; {} when
    they agree.

    The exchange numbers its fills F1..Fn (`_fill_n` of them so far) and keeps only the newest in its
    history, so the ids are checked by number in SQL (n distinct ids, every one within 1..n: exactly
    the exchange's) and the symbols on the fills the history still holds; no set of a day's fills is
    built in Python, whose memory the soak's memory check would count."""
    ledger.flush(force=True)
    made = exchange._fill_n
    where = "FROM fills WHERE venue = ? AND venue_session = ?"
    args = (VENUE, SESSION)
    # our own rows, through the ledger's reader (an SQLite error fails the ledger cleanly)
    ((held, distinct, lowest, highest),) = ledger._read(
        f"SELECT COUNT(*), COUNT(DISTINCT fill_id), MIN(CAST(substr(fill_id, 2) AS INTEGER)),"
        f" MAX(CAST(substr(fill_id, 2) AS INTEGER)) {where}",
        args,
    )
    problems: dict[str, Any] = {}
    if distinct != made or (made and (lowest != 1 or highest != made)):
        problems["fills"] = {"exchange_made": made, "ledger_distinct": distinct, "ledger_ids": [lowest, highest]}
    if held != distinct:
        problems["fills_twice"] = held - distinct
    recent = exchange.fills_since(0)
    if recent:
        first = int(recent[0].fill_id[1:])
        rows = ledger._read(
            f"SELECT symbol, fill_id {where} AND CAST(substr(fill_id, 2) AS INTEGER) >= ?", (*args, first)
        )
        wrong = {(f.symbol, f.fill_id) for f in recent} ^ {(str(sym), str(fid)) for sym, fid in rows}
        if wrong:
            problems["symbol_or_id_differs"] = sorted(f"{sym}:{fid}" for sym, fid in wrong)[:10]
    ours = ledger.recover(VENUE, SESSION).positions_lots
    theirs = exchange.positions()
    wrong_positions = {
        s: {"ledger_lots": ours.get(s, 0), "exchange_lots": lots}
        for s, lots in theirs.items()
        if ours.get(s, 0) != lots
    }
    if wrong_positions:
        problems["positions"] = wrong_positions
    return problems
