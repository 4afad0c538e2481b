"""What the engine looks like right now, for `/status`, the gauges and the ledger's samples.

`StatusFeed` is a runner observer: on the runner's batch cadence it builds a `StatusSnapshot` from
the engine at most once per `period_ns` (runner clock) and hands it to the metrics, and writes a
quote sample and a PnL snapshot to the ledger. Reading the engine here, not in the engine, keeps the
core free of presentation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bot.core.engine import Engine
from bot.domain import Command, Event, Side
from bot.runtime.ledger import Ledger, PnlSnapshot, QuoteSample
from bot.runtime.metrics import Metrics, ObligationView, OrderView, StatusSnapshot

NS_PER_S = 1_000_000_000


def _best(engine: Engine, side: Side) -> float | None:
    prices = [o.price_ticks for o in engine.orders.live_orders(engine.spot.symbol, tag="quote") if o.side is side]
    if not prices:
        return None
    return engine.spot.price(max(prices) if side is Side.BUY else min(prices))


def _orders(engine: Engine, now_ns: int) -> tuple[OrderView, ...]:
    # every market's orders, each named by its market key (the bare symbol on a single venue)
    views = [
        OrderView(
            symbol=q.key,
            client_id=o.client_id,
            side=o.side.value,
            price_px=q.spot.price(o.price_ticks),
            size_base=q.spot.size(o.open_lots),
            age_s=round((now_ns - o.placed_ns) / NS_PER_S, 3),
            tag=o.tag,
        )
        for q in engine.quoters
        for o in q.orders.live_orders()
    ]
    hedger = engine.hedger
    if hedger is not None:
        views.extend(
            OrderView(
                symbol=hedger.perp.symbol,
                client_id=h.client_id,
                side=h.side.value,
                price_px=hedger.perp.price(h.price_ticks),
                size_base=hedger.perp.size(h.remaining_lots),
                age_s=round((now_ns - h.sent_ns) / NS_PER_S, 3),
                tag="hedge",
            )
            for h in hedger.orders.values()
        )
    return tuple(views)


def _obligations(engine: Engine, now_ns: int) -> tuple[ObligationView, ...]:
    """One view per market with an obligation (each venue has its own)."""
    views = []
    for q in engine.quoters:
        obligation = q.spec.risk.obligation
        tracker = q.risk.compliance
        if obligation is None or tracker is None:
            continue
        share = tracker.shares(now_ns)["all"]
        breached = any(r.startswith("obligation_breached") for r in q.risk_decision.reasons)
        views.append(
            ObligationView(
                name=obligation.venue,
                compliant=bool(q.orders.live_orders(q.spot.symbol, tag="quote")) and not breached,
                compliance_ratio=share if share == share else None,
                detail=f"spread <= {obligation.max_spread_bps} bps, depth >= {obligation.min_depth_quote} "
                f"within ±{obligation.depth_band_pct} %",
            )
        )
    return tuple(views)


def status_snapshot(engine: Engine, run_id: str, venue: str, now_ns: int, wall_ns: int) -> StatusSnapshot:
    """The engine's state as `/status` shows it. `now_ns`: the engine's clock; `wall_ns`: the epoch."""
    symbol = engine.spot.symbol
    reason = engine.not_quoting_reason()
    bid, ask = _best(engine, Side.BUY), _best(engine, Side.SELL)
    mid = engine.mid_px()
    inputs, theo = engine.last_inputs, engine.last_theo
    spread_bps = (ask - bid) / mid * 1e4 if bid is not None and ask is not None and mid else None
    decision = engine.risk_decision
    return StatusSnapshot(
        ts_ns=wall_ns,
        run_id=run_id,
        venue=venue,
        symbol=symbol,
        book_synced=not engine.quoter.awaiting_snapshot and engine.quoter.book.is_valid,
        quoting=reason == "",
        not_ready_reason=reason,
        mid_px=mid,
        reservation_px=theo.reservation_px if theo is not None else None,
        quoted_spread_bps=spread_bps,
        sigma_px_per_sqrt_s=engine.sigma.sigma_px_per_sqrt_s,
        a_per_s=inputs.a_per_s if inputs is not None else None,
        k_per_px=inputs.k_per_px if inputs is not None else None,
        orders=_orders(engine, now_ns),
        inventory_base={s: engine.portfolio.position_base(s) for s in engine.portfolio.positions},
        net_delta_base=engine.portfolio.net_delta_base(),
        pnl_quote=engine.portfolio.pnl().components(),
        risk_state=decision.state,
        risk_reason=",".join(decision.reasons),
        obligations=_obligations(engine, now_ns),
        fills=engine.stats.fills,
        uptime_s=round((now_ns - engine.start_ns) / NS_PER_S, 3),
        extra={"hedges": engine.stats.hedges, "option_delta_base": engine.portfolio.option_delta_base()},
    )


class StatusFeed:
    """Runner observer that refreshes `/status` + gauges and the ledger's quote/PnL samples."""

    def __init__(
        self,
        run_id: str,
        venue: str,
        period_ns: int,
        metrics: Metrics | None = None,
        ledger: Ledger | None = None,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.run_id = run_id
        self.venue = venue
        self.period_ns = period_ns
        self.metrics = metrics
        self.ledger = ledger
        self._wall_clock_ns = wall_clock_ns
        self._last_ns: int | None = None

    def on_event(self, event: Event, now_ns: int) -> None:
        return None

    def on_command(self, command: Command, now_ns: int) -> None:
        return None

    def on_batch(self, engine: Any, now_ns: int, tick_to_quote_us: float) -> None:
        if self._last_ns is not None and now_ns - self._last_ns < self.period_ns:
            return
        self._last_ns = now_ns
        snap = status_snapshot(engine, self.run_id, self.venue, now_ns, self._wall_clock_ns())
        if self.metrics is not None:
            self.metrics.update(snap)
        if self.ledger is not None and snap.mid_px is not None:
            self.ledger.record_quote(
                self.run_id,
                QuoteSample(
                    symbol=snap.symbol,
                    ts_ns=now_ns,
                    mid_px=snap.mid_px,
                    bid_px=_best(engine, Side.BUY),
                    ask_px=_best(engine, Side.SELL),
                    reservation_px=snap.reservation_px,
                    inventory_base=snap.inventory_base.get(snap.symbol, 0.0),
                    net_delta_base=snap.net_delta_base,
                    risk_state=snap.risk_state,
                ),
            )
            self.ledger.record_pnl(self.run_id, PnlSnapshot(now_ns, dict(snap.pnl_quote)))

    def close(self) -> None:
        return None
