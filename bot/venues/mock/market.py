"""The mock exchange's hidden fair value: spot path with lookahead, and the perp basis.

The spot fair value lives on a fixed step grid and is generated `lookahead_steps` ahead of the
present, so informed takers can "peek" at where it will be `horizon_s` from now: that is what makes
their flow toxic for whoever quotes stale prices. Everything is drawn from the RNG handed in, so a
seed fixes the whole path.
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Literal


class FairValuePath:
    """Arithmetic or geometric Brownian motion with optional Poisson jumps, sampled every `step_s`.

    `sigma_px_per_sqrt_s` is in price units per √second; for "gbm" it is divided by `initial_px` to
    give the relative volatility, so both processes start with the same local volatility.
    """

    def __init__(
        self,
        rng: random.Random,
        initial_px: float,
        sigma_px_per_sqrt_s: float,
        process: Literal["abm", "gbm"],
        step_s: float,
        lookahead_steps: int,
        jumps_per_hour: float,
        jump_sigma_bps: float,
        floor_px: float,
    ) -> None:
        self._rng = rng
        self._process = process
        self._floor_px = floor_px
        self._sd_abm_px = sigma_px_per_sqrt_s * math.sqrt(step_s)
        sigma_rel = sigma_px_per_sqrt_s / initial_px
        self._sd_gbm = sigma_rel * math.sqrt(step_s)
        self._drift_gbm = -0.5 * sigma_rel * sigma_rel * step_s  # keeps E[S] constant
        self._jump_prob = jumps_per_hour * step_s / 3600.0
        self._jump_sd = jump_sigma_bps / 10_000.0
        self._path: deque[float] = deque([initial_px])
        for _ in range(lookahead_steps):
            self._path.append(self._next(self._path[-1]))

    def _next(self, px: float) -> float:
        rng = self._rng
        jump = rng.gauss(0.0, self._jump_sd) if self._jump_prob > 0 and rng.random() < self._jump_prob else 0.0
        if self._process == "gbm":
            nxt = px * math.exp(self._drift_gbm + self._sd_gbm * rng.gauss(0.0, 1.0) + jump)
        else:
            nxt = px + self._sd_abm_px * rng.gauss(0.0, 1.0) + px * jump
        return max(nxt, self._floor_px)

    @property
    def now_px(self) -> float:
        return self._path[0]

    @property
    def future_px(self) -> float:
        """The fair value `lookahead_steps` steps from now."""
        return self._path[-1]

    def step(self) -> None:
        self._path.popleft()
        self._path.append(self._next(self._path[-1]))


class Basis:
    """Perp premium over spot as a fraction (Ornstein-Uhlenbeck around `mean_bps`)."""

    def __init__(
        self, rng: random.Random, mean_bps: float, vol_bps_per_sqrt_s: float, halflife_s: float, step_s: float
    ) -> None:
        self._rng = rng
        self._mean = mean_bps / 10_000.0
        self._keep = math.exp(-math.log(2.0) * step_s / halflife_s)
        # exact OU discretisation: stationary std = vol / sqrt(2θ)
        theta = math.log(2.0) / halflife_s
        self._sd = (vol_bps_per_sqrt_s / 10_000.0) * math.sqrt((1.0 - self._keep**2) / (2.0 * theta))
        self.value = self._mean

    def step(self) -> None:
        self.value = self._mean + (self.value - self._mean) * self._keep + self._sd * self._rng.gauss(0.0, 1.0)
