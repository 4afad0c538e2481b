"""`mmbot simulate toxicity`: the markout arithmetic by hand, and a short seeded run of the experiment."""

from __future__ import annotations

import argparse
import json

import pytest

from bot.cli import main
from bot.config import RiskToxicityConfig, Settings, load_settings
from bot.sim.toxicity import (
    HEADLINE_HORIZON_S,
    RESPONSE_OFF,
    FairValueTape,
    FillRecord,
    cmd_simulate_toxicity,
    compare,
    horizon_stats,
    reduction_pct,
    scenario_settings,
)
from bot.venues.mock.presets import classic_market

S = 1_000_000_000


def _tape() -> FairValueTape:
    tape = FairValueTape()
    tape.record(0, 100.0)
    tape.record(S, 100.10)  # fair value steps up at 1 s ...
    tape.record(3 * S, 99.95)  # ... and down at 3 s
    return tape


def test_fair_value_tape_is_a_step_function() -> None:
    tape = _tape()
    assert tape.at(0) == 100.0
    assert tape.at(S - 1) == 100.0  # the value prevailing just before the step
    assert tape.at(S) == 100.10
    assert tape.at(2 * S) == 100.10
    assert tape.at(10 * S) == 99.95
    with pytest.raises(ValueError):
        tape.at(-1)


def test_markouts_and_adverse_selection_by_hand() -> None:
    tape = _tape()
    fills = [
        FillRecord(0, +1, 100.00, 2.0),  # bought 2 at 100.00
        FillRecord(S // 2, -1, 100.02, 1.0),  # sold 1 at 100.02
        FillRecord(2 * S, -1, 100.12, 0.5),  # sold 0.5 at 100.12
    ]
    # h = 0 (spread captured): (100 − 100)·2 = 0; (100.02 − 100)·1 = 0.02; (100.12 − 100.10)·0.5 = 0.01
    edge = horizon_stats(fills, tape, 0.0, end_ns=10 * S)
    assert (edge.fills, edge.total_quote, edge.loss_quote) == pytest.approx((3, 0.03, 0.0))
    # h = 1 s: marks at 1 s, 1.5 s, 3 s → 100.10, 100.10, 99.95
    #   buy  (100.10 − 100.00)·2 = +0.20; sell (100.02 − 100.10)·1 = −0.08; sell (100.12 − 99.95)·0.5 = +0.085
    one = horizon_stats(fills, tape, 1.0, end_ns=10 * S)
    assert (one.fills, one.total_quote, one.loss_quote) == pytest.approx((3, 0.205, 0.08))
    # h = 5 s: marks at 5 s, 5.5 s, 7 s → 99.95 each
    #   buy −0.10; sell +0.07; sell +0.085 → loss 0.10
    five = horizon_stats(fills, tape, 5.0, end_ns=10 * S)
    assert (five.total_quote, five.loss_quote) == pytest.approx((0.055, 0.10))
    # a mark after the end of the run is left out: only the first fill resolves by 5 s
    cut = horizon_stats(fills, tape, 5.0, end_ns=5 * S)
    assert (cut.fills, cut.total_quote, cut.loss_quote) == pytest.approx((1, -0.10, 0.10))


@pytest.mark.parametrize(("off", "on", "expected"), [(10.0, 6.0, 40.0), (4.0, 5.0, -25.0), (0.0, 1.0, 0.0)])
def test_reduction_pct(off: float, on: float, expected: float) -> None:
    assert reduction_pct(off, on) == pytest.approx(expected)


def _settings(classic: bool = False) -> Settings:
    """The default config with the toxicity section at the code defaults (the guard as shipped);
    `classic`: on the embedded default's market from before issue #19 (`classic_market`)."""
    base = load_settings(None)
    update: dict[str, object] = {"risk": base.risk.model_copy(update={"toxicity": RiskToxicityConfig()})}
    if classic:
        update["mock"] = classic_market(base.mock)
    return base.model_copy(update=update)


def test_the_two_runs_differ_only_in_the_toxic_flow_response() -> None:
    base = _settings()
    off = scenario_settings(base, seed=7, guard_on=False)
    on = scenario_settings(base, seed=7, guard_on=True)
    assert off.mock == on.mock and off.mock.seed == 7 and off.mock.spot.informed_share > 0
    assert (off.risk.toxicity.widen_bps, off.risk.toxicity.skew_bps, off.risk.toxicity.predict_share) == (0, 0, 0)
    assert on.risk.toxicity == base.risk.toxicity
    for name in ("quoter", "hedger", "estimator", "runtime", "market"):
        assert getattr(off, name) == getattr(on, name)
    fields = set(type(off.risk.toxicity).model_fields) - set(RESPONSE_OFF)
    assert all(getattr(off.risk.toxicity, f) == getattr(on.risk.toxicity, f) for f in fields)


def test_guard_cuts_adverse_selection_and_the_seed_fixes_the_result() -> None:
    # Pinned to the classic market the guard was built and tuned on: on the default's hawkes "altcoin"
    # market (issue #19) its self-check holds the response off in 3 minutes (guard on = guard off on
    # seeds 1 and 2), which is issue #16's to answer, not a property of the guard's mechanism.
    base = _settings(classic=True)
    first = compare(base, seed=1, duration_s=180.0)
    off, on = first["guard_off"], first["guard_on"]
    assert off["fills"] > 0 and on["fills"] > 0
    assert on["risk_events"].get("risk.toxic", 0) > 0  # the guard fired, and was logged as risk.*
    assert on["adverse_selection_loss"] < off["adverse_selection_loss"]
    assert first["reduction_pct"] > 0.0
    # and not by trading less (issue #16 round three, docs/research/toxicity-guard.md): the loss per unit of notional
    # falls by >= 15 % while the guard keeps at least half the guard-off volume (the response that widened each
    # flagged side by its own intensity kept 37 % of the fills here, centred on the current mid)
    assert reduction_pct(off["adverse_selection_bps"], on["adverse_selection_bps"]) >= 15.0
    assert on["volume_quote"] >= 0.5 * off["volume_quote"]
    assert compare(base, seed=1, duration_s=180.0) == first


def test_command_prints_the_json_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(config=None, seed=2, minutes=0.5, json=True, log_format="json", log_level="WARNING")
    assert cmd_simulate_toxicity(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    payload = json.loads(last)
    assert payload["seed"] == 2
    for run in ("guard_off", "guard_on"):
        assert {"adverse_selection_loss", "pnl", "fills", "spread_captured"} <= set(payload[run])
    assert payload["scenario"]["markout_horizon_s"] == HEADLINE_HORIZON_S
    assert "reduction_pct" in payload and "spread_given_up" in payload


@pytest.mark.parametrize("minutes", ["0", "inf", "nan"])
def test_command_refuses_a_bad_duration(minutes: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "toxicity", "--minutes", minutes]) == 2
    assert "Traceback" not in capsys.readouterr().err
