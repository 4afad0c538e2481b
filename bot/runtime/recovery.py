"""Crash-only start: before quoting, make the engine agree with the venue and the ledger.

1. Ask the venue for our positions and open orders (the venue is the source of truth).
2. Cancel every open order on our symbols: a fresh engine owns none of them (orphans of a run that
   died), and quoting on top of unknown resting orders would double our exposure.
3. Compare the ledger's positions (rebuilt from every fill it recorded on this venue) with the
   venue's; enter the venue's positions into the engine, at the ledger's average entry where the two
   agree (PnL continues), at the first mid otherwise.
4. Return the facts for the `recovery.completed` log event.

A venue that starts empty every time (the in-process mock) is reconciled the same way, but the
ledger is not consulted: its runs were on other, vanished exchanges.
"""

from __future__ import annotations

from typing import Any

from bot.core.engine import Engine
from bot.domain import CancelOrder
from bot.runtime.ledger import RecoveredState
from bot.venues.base import Venue


async def reconcile(engine: Engine, venue: Venue, ledger_state: RecoveredState | None) -> dict[str, Any]:
    """Steps 1-3 above; returns the fields of `recovery.completed`."""
    symbols = set(engine.portfolio.positions)
    venue_positions = {s: lots for s, lots in (await venue.positions()).items() if s in symbols}
    orphans = [o for o in await venue.open_orders() if o.symbol in symbols]
    for order in orphans:
        await venue.execute(CancelOrder(order.symbol, order.client_id))
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
        "orphan_client_ids": sorted(o.client_id for o in orphans)[:20],
        "mismatches": mismatches,
        "ledger_consulted": ledger_state is not None,
    }
    if ledger_state is not None:
        fields.update(
            last_run_id=ledger_state.last_run_id,
            last_run_ended_cleanly=ledger_state.last_run_ended_cleanly,
            ledger_fills=ledger_state.fill_count,
            realised_pnl_quote=round(ledger_state.realised_total_quote, 6),
        )
    return fields
