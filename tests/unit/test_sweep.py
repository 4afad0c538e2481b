"""`mmbot sweep`'s parts: keys and values checked through the Settings model, the grid, the metrics'
arithmetic (hand-computed), the TOML of the best trial, and the command's refusals."""

import math
import tomllib

import pytest

from bot.cli import main
from bot.config import ConfigError, load_settings
from bot.sweep import best_trial, check_key, combine, grid_points, parse_grid, parse_space, settings_with
from bot.sweep_output import params_toml
from bot.sweep_runs import Sampler, SweepUsageError


def test_keys_are_checked_against_the_model() -> None:
    check_key("quoter.gamma_per_quote")
    check_key("risk.toxicity.widen_bps")  # a nested section
    with pytest.raises(SweepUsageError, match=r"quoter has no 'gamma'.*gamma_per_quote"):
        check_key("quoter.gamma")
    with pytest.raises(SweepUsageError, match="the config has no 'nosuch'"):
        check_key("nosuch.key")
    with pytest.raises(SweepUsageError, match="is a section"):
        check_key("risk.toxicity")
    with pytest.raises(SweepUsageError, match="is not a section"):
        check_key("quoter.gamma_per_quote.x")


def test_grid_values_are_toml_literals_and_the_grid_is_every_combination() -> None:
    assert parse_grid("quoter.gamma_per_quote=0.1,1") == ("quoter.gamma_per_quote", [0.1, 1])
    assert parse_grid("quoter.model=glft,as") == ("quoter.model", ["glft", "as"])
    assert parse_grid("deal.apply_to_portfolio=true,false")[1] == [True, False]
    points = grid_points([("a.x", [1, 2]), ("b.y", ["p", "q", "r"])])
    assert len(points) == 6
    assert points[0] == {"a.x": 1, "b.y": "p"} and points[-1] == {"a.x": 2, "b.y": "r"}
    with pytest.raises(SweepUsageError, match="KEY=V1,V2"):
        parse_grid("quoter.gamma_per_quote")


def test_settings_with_sets_nested_keys_and_validates_them() -> None:
    base = load_settings()
    s = settings_with(base, {"quoter.gamma_per_quote": 0.25, "risk.toxicity.widen_bps": 9.0})
    assert s.quoter.gamma_per_quote == 0.25
    assert s.risk.toxicity.widen_bps == 9.0
    # everything else as loaded
    assert s.risk.toxicity.skew_bps == base.risk.toxicity.skew_bps
    assert s.quoter.order_size_base == base.quoter.order_size_base
    assert base.quoter.gamma_per_quote != 0.25  # the base is untouched
    with pytest.raises(ConfigError, match=r"quoter\.gamma_per_quote"):
        settings_with(base, {"quoter.gamma_per_quote": -1.0})
    with pytest.raises(ConfigError, match=r"quoter\.model"):
        settings_with(base, {"quoter.model": "nonsense"})


def test_space_bounds() -> None:
    d = parse_space("quoter.levels=1:4")
    assert (d.low, d.high, d.integer) == (1, 4, True)
    d = parse_space("quoter.gamma_per_quote=0.01:1")
    assert not d.integer
    for bad in ("quoter.levels=4:1", "quoter.levels=a:b", "quoter.levels=1", "quoter.levels=1:inf"):
        with pytest.raises(SweepUsageError):
            parse_space(bad)


class _FakeEngine:
    """Inventory and equity read from two scripted lists, one value per sample."""

    def __init__(self, inventory: list[float], equity: list[float]) -> None:
        self._inventory = iter(inventory)
        self._equity = iter(equity)

    def inventory_base(self) -> float:
        return next(self._inventory)

    def equity_quote(self) -> float:
        return next(self._equity)


def test_sampler_std_and_drawdown_by_hand() -> None:
    # inventory 1, -1, 1, -1: mean 0, population std 1
    # equity 0, 5, 2, 7, 1: peaks 0, 5, 5, 7, 7; falls 0, 0, 3, 0, 6 -> max drawdown 6
    engine = _FakeEngine([1.0, -1.0, 1.0, -1.0, 0.0], [0.0, 5.0, 2.0, 7.0, 1.0])
    sampler = Sampler(engine)  # type: ignore[arg-type]
    for _ in range(5):
        sampler.sample()
    # the fifth inventory sample is 0: mean 0, E[x²] = 4/5
    assert sampler.inventory_std == pytest.approx(math.sqrt(4 / 5))
    assert sampler.max_drawdown == 6.0
    assert Sampler(engine).inventory_std == 0.0  # type: ignore[arg-type]


def _run(pnl: float, volume: float, std: float, dd: float, fills: int, adv: float, obl: float | None) -> dict:
    return {
        "pnl": pnl,
        "volume": volume,
        "pnl_per_unit": 0.0,
        "inventory_std": std,
        "max_drawdown": dd,
        "fills": fills,
        "adverse_selection": adv,
        "obligation_pct": obl,
    }


def test_a_trial_combines_its_runs() -> None:
    m = combine([_run(10.0, 4.0, 0.2, 3.0, 5, 1.5, 90.0), _run(-4.0, 2.0, 0.4, 8.0, 7, 0.5, None)])
    assert m["pnl"] == 6.0
    assert m["volume"] == 6.0
    assert m["pnl_per_unit"] == 1.0  # 6 quote over 6 base traded
    assert m["inventory_std"] == pytest.approx(0.3)
    assert m["max_drawdown"] == 8.0
    assert m["fills"] == 12
    assert m["adverse_selection"] == 2.0
    assert m["obligation_pct"] == 90.0  # the run without obligations does not count


def test_best_by_objective_direction_and_first_of_equals() -> None:
    trials = [
        {"params": {"k": 0}, "metrics": {"pnl": 1.0, "max_drawdown": 5.0}},
        {"params": {"k": 1}, "metrics": {"pnl": 3.0, "max_drawdown": 9.0}},
        {"params": {"k": 2}, "metrics": {"pnl": 3.0, "max_drawdown": 2.0}},
    ]
    assert best_trial(trials, "pnl")["params"] == {"k": 1}
    assert best_trial(trials, "max_drawdown")["params"] == {"k": 2}  # lower is better


def test_best_toml_loads_back_into_the_same_settings() -> None:
    params = {"quoter.gamma_per_quote": 0.25, "quoter.model": "as", "risk.toxicity.widen_bps": 7.5}
    text = params_toml(params)
    data = tomllib.loads(text)
    assert data == {"quoter": {"gamma_per_quote": 0.25, "model": "as"}, "risk": {"toxicity": {"widen_bps": 7.5}}}
    base = load_settings()
    merged = settings_with(base, params)
    assert merged.quoter.model == "as" and merged.risk.toxicity.widen_bps == 7.5


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["mock:1", "--grid", "quoter.gama=1,2"], "did you mean 'gamma_per_quote'"),
        (["mock:1", "--grid", "quoter.gamma_per_quote=0.1,-1"], "quoter.gamma_per_quote"),
        (["mock:x", "--grid", "quoter.gamma_per_quote=0.1"], "mock:SEED"),
        (["mock:1"], "--grid"),
        (["mock:1", "--grid", "quoter.levels=1", "--workers", "0"], "--workers"),
        (["mock:1", "--search", "3"], "--space"),
        (["mock:1", "--grid", "quoter.levels=1", "--objective", "luck"], "--objective"),
        (["/nonexistent.gz", "--grid", "quoter.levels=1"], "cannot read"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
