"""`mmbot calibrate` on the bundled BTCUSDT recording: a TOML block the config loads, a plot, and the
suggested γ meeting its own inventory-std target; a file it cannot read is one line and exit 2."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest

from bot.calibrate import suggest_gamma
from bot.cli import main
from bot.core.quoting import MarketInputs, QuoteParams, glft_quote

DATA = Path(__file__).parent.parent / "data" / "binance"


def test_calibrate_the_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(DATA / "spot_btcusdt_20240808.gz"), str(DATA / "usdm_btcusdt_20240808.gz")]
    code = main(["calibrate", *files, "--target-inventory-std", "1.0", "--out", str(tmp_path), "--json"])
    captured = capsys.readouterr()
    assert code == 0
    result = json.loads(captured.out)  # --json: stdout is the one document, the report is on stderr
    out = captured.err
    assert result["fit"] == "fit" and result["trades"] == 9756
    for key in ("sigma_px_per_sqrt_s", "a_per_s", "k_per_px", "suggested_gamma_per_quote"):
        assert 0 < result[key] < math.inf, key
    assert 0 < result["informed_share"] < 1
    block = out[out.index("[estimator]") : out.index("plot:")]
    toml = tomllib.loads(block)
    assert toml["estimator"]["k_per_px"] == pytest.approx(result["k_per_px"], rel=1e-5)
    assert (tmp_path / "intensity.png").stat().st_size > 1000


def test_calibrate_refuses_a_file_it_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "nothing.gz"
    bad.write_bytes(b"not gzip")
    assert main(["calibrate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mmbot calibrate:")


@pytest.mark.parametrize("target", [0.5, 2.0, 8.0])
def test_suggested_gamma_gives_the_target_inventory_std(target: float) -> None:
    # the linearised GLFT inventory std is sqrt(Δ / (2·k·σ·c2(γ))): check it at the γ suggested
    sigma, a, k, size = 0.02, 1.5, 60.0, 1.0
    gamma = suggest_gamma(target, sigma, a, k, size, "gamma")
    assert gamma is not None
    market = MarketInputs(mid_px=1.0, inventory_base=0.0, sigma_px_per_sqrt_s=sigma, a_per_s=a, k_per_px=k)
    skew = glft_quote(QuoteParams(gamma_per_quote=gamma, order_size_base=size, min_spread_bps=0.0), market)
    assert math.sqrt(size / (2 * k * skew.skew_px_per_base)) == pytest.approx(target, rel=1e-6)
