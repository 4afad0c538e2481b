"""The deal's calendar: absolute dates in the config, the engine's clock passed in, and restarts that
read where the deal stood from the ledger (issue #15: a restart on day 200 re-priced the calls as
fresh one-year options: 157,013 tokens of delta instead of 114,010)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from bot.app import _deal_state, build_engine
from bot.cli import main
from bot.config import DealConfig, load_settings
from bot.core.deal import DealEvent, DealState, DealTerms, date_ns, plan_deal
from bot.core.options import NS_PER_DAY, call_greeks
from bot.domain import Instrument, InstrumentKind
from bot.runtime.ledger import Ledger
from tests.conftest import config_error

SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.0001, lot_size=1.0)
PERP = Instrument("TOKEN/USDT:USDT", InstrumentKind.PERP, "TOKEN", "USDT", tick_size=0.0001, lot_size=1.0)
START = datetime.date(2026, 1, 1)
STRIKES = (1.25, 1.5, 2.0)


def bs_delta_base(spot_px: float, days_left: float, vol: float = 1.0) -> float:
    """The three article tranches' delta by hand from N(d1), independent of the deal module."""
    return sum(100_000 * call_greeks(spot_px, k, vol, days_left / 365.0).delta for k in STRIKES)


def article_settings(tmp_path: Path, dated: bool):  # type: ignore[no-untyped-def]
    deal = {
        "apply_to_portfolio": True,
        "token_price_quote": 1.0,
        "implied_vol_annual": 1.0,
        "dex_pool_size_quote": 0.0,
        "calls": [{"strike_quote": k, "quantity_base": 100_000.0, "expiry_days": 365.0} for k in STRIKES],
    }
    if dated:
        deal["start_date"] = START.isoformat()
    return load_settings(None, {"deal": deal, "ledger": {"path": str(tmp_path / "l.sqlite")}})


def option_delta_at(settings, now_ns: int, state: DealState | None) -> float:  # type: ignore[no-untyped-def]
    engine = build_engine(settings, SPOT, PERP, now_ns, venue_name="mock", deal_state=state)
    engine.portfolio.mark_underlying(1.0, now_ns, 1.0)
    return engine.portfolio.option_delta_base()


def test_the_hand_numbers() -> None:
    # N(d1) at S = 1, σ = 1: τ = 1 → 157,013; τ = 165/365 → 114,010 (the figures)
    assert bs_delta_base(1.0, 365) == pytest.approx(157_013.5, abs=0.5)
    assert bs_delta_base(1.0, 165) == pytest.approx(114_009.5, abs=0.5)


def test_restart_on_day_200_with_a_configured_start_date(tmp_path: Path) -> None:
    settings = article_settings(tmp_path, dated=True)
    day200 = date_ns(START) + 200 * NS_PER_DAY
    # the engine is built on day 200 (its own start_ns is day 200): the calls keep their calendar
    assert option_delta_at(settings, day200, None) == pytest.approx(114_009.5, abs=0.5)
    assert option_delta_at(settings, day200, None) == pytest.approx(bs_delta_base(1.0, 165), rel=1e-12)


def test_restart_on_day_200_reads_the_first_runs_start_from_the_ledger(tmp_path: Path) -> None:
    settings = article_settings(tmp_path, dated=False)  # no start_date: the first run starts the deal
    t0 = date_ns(START) + 12_345
    with Ledger(tmp_path / "l.sqlite") as ledger:
        first = _deal_state(settings, ledger, "run1", t0)
    assert first is not None and first.start_ns == t0
    assert option_delta_at(settings, t0, first) == pytest.approx(157_013.5, abs=0.5)
    day200 = t0 + 200 * NS_PER_DAY
    with Ledger(tmp_path / "l.sqlite") as ledger:  # a new process: everything from the file
        again = _deal_state(settings, ledger, "run2", day200)
        assert [e.kind for e in ledger.deal_events()] == ["started"]  # the second run starts nothing
    assert again is not None and again.start_ns == t0
    assert option_delta_at(settings, day200, again) == pytest.approx(114_009.5, abs=0.5)
    # without the ledger's start the same run would price fresh one-year calls (the old bug)
    assert option_delta_at(settings, day200, None) == pytest.approx(157_013.5, abs=0.5)


