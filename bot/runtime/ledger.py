"""Append-only SQLite ledger: runs, order events, fills, hedges, funding, sampled quotes, PnL snapshots.

One writer (the runner's engine task) owns a `Ledger`; report and status tools open the file
read-only (WAL lets them read while the bot writes). Rows are only ever inserted, never updated,
except `runs.ended_ns`/`summary_json`, written once at a clean shutdown.

Fill identity: a fill is `(venue, venue_session, symbol, fill_id)`. A venue numbers its fills within a
session (the mock exchange starts again at `F1` every time it starts; ccxt trade ids are the
exchange's own and never repeat, so ccxt's session is ""), so one ledger keeps every fill of every run
even when ids repeat across venue sessions, and a restart against the same session finds the fills it
already has (`Venue.fill_session`, `bot.venues.base.fill_session`). Every row names its venue.

Markets: a row's `symbol` is its market, `market_key(venue, symbol)` as the portfolio keys positions:
the bare symbol on a single-venue session, `TOKEN/USDT@main` for one venue of a multi-venue session
(whose run's `venue` is the set's name), so the positions `recover` rebuilds are per (venue, symbol)
and `instruments` lists each market once (`register_instruments` takes them keyed by market).

Opening is checked, never a traceback: one writer per file (a lock file `<ledger>.lock` held with
`flock` for the ledger's life; the OS drops it when the process dies, also on `kill -9`), the file
must be an SQLite database that passes `PRAGMA quick_check`, and an older schema is migrated in one
transaction (a newer one is refused). Each refusal is a `LedgerUnusable` whose message is one line
naming the file and what to do. An SQLite error while the bot runs (disk full, a file corrupted under
us) makes the ledger fail once: with `on_failure` the callback gets that one line and every later
write is dropped (the runner stops the bot cleanly on it); without, `LedgerFailed` is raised.

Durability and cost: the database runs in WAL mode with `synchronous=NORMAL`, so a commit is an
append to the WAL without an fsync (the fsync happens at checkpoints). A process crash loses
nothing that was committed; a power cut may lose the last commits. Fills are committed at once
(a fill must never be lost or counted twice: `UNIQUE(venue, venue_session, symbol, fill_id)` and
`INSERT OR IGNORE`);
everything else is batched and committed when `commit_rows` rows are pending, when
`commit_interval_ms` has passed since the last commit (checked on each write and on `flush()`),
or on `close()`.

Typical use by the runner::

    ledger = Ledger(settings.ledger.path, settings.ledger)
    state = ledger.recover(venue.name, fill_session(venue))  # before the engine starts
    ledger.start_run(run_id, now_ns, venue="mock", instruments=venue.instruments.values(), session=fill_session(venue))
    ledger.record_command(run_id, command, now_ns)  # for every command sent
    ledger.record_event(run_id, event)              # for every venue event (non-order ones ignored)
    ledger.record_quote(run_id, QuoteSample(...))   # after each quote decision (sampled inside)
    ledger.record_pnl(run_id, PnlSnapshot(...))     # on the status timer
    ledger.flush()                                  # on the timer: commits when the interval is due
    ledger.end_run(run_id, now_ns, summary)         # clean shutdown
    ledger.close()
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from bot.config import LedgerConfig
from bot.core.deal import DealEvent
from bot.domain import (
    CancelAll,
    CancelOrder,
    CancelRejected,
    Command,
    Event,
    FundingPaid,
    Instrument,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    VenueReport,
    market_key,
)

SCHEMA_VERSION = 3
SQLITE_HEADER = b"SQLite format 3\x00"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    started_ns   INTEGER NOT NULL,
    ended_ns     INTEGER,               -- NULL: the run did not end cleanly (or is still running)
    venue        TEXT NOT NULL DEFAULT '',
    venue_session TEXT NOT NULL DEFAULT '',  -- the namespace of the venue's fill ids (see above)
    config_json  TEXT,
    summary_json TEXT
);
CREATE TABLE IF NOT EXISTS instruments (
    run_id    TEXT NOT NULL,
    symbol    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    base      TEXT NOT NULL,
    quote     TEXT NOT NULL,
    tick_size REAL NOT NULL,            -- quote per base
    lot_size  REAL NOT NULL,            -- base units
    maker_fee REAL NOT NULL,
    taker_fee REAL NOT NULL,
    venue     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, symbol)
);
CREATE TABLE IF NOT EXISTS order_events (
    id             INTEGER PRIMARY KEY,
    run_id         TEXT NOT NULL,
    ts_ns          INTEGER NOT NULL,    -- commands: when sent; events: local receive time
    ts_venue_ns    INTEGER,             -- events only
    kind           TEXT NOT NULL,       -- place|cancel|cancel_all|accepted|rejected|canceled|cancel_rejected
    symbol         TEXT,                -- NULL for cancel_all on every symbol
    client_id      TEXT,
    side           TEXT,
    price_ticks    INTEGER,
    size_lots      INTEGER,
    order_type     TEXT,
    post_only      INTEGER,
    reduce_only    INTEGER,
    tag            TEXT,
    venue_order_id TEXT,
    reason         TEXT,
    venue          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS order_events_client ON order_events (client_id);
CREATE TABLE IF NOT EXISTS fills (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    ts_venue_ns INTEGER NOT NULL,
    ts_recv_ns  INTEGER NOT NULL,
    symbol      TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    fill_id     TEXT NOT NULL,
    side        TEXT NOT NULL,
    price_ticks INTEGER NOT NULL,
    size_lots   INTEGER NOT NULL,
    price_px    REAL NOT NULL,          -- quote per base (price_ticks * tick_size)
    size_base   REAL NOT NULL,          -- base units (size_lots * lot_size)
    fee_quote   REAL NOT NULL,          -- positive = paid
    liquidity   TEXT NOT NULL,
    leaves_lots INTEGER NOT NULL,
    tag         TEXT NOT NULL,          -- quote|hedge|recovered|'' (from the order's PlaceOrder.tag)
    venue       TEXT NOT NULL DEFAULT '',
    venue_session TEXT NOT NULL DEFAULT '',
    -- what a real venue reported (bot.domain.VenueReport); NULL on the fills the bot simulates (their
    -- size is size_lots, their fee fee_quote in the quote) and on rows of a version 2 ledger
    traded_lots  INTEGER,               -- the size the venue executed, before a fee withheld in the base
    fee_cost     TEXT,                  -- the fee as charged, exact decimal text, + paid; NULL: not reported
    fee_currency TEXT,                  -- its currency (BTC on a Binance spot buy, BNB, USDT...)
    UNIQUE (venue, venue_session, symbol, fill_id)
);
CREATE TABLE IF NOT EXISTS hedges (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    ts_ns       INTEGER NOT NULL,
    symbol      TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    side        TEXT NOT NULL,
    order_type  TEXT NOT NULL,
    price_ticks INTEGER NOT NULL,
    size_lots   INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    venue       TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS funding (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT NOT NULL,
    ts_venue_ns  INTEGER NOT NULL,
    symbol       TEXT NOT NULL,
    rate         REAL NOT NULL,
    amount_quote REAL NOT NULL,         -- > 0: received
    venue        TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS quotes (
    id             INTEGER PRIMARY KEY,
    run_id         TEXT NOT NULL,
    ts_ns          INTEGER NOT NULL,
    symbol         TEXT NOT NULL,
    mid_px         REAL NOT NULL,
    bid_px         REAL,                -- NULL: side not quoted
    ask_px         REAL,
    reservation_px REAL,
    spread_bps     REAL,                -- (ask - bid) / mid * 1e4; NULL unless both sides quoted
    inventory_base REAL NOT NULL,
    net_delta_base REAL NOT NULL,
    risk_state     TEXT NOT NULL,
    venue          TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS pnl (
    id              INTEGER PRIMARY KEY,
    run_id          TEXT NOT NULL,
    ts_ns           INTEGER NOT NULL,
    total_quote     REAL NOT NULL,      -- sum of the components
    components_json TEXT NOT NULL       -- {"spread": .., "inventory": .., "fees": -.., ...}
);
CREATE TABLE IF NOT EXISTS deal_events (     -- the token-loan deal's life (bot/core/deal.py DealEvent)
    id            INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL,
    ts_ns         INTEGER NOT NULL,
    kind          TEXT NOT NULL,        -- started|sold|exercised|lapsed|loan_returned|lp_deposited
    quantity_base REAL NOT NULL,
    price_px      REAL NOT NULL,
    strike_px     REAL,                 -- exercised/lapsed: the tranche
    amount_quote  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deal_pool (       -- the simulated DEX pool's latest state (bot/core/lp.py PoolState)
    id          INTEGER PRIMARY KEY CHECK (id = 1),   -- one row: the state now, not a history
    run_id      TEXT NOT NULL,
    ts_ns       INTEGER NOT NULL,
    state_json  TEXT NOT NULL           -- reserves, our share, fees, swap counts, recent trade ids
);
"""


