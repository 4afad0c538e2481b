"""The events and commands built in C (`bot._native.fast_init`, installed by bot.domain) give the very
same replay as their dataclass __init__: the bundled pair's every log line and summary, once with the C
constructors and once with `fast_init` hidden before bot.domain is imported (the build without a C
compiler). tests/unit/test_native.py compares the two constructors object by object."""

from __future__ import annotations

import json

import pytest
from pair_replay import replay_pair

native = pytest.importorskip("bot._native")

HIDE = "import bot._native\ndel bot._native.fast_init\n"
PROBE = "hasattr(bot._native, 'fast_init') and bot._native.fast_constructed(bot.domain.TradePrint)"


def replay(fast: bool) -> tuple[str, list[str]]:
    return replay_pair(("" if fast else HIDE) + "import bot._native, bot.domain\n", PROBE)


def test_the_c_constructors_take_the_same_decisions_as_the_dataclasses() -> None:
    fast_installed, fast = replay(fast=True)
    plain_installed, plain = replay(fast=False)
    assert (fast_installed, plain_installed) == ("True", "False")  # each ran what it says
    summary = json.loads(plain[-1])
    assert summary["fills"] > 50 and summary["hedges"] > 10  # decisions worth comparing
    assert fast == plain  # every log line, then the summary
