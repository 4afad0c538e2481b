"""Fault injection for the mock exchange, switchable at run time and deterministic under a seed.

Two kinds of fault:
- per-message faults fire with a probability on each eligible message: `drop`, `duplicate` (public
  market data), `reject` (orders), `delayed_ack`, `duplicate_fill`;
- episodes arrive as Poisson events (`<name>_per_hour`, checked once per market step) or on demand
  with `trigger()`, and last `<name>_ms`: `disconnect`, `stale`, `crossed`, `restart`, and the
  one-shot `gap`.

The injector draws from its own RNG, so turning faults on or off does not change the random numbers
behind the market itself.
"""

from __future__ import annotations

import random
from typing import Literal, get_args

from bot.config import MockFaultConfig

Episode = Literal["gap", "disconnect", "stale", "crossed", "restart"]
EPISODES: tuple[Episode, ...] = get_args(Episode)
MESSAGE_FAULTS = ("drop", "duplicate", "reject", "delayed_ack", "duplicate_fill")
FAULT_NAMES = EPISODES + MESSAGE_FAULTS


class FaultInjector:
    def __init__(self, config: MockFaultConfig, rng: random.Random) -> None:
        self._params: dict[str, float] = {k: float(v) for k, v in config.model_dump().items()}
        self._rng = rng
        self._pending: list[tuple[Episode, int | None]] = []
        self.counts: dict[str, int] = dict.fromkeys(FAULT_NAMES, 0)
        """How many times each fault fired (an episode counts once)."""

    # ---- run-time control -------------------------------------------------------------------

    def set(self, **params: float) -> None:
        """Change fault parameters by config key, e.g. `set(drop_prob=0.05, disconnect_per_hour=2)`."""
        for key, value in params.items():
            if key not in self._params:
                raise KeyError(f"unknown fault parameter {key!r}; known: {sorted(self._params)}")
            value = float(value)
            if not value >= 0 or (key.endswith("_prob") and value > 1):
                raise ValueError(f"{key}: out of range: {value!r}")
            self._params[key] = value

    def get(self, key: str) -> float:
        return self._params[key]

    def disable_all(self) -> None:
        for key in self._params:
            if key.endswith(("_prob", "_per_hour")):
                self._params[key] = 0.0

    def trigger(self, name: str, duration_ms: int | None = None) -> None:
        """Start an episode at the exchange's next step (`advance` or `submit`)."""
        if name not in EPISODES:
            raise KeyError(f"unknown fault episode {name!r}; known: {list(EPISODES)}")
        if duration_ms is not None and duration_ms <= 0:
            raise ValueError("duration_ms must be > 0")
        self._pending.append((name, duration_ms))

    # ---- used by the exchange ---------------------------------------------------------------

    def take_triggered(self) -> list[tuple[Episode, int | None]]:
        pending, self._pending = self._pending, []
        return pending

    def due_episodes(self, step_s: float) -> list[Episode]:
        """Episodes that start during this step (Poisson arrivals at their configured rates)."""
        due: list[Episode] = []
        for name in EPISODES:
            rate = self._params[f"{name}_per_hour"]
            if rate > 0 and self._rng.random() < rate * step_s / 3600.0:
                due.append(name)
        return due

    def duration_ns(self, name: Episode, override_ms: int | None = None) -> int:
        if name == "gap":
            return 0
        ms = override_ms if override_ms is not None else self._params[f"{name}_ms"]
        return int(ms * 1_000_000)

    def gap_size(self) -> int:
        return int(self._params["gap_size"])

    def delayed_ack_ns(self) -> int:
        return int(self._params["delayed_ack_ms"] * 1_000_000)

    def roll(self, name: str) -> bool:
        """Does per-message fault `name` fire on this message?"""
        p = self._params[f"{name}_prob"]
        if p > 0 and self._rng.random() < p:
            self.counts[name] += 1
            return True
        return False

    def count(self, name: str) -> None:
        self.counts[name] += 1