class LedgerError(Exception):
    """Misuse of the ledger (e.g. a fill on a symbol whose instrument was never registered)."""


class LedgerUnusable(LedgerError):
    """The ledger cannot be opened: another writer holds it, it is not a (sound) SQLite ledger, or its
    schema is newer than this code. The message is one line naming the file and what to do."""


class LedgerFailed(LedgerError):
    """An SQLite error while writing (disk full, a file corrupted under us): one line, as above."""


# Schema migrations: MIGRATIONS[v] takes a ledger at user_version v to v + 1; every step from the
# file's version to SCHEMA_VERSION runs in one transaction. Each step is frozen as it was written: it
# builds the tables of its own version, not today's SCHEMA.
_FILLS_V2 = """
CREATE TABLE IF NOT EXISTS fills (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    ts_venue_ns INTEGER NOT NULL,
    ts_recv_ns  INTEGER NOT NULL,
    symbol      TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    fill_id     TEXT NOT NULL,
    side        TEXT NOT NULL,
    price_ticks INTEGER NOT NULL,
    size_lots   INTEGER NOT NULL,
    price_px    REAL NOT NULL,
    size_base   REAL NOT NULL,
    fee_quote   REAL NOT NULL,
    liquidity   TEXT NOT NULL,
    leaves_lots INTEGER NOT NULL,
    tag         TEXT NOT NULL,
    venue       TEXT NOT NULL DEFAULT '',
    venue_session TEXT NOT NULL DEFAULT '',
    UNIQUE (venue, venue_session, symbol, fill_id)
);
"""
_V1_TO_V2 = f"""
ALTER TABLE runs ADD COLUMN venue_session TEXT NOT NULL DEFAULT '';
ALTER TABLE instruments ADD COLUMN venue TEXT NOT NULL DEFAULT '';
ALTER TABLE order_events ADD COLUMN venue TEXT NOT NULL DEFAULT '';
ALTER TABLE hedges ADD COLUMN venue TEXT NOT NULL DEFAULT '';
ALTER TABLE funding ADD COLUMN venue TEXT NOT NULL DEFAULT '';
ALTER TABLE quotes ADD COLUMN venue TEXT NOT NULL DEFAULT '';
UPDATE instruments SET venue = COALESCE((SELECT venue FROM runs r WHERE r.run_id = instruments.run_id), '');
UPDATE order_events SET venue = COALESCE((SELECT venue FROM runs r WHERE r.run_id = order_events.run_id), '');
UPDATE hedges SET venue = COALESCE((SELECT venue FROM runs r WHERE r.run_id = hedges.run_id), '');
UPDATE funding SET venue = COALESCE((SELECT venue FROM runs r WHERE r.run_id = funding.run_id), '');
UPDATE quotes SET venue = COALESCE((SELECT venue FROM runs r WHERE r.run_id = quotes.run_id), '');
ALTER TABLE fills RENAME TO fills_v1;
{_FILLS_V2}
-- version 1 had one fill-id namespace for the whole file: its rows keep it (session '')
INSERT INTO fills (id, run_id, ts_venue_ns, ts_recv_ns, symbol, client_id, fill_id, side, price_ticks, size_lots,
                   price_px, size_base, fee_quote, liquidity, leaves_lots, tag, venue, venue_session)
SELECT f.id, f.run_id, f.ts_venue_ns, f.ts_recv_ns, f.symbol, f.client_id, f.fill_id, f.side, f.price_ticks,
       f.size_lots, f.price_px, f.size_base, f.fee_quote, f.liquidity, f.leaves_lots, f.tag,
       COALESCE((SELECT venue FROM runs r WHERE r.run_id = f.run_id), ''), ''
FROM fills_v1 f ORDER BY f.id;
DROP TABLE fills_v1;
"""
# version 3: fills keep the venue's own size and fee (fee per currency); older rows stay NULL there
_V2_TO_V3 = """
ALTER TABLE fills ADD COLUMN traded_lots INTEGER;
ALTER TABLE fills ADD COLUMN fee_cost TEXT;
ALTER TABLE fills ADD COLUMN fee_currency TEXT;
"""
MIGRATIONS = {1: _V1_TO_V2, 2: _V2_TO_V3}


