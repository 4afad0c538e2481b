"""A ledger that is busy, damaged or not a ledger at all (issue #20, items 3 and 4): refused at open
with one line naming the file and what to do, exit 1, never a traceback; a file that goes bad while
the bot runs stops the bot cleanly with that line. Real SQLite files in tmp_path, the real CLI."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.app import _run
from bot.config import load_settings
from bot.domain import Instrument, InstrumentKind, Liquidity, OrderFilled, Side
from bot.runtime.ledger import Ledger, LedgerFailed, LedgerUnusable

ROOT = Path(__file__).resolve().parents[2]
SPOT = Instrument("TOKEN/USDT", InstrumentKind.SPOT, "TOKEN", "USDT", tick_size=0.01, lot_size=0.5)


def fill(fill_id: str) -> OrderFilled:
    return OrderFilled(SPOT.symbol, "c1", fill_id, Side.BUY, 10_000, 2, 0.0, Liquidity.MAKER, 0, 1, 2)


def a_ledger_with_fills(path: Path, n: int = 400) -> None:
    with Ledger(path) as led:
        led.start_run("r1", 1, venue="mock-ws", instruments=[SPOT], session="s1")
        for i in range(n):
            led.record_fill("r1", fill(f"F{i}"))


def mmbot_run(ledger: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "fast.toml"
    config.write_text("[runtime]\nspeed = 50.0\n[metrics]\nenabled = false\n")
    argv = [sys.executable, "-m", "bot.cli", "run", "--config", str(config), "--duration", "0.5s"]
    return subprocess.run(
        [*argv, "--ledger", str(ledger), "--log-format", "json"], capture_output=True, text=True, cwd=ROOT,
        timeout=60,
    )  # fmt: skip


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], path: Path, *words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert str(path) in lines[0]
    for word in words:
        assert word in lines[0], lines[0]


# ---- the lock ------------------------------------------------------------------------------------


def test_a_second_writer_is_refused_while_the_first_holds_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    first = Ledger(path)
    try:
        with pytest.raises(LedgerUnusable, match="in use by another mmbot") as refused:
            Ledger(path)
        assert str(path) in str(refused.value) and "\n" not in str(refused.value)
    finally:
        first.close()
    Ledger(path).close()  # released at close: the next writer may open it


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    """A writer killed outright (as by kill -9) leaves no stale lock behind: the OS drops a flock."""
    path = tmp_path / "l.sqlite"
    code = f"from bot.runtime.ledger import Ledger; import os; Ledger({str(path)!r}); os._exit(0)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)
    Ledger(path).close()


def test_mmbot_run_on_a_ledger_another_bot_holds_is_one_line_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    holder = Ledger(path)
    try:
        result = mmbot_run(path, tmp_path)
    finally:
        holder.close()
    assert_one_line_refusal(result, path, "in use by another mmbot", "--ledger")


# ---- damaged or foreign files --------------------------------------------------------------------


def truncated(path: Path) -> None:
    a_ledger_with_fills(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def overwritten_header(path: Path) -> None:
    a_ledger_with_fills(path)
    data = bytearray(path.read_bytes())
    data[:100] = b"\x00" * 100
    path.write_bytes(bytes(data))


def text_file(path: Path) -> None:
    path.write_text("these are my notes, not a ledger\n" * 50)


def directory(path: Path) -> None:
    path.mkdir()


def corrupted_mid_file(path: Path) -> None:
    """The header intact, pages in the middle overwritten: SQLite opens it, quick_check does not pass."""
    a_ledger_with_fills(path, n=2000)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    for offset in range(2 * page, len(data) - page, 3 * page):
        data[offset : offset + 512] = b"\xff" * 512
    path.write_bytes(bytes(data))


def other_sqlite_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE recipes (name TEXT)")
    db.commit()
    db.close()


def newer_schema(path: Path) -> None:
    a_ledger_with_fills(path, n=1)
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()


DAMAGE = {
    "truncated": (truncated, "damaged"),
    "overwritten_header": (overwritten_header, "not an SQLite database"),
    "text_file": (text_file, "not an SQLite database"),
    "directory": (directory, "is a directory"),
    "corrupted_mid_file": (corrupted_mid_file, "damaged"),
    "other_sqlite_database": (other_sqlite_database, "not an mmbot ledger"),
    "newer_schema": (newer_schema, "newer than this mmbot"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_bad_ledger_file_is_refused_at_open_in_one_line(tmp_path: Path, case: str) -> None:
    damage, words = DAMAGE[case]
    path = tmp_path / "ledger.sqlite"
    damage(path)
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(LedgerUnusable) as refused:
        Ledger(path)
    line = str(refused.value)
    assert words in line and str(path) in line and "\n" not in line
    assert (path.read_bytes() if path.is_file() else None) == before  # left as it was, for salvage


@pytest.mark.parametrize("case", ["truncated", "text_file", "directory", "corrupted_mid_file"])
def test_mmbot_run_on_a_bad_ledger_is_one_line_exit_1(tmp_path: Path, case: str) -> None:
    damage, words = DAMAGE[case]
    path = tmp_path / "ledger.sqlite"
    damage(path)
    assert_one_line_refusal(mmbot_run(path, tmp_path), path, words)


def test_mmbot_report_on_a_bad_ledger_is_one_line_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    text_file(path)
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "report", "--ledger", str(path), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert_one_line_refusal(result, path)


# ---- a file that goes bad while the bot runs -----------------------------------------------------


def test_an_sqlite_error_while_writing_fails_the_ledger_once_in_one_line(tmp_path: Path) -> None:
    lines: list[str] = []
    led = Ledger(tmp_path / "l.sqlite", on_failure=lines.append)
    led.start_run("r1", 1, venue="mock", instruments=[SPOT])
    assert led.record_fill("r1", fill("F1"))
    led._db.execute("DROP TABLE fills")  # what a damaged page does to the next insert: an SQLite error
    assert led.record_fill("r1", fill("F2")) is False
    assert led.record_fill("r1", fill("F3")) is False  # later writes are dropped, not raised
    assert len(lines) == 1 and str(led.path) in lines[0] and "\n" not in lines[0]
    assert led.failure == lines[0]
    led.close()  # closes after a failure without raising


def test_without_a_callback_the_failure_is_raised_as_one_line(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite")
    led.start_run("r1", 1, venue="mock", instruments=[SPOT])
    led._db.execute("DROP TABLE fills")
    with pytest.raises(LedgerFailed, match="SQLite error while writing"):
        led.record_fill("r1", fill("F1"))
    led.close()


def test_a_ledger_failing_mid_run_stops_the_bot_cleanly_with_that_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot must not die at the next commit with a traceback: it stops (orders canceled) and says why."""
    original = Ledger.record_fill
    calls = {"n": 0}

    def breaking(self: Ledger, run_id: str, f: OrderFilled, tag: str | None = None) -> bool:
        calls["n"] += 1
        if calls["n"] == 3:
            self._db.execute("DROP TABLE fills")  # the file goes bad under the bot
        return original(self, run_id, f, tag)

    monkeypatch.setattr(Ledger, "record_fill", breaking)
    settings = load_settings(
        None,
        {
            "runtime": {"speed": 50.0},
            "metrics": {"enabled": False},
            "ledger": {"path": str(tmp_path / "ledger.sqlite")},
        },
    )
    with pytest.raises(LedgerFailed, match="SQLite error while writing") as failed:
        asyncio.run(_run(settings, duration_s=30.0, run_id="broken"))
    assert "\n" not in str(failed.value)
    assert calls["n"] >= 3  # and it stopped long before the 30 s: the runner was asked to stop


def test_cli_exit_code_for_a_mid_run_failure_is_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from bot import app
    from bot.cli import main

    async def failing(*_args: Any) -> dict[str, Any]:
        raise LedgerFailed(f"ledger {tmp_path}/l.sqlite: SQLite error while writing (disk I/O error): ...")

    monkeypatch.setattr(app, "_run", failing)
    assert main(["run", "--duration", "1s", "--ledger", str(tmp_path / "l.sqlite")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SQLite error while writing" in err[0]
