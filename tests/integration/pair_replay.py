"""The bundled pair replayed in a fresh interpreter, for tests that compare two builds of the bot line
by line (the C constructors against the dataclasses, the compiled core against its Python)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "binance"

# After the caller's prelude: one replay of the pair; prints PROBE (what says which build ran), then
# every log line and the summary with the fields that depend on the wall clock or the run dropped,
# one JSON object per line.
REPLAY = """
import contextlib, io, json
from bot.cli import main
from bot.replay_cli import WALL_CLOCK_FIELDS

unstable = {"ts", "run_id", *WALL_CLOCK_FIELDS}
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = main(["replay", SPOT, PERP, "--json", "--log-format", "json"])
assert code == 0, code
print(PROBE())
for line in [line for line in err.getvalue().splitlines() if line.startswith("{")] + [out.getvalue()]:
    print(json.dumps({k: v for k, v in json.loads(line).items() if k not in unstable}, sort_keys=True))
"""


def replay_pair(prelude: str, probe: str) -> tuple[str, list[str]]:
    """Run `prelude` (it may hide or swap parts of the bot before anything imports them), replay the
    pair, and return what the expression `probe` printed and the log lines then the summary."""
    head = f"ROOT = {str(ROOT)!r}\nSPOT = {str(DATA / 'spot_btcusdt_20240808.gz')!r}\n"
    head += f"PERP = {str(DATA / 'usdm_btcusdt_20240808.gz')!r}\n"
    code = head + prelude + f"\ndef PROBE():\n    return {probe}\n" + REPLAY
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    probed, *lines = done.stdout.splitlines()
    return probed, lines
