"""Bot restarts inside the soak: the exchanges keep running, the bot stops and comes back.

A soak with restarts is several runs of the bot on one SQLite ledger against mock exchanges that
never stop (one, or every venue of a multi-venue config). Each run but the last ends either cleanly
(the engine cancels everything, the run is ended in the ledger) or as a crash (nothing more happens:
its orders stay resting at the exchanges, its run is never ended; the ledger keeps what it had
committed, as after `kill -9`). Then the exchanges run on alone for an idle gap (the market moves,
orphan quotes may fill, nothing reaches a bot), and a new engine starts through the same restart
reconciliation `mmbot run` uses (`bot.runtime.recovery.reconcile`: cancel the orphans on every venue,
adopt each venue's positions, read each venue's fill history and record the missed fills). Right
after it the soak checks, venue by venue, that the ledger holds exactly that exchange's fills of this
session (none lost, none twice) and that the ledger's position on each market (venue, symbol) equals
that exchange's (`restart_reconcile`).

`SoakVenue` is the async `Venue` face that reconciliation needs, over the synchronous exchanges: each
poll of the open orders lets 100 ms of market time pass (the cancels take their latency), and what
the exchanges deliver meanwhile is dropped, since no bot is listening yet.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.engine import Engine
from bot.domain import Command, Instrument, OpenOrder, OrderFilled, RequestSnapshot, market_key
from bot.runtime.ledger import Ledger
from bot.runtime.recovery import reconcile
from bot.sim.soak_exchanges import SoakExchanges
from bot.venues.base import EventSink

NS_PER_S = 1_000_000_000
POLL_NS = NS_PER_S // 10  # market time per open-orders poll during reconciliation
IDLE_GAP_S = (30.0, 600.0)  # an idle gap's length, uniform, simulated seconds
SESSION = "soak"
VENUE = "mock"


class SoakVenue:
    """The soak's exchanges as the async venue restart reconciliation talks to (see the module doc)."""

    name = VENUE
    fill_session = SESSION

    def __init__(self, exchanges: SoakExchanges) -> None:
        self.exchanges = exchanges
        self.dropped_events = 0

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return self.exchanges.instruments

    def advance(self, until_ns: int) -> None:
        """Let the market run to `until_ns` with no bot connected: its deliveries are lost."""
        self.dropped_events += len(self.exchanges.advance(until_ns))

    async def open_orders(self) -> list[OpenOrder]:
        self.advance(self.exchanges.now_ns + POLL_NS)
        return self.exchanges.open_orders()

    async def execute(self, command: Command) -> None:
        self.exchanges.submit(command, self.exchanges.now_ns)

    async def positions(self) -> dict[str, int]:
        return self.exchanges.positions()

    async def fills_since(self, since_ns: int) -> list[OrderFilled]:
        return self.exchanges.fills_since(since_ns)

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
    """Reconcile a fresh engine with the exchanges and the ledger, as `mmbot run` does at start, and
    ask for the book snapshots a (re)subscribing client gets. Returns `recovery.completed`'s fields."""
    state = ledger.recover(VENUE, SESSION)
    fields = asyncio.run(reconcile(engine, venue, state, ledger))
    exchanges = venue.exchanges
    now = exchanges.now_ns
    for name, exchange in exchanges.exchanges.items():
        for symbol in exchange.instruments:
            exchange.submit(RequestSnapshot(symbol, "subscribe", venue=name), now)
    return fields


def ledger_matches_exchange(ledger: Ledger, exchanges: SoakExchanges) -> dict[str, Any]:
    """Differences between the ledger (this session) and the exchanges, venue by venue: fills
    missing from the ledger, fills it holds that the exchange never made, fills held twice, and
    positions per market; {} when they agree.

    Each exchange numbers its fills F1..Fn (`_fill_n` of them so far; `main:F1`.. on a multi-venue
    soak) and keeps only the newest in its history, so the ids are checked by number in SQL (n
    distinct ids, every one within 1..n: exactly the exchange's) and the markets on the fills the
    history still holds; no set of a day's fills is built in Python, whose memory the soak's memory
    check would count."""
    ledger.flush(force=True)
    problems: dict[str, Any] = {}
    for venue, exchange in exchanges.exchanges.items():
        prefix = exchanges.fill_id_prefix(venue)
        made = exchange._fill_n
        number = f"CAST(substr(fill_id, {len(prefix) + 1}) AS INTEGER)"
        where = "FROM fills WHERE venue = ? AND venue_session = ? AND substr(fill_id, 1, ?) = ?"
        args = (VENUE, SESSION, len(prefix), prefix)
        # our own rows, through the ledger's reader (an SQLite error fails the ledger cleanly)
        ((held, distinct, lowest, highest),) = ledger._read(
            f"SELECT COUNT(*), COUNT(DISTINCT fill_id), MIN({number}), MAX({number}) {where}", args
        )
        found: dict[str, Any] = {}
        if distinct != made or (made and (lowest != 1 or highest != made)):
            found["fills"] = {"exchange_made": made, "ledger_distinct": distinct, "ledger_ids": [lowest, highest]}
        if held != distinct:
            found["fills_twice"] = held - distinct
        recent = exchange.fills_since(0)
        if recent:
            first = int(recent[0].fill_id[1:])
            rows = ledger._read(f"SELECT symbol, fill_id {where} AND {number} >= ?", (*args, first))
            theirs = {(market_key(venue, f.symbol), prefix[:-1] + f.fill_id) for f in recent}
            wrong = theirs ^ {(str(sym), str(fid)) for sym, fid in rows}
            if wrong:
                found["symbol_or_id_differs"] = sorted(f"{sym}:{fid}" for sym, fid in wrong)[:10]
        for kind, value in found.items():  # per venue on a multi-venue soak
            if exchanges.multi:
                problems.setdefault(kind, {})[venue] = value
            else:
                problems[kind] = value
    ours = ledger.recover(VENUE, SESSION).positions_lots
    wrong_positions = {
        key: {"ledger_lots": ours.get(key, 0), "exchange_lots": lots}
        for key, lots in exchanges.positions().items()
        if ours.get(key, 0) != lots
    }
    if wrong_positions:
        problems["positions"] = wrong_positions
    return problems
