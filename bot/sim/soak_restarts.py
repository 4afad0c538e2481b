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
    ledger, fills it holds that the exchange never made, and positions; {} when they agree."""
    ledger.flush(force=True)
    rows = ledger._read(
        "SELECT symbol, fill_id FROM fills WHERE venue = ? AND venue_session = ?", (VENUE, SESSION)
    )  # our own rows: the ledger's reader, which fails the ledger cleanly on an SQLite error
    held = [(str(s), str(f)) for s, f in rows]
    made = {(f.symbol, f.fill_id) for f in exchange.fills_since(0)}
    problems: dict[str, Any] = {}
    missing = sorted(made - set(held))
    extra = sorted(set(held) - made)
    if missing:
        problems["missing_fills"] = [f"{s}:{f}" for s, f in missing[:10]]
        problems["missing_count"] = len(missing)
    if extra:
        problems["extra_fills"] = [f"{s}:{f}" for s, f in extra[:10]]
    if len(held) != len(set(held)):
        problems["fills_twice"] = len(held) - len(set(held))
    ours = ledger.recover(VENUE, SESSION).positions_lots
    theirs = exchange.positions()
    wrong = {
        s: {"ledger_lots": ours.get(s, 0), "exchange_lots": lots}
        for s, lots in theirs.items()
        if ours.get(s, 0) != lots
    }
    if wrong:
        problems["positions"] = wrong
    return problems
