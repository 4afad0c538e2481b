"""The compiled build (`make compiled`: setup.py's MMBOT_MYPYC compiles the pure core with mypyc) takes
the same decisions as the Python it is compiled from: the bundled pair's replay, every log line and then
the summary, run once with the compiled modules and once with every `bot` module loaded from its .py
file. Skipped on the default build, which has nothing compiled (the rest of the suite runs plain Python)."""

from __future__ import annotations

import json

import pytest
from pair_replay import replay_pair

import bot.core.quoter

COMPILED = not bot.core.quoter.__file__.endswith(".py")

# Imports `bot` from its .py files only: a meta-path finder ahead of the normal ones that looks for
# source files alone (bot._native, the default build's C extension, is loaded as usual).
SOURCE_ONLY = """
import sys
from importlib.machinery import SOURCE_SUFFIXES, FileFinder, SourceFileLoader

class SourceOnly:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if (name != "bot" and not name.startswith("bot.")) or name == "bot._native":
            return None
        for entry in path if path is not None else [ROOT]:
            spec = FileFinder(entry, (SourceFileLoader, SOURCE_SUFFIXES)).find_spec(name, target)
            if spec is not None:
                return spec
        return None

sys.meta_path.insert(0, SourceOnly)
"""


def replay(source_only: bool) -> tuple[str, list[str]]:
    return replay_pair((SOURCE_ONLY if source_only else "") + "import bot.core.quoter\n", "bot.core.quoter.__file__")


@pytest.mark.skipif(not COMPILED, reason="the default build: nothing compiled (`make compiled` builds it)")
def test_the_compiled_core_takes_the_same_decisions_as_its_python() -> None:
    compiled_module, compiled = replay(source_only=False)
    python_module, python = replay(source_only=True)
    assert not compiled_module.endswith(".py") and python_module.endswith("quoter.py")  # each ran what it says
    summary = json.loads(python[-1])
    assert summary["fills"] > 50 and summary["hedges"] > 10  # decisions worth comparing
    assert sum(1 for line in python if '"event": "order.filled"' in line) > 50
    assert compiled == python  # every log line, then the summary
