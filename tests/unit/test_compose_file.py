"""docker-compose.yml stays valid YAML and the sim-testnet rehearsal stays wired as documented (no
Docker engine here, so the stack itself runs only in scripts/compose-smoke.sh)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from bot.config import CcxtConfig

ROOT = Path(__file__).resolve().parents[2]


def test_the_sim_testnet_profile_runs_the_bybit_dialect_and_the_testnet_config_on_loopback() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    server, bot = services["exchange-bybit"], services["bot-sim-testnet"]
    assert server["profiles"] == bot["profiles"] == ["sim-testnet"]
    assert server["command"][:5] == ["mmbot", "exchange", "serve", "--dialect", "bybit"]
    port = server["command"][server["command"].index("--port") + 1]
    assert bot["network_mode"] == "service:exchange-bybit" and "networks" not in bot  # compose refuses both
    assert bot["command"][:4] == ["mmbot", "run", "--config", "config/bybit-testnet.toml"]
    assert (ROOT / "config" / "bybit-testnet.toml").exists()
    env = bot["environment"]
    base = env["MMBOT__CCXT__SANDBOX_URL_BASE"]
    assert urlsplit(base).port == int(port)
    CcxtConfig(exchange="bybit", mode="testnet", sandbox_url_base=base)  # accepted: loopback
    assert bot["depends_on"]["exchange-bybit"]["condition"] == "service_healthy"
    assert "ledger-sim-testnet" in doc["volumes"]


def test_the_smoke_script_knows_the_sim_testnet_stack() -> None:
    script = (ROOT / "scripts" / "compose-smoke.sh").read_text()
    assert "sim-testnet) SERVICES=(exchange-bybit bot-sim-testnet)" in script
