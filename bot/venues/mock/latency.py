"""Per-message latency sampling for the mock exchange."""

from __future__ import annotations

import math
import random

NS_PER_MS = 1_000_000


class Latency:
    """Lognormal latency with a median and a log-sigma (sigma 0 gives a constant), capped at `max_ms`."""

    def __init__(self, rng: random.Random, median_ms: float, sigma: float, max_ms: float) -> None:
        self._rng = rng
        self._median_ms = median_ms
        self._sigma = sigma
        self._max_ms = max_ms

    def sample_ns(self) -> int:
        if self._median_ms <= 0:
            return 0
        ms = self._median_ms if self._sigma == 0 else self._median_ms * math.exp(self._sigma * self._rng.gauss(0, 1))
        return int(min(ms, self._max_ms) * NS_PER_MS)
