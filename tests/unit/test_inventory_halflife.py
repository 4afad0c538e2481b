"""The inventory half-life measure of bot/sim/inventory.py against series with a known answer."""

from __future__ import annotations

import math
import random

import pytest

from bot.sim.inventory import ar1_halflife_s


def test_halflife_of_a_pure_decay_is_exact() -> None:
    rho = 0.5 ** (1 / 30)  # halves every 30 samples
    series = [10.0 * rho**i for i in range(200)]
    assert ar1_halflife_s(series) == pytest.approx(30.0, rel=1e-9)
    assert ar1_halflife_s(series, step_s=0.5) == pytest.approx(15.0, rel=1e-9)


def test_halflife_of_a_noisy_ar1_is_recovered() -> None:
    rng = random.Random(1)
    rho, q, series = 0.95, 0.0, []
    for _ in range(20_000):
        q = rho * q + rng.gauss(0.0, 1.0)
        series.append(q)
    assert ar1_halflife_s(series) == pytest.approx(math.log(2) / -math.log(rho), rel=0.1)


def test_no_reversion_gives_none() -> None:
    assert ar1_halflife_s([1.0, 2.0, 3.0, 4.0]) is None  # growing: rho > 1
    assert ar1_halflife_s([0.0, 0.0, 0.0]) is None  # flat at target: nothing to fit
