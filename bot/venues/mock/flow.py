"""The mock's "hawkes" flow model: the order-flow features real markets have (docs/mock-market.md).

Each piece draws only from the RNG handed in, so a seed fixes the flow:

* `HawkesClock`: self-exciting arrivals. Intensity lambda(t) = mu + sum_i n*beta*exp(-beta*(t - t_i)):
  every arrival raises the rate by n*beta, decaying at beta per second; n (< 1) is the branching ratio,
  the mean number of arrivals each one triggers, so the mean rate is mu / (1 - n) (Hawkes 1971).
  Simulated exactly for the exponential kernel (Dassios & Zhao 2013, "Exact simulation of Hawkes
  process with exponentially decaying intensity", Electron. Commun. Probab. 18(62)): the wait is the
  smaller of an exponential(mu) wait and the kernel's own first event time.
* `SignProcess`: long-memory order signs, from metaorders (Lillo, Mike & Farmer 2005, "Theory for
  long memory in supply and demand", Phys. Rev. E 71): a hidden large order of random sign is split
  into pieces, its length Pareto with tail alpha, so the signs' autocorrelation decays like
  lag^-(alpha - 1). A share `meta_share` of arrivals are pieces of the current metaorder, the rest
  fresh coin flips.
* `SizeLaw`: taker sizes with a lognormal body and a power-law tail: below the 95th percentile
  lognormal (median m, log-sigma s), above it Pareto with tail index alpha (P(size > x) ~ x^-alpha),
  capped at `max_base`.
* `Impact`: each taker order pushes the fair value by `impact_bps * sqrt(size / median)` in its
  direction (the square-root law, Toth et al. 2011, "Anomalous price impact and the critical nature of
  liquidity in financial markets", Phys. Rev. X 1); the push arrives with time constant `arrival_s`,
  a share `permanent_share` of it stays and the rest decays with half-life `decay_s`.
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist

_STD_NORMAL = NormalDist()
TAIL_QUANTILE = 0.95  # where the size law's Pareto tail starts


class HawkesClock:
    """Waits between arrivals of an exponential-kernel Hawkes process (see the module docstring)."""

    def __init__(self, rng: random.Random, base_per_s: float, branching: float, decay_per_s: float) -> None:
        if not 0 <= branching < 1:
            raise ValueError(f"branching ratio must be in [0, 1), got {branching}")
        self._rng = rng
        self.base_per_s = base_per_s
        self._jump = branching * decay_per_s  # intensity added by each arrival
        self._decay = decay_per_s
        self._excess = 0.0  # intensity above the base right after the last arrival

    @property
    def mean_rate_per_s(self) -> float:
        return self.base_per_s / (1.0 - self._jump / self._decay) if self._decay > 0 else self.base_per_s

    def next_wait_s(self) -> float:
        """The time to the next arrival (and the state moved to it)."""
        rng = self._rng
        wait = rng.expovariate(self.base_per_s) if self.base_per_s > 0 else math.inf
        if self._excess > 0:
            d = 1.0 + self._decay * math.log(1.0 - rng.random()) / self._excess
            if d > 0:
                wait = min(wait, -math.log(d) / self._decay)
        if math.isinf(wait):
            return wait
        self._excess = self._excess * math.exp(-self._decay * wait) + self._jump
        return wait


class SignProcess:
    """+1 / -1 signs with long memory from metaorders (see the module docstring)."""

    def __init__(self, rng: random.Random, meta_share: float, len_alpha: float, len_min: float) -> None:
        self._rng = rng
        self.meta_share = meta_share
        self._alpha = len_alpha
        self._len_min = len_min
        self._sign = 1
        self._left = 0

    def next_sign(self) -> int:
        rng = self._rng
        if rng.random() >= self.meta_share:
            return 1 if rng.random() < 0.5 else -1
        if self._left <= 0:  # a new metaorder: random sign, Pareto length (pieces)
            self._sign = 1 if rng.random() < 0.5 else -1
            self._left = math.ceil(self._len_min * (1.0 - rng.random()) ** (-1.0 / self._alpha))
        self._left -= 1
        return self._sign


class SizeLaw:
    """Lognormal body below the 95th percentile, Pareto tail above it, capped (base units)."""

    def __init__(self, median_base: float, log_sigma: float, tail_alpha: float, max_base: float) -> None:
        self.median_base = median_base
        self._sigma = log_sigma
        self._tail_alpha = tail_alpha
        self._max = max_base
        self.tail_start_base = median_base * math.exp(log_sigma * _STD_NORMAL.inv_cdf(TAIL_QUANTILE))

    def quantile(self, u: float) -> float:
        """The size at probability `u` in (0, 1): the inverse of the law's CDF (then capped)."""
        if u < TAIL_QUANTILE:
            size = self.median_base * math.exp(self._sigma * _STD_NORMAL.inv_cdf(max(u, 1e-12)))
        else:
            size = self.tail_start_base * ((1.0 - TAIL_QUANTILE) / max(1.0 - u, 1e-300)) ** (1.0 / self._tail_alpha)
        return min(size, self._max)

    def sample(self, rng: random.Random) -> float:
        return self.quantile(rng.random())


class Impact:
    """The fair value's offset from the taker flow, as a log-price (see the module docstring)."""

    def __init__(self, step_s: float, arrival_s: float, decay_s: float, permanent_share: float) -> None:
        self._arrive = 1.0 - math.exp(-step_s / arrival_s) if arrival_s > 0 else 1.0
        self._keep = math.exp(-math.log(2.0) * step_s / decay_s) if decay_s > 0 else 0.0
        self._permanent_share = permanent_share
        self._pending = 0.0  # pushed, not arrived yet
        self._permanent = 0.0
        self._transient = 0.0

    @property
    def log_offset(self) -> float:
        return self._permanent + self._transient

    def push(self, sign: int, impact_bps: float, size_over_median: float) -> None:
        self._pending += sign * impact_bps / 10_000.0 * math.sqrt(size_over_median)

    def shift(self, log_delta: float) -> None:
        """A permanent move of the fair value now (a depleted queue, `MockExchange._on_depletion`)."""
        self._permanent += log_delta

    def step(self) -> None:
        arrived = self._pending * self._arrive
        self._pending -= arrived
        self._permanent += arrived * self._permanent_share
        self._transient = self._transient * self._keep + arrived * (1.0 - self._permanent_share)
