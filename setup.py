"""The optional C extension `bot._native` (see bot/_native.c); everything else is in pyproject.toml.

`optional=True`: where no C compiler is found (e.g. a slim container), the install still succeeds and
the bot runs the same Python reference code, only slower.

`MMBOT_MYPYC=1` (`make compiled`): also compile the pure core below with mypyc, the replay's hot path
(profiling: the interpreter is the cost, spread over every module of the engine, no single hot spot).
The .py files stay the source of truth and the default build runs them; a compiled build gives the same
decisions (tests/integration/test_compiled_core.py compares every log line of the bundled replays with
the same code run as plain Python). The compiled modules sit next to their .py files and shadow them:
after editing one, rebuild (`make compiled`) or remove the .so files (`make clean`).
"""

import os

from setuptools import Extension, setup

# What a replay runs per event: the engine and what it calls (bot/core), the simulated venue, the replay's
# loop and parser. Left out: bot/core/hedger.py (mypyc 1.x cannot write the text signature of its nested
# `result(reason, band=0.0, *extra, order_base=0.0)`; it runs once per timer), bot/domain.py (compiled
# classes cannot be subclassed by plain Python ones, and the events are), and the deal's modules (deal,
# execution, hedge_desk, lp, options: off the replay's path, and a compiled class's attributes are
# typed slots, which code written for plain Python need not respect).
MYPYC_MODULES = [
    "bot/replay_cli.py",
    "bot/venues/binance.py",
    "bot/venues/paper.py",
    "bot/venues/replay.py",
    *(
        f"bot/core/{name}.py"
        for name in (
            "book",
            "engine",
            "estimators",
            "obligations",
            "orders",
            "portfolio",
            "quoter",
            "quoting",
            "risk",
            "rounding",
            "sorted_pairs",
            "toxicity",
        )
    ),
]

ext_modules = [Extension("bot._native", sources=["bot/_native.c"], optional=True)]
if os.environ.get("MMBOT_MYPYC") == "1":
    from mypyc.build import mypycify

    ext_modules += mypycify(MYPYC_MODULES, opt_level="3")

setup(ext_modules=ext_modules)
