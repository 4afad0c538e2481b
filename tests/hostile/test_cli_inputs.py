"""Bad input to any `mmbot` command: one line on stderr, exit 2, no traceback, nothing secret.

Every case runs the installed `mmbot` as a subprocess (what a user types), with a clean environment
plus the case's own variables, in a scratch directory. The reproductions of issue #20 are here by
name; other commands' holes of the same kind are next to them.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MMBOT = Path(sys.executable).with_name("mmbot")
SECRET = "hunter2Zq9xK"  # set in every case's environment under a secret-looking name


def mmbot(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("MMBOT")}
    clean["MMBOT__CCXT__API_SECRET"] = SECRET  # a real secret is set: it must never show
    return subprocess.run(
        [str(MMBOT), *args], capture_output=True, text=True, env={**clean, **(env or {})}, cwd=cwd, timeout=120
    )


def assert_one_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """Exit `code`, exactly one line on stderr holding every needle, no traceback, no secret."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]
    for text in (proc.stdout, proc.stderr):
        assert SECRET not in text and "hunter2" not in text
    return lines[0]


# (name, argv, extra environment, files to write {name: bytes}, words the line must hold)
CASES = [
    # issue #20 item 6
    ("config is a directory", ["check-config", "{tmp}"], {}, {}, ["is a directory"]),
    ("config not UTF-8", ["check-config", "bad.toml"], {}, {"bad.toml": b"[quoter]\n# \xff\xfe\n"}, ["not UTF-8"]),
    (
        "env list not JSON",
        ["check-config"],
        {"MMBOT__DEAL__CALLS": "notjson"},
        {},
        ["deal.calls", "MMBOT__DEAL__CALLS"],
    ),
    ("unknown log level", ["run", "--log-level", "LOUD", "--duration", "1s"], {}, {}, ["--log-level", "LOUD"]),
    ("negative CEX volume", ["simulate", "deal", "--cex-volume", "-5"], {}, {}, ["--cex-volume", ">= 0"]),
    ("negative pool noise", ["simulate", "deal", "--pool-noise", "-1"], {}, {}, ["--pool-noise", ">= 0"]),
    ("NaN funding", ["simulate", "deal", "--funding", "nan"], {}, {}, ["--funding", "finite"]),
    # item 7
    ("misspelt env section", ["check-config"], {"MMBOT__QOUTER__GAMMA_PER_QUOTE": "5"}, {}, ["qouter", "unknown key"]),
    ("ftp venue", ["check-config", "v.toml"], {}, {"v.toml": b'[runtime]\nvenue = "ftp://x"\n'}, ["runtime.venue"]),
    ("ftp venue flag", ["run", "--venue", "ftp://x", "--duration", "1s"], {}, {}, ["runtime.venue"]),
    (
        "order size 1e308",
        ["check-config", "s.toml"],
        {},
        {"s.toml": b"[quoter]\norder_size_base = 1e308\n"},
        ["quoter.order_size_base", "inventory_hard_base"],
    ),
    (
        "order size 1e308 run",
        ["run", "--config", "s.toml", "--duration", "1s", "--ledger", ""],
        {},
        {"s.toml": b"[quoter]\norder_size_base = 1e308\n"},
        ["quoter.order_size_base"],
    ),
    (
        "order size 1e12",
        ["check-config", "s.toml"],
        {},
        {"s.toml": b"[quoter]\norder_size_base = 1e12\n"},
        ["quoter.order_size_base"],
    ),
    (
        "order size 1e12, limits raised",
        ["check-config", "s.toml"],
        {},
        {"s.toml": b"[quoter]\norder_size_base = 1e12\n[risk]\ninventory_hard_base = 1e13\n"},
        ["quoter.order_size_base", "risk.max_notional_quote"],
    ),
    (
        "order size below a lot",
        ["check-config", "s.toml"],
        {},
        {"s.toml": b"[quoter]\norder_size_base = 0.001\n"},
        ["quoter.order_size_base", "lot"],
    ),
    (
        "order below min notional",
        ["check-config", "s.toml"],
        {},
        {"s.toml": b"[quoter]\norder_size_base = 0.02\n"},
        ["quoter.order_size_base", "minimum order value"],
    ),
    (
        "ladder past the hard limit",
        ["check-config"],
        {"MMBOT__QUOTER__LEVELS": "5", "MMBOT__QUOTER__SIZE_DECAY": "2"},
        {},
        ["quoter.order_size_base", "16"],
    ),
    # item 8: the misspelt secret's value is not echoed (assert_one_line checks no 'hunter2' anywhere)
    ("misspelt secret", ["check-config"], {"MMBOT__CCXT__API_SECRETT": "hunter2"}, {}, ["ccxt.api_secrett"]),
    ("secret in venue url", ["check-config"], {"MMBOT__RUNTIME__VENUE": "ws://u:hunter2@h:1"}, {}, ["runtime.venue"]),
    # the same holes in the other commands
    ("run config dir", ["run", "--config", "{tmp}", "--duration", "1s"], {}, {}, ["is a directory"]),
    ("replay a directory", ["replay", "{tmp}"], {}, {}, ["mmbot replay"]),
    ("replay bad speed", ["replay", "x.gz", "--speed", "fast"], {}, {}, ["speed"]),
    ("toxicity bad minutes", ["simulate", "toxicity", "--minutes", "1e308"], {}, {}, ["--minutes"]),
    ("toxicity bad config", ["simulate", "toxicity", "--config", "{tmp}"], {}, {}, ["is a directory"]),
    ("as2008 negative paths", ["simulate", "as2008", "--paths", "-5"], {}, {}, ["--paths"]),
    ("as2008 negative seed", ["simulate", "as2008", "--seed", "-1"], {}, {}, ["--seed"]),
    ("as2008 nan gamma", ["simulate", "as2008", "--gamma", "nan"], {}, {}, ["--gamma"]),
    ("soak huge hours", ["soak", "--hours", "1e308"], {}, {}, ["--hours"]),
    ("soak unknown fault", ["soak", "--faults", "bogus"], {}, {}, ["bogus"]),
    ("deal plan config dir", ["deal", "plan", "--config", "{tmp}"], {}, {}, ["is a directory"]),
    ("serve bad port", ["exchange", "serve", "--port", "70000"], {}, {}, ["--port"]),
    ("serve bad env", ["exchange", "serve"], {"MMBOT__MOCK__SEEED": "1"}, {}, ["mock.seeed"]),
    ("status not a url", ["status", "--url", "notaurl"], {}, {}, ["--url"]),
    ("status bad interval", ["status", "--watch", "--interval", "-1"], {}, {}, ["--interval"]),
    ("record zero minutes", ["exchange", "record", "--minutes", "0", "--out", "x.gz"], {}, {}, ["--minutes"]),
    ("sweep zero workers", ["sweep", "x.gz", "--workers", "0"], {}, {}, ["--workers"]),
    ("unknown command", ["nosuch"], {}, {}, ["nosuch"]),
]


