"""Cost of the mock market per simulated second, by flow model and preset.

    .venv/bin/python bench/mock_market.py [--minutes 10] [--seed 1] [--repeat 3]

For each config (the classic market the default had until issue #19, the calibrated BTCUSDT preset, the
thin altcoin preset the default now uses) the
mock runs alone (no orders of ours, faults off: what `mmbot exchange record` runs) for `--minutes`
of simulated time; CPU seconds of this process per simulated second, best of `--repeat`. Prints
one JSON line per config and a last line with every figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from bot.config import load_settings
from bot.venues.mock.record import START_NS, market_events, recording_exchange

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "classic (presets.classic_market)": "classic",
    "hawkes btcusdt (config/mock-btcusdt.toml)": ROOT / "config" / "mock-btcusdt.toml",
    "hawkes altcoin (config/mock-altcoin.toml, the default's)": ROOT / "config" / "mock-altcoin.toml",
}


def cost(config_path: Path | str, seconds: float, seed: int) -> tuple[float, int]:
    if config_path == "classic":
        from bot.venues.mock.presets import classic_market

        mock = classic_market(load_settings(None).mock)
    else:
        mock = load_settings(config_path).mock
    exchange = recording_exchange(mock, seed)
    start = time.process_time()
    events = sum(1 for _ in market_events(exchange, START_NS + int(seconds * 1e9)))
    return time.process_time() - start, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    seconds = args.minutes * 60.0
    out: dict[str, object] = {"python": platform.python_version(), "simulated_s": seconds}
    for name, path in CONFIGS.items():
        runs = [cost(path, seconds, args.seed) for _ in range(args.repeat)]
        cpu = min(r[0] for r in runs)
        row = {
            "config": name,
            "cpu_ms_per_simulated_s": round(cpu / seconds * 1000, 3),
            "public_events_per_simulated_s": round(runs[0][1] / seconds, 1),
        }
        print(json.dumps(row))
        out[name] = row
    print(json.dumps(out))


if __name__ == "__main__":
    main()
