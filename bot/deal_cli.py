"""`mmbot deal plan [--config FILE] [--json]`: the initial hedge plan of the token-loan deal.

Prints both accountings of the loan (see bot/core/deal.py) and what changes between them; with
`--json` the last line is one JSON object `{"article": {...}, "counting_return_obligation": {...}}`.
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from bot.config import ConfigError, DealConfig, load_settings
from bot.core.deal import DealPlan, DealTerms, HedgeView, TrancheRisk, date_ns, ns_date, plan_deal, sale_schedule
from bot.core.execution import SaleSchedule
from bot.output import write_json


def _valuation_ns(deal: DealConfig, at: str | None) -> int | None:
    if at is None:
        return None
    try:
        day = datetime.date.fromisoformat(at)
    except ValueError:
        raise ConfigError(f"--at: not an ISO date (YYYY-MM-DD) (got {at!r})") from None
    if deal.start_date is None:
        raise ConfigError("--at: deal.start_date is not set, so the deal has no calendar to value it on")
    return date_ns(day)


def cmd_deal_plan(args: argparse.Namespace) -> int:
    path = getattr(args, "config", None)
    # no --config: the article's example (DealConfig's defaults), not the dry run's scaled-down deal
    deal = load_settings(path).deal if path else DealConfig()  # a ConfigError goes to the CLI: exit 2
    at_ns = _valuation_ns(deal, getattr(args, "at", None))
    terms = DealTerms.from_config(deal)
    plan = plan_deal(terms, at_ns)
    schedule = schedule_of(deal, terms)
    print(render_text(terms, plan, dated=deal.start_date is not None, at_ns=at_ns))
    print(render_schedule(schedule, deal.sale_twap_days))
    if getattr(args, "json", False):
        write_json(args, {**plan_json(plan), "sale_schedule": schedule_json(schedule)})
    return 0


def schedule_of(deal: DealConfig, terms: DealTerms) -> SaleSchedule:
    return sale_schedule(
        terms,
        deal.sale_twap_days,
        deal.sale_fee_rate,
        deal.sale_daily_volume_quote,
        deal.sale_max_participation,
        deal.sale_floor_pct,
    )


def schedule_json(s: SaleSchedule) -> dict[str, Any]:
    return {
        "tokens": _r(s.total_base),
        "days": s.days,
        "tokens_per_day": _r(s.slice_base),
        "binding": s.binding,
        "book_density_quote": _r(s.book_density_quote),
        "impact_pct": round(100 * s.impact_frac, 4),
        "fee_pct": round(100 * s.fee_rate, 4),
        "expected_cost_quote": _r(s.expected_cost_quote),
        "expected_avg_px": round(s.expected_avg_px, 6),
        "perp_covers_unsold": [_r(s.unsold_after_day(d)) for d in range(s.days + 1)],
    }


def render_schedule(s: SaleSchedule, twap_days: float) -> str:
    if s.total_base <= 0:
        return "\nInitial sale schedule: nothing to sell"
    why = {
        "twap": f"TWAP over {twap_days:g} days",
        "participation": "capped by the participation limit (deal.sale_max_participation)",
        "floor": "capped by the limit floor (deal.sale_floor_pct)",
    }[s.binding]
    return "\n".join(
        [
            "",
            "Initial sale schedule (article plan)",
            f"  {_n(s.total_base)} tokens over {s.days} days, {_n(s.slice_base)} a day ({why})",
            f"  book: {_n(s.book_density_quote * 0.01)} USDT of bids per 1 % below the mid (the CEX bid obligations)",
            f"  expected cost {_n(s.expected_cost_quote)} USDT: impact {100 * s.impact_frac:.2f} % + fee "
            f"{100 * s.fee_rate:.2f} % per slice, average {s.expected_avg_px:.4f} vs {s.ref_px:g}",
            f"  the perp covers the unsold tokens: {_n(s.unsold_after_day(0))} at the start, "
            f"{_n(s.unsold_after_day(1))} after day 1, 0 after day {s.days}",
        ]
    )


def _tranche_json(t: TrancheRisk) -> dict[str, float]:
    return {
        "strike": t.strike_px,
        "quantity": t.quantity_base,
        "expiry_days": t.expiry_days,
        "delta_per_token": round(t.delta, 6),
        "delta": round(t.delta_base, 2),
        "gamma_per_quote": round(t.gamma_base_per_px, 2),
        "value_quote": round(t.value_quote, 2),
    }


def _r(x: float) -> float:
    return round(x, 2)  # tokens and dollars: cents are plenty


def _view_json(v: HedgeView, plan: DealPlan) -> dict[str, Any]:
    return {
        "tokens_lent": _r(v.tokens_lent_base),
        "tokens_deployed": _r(v.tokens_deployed_base),
        "tokens_deployed_cex": _r(v.tokens_deployed_cex_base),
        "tokens_deployed_lp": _r(v.tokens_deployed_lp_base),
        "usdt_needed": _r(v.usdt_needed_quote),
        "usdt_needed_cex": _r(v.usdt_needed_cex_quote),
        "usdt_needed_lp": _r(v.usdt_needed_lp_quote),
        "usdt_from_sales": _r(v.usdt_from_sales_quote),
        "usdt_from_own_capital": _r(v.usdt_from_own_capital_quote),
        "tokens_to_sell": _r(v.tokens_to_sell_base),
        "tokens_sold_for_usdt": _r(v.tokens_sold_for_usdt_base),
        "tokens_sold_as_unhedged_long": _r(v.tokens_sold_as_unhedged_long_base),
        "tokens_held": _r(v.tokens_held_base),
        "loan_obligation": _r(v.loan_obligation_base),
        "option_delta": _r(v.option_delta_base),
        "option_deltas": [_tranche_json(t) for t in plan.tranches],
        "net_delta_before_perp": _r(v.net_delta_before_perp_base),
        "perp_short": _r(v.perp_short_base),
        "perp_short_inventory": _r(v.perp_short_inventory_base),
        "perp_short_options": _r(v.perp_short_options_base),
        "net_delta_after": _r(v.net_delta_after_base),
    }


def plan_json(plan: DealPlan) -> dict[str, Any]:
    counting = _view_json(plan.counting_return_obligation, plan)
    counting["article_plan_net_delta"] = round(plan.article_plan_net_delta_base, 2)
    counting["if_usdt_raised_by_selling"] = {
        "tokens_to_sell": round(plan.usdt_by_selling_tokens_base, 2),
        "perp_short": round(plan.usdt_by_selling_perp_short_base, 2),
    }
    return {"article": _view_json(plan.article, plan), "counting_return_obligation": counting}


def _n(x: float) -> str:
    return f"{x:,.0f}"


def render_text(terms: DealTerms, plan: DealPlan, dated: bool = False, at_ns: int | None = None) -> str:
    a, c = plan.article, plan.counting_return_obligation
    lines = [
        f"Deal: {_n(terms.tokens_lent_base)} tokens lent at {terms.token_price_px:g} USDT, "
        f"calls priced at σ = {terms.implied_vol_annual:.0%}/year",
    ]
    if dated:
        lines.append(
            f"  starts {ns_date(terms.start_ns)}, loan returned {ns_date(terms.loan_return_ns)}, "
            f"valued on {ns_date(terms.start_ns if at_ns is None else at_ns)}"
        )
    lines += [
        "",
        "Obligations",
    ]
    for v in terms.venues:
        lines.append(
            f"  CEX {v.name:<8} bids {_n(v.bid_depth_quote):>9} USDT, asks {_n(v.ask_depth_quote):>9} USDT "
            f"within ±{v.depth_band_pct:g}%, spread ≤ {v.max_spread_pct:g}%"
        )
    lines.append(
        f"  DEX pool     {_n(terms.dex_pool_size_quote)} USDT, half in the token (constant product): "
        f"{_n(a.tokens_deployed_lp_base)} tokens + {_n(a.usdt_needed_lp_quote)} USDT"
    )
    lines += [
        f"  → tokens deployed {_n(a.tokens_deployed_base)} (CEX asks {_n(a.tokens_deployed_cex_base)}, "
        f"LP {_n(a.tokens_deployed_lp_base)}); USDT needed {_n(a.usdt_needed_quote)} "
        f"(CEX bids {_n(a.usdt_needed_cex_quote)}, LP {_n(a.usdt_needed_lp_quote)})",
        "",
        "Call tranches (Black-Scholes, zero rate)",
    ]
    for t, call in zip(plan.tranches, terms.calls, strict=True):
        expiry = f" (expires {ns_date(call.expiry_ns)})" if dated else ""
        lines.append(
            f"  strike {t.strike_px:>5g} × {_n(t.quantity_base):>9}, {t.expiry_days:g} d left{expiry}: "
            f"delta {t.delta:.4f} → {_n(t.delta_base):>8} tokens, value {_n(t.value_quote)} USDT"
        )
    lines.append(f"  option delta {_n(a.option_delta_base)} tokens")
    header = f"{'':34}{'article':>16}{'counting return':>18}"
    rows = [
        ("tokens sold to raise USDT", a.tokens_sold_for_usdt_base, c.tokens_sold_for_usdt_base),
        ("tokens sold as unhedged long", a.tokens_sold_as_unhedged_long_base, c.tokens_sold_as_unhedged_long_base),
        ("tokens to sell now", a.tokens_to_sell_base, c.tokens_to_sell_base),
        ("USDT from the MM's own capital", a.usdt_from_own_capital_quote, c.usdt_from_own_capital_quote),
        ("tokens held (spot + LP)", a.tokens_held_base, c.tokens_held_base),
        ("loan return obligation", a.loan_obligation_base, c.loan_obligation_base),
        ("option delta", a.option_delta_base, c.option_delta_base),
        ("net delta before perps", a.net_delta_before_perp_base, c.net_delta_before_perp_base),
        ("perp short: held inventory", a.perp_short_inventory_base, c.perp_short_inventory_base),
        ("perp short: option delta", a.perp_short_options_base, c.perp_short_options_base),
        ("perp short (total)", a.perp_short_base, c.perp_short_base),
        ("net delta after perps", a.net_delta_after_base, c.net_delta_after_base),
    ]
    lines += ["", "Initial hedge plan", header]
    lines += [f"  {name:<32}{_n(x):>16}{_n(y):>18}" for name, x, y in rows]
    lines += [
        "",
        "What changes when the loan's return obligation counts as a short",
        f"  - nothing needs selling: the {_n(c.tokens_held_base)} tokens held offset the "
        f"{_n(-c.loan_obligation_base)} owed; the {_n(c.usdt_needed_quote)} USDT come from the MM's capital",
        f"  - the perp short covers only the calls: {_n(c.perp_short_base)} instead of {_n(a.perp_short_base)}",
        f"  - the article's plan, seen this way, is net {_n(plan.article_plan_net_delta_base)} tokens: "
        "a directional short of the loan that profits if the price falls",
        f"  - raising the USDT by selling {_n(plan.usdt_by_selling_tokens_base)} tokens instead leaves a perp "
        f"short of {_n(plan.usdt_by_selling_perp_short_base)} (negative = a perp long)",
    ]
    return "\n".join(lines)
