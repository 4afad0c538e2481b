"""Crash-only start: before quoting, make the engine and the ledger agree with the venue.

1. Ask the venue for our open orders on the engine's symbols and cancel them all: a fresh engine
   owns none of them (orphans of a run that died), and quoting on top of unknown resting orders
   would double our exposure. Wait (bounded) until the venue lists none of them: from then on
   nothing of ours can fill, so the positions and the fill history read next are one consistent
   picture.
2. Ask the venue for our positions (the venue is the source of truth).
3. Fill history (venues with `fills_since`, ledger runs on this venue session): fetch our fills
   since the newest fill the ledger recorded in this session, minus `FILL_OVERLAP_NS` (clock skew,
   fills delivered out of order; a session with a run but no fill yet, a bot killed before its first
   fill was committed: since that run's start, which precedes its first order, on the bot's clock,
   so the overlap also covers the skew between the bot's and the venue's clocks), and record the
   ones the ledger lacks (asked of the ledger for the fetched fills only), deduplicated by
   `(venue, venue_session, symbol, fill_id)`, under the session's last run id with tag "recovered":
   the fills made while the bot was dead, or in flight when it died. The ledger is then rebuilt, so
   its positions include them. A venue session the ledger has no run on (a mock exchange that was
   restarted: its ids start at F1 again) has nothing to recover and starts from its own positions.
4. Compare the ledger's positions with the venue's; enter the venue's positions into the engine,
   at the ledger's average entry where the two agree (PnL continues), at the first mid otherwise.
   Every fetched fill is already in those positions, so each is marked as seen in the engine's
   order book-keeping: a venue that replays them later (the websocket mock replays private
   messages missed while no client was subscribed) cannot book them a second time.
5. Return the facts for the `recovery.completed` log event.

A venue that starts empty every time (the in-process mock) is reconciled the same way, but the
ledger is not consulted: its runs were on other, vanished exchanges.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.engine import Engine
from bot.domain import CancelOrder, Instrument, OrderFilled, market_key
from bot.runtime.ledger import Ledger, RecoveredState
from bot.venues.base import Venue, fetch_fills_since, fill_session

NS_PER_S = 1_000_000_000
FILL_OVERLAP_NS = 60 * NS_PER_S
"""How far before the ledger's newest fill the history is asked from: covers clock skew between
our clock and the venue's and fills that reached us out of order; the overlap is deduplicated."""
ORPHAN_WAIT_S = 3.0  # longest wait for the venue to confirm the orphans are gone
_POLL_S = 0.05
_LIST_MAX = 20  # ids listed in the log event; the counts are complete


@dataclass
class FillRecovery:
    """What step 3 found."""

    status: str = "skipped"  # ok | skipped (no ledger run on this venue) | unsupported | failed: <error>
    since_ns: int | None = None
    fetched: list[OrderFilled] = field(default_factory=list)  # on the engine's symbols
    recovered: list[OrderFilled] = field(default_factory=list)  # of those, the ones the ledger lacked