@pytest.mark.parametrize(("argv", "env", "files", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, argv: list[str], env: dict[str, str], files: dict[str, bytes], needles: list[str]
) -> None:
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    proc = mmbot([a.replace("{tmp}", str(tmp_path)) for a in argv], tmp_path, env)
    assert_one_line(proc, 2, *needles)


def test_report_on_a_directory_is_one_line_and_exit_1(tmp_path: Path) -> None:
    # an unusable resource (not bad usage): exit 1, still one line
    assert_one_line(mmbot(["report", "--ledger", str(tmp_path), "--out", str(tmp_path / "r")], tmp_path), 1)


def test_an_unexpected_error_is_one_line_with_the_secret_masked(tmp_path: Path) -> None:
    """The CLI's last resort: whatever a command lets escape is one line and exit 1, never a
    traceback, and a secret value inside the exception's message is masked."""
    script = (
        "import sys, bot.cli, bot.app\n"
        "def boom(args):\n"
        "    raise ExceptionGroup('tasks', [RuntimeError('auth failed for hunter2Zq9xK\\nsecond line')])\n"
        "bot.app.cmd_check_config = boom\n"
        "sys.exit(bot.cli.main(['check-config']))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MMBOT")}
    env["MMBOT__CCXT__API_SECRET"] = SECRET
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    line = assert_one_line(proc, 1, "mmbot check-config: unexpected error: RuntimeError: auth failed for")
    assert "**********" in line


# ---- --json: stdout holds one JSON document and nothing else (issue #20 item 10) ----

SPOT_FILE = Path(__file__).resolve().parents[1] / "data" / "binance" / "spot_btcusdt_20240808.gz"

JSON_COMMANDS = {  # every command with --json, with arguments that keep it short
    "simulate as2008": ["--paths", "20"],
    "simulate toxicity": ["--minutes", "0.2"],
    "simulate deal": ["--paths", "20", "--model", "gbm", "--measure-minutes", "0.2"],
    "soak": ["--hours", "0.01"],
    "deal plan": [],
    "replay": ["{spot}"],
    "calibrate": ["{spot}"],
    "sweep": ["mock:1", "--minutes", "0.2", "--grid", "quoter.gamma_per_quote=0.05,0.1"],
}


def _commands_with_json() -> set[str]:
    from bot.cli import build_parser

    def walk(parser: argparse.ArgumentParser, prefix: str) -> set[str]:
        found = {prefix.strip()} if any("--json" in a.option_strings for a in parser._actions) else set()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found |= walk(sub, f"{prefix} {name}")
        return found

    return walk(build_parser(), "")


def test_every_json_command_is_checked() -> None:
    assert _commands_with_json() == set(JSON_COMMANDS)


