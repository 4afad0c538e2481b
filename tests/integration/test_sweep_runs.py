"""`mmbot sweep` end to end: a run is the replay `mmbot replay` makes, per-run results do not depend on
where they run (this process, 2 worker processes, a local Dask cluster of 2 workers), the command's
table, TOML and `--json`, and the Optuna search."""

import logging
import tomllib
from pathlib import Path

import orjson
import pytest

from bot.cli import main
from bot.config import load_settings
from bot.replay_cli import for_instruments, plan_replay, run_session
from bot.sweep import grid_points, run_trials
from bot.sweep_runs import Target, dask_runner, local_runner, plan_targets, run_recording

DATA = Path(__file__).resolve().parent.parent / "data" / "binance"
SPOT = DATA / "spot_btcusdt_20240808.gz"
PERP = DATA / "usdm_btcusdt_20240808.gz"
MOCK_TARGETS = [Target("mock:1", mock_seed=1, minutes=0.5), Target("mock:2", mock_seed=2, minutes=0.5)]
POINTS = grid_points([("quoter.gamma_per_quote", [0.05, 0.2]), ("quoter.order_size_base", [0.5, 1.0])])


def test_a_recording_run_is_the_replay_mmbot_replay_makes(tmp_path: Path) -> None:
    """The sweep's run of a config gives the very summary figures `mmbot replay` logs for it, also
    when it writes (first run) and then reads (second run) the event cache."""
    settings = load_settings()
    plan = plan_replay([SPOT])
    summary = run_session(for_instruments(settings, plan.spot, plan.perp), plan, speed=None)
    metrics = run_recording(settings, [str(SPOT)], cache_dir=str(tmp_path))
    assert len(list(tmp_path.glob("*.npz"))) == 1
    assert run_recording(settings, [str(SPOT)], cache_dir=str(tmp_path)) == metrics
    assert summary["fills"] > 0
    assert metrics["pnl"] == summary["pnl"]
    assert metrics["fills"] == summary["fills"]
    assert metrics["volume"] == summary["volume"]
    assert metrics["pnl_per_unit"] == round(summary["pnl"] / summary["volume"], 6)
    assert metrics["max_drawdown"] >= max(0.0, -summary["pnl"]) - 1e-9  # the final equity is a sample's floor
    assert metrics["inventory_std"] > 0.0


def test_a_spot_and_perp_of_two_venues_sweep_as_mmbot_replay_replays_them() -> None:
    """`VENUE=FILE` targets (issue #14): the run is the two-venue replay, not the one-venue one."""
    files = [f"binance={SPOT}", f"bybit={PERP}"]
    (target,) = plan_targets(files, minutes=1.0)
    assert target.files == tuple(files) and target.name == f"{SPOT.name}+{PERP.name}"
    settings = load_settings()
    plan = plan_replay(files)
    assert plan.pair_venues == ("binance", "bybit")
    summary = run_session(for_instruments(settings, plan.spot, plan.perp), plan, speed=None)
    assert set(summary["venues"]) == {"binance", "bybit"}
    metrics = run_recording(settings, files)
    assert (metrics["fills"], metrics["pnl"], metrics["volume"]) == (
        summary["fills"],
        summary["pnl"],
        summary["volume"],
    )


def test_same_per_run_results_on_1_and_2_workers_and_on_a_dask_cluster() -> None:
    base = load_settings()
    run1, close1 = local_runner(1)
    one = run_trials(base, POINTS, MOCK_TARGETS, run1, None)
    close1()
    run2, close2 = local_runner(2)
    try:
        two = run_trials(base, POINTS, MOCK_TARGETS, run2, None)
    finally:
        close2()
    assert two == one
    assert len({orjson.dumps(t["metrics"]) for t in one}) == len(POINTS)  # the configs do differ

    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    ) as cluster:
        run_dask, close_dask = dask_runner(cluster.scheduler_address)
        try:
            on_dask = run_trials(base, POINTS, MOCK_TARGETS, run_dask, None)
        finally:
            close_dask()
    assert on_dask == one


def test_the_command_prints_the_table_the_best_toml_and_one_json_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sweep", "mock:1", "--minutes", "0.5", "--grid", "quoter.gamma_per_quote=0.05,0.2"]
    argv += ["--grid", "quoter.order_size_base=0.5,1.0", "--json", "--out", str(tmp_path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    payload = orjson.loads(captured.out)  # with --json, stdout is the one JSON object and nothing else
    out = captured.err  # the table and the best TOML, for a human
    assert [t["params"] for t in payload["trials"]] == POINTS
    for trial in payload["trials"]:
        assert set(trial["metrics"]) >= {"pnl", "pnl_per_unit", "inventory_std", "max_drawdown", "fills"}
        assert set(trial["metrics"]) >= {"adverse_selection", "obligation_pct"}
        assert [r["target"] for r in trial["runs"]] == ["mock:1"]
    best = payload["best"]
    assert best["metrics"]["pnl"] == max(t["metrics"]["pnl"] for t in payload["trials"])
    toml = tomllib.loads(best["toml"])
    assert toml["quoter"]["gamma_per_quote"] == best["params"]["quoter.gamma_per_quote"]
    assert best["toml"] in out  # printed for a human too, on stderr
    assert "pnl/unit" in out and "adverse" in out  # the table's header
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert orjson.loads((tmp_path / "sweep.json").read_bytes())["trials"] == payload["trials"]


def test_search_stays_in_its_space_and_is_seeded(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("optuna")
    argv = ["sweep", "mock:1", "--minutes", "0.5", "--search", "4", "--space", "quoter.gamma_per_quote=0.05:0.5"]
    argv += ["--space", "quoter.levels=1:3", "--seed", "7", "--json"]
    assert main(argv) == 0
    first = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(first["trials"]) == 4
    for trial in first["trials"]:
        assert 0.05 <= trial["params"]["quoter.gamma_per_quote"] <= 0.5
        assert trial["params"]["quoter.levels"] in (1, 2, 3)
    assert main(argv) == 0
    again = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["trials"] == first["trials"]