@dataclass(frozen=True, slots=True)
class QuoteSample:
    """What the bot quoted at `ts_ns` on `symbol`, in price units (quote per base) and base units."""

    symbol: str
    ts_ns: int
    mid_px: float
    bid_px: float | None  # None: that side is not quoted
    ask_px: float | None
    reservation_px: float | None
    inventory_base: float
    net_delta_base: float
    risk_state: str

    @property
    def spread_bps(self) -> float | None:
        """Quoted spread in bps of mid; None unless both sides are quoted."""
        if self.bid_px is None or self.ask_px is None or self.mid_px <= 0:
            return None
        return (self.ask_px - self.bid_px) / self.mid_px * 1e4


@dataclass(frozen=True, slots=True)
class PnlSnapshot:
    """PnL attribution at `ts_ns`, quote currency. Components add up to the total; costs are negative
    (e.g. {"spread": 12.5, "inventory": -3.0, "hedge": 0.4, "fees": -1.2, "funding": 0.1})."""

    ts_ns: int
    components_quote: Mapping[str, float]

    @property
    def total_quote(self) -> float:
        return float(sum(self.components_quote.values()))


@dataclass(frozen=True, slots=True)
class RecoveredState:
    """What a restart needs from the ledger (crash-only start: this, then reconcile with the venue)."""

    last_run_id: str | None
    last_run_ended_cleanly: bool  # False if the last run crashed (or there was none)
    positions_lots: dict[str, int]  # per symbol, rebuilt from every fill
    avg_entry_px: dict[str, float]  # average cost of the open position per symbol (0 when flat)
    realised_pnl_quote: dict[str, float]  # per symbol, average-cost method, before fees
    fees_quote: float  # sum of fill fees, positive = paid
    funding_quote: float  # sum of funding, positive = received
    open_client_ids: frozenset[str]  # placed and not yet rejected, canceled or fully filled
    fill_count: int = 0
    tags_by_client_id: dict[str, str] = field(default_factory=dict)  # of the open orders
    # Per currency, exact (see `recover_state`): a position is the signed sum of the sizes the venue
    # executed less the fees it withheld in the base coin, rounded to lots once (`positions_lots`),
    # never per fill; fees stay in the currency they were charged in, a BNB fee is not converted.
    positions_base: dict[str, Decimal] = field(default_factory=dict)  # per symbol, base units
    fees_paid: dict[str, Decimal] = field(default_factory=dict)  # per currency, positive = paid
    spot_balances: dict[str, Decimal] = field(default_factory=dict)  # per currency, what spot fills moved
    # No set of every fill id or client id the ledger ever saw: this is built at each restart, on a
    # ledger that grows with every run (a day of the soak: 125k fills, 1.3M order events, which as
    # Python sets peaked at +145 MB and left the process's RSS higher after every restart). Fill
    # identity is asked of the ledger for the fills a restart fetched (`Ledger.known_fills`).

    @property
    def realised_total_quote(self) -> float:
        """Realised trading PnL net of fees, plus funding."""
        return sum(self.realised_pnl_quote.values()) - self.fees_quote + self.funding_quote


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


