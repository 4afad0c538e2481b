"""A soak with restarts must not keep the engines of earlier runs alive (issue #20's memory growth).

Each restart builds a new engine; the stopped one is the checker's until the new one takes over, and
nothing may hold any engine older than that. The first engine was held by `run_soak` itself for the
whole soak: one engine with its bounded windows full, counted by `memory_growth` against the bot.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

import bot.sim.soak as soak
from bot.config import load_settings
from bot.core.engine import Engine


def test_a_restart_leaves_no_engine_of_an_earlier_run_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[weakref.ref[Engine]] = []
    alive_at_restart: list[list[int]] = []
    real_build, real_restart = soak.build_engine, soak.restart

    def tracked_build(*args: Any, **kwargs: Any) -> Engine:
        engine = real_build(*args, **kwargs)
        built.append(weakref.ref(engine))
        return engine

    def checked_restart(engine: Engine, venue: Any, ledger: Any) -> dict[str, Any]:
        gc.collect()
        alive_at_restart.append([i for i, ref in enumerate(built) if ref() is not None])
        return real_restart(engine, venue, ledger)

    monkeypatch.setattr(soak, "build_engine", tracked_build)
    monkeypatch.setattr(soak, "restart", checked_restart)
    report = soak.run_soak(load_settings(), hours=0.05, faults=(), seed=1, restarts=3).report()
    assert report["violation_counts"] == {}
    assert len(built) == 4
    # at restart k (k = 1, 2, 3): run k's new engine and run k-1's stopped one, nothing older
    assert alive_at_restart == [[0, 1], [1, 2], [2, 3]]
