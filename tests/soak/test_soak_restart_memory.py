"""A soak with restarts must not keep the engines of earlier runs alive (issue #20's memory growth).

Each restart builds a new engine; the stopped one is the checker's until the new one takes over, and
nothing may hold any engine older than that. The first engine was held by `run_soak` itself for the
whole soak: one engine with its bounded windows full, counted by `memory_growth` against the bot.

The live engines are found among the collector's objects, not by weak references: a mypyc-compiled
`Engine` (`make compiled`) is a native class without a `__weakref__` slot. An engine is known by its
address; a later engine at the same address means the earlier one was freed, so the address names
the latest engine built there.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

import bot.sim.soak as soak
from bot.config import load_settings
from bot.core.engine import Engine


def alive_engines(run_at: dict[int, int]) -> list[int]:
    """The runs (build order) whose engines are still alive, after a full collection."""
    gc.collect()
    return sorted(run_at[id(obj)] for obj in gc.get_objects() if type(obj) is Engine and id(obj) in run_at)


def test_a_restart_leaves_no_engine_of_an_earlier_run_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    run_at: dict[int, int] = {}  # an engine's address -> the run that built the latest engine there
    built: list[int] = []  # the engines' addresses, in build order
    alive_at_restart: list[list[int]] = []
    real_build, real_restart = soak.build_engine, soak.restart

    def tracked_build(*args: Any, **kwargs: Any) -> Engine:
        engine = real_build(*args, **kwargs)
        assert gc.is_tracked(engine)  # else `gc.get_objects` could not see it
        run_at[id(engine)] = len(built)
        built.append(id(engine))
        return engine

    def checked_restart(engine: Engine, venue: Any, ledger: Any) -> dict[str, Any]:
        alive_at_restart.append(alive_engines(run_at))
        return real_restart(engine, venue, ledger)

    monkeypatch.setattr(soak, "build_engine", tracked_build)
    monkeypatch.setattr(soak, "restart", checked_restart)
    report = soak.run_soak(load_settings(), hours=0.05, faults=(), seed=1, restarts=3).report()
    assert report["violation_counts"] == {}
    assert len(built) == 4
    # at restart k (k = 1, 2, 3): run k's new engine and run k-1's stopped one, nothing older
    assert alive_at_restart == [[0, 1], [1, 2], [2, 3]]
