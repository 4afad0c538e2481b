"""`mmbot replay` with the simulated venues reading the engine's books (`run_replay(books=...)`,
`PaperExecution.follow`) takes the same decisions as with each venue keeping a book of its own: every
log line and the summary of the bundled pair, with the default config and with
config/binance-paper.toml (more hedges: the perp's venue is exercised too)."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import orjson
import pytest

from bot import replay_cli
from bot.cli import main
from bot.replay_cli import WALL_CLOCK_FIELDS
from bot.venues import replay
from bot.venues.paper import PaperExecution

ROOT = Path(__file__).resolve().parent.parent.parent
DATA = ROOT / "tests" / "data" / "binance"
FILES = [str(DATA / "spot_btcusdt_20240808.gz"), str(DATA / "usdm_btcusdt_20240808.gz")]
UNSTABLE = {"ts", "run_id", *WALL_CLOCK_FIELDS}


def replay_records(*extra: str) -> list[dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert main(["replay", *FILES, "--json", "--log-format", "json", *extra]) == 0
    lines = [orjson.loads(line) for line in err.getvalue().splitlines() if line.startswith("{")]
    return [{k: v for k, v in r.items() if k not in UNSTABLE} for r in lines]


@pytest.mark.parametrize("extra", [(), ("--config", str(ROOT / "config" / "binance-paper.toml"))])
def test_venues_reading_the_engines_books_take_the_same_decisions(
    extra: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (replay_cli.__file__ or "").endswith(".py"):  # compiled calls and classes cannot be patched
        pytest.skip("mypyc-compiled build: test_compiled_core.py compares it with this Python")
    followed: list[tuple[str, bool]] = []
    real_follow = PaperExecution.follow

    def follow(self: PaperExecution, book: Any) -> bool:
        ok = real_follow(self, book)
        followed.append((self.symbol, ok))
        return ok

    with monkeypatch.context() as patch:
        patch.setattr(PaperExecution, "follow", follow)
        shared = replay_records(*extra)
    assert sorted(followed) == [("BTC/USDT", True), ("BTC/USDT:USDT", True)]  # both venues read the engine's

    def run_replay_own_books(*args: Any, books: Any = None, **kwargs: Any) -> int:
        return replay.run_replay(*args, **kwargs)  # no `books`: each venue applies every event itself

    monkeypatch.setattr(replay_cli, "run_replay", run_replay_own_books)
    own = replay_records(*extra)
    summary = own[-1]
    assert summary["event"] == "session.summary" and summary["fills"] > 100 and summary["hedges"] > 10
    assert shared == own