class Ledger:
    """The single writer of one SQLite ledger file. Not thread-safe: call it from one task."""

    def __init__(
        self,
        path: str | Path,
        config: LedgerConfig | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        cfg = config or LedgerConfig()
        self.path = Path(path)
        self._quote_sample_ns = cfg.quote_sample_ms * 1_000_000
        self._commit_interval_ns = cfg.commit_interval_ms * 1_000_000
        self._commit_rows = cfg.commit_rows
        self._clock_ns = clock_ns
        self._on_failure = on_failure
        self.failure: str | None = None
        """The one line of the SQLite error that made the ledger fail (then every write is dropped)."""
        self._lock_fd = _lock(self.path)
        try:
            self._conn: sqlite3.Connection | None = _open_checked(self.path)
        except BaseException:
            _unlock(self._lock_fd)
            raise
        self._pending = 0
        self._last_commit_ns = clock_ns()
        self._instruments: dict[str, Instrument] = {}
        self._tags: dict[str, str] = {}  # client_id -> PlaceOrder.tag, so fills carry their tag
        self._last_quote: dict[str, tuple[int, str]] = {}  # symbol -> (ts_ns, risk_state) of last sample
        self._runs: dict[str, tuple[str, str]] = {}  # run_id -> (venue, venue_session)

    # ---- runs -------------------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        now_ns: int,
        venue: str = "",
        instruments: Iterable[Instrument] | Mapping[str, Instrument] = (),
        config: Mapping[str, Any] | None = None,
        session: str = "",
    ) -> None:
        """Open a run on `venue` (its name) whose fill ids are unique within `session` (the venue's
        `fill_session`). `config`: the effective settings (masked) for the record. `instruments`: as
        `register_instruments` takes them (keyed by market on a multi-venue session)."""
        self._runs[run_id] = (venue, session)
        self._write(
            "INSERT INTO runs (run_id, started_ns, venue, venue_session, config_json) VALUES (?, ?, ?, ?, ?)",
            (run_id, now_ns, venue, session, _json(config)),
        )
        self.register_instruments(run_id, instruments)
        self._commit()

    def register_instruments(self, run_id: str, instruments: Iterable[Instrument] | Mapping[str, Instrument]) -> None:
        """Instruments give fills their price and size in quote/base units. Call before the first fill.
        A mapping is keyed by market (`market_key(venue, symbol)`: a multi-venue session lists the same
        symbol on several venues, each its own market); a plain iterable is keyed by bare symbol."""
        keyed = instruments.items() if isinstance(instruments, Mapping) else ((i.symbol, i) for i in instruments)
        for key, ins in keyed:
            self._instruments[key] = ins
            self._write(
                "INSERT OR REPLACE INTO instruments (run_id, symbol, kind, base, quote, tick_size, lot_size,"
                " maker_fee, taker_fee, venue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    key,
                    ins.kind.value,
                    ins.base,
                    ins.quote,
                    ins.tick_size,
                    ins.lot_size,
                    ins.maker_fee,
                    ins.taker_fee,
                    self._venue_of(run_id)[0],
                ),
            )

    def _venue_of(self, run_id: str) -> tuple[str, str]:
        """(venue, venue_session) of a run: this process's, or one an earlier process recorded (a
        restart writes the fills it recovers under the last run's id)."""
        known = self._runs.get(run_id)
        if known is None:
            rows = self._read("SELECT venue, venue_session FROM runs WHERE run_id = ?", (run_id,))
            known = (str(rows[0][0]), str(rows[0][1])) if rows else ("", "")
            self._runs[run_id] = known
        return known

    def end_run(self, run_id: str, now_ns: int, summary: Mapping[str, Any] | None = None) -> None:
        """Mark a run as ended cleanly (with the session summary) and commit."""
        self._write("UPDATE runs SET ended_ns = ?, summary_json = ? WHERE run_id = ?", (now_ns, _json(summary), run_id))
        self._commit()

    # ---- orders -----------------------------------------------------------------------------------

    def record_command(self, run_id: str, command: Command, now_ns: int, reason: str = "") -> None:
        """A command as sent. A PlaceOrder tagged "hedge" is also written to `hedges` (with `reason`)."""
        if isinstance(command, PlaceOrder):
            self._tags[command.client_id] = command.tag
            self._write(
                "INSERT INTO order_events (run_id, ts_ns, kind, symbol, client_id, side, price_ticks, size_lots,"
                " order_type, post_only, reduce_only, tag, reason, venue)"
                " VALUES (?, ?, 'place', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    now_ns,
                    market_key(command.venue, command.symbol),
                    command.client_id,
                    command.side.value,
                    command.price_ticks,
                    command.size_lots,
                    command.order_type.value,
                    int(command.post_only),
                    int(command.reduce_only),
                    command.tag,
                    reason,
                    self._venue_of(run_id)[0],
                ),
            )
            if command.tag == "hedge":
                self._write(
                    "INSERT INTO hedges (run_id, ts_ns, symbol, client_id, side, order_type, price_ticks, size_lots,"
                    " reason, venue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        now_ns,
                        market_key(command.venue, command.symbol),
                        command.client_id,
                        command.side.value,
                        command.order_type.value,
                        command.price_ticks,
                        command.size_lots,
                        reason,
                        self._venue_of(run_id)[0],
                    ),
                )
        elif isinstance(command, CancelOrder):
            self._write(
                "INSERT INTO order_events (run_id, ts_ns, kind, symbol, client_id, reason, venue)"
                " VALUES (?, ?, 'cancel', ?, ?, ?, ?)",
                (
                    run_id,
                    now_ns,
                    market_key(command.venue, command.symbol),
                    command.client_id,
                    reason,
                    self._venue_of(run_id)[0],
                ),
            )
        elif isinstance(command, CancelAll):
            self._write(
                "INSERT INTO order_events (run_id, ts_ns, kind, symbol, reason, venue)"
                " VALUES (?, ?, 'cancel_all', ?, ?, ?)",
                (run_id, now_ns, command.symbol, reason, self._venue_of(run_id)[0]),
            )
        # RequestSnapshot is not an order command: nothing to record
        self._maybe_commit()

    def record_event(self, run_id: str, event: Event) -> bool:
        """Record an order ack/reject/cancel, a fill or a funding payment; other events are ignored.

        Returns True if a row was written (False for an ignored event or a duplicate fill).
        """
        if isinstance(event, OrderFilled):
            written = self.record_fill(run_id, event)
            if event.leaves_lots == 0:
                self._tags.pop(event.client_id, None)  # keep the tag map as small as the live orders
            return written
        if isinstance(event, FundingPaid):
            self._write(
                "INSERT INTO funding (run_id, ts_venue_ns, symbol, rate, amount_quote, venue)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    event.ts_venue_ns,
                    market_key(event.venue, event.symbol),
                    event.rate,
                    event.amount_quote,
                    self._venue_of(run_id)[0],
                ),
            )
        elif isinstance(event, OrderAccepted):
            self._order_event(run_id, event, "accepted", venue_order_id=event.venue_order_id)
        elif isinstance(event, OrderRejected):
            self._order_event(run_id, event, "rejected", reason=event.reason)
            self._tags.pop(event.client_id, None)
        elif isinstance(event, OrderCanceled):
            self._order_event(run_id, event, "canceled", reason=event.reason)
            self._tags.pop(event.client_id, None)  # a fill racing the cancel finds its tag in the table
        elif isinstance(event, CancelRejected):
            self._order_event(run_id, event, "cancel_rejected", reason=event.reason)
        else:
            return False
        self._maybe_commit()
        return True

    def _order_event(
        self,
        run_id: str,
        event: OrderAccepted | OrderRejected | OrderCanceled | CancelRejected,
        kind: str,
        venue_order_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        self._write(
            "INSERT INTO order_events (run_id, ts_ns, ts_venue_ns, kind, symbol, client_id, venue_order_id, reason,"
            " venue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                event.ts_recv_ns,
                event.ts_venue_ns,
                kind,
                market_key(event.venue, event.symbol),
                event.client_id,
                venue_order_id,
                reason,
                self._venue_of(run_id)[0],
            ),
        )

    def record_fill(self, run_id: str, fill: OrderFilled, tag: str | None = None) -> bool:
        """Record and commit a fill at once, in the run's venue session. Returns False (and writes
        nothing) for a duplicate `(venue, venue_session, symbol, fill_id)`, or once the ledger failed.
        `tag` defaults to the tag of the PlaceOrder with the same client id.

        The row's symbol is the fill's market (`market_key(fill.venue, fill.symbol)`: the bare symbol
        on a single-venue session, `TOKEN/USDT@main` on a multi-venue one), so the positions a restart
        rebuilds are per (venue, symbol), as the engine's portfolio keys them."""
        key = market_key(fill.venue, fill.symbol)
        ins = self._instruments.get(key)
        if ins is None:
            raise LedgerError(f"fill on {key!r}: instrument not registered (start_run(instruments=...))")
        if tag is None:
            tag = self._tag_of(fill.client_id)
        cur = self._write(
            "INSERT OR IGNORE INTO fills (run_id, ts_venue_ns, ts_recv_ns, symbol, client_id, fill_id, side,"
            " price_ticks, size_lots, price_px, size_base, fee_quote, liquidity, leaves_lots, tag, venue,"
            " venue_session, traded_lots, fee_cost, fee_currency)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                fill.ts_venue_ns,
                fill.ts_recv_ns,
                key,
                fill.client_id,
                fill.fill_id,
                fill.side.value,
                fill.price_ticks,
                fill.size_lots,
                ins.price(fill.price_ticks),
                ins.size(fill.size_lots),
                fill.fee_quote,
                fill.liquidity.value,
                fill.leaves_lots,
                tag,
                *self._venue_of(run_id),
                *_reported(fill.report),
            ),
        )
        self._commit()  # a fill is the one record we never batch
        return cur is not None and cur.rowcount == 1 and self.failure is None

    def _tag_of(self, client_id: str) -> str:
        tag = self._tags.get(client_id)
        if tag is None:  # an order placed by an earlier run of this ledger
            rows = self._read(
                "SELECT tag FROM order_events WHERE client_id = ? AND kind = 'place' ORDER BY id DESC LIMIT 1",
                (client_id,),
            )
            tag = rows[0][0] if rows and rows[0][0] is not None else ""
            self._tags[client_id] = tag
        return tag

    # ---- samples ----------------------------------------------------------------------------------

    def record_quote(self, run_id: str, sample: QuoteSample) -> bool:
        """Keep at most one sample per symbol per `quote_sample_ms` (plus every risk-state change).

        Returns True if the sample was written."""
        last = self._last_quote.get(sample.symbol)
        if last is not None and sample.ts_ns - last[0] < self._quote_sample_ns and sample.risk_state == last[1]:
            return False
        self._last_quote[sample.symbol] = (sample.ts_ns, sample.risk_state)
        self._write(
            "INSERT INTO quotes (run_id, ts_ns, symbol, mid_px, bid_px, ask_px, reservation_px, spread_bps,"
            " inventory_base, net_delta_base, risk_state, venue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                sample.ts_ns,
                sample.symbol,
                sample.mid_px,
                sample.bid_px,
                sample.ask_px,
                sample.reservation_px,
                sample.spread_bps,
                sample.inventory_base,
                sample.net_delta_base,
                sample.risk_state,
                self._venue_of(run_id)[0],
            ),
        )
        self._maybe_commit()
        return True

    def record_pnl(self, run_id: str, snapshot: PnlSnapshot) -> None:
        self._write(
            "INSERT INTO pnl (run_id, ts_ns, total_quote, components_json) VALUES (?, ?, ?, ?)",
            (run_id, snapshot.ts_ns, snapshot.total_quote, _json(dict(snapshot.components_quote))),
        )
        self._maybe_commit()

    # ---- the deal ---------------------------------------------------------------------------------

    def record_deal_event(self, run_id: str, event: DealEvent) -> None:
        """Record and commit a deal event at once: a restart must never sell, exercise or return twice."""
        self._write(
            "INSERT INTO deal_events (run_id, ts_ns, kind, quantity_base, price_px, strike_px, amount_quote)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, event.ts_ns, event.kind, event.quantity_base, event.price_px, event.strike_px, event.amount_quote),
        )
        self._commit()

    def record_pool_state(self, run_id: str, ts_ns: int, state: Mapping[str, Any]) -> None:
        """The pool's state now, replacing the last one, in the open batch: it commits with the fills
        of the same batch, so a crash loses both or neither (the pool never runs ahead of the book)."""
        self._write(
            "INSERT INTO deal_pool (id, run_id, ts_ns, state_json) VALUES (1, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET run_id = excluded.run_id, ts_ns = excluded.ts_ns,"
            " state_json = excluded.state_json",
            (run_id, ts_ns, _json(dict(state))),
        )
        self._maybe_commit()

    def pool_state(self) -> dict[str, Any] | None:
        """The pool's last recorded state (None: never recorded)."""
        self.flush(force=True)
        rows = self._read("SELECT state_json FROM deal_pool WHERE id = 1")
        return dict(json.loads(rows[0][0])) if rows else None  # repr floats: the reserves exactly

    def tagged_position_lots(self, tag: str, venue: str, session: str) -> dict[str, int]:
        """Σ signed lots of the fills tagged `tag` (e.g. "sale") per symbol, in the runs on `venue`'s
        `session`: the part of that venue's position those orders made."""
        self.flush(force=True)
        runs, args = _runs_on(venue, session)
        rows = self._read(
            "SELECT symbol, SUM(CASE side WHEN 'buy' THEN size_lots ELSE -size_lots END) FROM fills"
            f" WHERE tag = ? AND run_id IN ({runs}) GROUP BY symbol",
            (tag, *args),
        )
        return {symbol: int(lots) for symbol, lots in rows if lots}

    def deal_events(self) -> list[DealEvent]:
        """Every deal event, oldest first (all runs: the deal outlives any one venue session)."""
        self.flush(force=True)
        return read_deal_events(self._db)

    # ---- transactions -----------------------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError("ledger is closed")
        return self._conn

    def _write(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor | None:
        """Execute one write inside the open batch; None (nothing written) once the ledger failed."""
        if self.failure is not None:
            return None
        db = self._db
        try:
            if not db.in_transaction:
                db.execute("BEGIN")
            self._pending += 1
            return db.execute(sql, params)
        except sqlite3.Error as exc:
            self._fail(exc)
            return None

    def _commit(self) -> None:
        db = self._db
        if self.failure is None and db.in_transaction:
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._fail(exc)
        self._pending = 0
        self._last_commit_ns = self._clock_ns()

    def _fail(self, exc: sqlite3.Error) -> None:
        """The file went bad under us: say so once, in one line, and write nothing more."""
        self.failure = _failure_line(self.path, exc)
        with contextlib.suppress(sqlite3.Error):
            self._db.rollback()
        if self._on_failure is None:
            raise LedgerFailed(self.failure) from None
        self._on_failure(self.failure)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """A query of our own rows; an SQLite error fails the ledger (LedgerFailed, or `on_failure`
        and an empty answer)."""
        if self.failure is not None:
            return []
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            self._fail(exc)
            return []

    def _maybe_commit(self) -> None:
        if self._pending >= self._commit_rows or self._clock_ns() - self._last_commit_ns >= self._commit_interval_ns:
            self._commit()

    def flush(self, force: bool = False) -> None:
        """Commit pending rows if the commit interval is due (or `force`). Cheap: call it on a timer."""
        if self._pending and (force or self._clock_ns() - self._last_commit_ns >= self._commit_interval_ns):
            self._commit()

    @property
    def pending_rows(self) -> int:
        return self._pending

    def close(self) -> None:
        """Commit everything pending, close and release the lock. Idempotent; after a failure it
        only closes (the failure was already reported)."""
        if self._conn is None:
            return
        with contextlib.suppress(LedgerFailed):
            self._commit()
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        self._conn = None
        _unlock(self._lock_fd)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- recovery ---------------------------------------------------------------------------------

    def recover(self, venue: str | None = None, session: str | None = None) -> RecoveredState:
        """Rebuild positions, realised PnL, fees and open orders from committed rows;
        with `venue`, only from the runs on that venue (one ledger may hold runs on several), with
        `session` too, only from the runs on that venue session (what that exchange still holds)."""
        self.flush(force=True)
        try:
            return recover_state(self._db, venue, session)
        except sqlite3.Error as exc:
            raise LedgerFailed(_failure_line(self.path, exc)) from None

    def known_fills(
        self, keys: Iterable[tuple[str, str]], venue: str | None = None, session: str | None = None
    ) -> set[tuple[str, str]]:
        """Which of `keys` ((symbol, fill_id)) the ledger holds on `venue`'s runs (in `session`): one
        lookup per key on the fills' unique index, so the answer costs what was asked, not the ledger."""
        self.flush(force=True)
        runs, args = _runs_on(venue, session)
        where = f"symbol = ? AND fill_id = ? AND run_id IN ({runs})"
        if venue is not None and session is not None:  # the unique index's own columns: an index lookup
            where += " AND venue = ? AND venue_session = ?"
            args = (*args, venue, session)
        sql = f"SELECT 1 FROM fills WHERE {where} LIMIT 1"
        return {key for key in dict.fromkeys(keys) if self._read(sql, (*key, *args))}

    def last_fill_venue_ns(self, venue: str | None = None, session: str | None = None) -> int | None:
        """`ts_venue_ns` of the newest fill recorded (on `venue`'s runs, in `session`), else the start
        of the last such run (the bot's clock), else None: where a restart asks the venue's fill
        history to resume."""
        self.flush(force=True)
        runs, args = _runs_on(venue, session)
        row = self._read(f"SELECT MAX(ts_venue_ns) FROM fills WHERE run_id IN ({runs})", args)
        if row and row[0][0] is not None:
            return int(row[0][0])
        row = self._read(f"SELECT MAX(started_ns) FROM runs WHERE run_id IN ({runs})", args)
        return int(row[0][0]) if row and row[0][0] is not None else None


def _reported(report: VenueReport | None) -> tuple[int | None, str | None, str | None]:
    """The fills row's traded_lots, fee_cost, fee_currency: the venue's figures, the fee as exact
    decimal text (the float's shortest repr is the venue's decimal, `VenueReport`)."""
    if report is None:
        return None, None, None
    if not report.fee_currency:
        return report.traded_lots, None, None
    return report.traded_lots, str(Decimal(repr(report.fee_cost))), report.fee_currency


def read_deal_events(db: sqlite3.Connection) -> list[DealEvent]:
    """The deal events on any connection (also a read-only one), oldest first."""
    rows = db.execute(
        "SELECT kind, ts_ns, quantity_base, price_px, strike_px, amount_quote FROM deal_events ORDER BY id"
    )
    return [DealEvent(kind, ts, qty, px, strike, amount) for kind, ts, qty, px, strike, amount in rows]


def _runs_on(venue: str | None, session: str | None) -> tuple[str, tuple[str, ...]]:
    """The subquery of the run ids on `venue` (and `session`), None meaning any, and its arguments."""
    where = [(col, v) for col, v in (("venue", venue), ("venue_session", session)) if v is not None]
    sql = "SELECT run_id FROM runs" + (" WHERE " + " AND ".join(f"{col} = ?" for col, _ in where) if where else "")
    return sql, tuple(v for _, v in where)


def recover_state(db: sqlite3.Connection, venue: str | None = None, session: str | None = None) -> RecoveredState:
    """`Ledger.recover` on any connection (also works on a read-only one).

    Memory is O(symbols + open orders), whatever the ledger's size: the fills stream through the
    positions one row at a time, and the open orders are found in SQL (placed, and neither rejected,
    canceled nor fully filled in these runs)."""
    runs, args = _runs_on(venue, session)
    run = db.execute(f"SELECT run_id, ended_ns FROM runs WHERE run_id IN ({runs}) ORDER BY rowid DESC LIMIT 1", args)
    run = run.fetchone()
    positions: dict[str, int] = {}
    avg_px: dict[str, float] = {}
    realised: dict[str, float] = {}
    books: dict[str, _Book] = {}
    fees = 0.0
    count = 0
    rows = db.execute(
        "SELECT symbol, side, size_lots, price_px, size_base, fee_quote, price_ticks, traded_lots, fee_cost,"
        f" fee_currency FROM fills WHERE run_id IN ({runs}) ORDER BY id",
        args,
    )
    for symbol, side, lots, px, size_base, fee, ticks, traded, fee_cost, fee_currency in rows:
        count += 1
        fees += fee
        signed = lots if side == "buy" else -lots
        lot_base = size_base / lots if lots else 0.0
        pos, avg, pnl = _apply_fill(positions.get(symbol, 0), avg_px.get(symbol, 0.0), signed, px, lot_base)
        positions[symbol], avg_px[symbol] = pos, avg
        realised[symbol] = realised.get(symbol, 0.0) + pnl
        book = books.get(symbol)
        if book is None:
            book = books[symbol] = _Book()
        traded = signed if traded is None else (traded if side == "buy" else -traded)
        book.traded_lots += traded
        book.traded_ticks_lots += traded * ticks
        if fee_currency is None:  # the bot's own simulated fee, in the quote currency
            book.quote_fee += fee
        else:
            book.fees[fee_currency] = book.fees.get(fee_currency, _ZERO) + Decimal(fee_cost)
    positions_lots, positions_base, fees_paid, spot_balances = _per_currency(books, _instruments(db, runs, args))
    funding = db.execute(f"SELECT COALESCE(SUM(amount_quote), 0.0) FROM funding WHERE run_id IN ({runs})", args)
    funding = funding.fetchone()[0]
    tags: dict[str, str] = {}
    for client_id, tag in db.execute(
        "SELECT client_id, tag FROM order_events WHERE kind = 'place'"
        f" AND run_id IN ({runs}) AND client_id NOT IN (SELECT client_id FROM order_events"
        f" WHERE kind IN ('rejected', 'canceled') AND client_id IS NOT NULL AND run_id IN ({runs}))"
        f" AND client_id NOT IN (SELECT client_id FROM fills WHERE leaves_lots = 0 AND run_id IN ({runs}))"
        " ORDER BY id",
        args * 3,
    ):
        tags[client_id] = tag or ""
    return RecoveredState(
        last_run_id=run[0] if run else None,
        last_run_ended_cleanly=bool(run and run[1] is not None),
        positions_lots=positions_lots,
        avg_entry_px=avg_px,
        realised_pnl_quote=realised,
        fees_quote=float(fees),
        funding_quote=float(funding),
        open_client_ids=frozenset(tags),
        fill_count=count,
        tags_by_client_id=tags,
        positions_base=positions_base,
        fees_paid=fees_paid,
        spot_balances=spot_balances,
    )


_ZERO = Decimal(0)


@dataclass(slots=True)
class _Book:
    """One symbol's fills, summed exactly while they stream by: integers of lots and ticks, and the
    venue's fees per currency as decimals (the float fee of simulated fills on its own)."""

    traded_lots: int = 0  # signed
    traded_ticks_lots: int = 0  # signed lots x price ticks: the quote moved, in tick-lots
    quote_fee: float = 0.0  # fee_quote of the fills without a venue fee (simulated: quote currency)
    fees: dict[str, Decimal] = field(default_factory=dict)  # the venue's, per currency


@dataclass(frozen=True, slots=True)
class _Spec:
    kind: str
    base: str
    quote: str
    tick: Decimal
    lot: Decimal


def _instruments(db: sqlite3.Connection, runs: str, args: tuple[str, ...]) -> dict[str, _Spec]:
    """Each symbol's grid and currencies as these runs registered it (the last registration wins)."""
    rows = db.execute(
        f"SELECT symbol, kind, base, quote, tick_size, lot_size FROM instruments WHERE run_id IN ({runs})"
        " ORDER BY rowid",
        args,
    )
    return {
        sym: _Spec(kind, base, quote, Decimal(repr(tick)), Decimal(repr(lot)))
        for sym, kind, base, quote, tick, lot in rows
    }


def _per_currency(
    books: Mapping[str, _Book], specs: Mapping[str, _Spec]
) -> tuple[dict[str, int], dict[str, Decimal], dict[str, Decimal], dict[str, Decimal]]:
    """Positions in lots and in base units, fees paid per currency, and what the spot fills moved
    each currency by, all from the exact sums. A spot position is Σ signed traded size − Σ fees
    charged in its base coin (a Binance spot buy pays BTC), rounded to lots once: where the fee is
    finer than the lot (0.000002 BTC on a 0.002 BTC buy, lots of 0.00001) no fill's fraction is lost,
    so the position is what the venue's balance says. A symbol without a registered instrument (not
    written by this ledger) keeps its lots and books its simulated fees under currency ""."""
    lots_out: dict[str, int] = {}
    base_out: dict[str, Decimal] = {}
    fees_paid: dict[str, Decimal] = {}
    spot: dict[str, Decimal] = {}

    def add(into: dict[str, Decimal], currency: str, amount: Decimal) -> None:
        into[currency] = into.get(currency, _ZERO) + amount

    for symbol, book in books.items():
        spec = specs.get(symbol)
        quote = spec.quote if spec is not None else ""
        fees = dict(book.fees)
        if book.quote_fee:
            fees[quote] = fees.get(quote, _ZERO) + Decimal(repr(book.quote_fee))
        for currency, amount in fees.items():
            add(fees_paid, currency, amount)
        if spec is None:
            lots_out[symbol] = book.traded_lots
            continue
        is_spot = spec.kind == "spot"
        base = book.traded_lots * spec.lot - (fees.get(spec.base, _ZERO) if is_spot else _ZERO)
        base_out[symbol] = base
        lots_out[symbol] = int((base / spec.lot).to_integral_value(ROUND_HALF_EVEN))
        if is_spot:
            add(spot, spec.base, book.traded_lots * spec.lot)
            add(spot, spec.quote, -book.traded_ticks_lots * spec.tick * spec.lot)
            for currency, amount in fees.items():
                add(spot, currency, -amount)
    return lots_out, base_out, fees_paid, spot


# ---- opening: lock, integrity, schema ------------------------------------------------------------

_MOVE_ASIDE = "move it aside (or restore a backup) and start again, or pass another --ledger PATH"


def _lock(path: Path) -> int:
    """Take `<path>.lock` (flock, exclusive, non-blocking) for this writer; returns its descriptor.

    A lock file rather than the database itself: SQLite's own locks are POSIX record locks, which
    any close of another descriptor on the same file would drop. The OS releases a flock when the
    process dies, so a `kill -9` leaves nothing to clean up."""
    if path.is_dir():
        raise LedgerUnusable(
            f"ledger {path}: is a directory, not a ledger file: point ledger.path (--ledger) at a file"
        )
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LedgerUnusable(f"ledger {path}: cannot create its lock file {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise LedgerUnusable(
            f"ledger {path}: in use by another mmbot (pid {holder}, lock {lock_path}): stop that bot, "
            "or give this one its own ledger (--ledger PATH)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _failure_line(path: Path, exc: sqlite3.Error) -> str:
    return (
        f"ledger {path}: SQLite error while writing ({_one_line(str(exc))}): the bot stopped recording; {_MOVE_ASIDE}"
    )


def _open_checked(path: Path) -> sqlite3.Connection:
    """Connect, check the file is a sound SQLite ledger, create or migrate the schema."""
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        header = b""
    except OSError as exc:
        raise LedgerUnusable(f"ledger {path}: cannot read it: {exc.strerror}") from None
    if header and header != SQLITE_HEADER:
        raise LedgerUnusable(f"ledger {path}: not an SQLite database (its header is not SQLite's); {_MOVE_ASIDE}")
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so batching is explicit
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise LedgerUnusable(f"ledger {path}: cannot open it ({_one_line(str(exc))}); {_MOVE_ASIDE}") from None
    try:
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise LedgerUnusable(
                f"ledger {path}: damaged (SQLite quick_check: {_one_line('; '.join(problems))[:200]}); {_MOVE_ASIDE}"
                " (`sqlite3 FILE .recover` may salvage its rows)"
            )
        _migrate(conn, path)  # before WAL mode: a refused file is left byte for byte as it was
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        conn.close()
        raise LedgerUnusable(f"ledger {path}: damaged or unreadable ({_one_line(str(exc))}); {_MOVE_ASIDE}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION: create it in an empty file, migrate an older one in one
    transaction, refuse a newer one."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version > SCHEMA_VERSION:
        raise LedgerUnusable(
            f"ledger {path}: schema version {version} is newer than this mmbot's ({SCHEMA_VERSION}): "
            "run a newer mmbot, or pass another --ledger PATH"
        )
    if tables and not {"runs", "fills"} <= tables:
        raise LedgerUnusable(f"ledger {path}: an SQLite database, but not an mmbot ledger; pass another --ledger PATH")
    if tables and version < SCHEMA_VERSION:  # version 0 with tables: a version 1 file (stamped at every open)
        conn.execute("BEGIN IMMEDIATE")
        try:
            # statement by statement: executescript would commit the open transaction first
            for step in range(max(version, 1), SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[step]):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    # One transaction: the journal is still the rollback journal here, where each statement on its own
    # is a commit with its own sync; the schema's 15 statements made opening a new ledger cost
    # 0.15-0.25 s (38 ms in one).
    try:
        conn.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nPRAGMA user_version={SCHEMA_VERSION};\nCOMMIT;")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """`script`'s statements (none of ours contains a ';' inside a literal), comments dropped."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


def _apply_fill(pos_lots: int, avg_px: float, signed_lots: int, px: float, lot_base: float) -> tuple[int, float, float]:
    """Average-cost accounting of one fill. Returns (new position lots, new average px, realised PnL quote)."""
    new_pos = pos_lots + signed_lots
    if pos_lots == 0 or (pos_lots > 0) == (signed_lots > 0):  # opening or adding
        avg = (avg_px * abs(pos_lots) + px * abs(signed_lots)) / abs(new_pos) if new_pos else 0.0
        return new_pos, avg, 0.0
    closed = min(abs(signed_lots), abs(pos_lots))
    direction = 1 if pos_lots > 0 else -1
    pnl = closed * lot_base * (px - avg_px) * direction
    if new_pos == 0:
        return 0, 0.0, pnl
    if (new_pos > 0) != (pos_lots > 0):  # flipped through zero: the rest opens at this price
        return new_pos, px, pnl
    return new_pos, avg_px, pnl


class LedgerObserver:
    """Plugs a ledger into the runner (`bot.runtime.runner.Observer`): every command and venue event
    is recorded, pending rows are committed on the batch cadence. Quote samples and PnL snapshots are
    recorded by whoever builds them (`ledger.record_quote` / `record_pnl`); `end_run` and the final
    `close` are the composition root's job, after the runner has returned its summary."""

    def __init__(self, ledger: Ledger, run_id: str) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self._engine: Any = None  # the engine of the last batch, for what the shutdown still changes
        self._last_ns = 0

    def on_event(self, event: Event, now_ns: int) -> None:
        self.ledger.record_event(self.run_id, event)

    def on_command(self, command: Command, now_ns: int) -> None:
        self.ledger.record_command(self.run_id, command, now_ns)

    def on_batch(self, engine: Any, now_ns: int, tick_to_quote_us: float) -> None:
        self._engine, self._last_ns = engine, now_ns
        self._record_deal(engine, now_ns)
        self.ledger.flush()

    def _record_deal(self, engine: Any, now_ns: int) -> None:
        pop = getattr(engine, "pop_deal_events", None)  # the deal's calls settled, its loan returned
        if pop is not None:
            for event in pop():
                self.ledger.record_deal_event(self.run_id, event)
        pool = getattr(engine, "pop_pool_state", None)  # the simulated DEX pool, when it changed
        if pool is not None:
            state = pool()
            if state is not None:
                self.ledger.record_pool_state(self.run_id, now_ns, state.to_dict())

    def close(self) -> None:
        # the shutdown's events (applied after the last batch) can still move the deal: keep them too
        if self._engine is not None:
            self._record_deal(self._engine, self._last_ns)
        self.ledger.flush(force=True)