async def reconcile(
    engine: Engine,
    venue: Venue,
    ledger_state: RecoveredState | None,
    ledger: Ledger | None = None,
    *,
    orphan_wait_s: float = ORPHAN_WAIT_S,
) -> dict[str, Any]:
    """Steps 1-4 above; returns the fields of `recovery.completed`.

    `ledger_state` is the ledger's view of this venue session (None: do not consult the ledger); `ledger`,
    when given with it, is where recovered fills are written (step 3)."""
    symbols = set(engine.portfolio.positions)  # market keys: the bare symbol on a single-venue session
    orphans = [o for o in await venue.open_orders() if market_key(o.venue, o.symbol) in symbols]
    for order in orphans:  # on the venue that holds it (a `VenueGroup` lists every venue's)
        await venue.execute(CancelOrder(order.symbol, order.client_id, venue=order.venue))
    still_open = await _wait_gone(venue, {o.client_id for o in orphans}, symbols, orphan_wait_s)
    venue_positions = {s: lots for s, lots in (await venue.positions()).items() if s in symbols}
    history = FillRecovery()
    if ledger is not None and ledger_state is not None and ledger_state.last_run_id is not None:
        instruments = {key: engine.portfolio.positions[key].instrument for key in symbols}
        history = await _recover_fills(venue, ledger, ledger_state, instruments)
        if history.recovered:
            ledger_state = ledger.recover(venue=venue.name, session=fill_session(venue))
        for fill in history.fetched:
            # in venue_positions already: a replay must count as a duplicate, in the order manager
            # the replay will reach (its venue's quoter's on a multi-venue session)
            engine.order_manager_of(fill.venue, fill.symbol).on_fill(fill)
    ledger_positions = dict(ledger_state.positions_lots) if ledger_state is not None else {}
    agreed_entry: dict[str, float] = {}
    mismatches: dict[str, dict[str, int]] = {}
    if ledger_state is not None:
        for symbol in sorted(symbols):
            ours, theirs = ledger_positions.get(symbol, 0), venue_positions.get(symbol, 0)
            if ours != theirs:
                mismatches[symbol] = {"ledger_lots": ours, "venue_lots": theirs}
            elif ours and symbol in ledger_state.avg_entry_px:
                agreed_entry[symbol] = ledger_state.avg_entry_px[symbol]
    engine.restore(venue_positions, agreed_entry)
    fields: dict[str, Any] = {
        "positions_lots": {s: venue_positions.get(s, 0) for s in sorted(symbols)},
        "orphans_canceled": len(orphans),
        "orphan_client_ids": sorted(o.client_id for o in orphans)[:_LIST_MAX],
        "orphans_still_open": sorted(still_open)[:_LIST_MAX],
        "mismatches": mismatches,
        "ledger_consulted": ledger_state is not None,
        "fill_history": history.status,
        "fills_fetched": len(history.fetched),
        "fills_recovered": len(history.recovered),
        "recovered_fill_ids": [f"{market_key(f.venue, f.symbol)}:{f.fill_id}" for f in history.recovered][:_LIST_MAX],
    }
    if ledger_state is not None:
        fields.update(
            last_run_id=ledger_state.last_run_id,
            last_run_ended_cleanly=ledger_state.last_run_ended_cleanly,
            ledger_fills=ledger_state.fill_count,
            ledger_positions_lots={s: ledger_positions.get(s, 0) for s in sorted(symbols)},
            realised_pnl_quote=round(ledger_state.realised_total_quote, 6),
            fill_history_since_ns=history.since_ns,
        )
    return fields


async def _wait_gone(venue: Venue, client_ids: set[str], symbols: Collection[str], timeout_s: float) -> set[str]:
    """Poll the venue's open orders until none of `client_ids` is listed; returns those still listed."""
    if not client_ids:
        return set()
    deadline = time.monotonic() + timeout_s
    while True:
        listed = {o.client_id for o in await venue.open_orders() if market_key(o.venue, o.symbol) in symbols}
        listed &= client_ids
        if not listed or time.monotonic() >= deadline:
            return listed
        await asyncio.sleep(_POLL_S)


async def _recover_fills(
    venue: Venue, ledger: Ledger, state: RecoveredState, instruments: Mapping[str, Instrument]
) -> FillRecovery:
    """Step 3: fetch the venue's fills since the ledger's newest one and record the missing ones.
    `instruments`: the engine's markets (keyed `market_key(venue, symbol)`, as the ledger's rows are)."""
    last_run_id = state.last_run_id
    resume_ns = ledger.last_fill_venue_ns(venue=venue.name, session=fill_session(venue))
    if last_run_id is None or resume_ns is None:
        return FillRecovery()
    since_ns = resume_ns - FILL_OVERLAP_NS
    try:
        fetched = await fetch_fills_since(venue, since_ns)
    except Exception as exc:  # the history is a repair step: without it we trade on, mismatches logged
        return FillRecovery(f"failed: {type(exc).__name__}: {exc}"[:200], since_ns)
    if fetched is None:
        return FillRecovery("unsupported", since_ns)
    ours = [f for f in fetched if market_key(f.venue, f.symbol) in instruments]
    known = ledger.known_fills(
        ((market_key(f.venue, f.symbol), f.fill_id) for f in ours), venue=venue.name, session=fill_session(venue)
    )
    missing: dict[tuple[str, str], OrderFilled] = {}
    for fill in ours:
        key = (market_key(fill.venue, fill.symbol), fill.fill_id)
        if key not in known and key not in missing:
            missing[key] = fill
    recovered = sorted(missing.values(), key=lambda f: f.ts_venue_ns)
    if recovered:
        ledger.register_instruments(last_run_id, instruments)
        recovered = [f for f in recovered if ledger.record_fill(last_run_id, f, tag="recovered")]
    return FillRecovery("ok", since_ns, ours, recovered)
