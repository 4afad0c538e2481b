"""The token-loan + call-option deal: its terms and the initial hedge plan, under two accountings.

The project lends `tokens_lent_base` tokens; the market maker must keep resting depth on CEX
venues (bids in quote, asks in tokens) and a DEX pool (half token, half quote), and holds call
tranches on the token. The plan is decided by assets and obligations, not by a price view:

- deployed tokens = Σ CEX ask depth / price + DEX pool token side / price;
- quote (USDT) needed = Σ CEX bid depth + DEX pool quote side;
- option delta = Σ quantity × N(d1) at the token price (Black-Scholes, zero rate, τ = expiry_days/365).

Two accountings of the loan are shown side by side, because the choice decides what is "long":

`article` (the source article's view): the lent tokens are the market maker's own long. It sells
tokens to raise the USDT, then sells the idle rest as an unhedged long: tokens_to_sell = lent −
deployed (3,000,000 − 700,000 = 2,300,000 in the example). What is still held (the deployed
tokens: CEX asks and the pool's token side) plus the calls' delta is long delta, which the perp
short offsets: perp_short = deployed + option delta.

`counting_return_obligation`: the tokens must be returned, so the loan is a short of
`tokens_lent_base` against the tokens held. Holding them all is then already flat; nothing needs
selling if the market maker funds the USDT side itself (the deal's usual terms), and the perp short
offsets only the calls' delta. Seen this way, the article's plan is a directional short of the whole
loan (`article_plan_net_delta_base` = −3,000,000 in the example): it profits if the price falls. If
the USDT must come from selling tokens instead, the sale is a short that a perp *long* offsets
(`usdt_by_selling_*`).

All amounts: tokens in base units (`_base`), money in quote (`_quote`); `perp_short_base` > 0 means
a short perp position of that many tokens (negative: a long).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core.lp import ConstantProductLp
from bot.core.options import NS_PER_DAY, CallOption, call_greeks

if TYPE_CHECKING:  # the core does not depend on the settings machinery at run time
    from bot.config import DealConfig

DAYS_PER_YEAR = 365.0


@dataclass(frozen=True, slots=True)
class CallTranche:
    strike_px: float
    quantity_base: float
    expiry_days: float


@dataclass(frozen=True, slots=True)
class VenueObligation:
    """Resting depth to keep within ±depth_band_pct of mid, and the spread cap (percent of mid)."""

    name: str
    bid_depth_quote: float
    ask_depth_quote: float
    depth_band_pct: float
    max_spread_pct: float


@dataclass(frozen=True, slots=True)
class DealTerms:
    token_price_px: float
    tokens_lent_base: float
    calls: tuple[CallTranche, ...]
    implied_vol_annual: float
    venues: tuple[VenueObligation, ...]
    dex_pool_size_quote: float
    dex_token_fraction: float = 0.5
    dex_fee_rate: float = 0.0

    @classmethod
    def from_config(cls, cfg: DealConfig) -> DealTerms:
        return cls(
            token_price_px=cfg.token_price_quote,
            tokens_lent_base=cfg.tokens_lent_base,
            calls=tuple(CallTranche(c.strike_quote, c.quantity_base, c.expiry_days) for c in cfg.calls),
            implied_vol_annual=cfg.implied_vol_annual,
            venues=tuple(
                VenueObligation(v.name, v.bid_depth_quote, v.ask_depth_quote, v.depth_band_pct, v.max_spread_pct)
                for v in cfg.venues
            ),
            dex_pool_size_quote=cfg.dex_pool_size_quote,
            dex_token_fraction=cfg.dex_token_fraction,
            dex_fee_rate=cfg.dex_fee_rate,
        )

    def call_options(self, start_ns: int) -> tuple[CallOption, ...]:
        """The tranches as positions for the portfolio, expiring `expiry_days` after `start_ns`."""
        return tuple(
            CallOption(c.strike_px, c.quantity_base, start_ns + round(c.expiry_days * NS_PER_DAY)) for c in self.calls
        )

    def lp_position(self) -> ConstantProductLp:
        """The DEX pool position at the deal's token price. L = √(x·y) of the configured split
        (for a 50/50 pool this is value / (2√P))."""
        tokens = self.dex_pool_size_quote * self.dex_token_fraction / self.token_price_px
        quote = self.dex_pool_size_quote * (1.0 - self.dex_token_fraction)
        return ConstantProductLp(liquidity=(tokens * quote) ** 0.5, fee_rate=self.dex_fee_rate)


@dataclass(frozen=True, slots=True)
class TrancheRisk:
    strike_px: float
    quantity_base: float
    expiry_days: float
    delta: float  # per token, N(d1)
    delta_base: float
    gamma_base_per_px: float
    value_quote: float


@dataclass(frozen=True, slots=True)
class HedgeView:
    """The initial position under one accounting of the loan (see the module docstring)."""

    tokens_lent_base: float
    tokens_deployed_cex_base: float
    tokens_deployed_lp_base: float
    tokens_deployed_base: float
    usdt_needed_cex_quote: float
    usdt_needed_lp_quote: float
    usdt_needed_quote: float
    usdt_from_sales_quote: float
    usdt_from_own_capital_quote: float
    tokens_sold_for_usdt_base: float
    tokens_sold_as_unhedged_long_base: float
    tokens_to_sell_base: float
    tokens_held_base: float  # spot (wallet + CEX asks) and the pool's token side, after the sale
    loan_obligation_base: float  # 0, or −lent when the return obligation counts as a short
    option_delta_base: float
    net_delta_before_perp_base: float
    perp_short_inventory_base: float
    perp_short_options_base: float
    perp_short_base: float
    net_delta_after_base: float


@dataclass(frozen=True, slots=True)
class DealPlan:
    tranches: tuple[TrancheRisk, ...]
    article: HedgeView
    counting_return_obligation: HedgeView
    article_plan_net_delta_base: float  # the article's plan, with the return obligation counted
    usdt_by_selling_tokens_base: float  # obligation view, if the USDT must come from token sales...
    usdt_by_selling_perp_short_base: float  # ...the perp short that keeps it flat (negative = long)


def tranche_risks(terms: DealTerms) -> tuple[TrancheRisk, ...]:
    out = []
    for c in terms.calls:
        g = call_greeks(terms.token_price_px, c.strike_px, terms.implied_vol_annual, c.expiry_days / DAYS_PER_YEAR)
        out.append(
            TrancheRisk(
                strike_px=c.strike_px,
                quantity_base=c.quantity_base,
                expiry_days=c.expiry_days,
                delta=g.delta,
                delta_base=c.quantity_base * g.delta,
                gamma_base_per_px=c.quantity_base * g.gamma_per_px,
                value_quote=c.quantity_base * g.value_px,
            )
        )
    return tuple(out)


def plan_deal(terms: DealTerms) -> DealPlan:
    """The initial hedge plan under both accountings of the loan."""
    price = terms.token_price_px
    cex_tokens = sum(v.ask_depth_quote for v in terms.venues) / price
    cex_usdt = sum(v.bid_depth_quote for v in terms.venues)
    lp_tokens = terms.dex_pool_size_quote * terms.dex_token_fraction / price
    lp_usdt = terms.dex_pool_size_quote * (1.0 - terms.dex_token_fraction)
    tranches = tranche_risks(terms)
    option_delta = sum(t.delta_base for t in tranches)
    lent = terms.tokens_lent_base
    deployed = cex_tokens + lp_tokens
    usdt = cex_usdt + lp_usdt

    def view(sold_for_usdt: float, sold_long: float, obligation: float) -> HedgeView:
        sold = sold_for_usdt + sold_long
        held = lent - sold
        inventory = held + obligation  # the perp also offsets what is held beyond the obligation
        net_before = inventory + option_delta
        perp_short = net_before  # the perp takes the whole remaining delta: spot + LP + calls − obligation
        return HedgeView(
            tokens_lent_base=lent,
            tokens_deployed_cex_base=cex_tokens,
            tokens_deployed_lp_base=lp_tokens,
            tokens_deployed_base=deployed,
            usdt_needed_cex_quote=cex_usdt,
            usdt_needed_lp_quote=lp_usdt,
            usdt_needed_quote=usdt,
            usdt_from_sales_quote=sold_for_usdt * price,
            usdt_from_own_capital_quote=usdt - sold_for_usdt * price,
            tokens_sold_for_usdt_base=sold_for_usdt,
            tokens_sold_as_unhedged_long_base=sold_long,
            tokens_to_sell_base=sold,
            tokens_held_base=held,
            loan_obligation_base=obligation,
            option_delta_base=option_delta,
            net_delta_before_perp_base=net_before,
            perp_short_inventory_base=inventory,
            perp_short_options_base=option_delta,
            perp_short_base=perp_short,
            net_delta_after_base=net_before - perp_short,
        )

    # article: raise the USDT by selling tokens, then sell whatever is neither deployed nor sold
    # (never more than was lent: a loan too small for the obligations leaves nothing idle)
    for_usdt = min(usdt / price, max(lent - deployed, 0.0))
    idle = max(lent - deployed - for_usdt, 0.0)
    article = view(for_usdt, idle, obligation=0.0)
    counting = view(0.0, 0.0, obligation=-lent)
    # the article's positions (held tokens, perp short) judged with the obligation counted
    article_seen_counting = article.tokens_held_base - lent + option_delta - article.perp_short_base
    return DealPlan(
        tranches=tranches,
        article=article,
        counting_return_obligation=counting,
        article_plan_net_delta_base=article_seen_counting,
        usdt_by_selling_tokens_base=usdt / price,
        usdt_by_selling_perp_short_base=option_delta - usdt / price,
    )
