"""The toxic-flow guard on the recorded BTCUSDT pair (tests/data/binance, real Binance data): guard off
vs on through `bot.sim.toxicity_replay`, our simulated fills marked out against the recording's mids.

Issue #16: "on the recorded BTCUSDT pair the guard does not make things worse". Before its self-check
the guard gave up 60.3 of spread to save 10.4 of adverse selection there (per-unit loss 1.13 -> 2.87
bps): one-sided flow on this tape does not predict the mid. The self-check measures that and holds
the response at 0, so on this recording the guard costs nothing; the mock experiment
(tests/integration/test_toxicity_sim.py, docs/research/toxicity-guard.md) is where its calls do come true.
"""

from __future__ import annotations

from pathlib import Path

from bot.config import load_settings
from bot.sim.toxicity_replay import compare_recording

DATA = Path(__file__).resolve().parent.parent / "data" / "binance"
FILES = [str(DATA / "spot_btcusdt_20240808.gz"), str(DATA / "usdm_btcusdt_20240808.gz")]


def test_the_guard_does_not_make_the_recorded_btcusdt_pair_worse() -> None:
    payload = compare_recording(load_settings(None), FILES)
    off, on = payload["guard_off"], payload["guard_on"]
    assert off["fills"] > 100  # a replay with fills worth marking out
    # the guard saves at least the spread it gives up, per unit traded it is no worse, and PnL is no lower
    assert payload["spread_given_up"] <= payload["adverse_selection_saved"]
    assert on["adverse_selection_bps"] <= off["adverse_selection_bps"]
    assert on["pnl"] >= off["pnl"]
    # why: its calls never came true on this tape (the flow score's β is not above noise), so the
    # self-check never let the response act
    check = payload["guard_on_check"]
    assert check["efficacy_max"] == 0.0 and check["active_share"] == 0.0
