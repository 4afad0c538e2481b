"""What the soak runs: the chaos fault profile, a mock exchange that logs its own fills, and the limits.

The fault profile switches on every fault the mock exchange can inject (`FAULT_NAMES`), at rates high
enough that a 15-minute soak sees each of them several times; episode lengths stay those of the
config's `[mock.faults]`. `--faults none` turns all of them off, `--faults drop,restart` only those.
"""

from __future__ import annotations

from typing import Any

from bot.config import MockExchangeConfig, MockFaultConfig, Settings
from bot.sim.soak_checks import ExchangeFill, Limits
from bot.venues.mock.book import Order
from bot.venues.mock.exchange import FairValueSource, MockExchange
from bot.venues.mock.faults import EPISODES, FAULT_NAMES

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000

# fault -> (config key, value): per-message probabilities, episodes per hour
CHAOS: dict[str, tuple[str, float]] = {
    "drop": ("drop_prob", 0.002),
    "duplicate": ("duplicate_prob", 0.002),
    "reject": ("reject_prob", 0.01),
    "delayed_ack": ("delayed_ack_prob", 0.01),
    "duplicate_fill": ("duplicate_fill_prob", 0.08),
    **{name: (f"{name}_per_hour", 40.0) for name in EPISODES},
}
assert set(CHAOS) == set(FAULT_NAMES), "every fault the mock can inject must be in the soak's profile"


class FaultSpecError(ValueError):
    pass


def parse_faults(spec: str) -> tuple[str, ...]:
    """ "all" | "none" | "drop,restart,..." -> the fault names to switch on."""
    text = spec.strip().lower()
    if text == "all":
        return FAULT_NAMES
    if text in ("none", ""):
        return ()
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in CHAOS]
    if unknown:
        raise FaultSpecError(
            f"--faults: unknown fault(s) {', '.join(unknown)}; known: all, none, {', '.join(FAULT_NAMES)}"
        )
    return names


def fault_config(base: MockFaultConfig, faults: tuple[str, ...]) -> MockFaultConfig:
    """`base` (episode lengths, gap size) with every rate zero except the chaos rates of `faults`."""
    values: dict[str, Any] = base.model_dump()
    for key in values:
        if key.endswith(("_prob", "_per_hour")):
            values[key] = 0.0
    for name in faults:
        key, value = CHAOS[name]
        values[key] = value
    return MockFaultConfig(**values)


class RecordingMockExchange(MockExchange):
    """The mock exchange plus a log of every execution it books, for the fill-loss invariant.

    `_fill` is the single place where the exchange books one of our executions (account, fee, fill
    id) and queues its `OrderFilled`; the record is taken right after it, before any delivery.
    """

    def __init__(
        self,
        config: MockExchangeConfig,
        seed: int | None = None,
        start_ns: int = 0,
        fill_history_size: int = 1,
        fair_value: FairValueSource | None = None,
    ) -> None:
        self._fill_log: list[ExchangeFill] = []
        # The exchange's own fill history answers restart recovery (`fills_since`); a soak without
        # restarts never asks, and at the default size (100k fills) it is a day of exchange-side
        # memory that would be counted against the bot's memory check.
        super().__init__(
            config, seed=seed, start_ns=start_ns, fill_history_size=fill_history_size, fair_value=fair_value
        )

    def _fill(self, market: Any, order: Order, price: int, lots: int, liquidity: Any) -> None:
        super()._fill(market, order, price, lots, liquidity)
        fill = ExchangeFill(order.symbol, f"F{self._fill_n}", order.client_id, order.side, lots, self.now_ns)
        self._fill_log.append(fill)

    def take_fills(self) -> list[ExchangeFill]:
        """Executions booked since the last call (the caller keeps what it needs)."""
        fills, self._fill_log = self._fill_log, []
        return fills


def max_order_base(settings: Settings) -> float:
    """The largest single quote: level 0 is `order_size_base`, level i that times `size_decay**i`;
    on a multi-venue config, each spot venue's largest (its own size and levels, if set), summed:
    every venue may have one fill in flight when the aggregate inventory reaches the limit."""
    q = settings.quoter
    if not settings.multi_venue:
        return q.order_size_base * max(q.size_decay**i for i in range(q.levels))
    total = 0.0
    for market in settings.market.quote_on:
        size = market.order_size_base if market.order_size_base is not None else q.order_size_base
        levels = market.levels if market.levels is not None else q.levels
        total += size * max(q.size_decay**i for i in range(levels))
    return total


def hedge_band_base(settings: Settings, price_px: float, perp_lot_base: float) -> float:
    """The hedger's band in base units (the tighter of the two), plus the sub-lot residual it carries."""
    h = settings.hedger
    bands = [b for b in (h.band_base, h.band_notional_quote / price_px if price_px > 0 else 0.0) if b > 0]
    return (min(bands) if bands else 0.0) + perp_lot_base


def limits(settings: Settings, start_ns: int, duration_ns: int, perp_lot_base: float, rss_limit_mb: float) -> Limits:
    """The invariants' bounds, derived from the config (never tuned to a run)."""
    faults = settings.mock.faults
    latency_cap_ns = int(settings.mock.latency.max_ms * NS_PER_MS)
    timer_ns = settings.runtime.timer_ms * NS_PER_MS
    hedger = settings.hedger
    longest_outage_ns = max(faults.disconnect_ms, faults.restart_ms) * NS_PER_MS
    # a hedge may time out twice (then it is dropped), back off once at the cap, wait out an outage,
    # and travel there and back
    hedge_bound_ns = (
        2 * hedger.order_timeout_ms * NS_PER_MS
        + hedger.retry_backoff_max_ms * NS_PER_MS
        + longest_outage_ns
        + 2 * latency_cap_ns
        + timer_ns
    )
    return Limits(
        start_ns=start_ns,
        stale_feed_ns=settings.runtime.stale_feed_ms * NS_PER_MS,
        cancel_bound_ns=timer_ns + latency_cap_ns,
        hedge_bound_ns=hedge_bound_ns,
        inventory_hard_base=settings.risk.inventory_hard_base,
        max_order_base=max_order_base(settings),
        hedge_target_base=hedger.target_base,
        hedge_band_base=hedge_band_base(settings, settings.mock.initial_px, perp_lot_base),
        rss_limit_mb=rss_limit_mb,
        warmup_end_ns=start_ns + min(30 * 60 * NS_PER_S, duration_ns // 4),
        # a venue is quiet once its own longest episode, a stale spell and a cancel are behind it
        quiet_ns=max(faults.disconnect_ms, faults.stale_ms, faults.crossed_ms, faults.restart_ms) * NS_PER_MS
        + settings.runtime.stale_feed_ms * NS_PER_MS
        + timer_ns
        + latency_cap_ns,
    )