def test_settled_tranches_stay_settled_across_a_restart(tmp_path: Path) -> None:
    settings = article_settings(tmp_path, dated=True)
    expiry = date_ns(START) + 365 * NS_PER_DAY
    with Ledger(tmp_path / "l.sqlite") as ledger:
        ledger.record_deal_event("r1", DealEvent("sold", date_ns(START), 2_300_000, 0.97))
        exercised = DealEvent("exercised", expiry, 100_000, 1.8, strike_px=1.25, amount_quote=55_000)
        ledger.record_deal_event("r1", exercised)
        ledger.record_deal_event("r1", exercised)
        ledger.record_deal_event("r1", DealEvent("lapsed", expiry, 100_000, 1.8, strike_px=2.0))
    with Ledger(tmp_path / "l.sqlite") as ledger:
        state = DealState.from_events(ledger.deal_events())
    assert state.sold_base == 2_300_000 and state.sold_avg_px == pytest.approx(0.97)
    assert state.settled_strikes == {1.25, 2.0}
    assert (state.exercised_base, state.exercise_payoff_quote) == (100_000, 55_000)  # a repeated row pays once
    day200 = date_ns(START) + 200 * NS_PER_DAY
    expected = 100_000 * call_greeks(1.0, 1.5, 1.0, 165 / 365).delta  # only the 1.50 tranche is held
    assert option_delta_at(settings, day200, state) == pytest.approx(expected, rel=1e-12)


def test_plan_valued_later_and_dates_in_the_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = DealConfig(start_date=START)
    day200 = date_ns(START) + 200 * NS_PER_DAY
    plan = plan_deal(DealTerms.from_config(cfg), at_ns=day200)
    assert plan.article.option_delta_base == pytest.approx(114_009.5, abs=0.5)
    assert [t.expiry_days for t in plan.tranches] == [165.0] * 3
    path = tmp_path / "d.toml"
    path.write_text('[deal]\nstart_date = "2026-01-01"\n')
    assert main(["deal", "plan", "--config", str(path), "--at", "2026-07-20"]) == 0
    out = capsys.readouterr().out
    assert "starts 2026-01-01, loan returned 2027-01-01, valued on 2026-07-20" in out
    assert "165 d left (expires 2027-01-01)" in out


def test_expiry_dates_and_loan_return_date() -> None:
    cfg = DealConfig(
        start_date=START,
        loan_return_date=datetime.date(2027, 7, 1),
        calls=[{"strike_quote": 2.0, "quantity_base": 10.0, "expiry_date": "2026-12-31"}],  # type: ignore[list-item]
    )
    terms = DealTerms.from_config(cfg, start_ns=999)  # the configured date wins over a run's start
    assert terms.start_ns == date_ns(START)
    assert terms.calls[0].expiry_ns == date_ns(datetime.date(2026, 12, 31))
    assert terms.loan_return_ns == date_ns(datetime.date(2027, 7, 1))


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[deal]\ndex_token_fraction = 0.8\n", "deal.dex_token_fraction"),
        ('[deal]\nstart_date = "2026-13-01"\n', "deal.start_date"),
        ("[[deal.calls]]\nstrike_quote = 1\nquantity_base = 1\n", "deal.calls.0"),
        (
            '[[deal.calls]]\nstrike_quote = 1\nquantity_base = 1\nexpiry_days = 5\nexpiry_date = "2027-01-01"\n',
            "deal.calls.0",
        ),
        ('[deal]\nstart_date = "2026-01-01"\nloan_return_date = "2025-01-01"\n', "deal"),
    ],
)
def test_bad_deal_dates_and_pool_are_refused_naming_the_field(tmp_path: Path, toml: str, field: str) -> None:
    message = config_error(tmp_path, toml)
    assert message.startswith(f"config error: {field}"), message
    assert "\n" not in message


def test_deal_event_kind_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown deal event kind"):
        DealEvent("sould", 0)
