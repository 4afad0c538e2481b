"""The hedge desk: the one perp market (venue, perp symbol) that hedges the whole book.

    perp book event ─▶ OrderBook (sequence checks)
    mark price ─────▶ the reference for every quoter's price band
    hedge order events, hedge fills ─▶ Hedger ─▶ portfolio
    net delta of the whole portfolio (every spot venue + perp + calls + pool) ─▶ Hedger.decide ─▶ orders

It owns the perp's book and the `Hedger` (the decision rules, `bot.core.hedger`), the halted state
and its cooldown, and the share of time net delta stayed in the band. It reads the portfolio, and
books only its own fills in it. Quoters learn from it, through the engine, whether hedging is halted
(then no market quotes: every fill would add unhedged delta).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.core.book import BookStatus, OrderBook
from bot.core.hedger import Hedger, latency_quantile_ns
from bot.core.portfolio import Portfolio
from bot.core.quoter import BREAKS_BOOK, NS_PER_S, Note
from bot.core.rounding import NoteRounding
from bot.domain import (
    DEFAULT_VENUE,
    BookDelta,
    BookSnapshot,
    CancelOrder,
    Command,
    Instrument,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    RequestSnapshot,
    Side,
    market_key,
)

if TYPE_CHECKING:
    from bot.core.engine import EngineStats


class HedgeDesk:
    def __init__(
        self,
        perp: Instrument,
        hedger: Hedger | None,
        portfolio: Portfolio,
        stats: EngineStats,
        notes: list[Note],
        touch_quoters: Callable[[str], None],
        *,
        venue: str = DEFAULT_VENUE,
        start_ns: int = 0,
        resume_after_ns: int = 30 * NS_PER_S,
        warmup_ns: int = 5 * NS_PER_S,
        band_base: float = 0.0,
        delta_decimals: int = 8,
    ) -> None:
        self.perp = perp
        self.venue = venue
        self.key = market_key(venue, perp.symbol)
        self.hedger = hedger  # None: the perp is marked and shown, never traded
        self.portfolio = portfolio
        self.stats = stats
        self.notes = notes
        self.touch_quoters = touch_quoters  # hedging halted or resumed: every market quotes anew
        self.book = OrderBook(perp.symbol)
        self.last_book_ns = start_ns
        self.awaiting_snapshot = False
        self.mark_ticks: int | None = None
        self.halted_ns: int | None = None  # when the hedger halted (None: it is hedging)
        self.down_reason = ""  # why the hedge venue cannot hedge now ("" = it can), see `check_venue`
        self.start_ns = start_ns
        self.resume_after_ns = resume_after_ns
        self.warmup_ns = warmup_ns
        self.rounding = NoteRounding.for_instrument(perp)
        self._delta_decimals = delta_decimals
        self._last_band_base = band_base
        self._band_ticks = 0
        self._band_ticks_in = 0

    # ================================================================== market data

    def on_book(self, event: BookDelta | BookSnapshot, now_ns: int) -> list[Command]:
        book = self.book
        update = book.apply(event)
        status = update.status
        if update.changed:
            self.last_book_ns = now_ns
            if status is BookStatus.SNAPSHOT:
                self.awaiting_snapshot = False
                self._note("feed.resynced", symbol=event.symbol, seq=book.seq)
            return []
        if status not in BREAKS_BOOK:
            return []
        self.awaiting_snapshot = True
        self._note("feed.gap", symbol=event.symbol, status=status.value, reason=update.reason)
        return [RequestSnapshot(event.symbol, status.value, venue=self.venue)]

    def check_venue(self, now_ns: int, stale_ns: int) -> bool:
        """Is the perp venue usable for hedging (book synced and fresh)? Notes and returns True when
        that changed (`hedge.venue_down` / `hedge.venue_up`): the quoters must requote."""
        if self.hedger is None:
            return False
        if self.awaiting_snapshot or not self.book.is_valid:
            reason = "book not synced"
        elif now_ns - self.last_book_ns > stale_ns:
            reason = "stale feed"
        else:
            reason = ""
        if reason == self.down_reason:
            return False
        if reason:
            self._note("hedge.venue_down", symbol=self.perp.symbol, reason=reason)
        else:
            self._note("hedge.venue_up", symbol=self.perp.symbol, down_reason=self.down_reason)
        self.down_reason = reason
        return True

    def withheld_side(self) -> Side | None:
        """While the hedge venue is down, the side whose fills would grow the unhedged net delta."""
        if not self.down_reason:
            return None
        return Side.BUY if self.portfolio.net_delta_base() >= 0.0 else Side.SELL

    def on_mark(self, mark_ticks: int) -> None:
        self.mark_ticks = mark_ticks

    def reference_px(self) -> float:
        """The perp mark (a second venue's price for the same asset), for the quote band; NaN: none."""
        if self.mark_ticks is None:
            return math.nan
        return self.mark_ticks * self.perp.tick_size

    def mid_px(self) -> float:
        mid = self.book.mid_ticks
        return math.nan if mid is None else mid * self.perp.tick_size

    # ================================================================== our hedge orders

    def owns(self, client_id: str) -> bool:
        return self.hedger is not None and self.hedger.owns(client_id)

    def on_fill(self, event: OrderFilled, now_ns: int) -> list[Command]:
        hedger = self.hedger
        assert hedger is not None  # routed here only when it owns the order
        portfolio = self.portfolio
        before = portfolio.net_delta_base()
        if not portfolio.on_fill(event, self.mid_px(), hedge=True):
            self.stats.duplicate_fills += 1
            return []
        hedge_fill = hedger.on_fill(event, now_ns)
        self.stats.hedge_fills += 1
        self.stats.fees_quote += event.fee_quote
        self._note(
            "hedge.filled",
            symbol=event.symbol,
            client_id=event.client_id,
            side=event.side.value,
            price=self.rounding.price_of_ticks(event.price_ticks),
            size=self.rounding.size_of_lots(event.size_lots),
            fee=event.fee_quote,
            slippage_bps=hedge_fill.slippage_bps if hedge_fill is not None else None,
            delta_before=self.delta(before),
            delta_after=self.delta(portfolio.net_delta_base()),
        )
        return self.hedge(now_ns, False)

    def on_order_event(
        self, event: OrderAccepted | OrderRejected | OrderCanceled, now_ns: int, stopping: bool
    ) -> list[Command]:
        hedger = self.hedger
        assert hedger is not None
        if isinstance(event, OrderAccepted):
            hedger.on_accepted(event, now_ns)
            return []
        if isinstance(event, OrderRejected):
            outcome = hedger.on_rejected(event, now_ns)
            self.stats.rejects += 1
            self._note(
                "hedge.rejected",
                client_id=event.client_id,
                reason=event.reason,
                retry_at_ns=outcome.retry_at_ns if outcome else None,
            )
        else:
            outcome = hedger.on_canceled(event, now_ns)
            if outcome is not None and outcome.reason != "canceled":  # it filled nothing: a failure
                self._note(
                    "hedge.unfilled",
                    client_id=event.client_id,
                    reason=event.reason,
                    retry_at_ns=outcome.retry_at_ns,
                )
        return self.hedge(now_ns, stopping)

    def note_spot_fill(self, now_ns: int) -> None:
        if self.hedger is not None:
            self.hedger.note_spot_fill(now_ns)

    # ================================================================== hedging

    def hedge(self, now_ns: int, stopping: bool, net_delta_base: float | None = None) -> list[Command]:
        """The hedger's decision now, logged; `net_delta_base`: the portfolio's, if the caller has read it.
        Returns [] while stopping or while the perp book is not usable."""
        hedger = self.hedger
        if hedger is None or stopping or self.awaiting_snapshot:
            return []
        book = self.book
        if not book.is_valid:
            return []
        portfolio = self.portfolio
        net = portfolio.net_delta_base() if net_delta_base is None else net_delta_base
        decision = hedger.decide(
            net, portfolio.position_lots(self.key), book.best_bid_ticks, book.best_ask_ticks, now_ns
        )
        for command in decision.commands:
            if isinstance(command, PlaceOrder):
                self.stats.hedges += 1
                self._note(
                    "hedge.sent",
                    symbol=command.symbol,
                    client_id=command.client_id,
                    side=command.side.value,
                    size=self.rounding.size_of_lots(command.size_lots),
                    price=self.rounding.price_of_ticks(command.price_ticks),
                    order_type=command.order_type.value,
                    reduce_only=command.reduce_only,
                    reason=decision.reason,
                    delta_before=self.delta(net),
                    delta_after_expected=self.delta(net + decision.order_base),
                    band=decision.band_base,
                )
        self._last_band_base = decision.band_base
        if hedger.halted and self.halted_ns is None:
            self.halted_ns = now_ns
            self.stats.hedger_halts += 1
            self._note("hedge.halted", net_delta=self.delta(net), resume_in_s=self.resume_after_ns / NS_PER_S)
            self.touch_quoters("hedger_halted")
        return list(decision.commands)

    def _maybe_resume(self, now_ns: int) -> None:
        """Too many failed hedges in a row halt the hedger (and with it quoting); after a cooldown it
        tries again from scratch rather than leaving the delta unhedged until a restart."""
        halted_ns = self.halted_ns
        if self.hedger is None or halted_ns is None or now_ns - halted_ns < self.resume_after_ns:
            return
        self.hedger.resume()
        self.halted_ns = None
        self._note("hedge.resumed", halted_s=(now_ns - halted_ns) / NS_PER_S)
        self.touch_quoters("hedger_resumed")

    def on_timer(self, now_ns: int, stopping: bool) -> list[Command]:
        """Resume after the cooldown, hedge on time alone, count the share of time net delta sat in the band."""
        if self.hedger is None:
            return []
        self._maybe_resume(now_ns)
        net = self.portfolio.net_delta_base()  # hedging sends orders, it books nothing: one read serves both
        out = self.hedge(now_ns, stopping, net)
        if now_ns - self.start_ns >= self.warmup_ns:
            self._band_ticks += 1
            if abs(net) <= self._last_band_base + 1e-12:
                self._band_ticks_in += 1
        return out

    def cancel_all(self) -> list[Command]:
        if self.hedger is None:
            return []
        return [CancelOrder(self.perp.symbol, cid, venue=self.venue) for cid in self.hedger.orders]

    def open_orders(self) -> int:
        return len(self.hedger.orders) if self.hedger is not None else 0

    # ================================================================== reports

    def in_band_pct(self) -> float | None:
        return round(100.0 * self._band_ticks_in / self._band_ticks, 3) if self._band_ticks else None

    def summary(self) -> dict[str, Any]:
        if self.hedger is None:
            return {}
        stats = self.hedger.stats
        p50, p99 = (latency_quantile_ns(stats, q) for q in (0.5, 0.99))
        return {
            "hedge_latency_ms_p50": round(p50 / 1e6, 3) if p50 == p50 else None,
            "hedge_latency_ms_p99": round(p99 / 1e6, 3) if p99 == p99 else None,
            "hedge_slippage_quote": round(stats.slippage_quote, 6),
            "hedger_halts": self.stats.hedger_halts,
        }

    def delta(self, delta_base: float) -> float:
        """A net delta for the log, to the finest lot decimals of the book's instruments."""
        return round(delta_base, self._delta_decimals)

    def _note(self, name: str, **fields: Any) -> None:
        if self.venue != DEFAULT_VENUE:
            fields["venue"] = self.venue
        self.notes.append((name, fields))
