"""Config fuzzing: any bad value, in any field, stops `check-config` and `run` with one line and exit 2.

Values are generated per field from the Settings model itself (wrong types, NaN / inf, negative where
the field has a non-negative bound, unknown keys), written as TOML and fed through the real CLI entry
point. An exception other than the CLI's ConfigError would escape `main` and fail the test; a few
cases also run as a subprocess to show no traceback reaches the terminal.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import annotated_types
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bot.cli import main
from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]
MMBOT = Path(sys.executable).with_name("mmbot")


def _fields(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], FieldInfo]]:
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _fields(ann, (*path, name))
        else:
            yield (*path, name), info


def _base_type(info: FieldInfo) -> type | None:
    ann = info.annotation
    if ann in (int, float, str, bool):
        return ann  # type: ignore[return-value]
    if get_origin(ann) is not None and float in [a for a in get_args(ann) if isinstance(a, type)]:
        return float  # float | None
    return None


def _lower_bound(info: FieldInfo) -> float | None:
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            return float(meta.ge)  # type: ignore[arg-type]
        if isinstance(meta, annotated_types.Gt):
            return float(meta.gt)  # type: ignore[arg-type]
    return None


SECRETS = {("ccxt", "api_key"), ("ccxt", "api_secret"), ("ccxt", "api_password")}
FIELDS = [(p, i, _base_type(i)) for p, i in _fields(Settings) if p[:2] not in SECRETS and _base_type(i) is not None]
NUMERIC = [(p, i, t) for p, i, t in FIELDS if t in (int, float)]
OTHER = [(p, i, t) for p, i, t in FIELDS if t in (str, bool)]
SECTIONS = sorted({p[:-1] for p, _, _ in FIELDS if p[:-1]})


class Raw(str):
    """A TOML value written as is (nan, inf, arrays, inline tables)."""


def _toml_value(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a TOML basic string


def _toml(path: tuple[str, ...], value: Any) -> str:
    section, key = path[:-1], path[-1]
    lines = [f"[{'.'.join(section)}]"] if section else []
    if section in (("mock", "spot"), ("mock", "perp")) and key != "symbol":  # its one required key
        lines.append(f'symbol = "{"TOKEN/USDT" if section[1] == "spot" else "TOKEN/USDT:USDT"}"')
    lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


NOT_A_NUMBER = st.sampled_from([Raw("nan"), Raw("inf"), Raw("-inf"), "abc", "", Raw("[1, 2]"), Raw("{ x = 1 }")])


def _bad_numeric(info: FieldInfo, kind: type) -> st.SearchStrategy[Any]:
    bad = NOT_A_NUMBER
    low = _lower_bound(info)
    if low is not None and low >= 0:
        below = st.floats(max_value=low, exclude_max=True, allow_nan=False, allow_infinity=False, min_value=-1e12)
        bad = bad | (below.map(math.floor) if kind is int else below)
    if kind is int:
        bad = bad | st.sampled_from([0.5, 2.5])  # not an integer
    return bad


def _bad_other(kind: type) -> st.SearchStrategy[Any]:
    if kind is bool:
        return st.sampled_from([Raw("[true]"), Raw("{ x = 1 }"), "maybe", 2])
    return st.sampled_from([Raw("[1, 2]"), Raw("{ x = 1 }"), 5, 1.5, True])


bad_field_values = st.one_of(
    st.sampled_from(NUMERIC).flatmap(lambda f: st.tuples(st.just(f[0]), _bad_numeric(f[1], f[2]))),
    st.sampled_from(OTHER).flatmap(lambda f: st.tuples(st.just(f[0]), _bad_other(f[2]))),
)
unknown_keys = st.tuples(
    st.sampled_from(SECTIONS),
    st.from_regex(r"[a-z][a-z_]{2,12}", fullmatch=True).filter(lambda k: not k.startswith("_")),
).map(lambda sk: ((*sk[0], sk[1]), 1))


def _run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def _assert_one_line_exit_2(code: int, err: str, path: tuple[str, ...]) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert ".".join(path[:-1]) in lines[0] and "Traceback" not in err


@settings(max_examples=100)
@given(bad_field_values | unknown_keys)
def test_check_config_refuses_bad_values(case: tuple[tuple[str, ...], Any]) -> None:
    path, value = case
    if path[-1] in {name for p, _, _ in FIELDS if p[:-1] == path[:-1] for name in [p[-1]]} and value == 1:
        return  # a generated "unknown" key that is in fact known
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "bad.toml"
        file.write_text(_toml(path, value))
        _assert_one_line_exit_2(*_run_cli(["check-config", str(file)]), path)


@settings(max_examples=25)
@given(bad_field_values)
def test_run_refuses_bad_values_before_touching_a_venue(case: tuple[tuple[str, ...], Any]) -> None:
    path, value = case
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "bad.toml"
        file.write_text(_toml(path, value))
        _assert_one_line_exit_2(*_run_cli(["run", "--config", str(file), "--duration", "1s"]), path)


def test_every_numeric_field_is_fuzzed() -> None:
    # the strategy is built from the model: a new section or field is fuzzed without editing this file
    assert len(NUMERIC) > 150
    assert {p[0] for p, _, _ in NUMERIC} >= {"runtime", "quoter", "estimator", "ccxt", "mock", "hedger", "risk"}


@pytest.mark.parametrize(
    "text",
    ["not toml [", "[quoter]\norder_size_base = nan\n", "[nosuchsection]\nx = 1\n", '[ccxt]\napi_key = "abc"\n'],
)
def test_malformed_files_exit_2_with_one_line(tmp_path: Path, text: str) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(text)
    code, err = _run_cli(["check-config", str(file)])
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    code, err = _run_cli(["check-config", str(tmp_path / "absent.toml")])
    assert code == 2 and len(err.strip().splitlines()) == 1


@pytest.fixture
def no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("MMBOT__"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_secrets")
@pytest.mark.parametrize(
    ("config", "missing"),
    [("bybit-testnet.toml", "MMBOT__CCXT__API_KEY"), ("binance-demo.toml", "MMBOT__CCXT__API_KEY")],
)
def test_testnet_config_without_keys_exits_2_naming_the_variable(config: str, missing: str) -> None:
    code, err = _run_cli(["run", "--config", str(ROOT / "config" / config), "--duration", "1s"])
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and missing in err


@pytest.mark.usefixtures("no_secrets")
def test_okx_demo_without_passphrase_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMBOT__CCXT__API_KEY", "k")
    monkeypatch.setenv("MMBOT__CCXT__API_SECRET", "s")
    code, err = _run_cli(["run", "--config", str(ROOT / "config" / "okx-demo.toml"), "--duration", "1s"])
    assert code == 2 and "MMBOT__CCXT__API_PASSWORD" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["check-config", "{bad}"],
        ["run", "--config", "{bad}", "--duration", "1s"],
    ],
)
def test_no_traceback_reaches_the_terminal(tmp_path: Path, argv: list[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\ninventory_hard_base = -inf\n")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MMBOT__")}
    proc = subprocess.run(
        [str(MMBOT), *[a.replace("{bad}", str(bad)) for a in argv]],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
