"""bot/sim/toxicity_eval: the held-out seed sets and the per-set summary (mean, worst seed, the bar)."""

from __future__ import annotations

import argparse

import pytest

from bot.sim.toxicity_eval import (
    ALTCOIN_EVALUATION_SEEDS,
    EVALUATION_SEEDS,
    SECOND_ALTCOIN_EVALUATION_SEEDS,
    THIRD_ALTCOIN_EVALUATION_SEEDS,
    TUNING_SEEDS,
    parse_seeds,
    seed_row,
    summarise,
)


def test_evaluation_seeds_were_never_tuning_seeds() -> None:
    assert len(EVALUATION_SEEDS) >= 20
    assert not set(EVALUATION_SEEDS) & set(TUNING_SEEDS)
    assert len(ALTCOIN_EVALUATION_SEEDS) >= 20
    assert not set(ALTCOIN_EVALUATION_SEEDS) & (set(TUNING_SEEDS) | set(EVALUATION_SEEDS))
    assert len(SECOND_ALTCOIN_EVALUATION_SEEDS) >= 20
    earlier = set(TUNING_SEEDS) | set(EVALUATION_SEEDS) | set(ALTCOIN_EVALUATION_SEEDS)
    assert not set(SECOND_ALTCOIN_EVALUATION_SEEDS) & earlier
    assert len(THIRD_ALTCOIN_EVALUATION_SEEDS) >= 20
    earlier |= set(SECOND_ALTCOIN_EVALUATION_SEEDS)
    assert not set(THIRD_ALTCOIN_EVALUATION_SEEDS) & earlier


def test_parse_seeds() -> None:
    assert parse_seeds("1,3,7-9") == (1, 3, 7, 8, 9)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_seeds("1-x")


def _payload(seed: int, loss_off: float, loss_on: float, bps_off: float, bps_on: float, given: float) -> dict:
    run = {"pnl": 0.0, "fills": 1}
    return {
        "seed": seed,
        "reduction_pct": 100.0 * (loss_off - loss_on) / loss_off,
        "guard_off": {**run, "adverse_selection_bps": bps_off},
        "guard_on": {**run, "adverse_selection_bps": bps_on},
        "adverse_selection_saved": loss_off - loss_on,
        "spread_given_up": given,
    }


def test_the_bar_and_the_worst_seed() -> None:
    rows = [
        seed_row(_payload(1, 10.0, 5.0, 2.0, 1.0, 1.0)),  # 50 % total, 50 % per unit: meets the bar
        seed_row(_payload(2, 10.0, 5.0, 2.0, 1.8, 1.0)),  # per unit 10 %: below
        seed_row(_payload(3, 10.0, 8.0, 2.0, 1.0, 1.0)),  # total 20 %: below
        seed_row(_payload(4, 10.0, 5.0, 2.0, 1.0, 6.0)),  # gave up 6 to save 5: below
    ]
    assert [r["meets_bar"] for r in rows] == [True, False, False, False]
    s = summarise(rows)
    assert s["below_bar"] == [2, 3, 4] and s["spread_given_up_above_saved"] == [4]
    assert s["bps_reduction_pct"] == {"mean": pytest.approx(40.0), "worst": 10.0, "worst_seed": 2}
    assert s["reduction_pct"]["worst_seed"] == 3