def small_spot(tmp_path: Path, lines: int = 4000) -> Path:
    """The bundled spot recording's first `lines` lines (its REST snapshot among them)."""
    out = tmp_path / "spot.gz"
    with gzip.open(SPOT_FILE, "rb") as src, gzip.open(out, "wb") as dst:
        dst.writelines(itertools.islice(src, lines))
    return out


@pytest.mark.parametrize("command", sorted(JSON_COMMANDS))
def test_json_stdout_is_one_json_document(tmp_path: Path, command: str) -> None:
    extra = [a.replace("{spot}", str(small_spot(tmp_path))) for a in JSON_COMMANDS[command]]
    proc = mmbot([*command.split(), *extra, "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    document = json.loads(proc.stdout)  # the whole of stdout: one JSON value, nothing before or after
    assert isinstance(document, dict) and document
    assert "Traceback" not in proc.stderr


def test_sizes_are_checked_against_a_venues_own_instrument() -> None:
    """Where the config does not define the instrument (ccxt, ws, replay), the venue's grid is checked
    when the engine is built, before any order: a quote level below one lot, or past 2^53 lots."""
    from bot.app import build_engine
    from bot.config import ConfigError, Settings
    from bot.domain import Instrument, InstrumentKind

    btc = Instrument("BTC/USDT", InstrumentKind.SPOT, "BTC", "USDT", tick_size=0.01, lot_size=0.001)
    fine = Settings().model_copy(update={"runtime": Settings().runtime.model_copy(update={"venue": "ccxt"})})
    assert build_engine(fine, btc, None, 0) is not None  # 1 base is 1000 lots
    tiny = fine.model_copy(update={"quoter": fine.quoter.model_copy(update={"order_size_base": 0.0001})})
    with pytest.raises(ConfigError, match=r"^config error: quoter.order_size_base: .* smaller than one lot"):
        build_engine(tiny, btc, None, 0)
    dust = Instrument("X/USDT", InstrumentKind.SPOT, "X", "USDT", tick_size=0.01, lot_size=1e-18)
    with pytest.raises(ConfigError, match=r"quoter.order_size_base: 1 base is more than 2\^53 lots"):
        build_engine(fine, dust, None, 0)


# ---- replays that cannot sync their book (issue #20 item 5) ----

PERP_FILE = SPOT_FILE.with_name("usdm_btcusdt_20240808.gz")
DAY_NS = 86_400 * 10**9


def recording(tmp_path: Path, name: str, src: Path, seconds: float | None = None, shift_ns: int = 0) -> Path:
    """`src` without its REST snapshot line(s), cut to its first `seconds`, receive times shifted."""
    out = tmp_path / name
    with gzip.open(src, "rb") as fh, gzip.open(out, "wb") as dst:
        first = None
        for line in fh:
            ts, rest = line.split(b" ", 1)
            first = first or int(ts)
            if seconds is not None and int(ts) - first > seconds * 1e9:
                break
            if b'"lastUpdateId"' not in rest or name.startswith("with_snapshot"):
                dst.write(b"%d %s" % (int(ts) + shift_ns, rest))
    return out


def test_a_continuation_day_is_replayed_from_its_diffs_and_says_so(tmp_path: Path) -> None:
    proc = mmbot(["replay", str(recording(tmp_path, "cont.gz", SPOT_FILE)), "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["quotes"] > 0 and summary["fills"] > 0
    assert summary["replay"]["BTC/USDT"]["book_from_diffs_built"] == 1
    built = [json.loads(line) for line in proc.stderr.splitlines() if '"replay.book_from_diffs"' in line]
    assert len(built) == 1 and built[0]["warmup_s"] == 120.0 and built[0]["file"].endswith("cont.gz")


@pytest.mark.parametrize("case", ["too short to build", "spot and perp of different days", "perp never syncs"])
def test_a_replay_that_cannot_sync_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    if case == "too short to build":  # 60 s of diffs without a snapshot: under the 120 s warm-up
        files, needles = [recording(tmp_path, "short.gz", SPOT_FILE, 60)], ["short.gz", "no REST snapshot"]
    elif case == "spot and perp of different days":
        perp = recording(tmp_path, "with_snapshot_perp.gz", PERP_FILE, 20, shift_ns=DAY_NS)
        files, needles = [SPOT_FILE, perp], ["with_snapshot_perp.gz", "never at the same time"]
    else:  # the perp's snapshot dropped and too short to build: the spot alone would hedge in nothing
        files = [
            recording(tmp_path, "with_snapshot_spot.gz", SPOT_FILE, 30),
            recording(tmp_path, "p.gz", PERP_FILE, 30),
        ]
        needles = ["p.gz", "no REST snapshot"]
    proc = mmbot(["replay", *map(str, files)], tmp_path)  # the log lines on stdout, the error on stderr
    assert_one_line(proc, 2, "mmbot replay: ", *needles)
