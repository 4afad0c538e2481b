"""The deal plan: the article's numbers (DOMAIN.md §2), the obligation-counting alternative, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import DealConfig, load_settings
from bot.core.deal import DealTerms, plan_deal
from bot.core.lp import ConstantProductLp
from bot.core.options import NS_PER_DAY

# Black-Scholes at S = 1, σ = 1, τ = 1: d1 = ln(1/K) + 0.5
#   K = 1.25: d1 = −0.223144 + 0.5 = 0.276856, N = 0.609055 → 60,905.5 tokens
#   K = 1.50: d1 = −0.405465 + 0.5 = 0.094535, N = 0.537658 → 53,765.8
#   K = 2.00: d1 = −0.693147 + 0.5 = −0.193147, N = 0.423422 → 42,342.2
OPTION_DELTA = 60_905.5 + 53_765.8 + 42_342.2  # 157,013.5


def default_plan():  # type: ignore[no-untyped-def]
    return plan_deal(DealTerms.from_config(DealConfig()))


def test_article_numbers() -> None:
    plan = default_plan()
    a = plan.article
    assert a.tokens_lent_base == 3_000_000
    assert (a.tokens_deployed_cex_base, a.tokens_deployed_lp_base, a.tokens_deployed_base) == (
        200_000,
        500_000,
        700_000,
    )
    assert (a.usdt_needed_cex_quote, a.usdt_needed_lp_quote, a.usdt_needed_quote) == (200_000, 500_000, 700_000)
    # 700k sold for the USDT + the idle 3M − 700k − 700k = 1.6M sold as an unhedged long
    assert (a.tokens_sold_for_usdt_base, a.tokens_sold_as_unhedged_long_base) == (700_000, 1_600_000)
    assert a.tokens_to_sell_base == 2_300_000
    assert a.tokens_held_base == 700_000
    assert a.option_delta_base == pytest.approx(OPTION_DELTA, abs=0.5)
    assert [round(t.delta, 4) for t in plan.tranches] == [0.6091, 0.5377, 0.4234]
    # held 700k (asks + LP) and the calls are long delta: the perp short offsets both
    assert a.perp_short_base == pytest.approx(700_000 + OPTION_DELTA, abs=0.5)
    assert a.net_delta_after_base == 0.0


def test_counting_the_return_obligation() -> None:
    plan = default_plan()
    c = plan.counting_return_obligation
    assert c.loan_obligation_base == -3_000_000
    assert c.tokens_to_sell_base == 0 and c.tokens_held_base == 3_000_000
    assert c.usdt_from_own_capital_quote == 700_000
    assert c.net_delta_before_perp_base == pytest.approx(OPTION_DELTA, abs=0.5)
    assert c.perp_short_base == pytest.approx(OPTION_DELTA, abs=0.5)  # only the calls
    # the article's plan with the obligation counted: 700k held − 3M owed + calls − perp short
    assert plan.article_plan_net_delta_base == pytest.approx(-3_000_000)
    assert plan.usdt_by_selling_tokens_base == 700_000
    assert plan.usdt_by_selling_perp_short_base == pytest.approx(OPTION_DELTA - 700_000, abs=0.5)


def test_small_loan_cannot_fund_the_usdt() -> None:
    cfg = DealConfig(tokens_lent_base=500_000)
    a = plan_deal(DealTerms.from_config(cfg)).article
    # 700k needed on the books: nothing left to sell, all the USDT from the MM's capital
    assert (a.tokens_to_sell_base, a.usdt_from_own_capital_quote, a.tokens_held_base) == (0, 700_000, 500_000)


def test_terms_for_the_portfolio() -> None:
    terms = DealTerms.from_config(DealConfig(), start_ns=10)  # no start_date: the given start
    calls = terms.call_options()
    assert [c.strike_px for c in calls] == [1.25, 1.5, 2.0]
    assert calls[0].expiry_ns == 10 + 365 * NS_PER_DAY
    assert terms.loan_return_ns == 10 + 365 * NS_PER_DAY
    assert [c.strike_px for c in terms.call_options(settled={1.5})] == [1.25, 2.0]  # a settled tranche is gone
    lp = DealTerms.from_config(DealConfig(dex_pool_model="formula")).lp_position()  # the simulated pool: test_dex_pool
    assert isinstance(lp, ConstantProductLp)
    assert lp.liquidity == pytest.approx(500_000)  # √(500k tokens × 500k USDT)
    assert lp.delta_base(1.0) == pytest.approx(500_000)
    assert lp.fee_rate == 0.003


def test_cli_json_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deal", "plan", "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    data = json.loads(last)
    assert set(data) == {"article", "counting_return_obligation", "sale_schedule"}
    a = data["article"]
    assert (a["tokens_deployed"], a["usdt_needed"], a["tokens_to_sell"]) == (700_000, 700_000, 2_300_000)
    assert a["option_delta"] == pytest.approx(OPTION_DELTA, abs=0.5)
    assert a["perp_short"] == pytest.approx(700_000 + OPTION_DELTA, abs=0.5)
    c = data["counting_return_obligation"]
    assert (c["tokens_to_sell"], c["article_plan_net_delta"]) == (0, -3_000_000)
    assert c["perp_short"] == pytest.approx(OPTION_DELTA, abs=0.5)


def test_cli_text_and_custom_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deal.toml"
    path.write_text(
        "[deal]\ntokens_lent_base = 1000000\ndex_pool_size_quote = 0\n"
        "[[deal.calls]]\nstrike_quote = 1.0\nquantity_base = 1000\nexpiry_days = 0.0001\n"
    )
    assert main(["deal", "plan", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "{" not in out  # no JSON without --json
    plan = plan_deal(DealTerms.from_config(load_settings(path).deal))
    # 200k on CEX asks; 800k − 200k sold (200k of it for the USDT); ATM call at expiry → delta ½
    assert (plan.article.tokens_deployed_base, plan.article.tokens_to_sell_base) == (200_000, 800_000)
    assert plan.article.option_delta_base == pytest.approx(500, abs=1)


def test_cli_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[deal]\ntokens_lent_base = -5\n")
    assert main(["deal", "plan", "--config", str(path)]) == 2
    assert "deal.tokens_lent_base" in capsys.readouterr().err


def test_sale_schedule_by_hand() -> None:
    from bot.core.deal import sale_schedule

    terms = DealTerms.from_config(DealConfig())
    # bids 100k + 50k + 50k within ±2 %: ρ = 10M quote per unit of relative price
    twap = sale_schedule(terms, 10, 0.001, None, 0.25, 5.0)
    assert (twap.days, twap.slice_base, twap.binding) == (10, 230_000, "twap")
    assert twap.impact_frac == pytest.approx(230_000 / (2 * 10_000_000))  # 1.15 %
    assert twap.expected_cost_quote == pytest.approx(2_300_000 * (0.0115 + 0.001))  # 28,750
    assert [twap.unsold_after_day(d) for d in (0, 1, 10, 11)] == [2_300_000, 2_070_000, 0, 0]
    # at once: 2.3M into 10M/unit reaches 23 % below the mid; the 5 % floor caps a day at 500k
    floor = sale_schedule(terms, 1, 0.001, None, 0.25, 5.0)
    assert (floor.binding, floor.slice_base, floor.days) == ("floor", 500_000, 5)
    # 25 % of 400k of daily volume: 100k a day, 23 days (the last one sells the remaining 100k)
    capped = sale_schedule(terms, 10, 0.001, 400_000, 0.25, 5.0)
    assert (capped.binding, capped.slice_base, capped.days) == ("participation", 100_000, 23)
    assert capped.expected_cost_quote == pytest.approx(2_300_000 * (100_000 / 20_000_000 + 0.001))


def test_cli_shows_the_sale_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deal", "plan", "--json"]) == 0
    captured = capsys.readouterr()
    out = captured.err  # with --json the text goes to stderr, stdout is the JSON alone
    assert "2,300,000 tokens over 10 days, 230,000 a day (TWAP over 10 days)" in out
    assert "expected cost 28,750 USDT: impact 1.15 % + fee 0.10 % per slice" in out
    sched = json.loads(captured.out)["sale_schedule"]
    assert (sched["days"], sched["expected_cost_quote"], sched["perp_covers_unsold"][:2]) == (
        10,
        28_750,
        [2_300_000, 2_070_000],
    )
