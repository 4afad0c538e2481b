"""The event cache against hftbacktest's parsed-array path (issue #17), interleaved in one run.

`compare.sh` (../shared/tools/peers/) times `mmbot replay` from the raw file; this times it from the
event cache, as a user replays a recording again: `mmbot replay SPOT --cache DIR --speed max --json`
with the cache written once before the first round (its figure is `session.summary`'s `msgs_per_s`,
messages = lines of the raw file, as in compare.sh), then hftbacktest's script from compare.sh, whose
`msgs_per_s_preparsed` is its backtest from the numpy array it parsed. ROUNDS rounds, each runs both;
prints one JSON line per round, then the medians and their ratio (the issue's target: >= 0.2, "within 5x").

    python bench/cache_vs_hftbacktest.py [ROUNDS]       # from the project root
    env: MMBOT_VENV (./.venv), PEERS_VENV ($TMPDIR/peers/venv, as compare.sh makes it),
         PEERS_DIR (../shared/tools/peers)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SPOT = "tests/data/binance/spot_btcusdt_20240808.gz"


def last_json(cmd: list[str]) -> dict:
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 3
    mmbot = Path(os.environ.get("MMBOT_VENV", ".venv")) / "bin" / "mmbot"
    peers_python = Path(os.environ.get("PEERS_VENV", Path(tempfile.gettempdir()) / "peers" / "venv")) / "bin" / "python"
    script = Path(os.environ.get("PEERS_DIR", "../shared/tools/peers")) / "hftbacktest_mm.py"
    for path in (mmbot, peers_python, script):
        if not path.exists():
            print(f"not found: {path} (see the module docstring)", file=sys.stderr)
            return 2
    mm_rates, peer_rates = [], []
    with tempfile.TemporaryDirectory() as cache:
        replay = [str(mmbot), "replay", SPOT, "--cache", cache, "--speed", "max", "--json", "--log-format", "json"]
        first = last_json(replay)  # writes the cache
        for r in range(1, rounds + 1):
            load = os.getloadavg()[0]
            mm = last_json(replay)
            assert all(f["hit"] for f in mm["event_cache"]["files"]), "the cache was not read"
            assert mm["fills"] == first["fills"] and mm["pnl"] == first["pnl"]  # the same decisions
            peer = last_json([str(peers_python), str(script), SPOT])
            mm_rates.append(mm["msgs_per_s"])
            peer_rates.append(peer["msgs_per_s_preparsed"])
            print(json.dumps({"round": r, "load_1m": round(load, 2), "mmbot_cache_msgs_per_s": mm["msgs_per_s"],
                              "hftbacktest_preparsed_msgs_per_s": peer["msgs_per_s_preparsed"],
                              "hftbacktest_raw_msgs_per_s": peer["msgs_per_s_raw"], "fills": mm["fills"]}))  # fmt: skip
    mm_median, peer_median = statistics.median(mm_rates), statistics.median(peer_rates)
    print(json.dumps({"rounds": rounds, "mmbot_cache_msgs_per_s": mm_median, "hftbacktest_preparsed_msgs_per_s":
                      peer_median, "ratio": round(mm_median / peer_median, 3), "target_ratio": 0.2}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
