"""The events and commands built in C (`bot._native.fast_init`, installed by bot.domain) give the very
same replay as their dataclass __init__: the bundled pair's every log line and summary, once with the C
constructors and once with `fast_init` hidden before bot.domain is imported (the build without a C
compiler). tests/unit/test_native.py compares the two constructors object by object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "binance"
native = pytest.importorskip("bot._native")

HIDE = "import bot._native\ndel bot._native.fast_init\n"
REPLAY = """
import contextlib, io, json
import bot._native, bot.domain
from bot.cli import main
from bot.replay_cli import WALL_CLOCK_FIELDS

unstable = {"ts", "run_id", *WALL_CLOCK_FIELDS}
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = main(["replay", SPOT, PERP, "--json", "--log-format", "json"])
assert code == 0, code
print(hasattr(bot._native, "fast_init") and bot._native.fast_constructed(bot.domain.TradePrint))
for line in [line for line in err.getvalue().splitlines() if line.startswith("{")] + [out.getvalue()]:
    print(json.dumps({k: v for k, v in json.loads(line).items() if k not in unstable}, sort_keys=True))
"""


def replay(fast: bool) -> tuple[str, list[str]]:
    head = f"SPOT = {str(DATA / 'spot_btcusdt_20240808.gz')!r}\nPERP = {str(DATA / 'usdm_btcusdt_20240808.gz')!r}\n"
    code = head + ("" if fast else HIDE) + REPLAY
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    installed, *lines = done.stdout.splitlines()
    return installed, lines


def test_the_c_constructors_take_the_same_decisions_as_the_dataclasses() -> None:
    fast_installed, fast = replay(fast=True)
    plain_installed, plain = replay(fast=False)
    assert (fast_installed, plain_installed) == ("True", "False")  # each ran what it says
    summary = json.loads(plain[-1])
    assert summary["fills"] > 50 and summary["hedges"] > 10  # decisions worth comparing
    assert fast == plain  # every log line, then the summary
