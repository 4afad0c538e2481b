"""Secrets never leak: with every secret environment variable set to a distinctive value, run
`check-config`, a short dry run and error paths, and look for the values everywhere the bot writes:
stdout (log lines, the config dump), stderr (error messages), the ledger file, the HTML/PNG report
built from it, and the Prometheus exposition and /status document of the run's metrics.

The secret variables are exactly the `SecretStr` fields of the Settings model (checked below, so a
new secret is covered without editing this file).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

import bot.app
from bot.cli import main
from bot.config import Settings
from bot.logs import configure_logging, get_logger
from bot.runtime.metrics import Metrics
from bot.runtime.report import build_report
from bot.venues.mock.venues import MultiMockVenue

ROOT = Path(__file__).resolve().parents[2]


def _secret_env_names() -> list[str]:
    names = []
    for section, info in Settings.model_fields.items():
        model = info.annotation
        for key, field in getattr(model, "model_fields", {}).items():
            if "SecretStr" in str(field.annotation):
                names.append(f"MMBOT__{section.upper()}__{key.upper()}")
    return names


SECRET_ENV = _secret_env_names()
VALUES = {name: f"zq{name[-8:].lower().replace('_', '')}Xv9K2mP7tR4w" for name in SECRET_ENV}


def test_the_secret_list_is_the_documented_one() -> None:
    assert SECRET_ENV == ["MMBOT__CCXT__API_KEY", "MMBOT__CCXT__API_SECRET", "MMBOT__CCXT__API_PASSWORD"]
    assert SecretStr.__name__ == "SecretStr"
    assert len(set(VALUES.values())) == len(VALUES)


def assert_clean(where: str, blob: str | bytes) -> None:
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    for name, value in VALUES.items():
        assert value not in text, f"{name} leaked into {where}"
        assert value[4:16] not in text, f"part of {name} leaked into {where}"


@pytest.fixture
def secrets_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name, value in VALUES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MMBOT__METRICS__ENABLED", "false")  # no socket; the exposition is rendered below
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.usefixtures("secrets_set")
def test_check_config_masks_every_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--log-format", "json", "--log-level", "DEBUG"]) == 0
    out = capsys.readouterr()
    assert '"api_key": "**********"' in out.out  # the secret is there, and masked
    assert_clean("check-config stdout", out.out)
    assert_clean("check-config stderr", out.err)


def test_dry_run_logs_ledger_report_and_metrics_carry_no_secret(
    secrets_set: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made: list[Metrics] = []

    class RecordingMetrics(Metrics):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(bot.app, "Metrics", RecordingMetrics)
    original_connect = MultiMockVenue.connect  # the embedded default's venue: the multi-venue mock

    async def chatty_connect(self: MultiMockVenue) -> None:
        # an adapter that carelessly logs its credentials, in a field and inside free text: the log
        # pipeline must mask both (the redactor knows the configured secret values)
        key = VALUES["MMBOT__CCXT__API_KEY"]
        get_logger().warning("venue.debug", options={"apiKey": key}, error=f"auth failed for {key}")
        logging.getLogger("ccxt").warning("signing with secret %s", VALUES["MMBOT__CCXT__API_SECRET"])
        await original_connect(self)

    monkeypatch.setattr(MultiMockVenue, "connect", chatty_connect)
    ledger = secrets_set / "ledger.sqlite"
    argv = ["run", "--duration", "1.5s", "--ledger", str(ledger), "--log-format", "json", "--log-level", "DEBUG"]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert out.out.count("\n") > 3  # it did log
    assert "venue.debug" in out.out and "signing with secret" in out.out  # the careless lines were written
    assert_clean("run stdout (log lines)", out.out)
    assert_clean("run stderr", out.err)
    assert made, "the run built its metrics"
    for metrics in made:
        assert_clean("metrics exposition", metrics.exposition())
        assert_clean("/status", repr(metrics.status()))
    for file in secrets_set.glob("ledger.sqlite*"):
        assert_clean(file.name, file.read_bytes())
    report = build_report(ledger, secrets_set / "report")
    assert report.exists()
    for file in (secrets_set / "report").rglob("*"):
        if file.is_file():
            assert_clean(f"report {file.name}", file.read_bytes())


@pytest.mark.usefixtures("secrets_set")
@pytest.mark.parametrize(
    ("argv", "toml", "code"),
    [
        (["check-config", "bad.toml"], "[quoter]\norder_size_base = -1\n", 2),  # a validation error
        (["check-config", "bad.toml"], f'[ccxt]\napi_key = "{VALUES["MMBOT__CCXT__API_KEY"]}"\n', 2),  # in a file
        (["run", "--config", "bad.toml", "--duration", "1s"], "[risk]\nmax_drawdown_quote = nan\n", 2),
        (["run", "--config", str(ROOT / "config" / "okx-demo.toml"), "--duration", "1s"], None, 2),  # set below
        (["run", "--venue", "ws://127.0.0.1:9", "--duration", "1s", "--ledger", "l.sqlite"], None, 1),  # no venue
    ],
)
def test_error_paths_carry_no_secret(
    argv: list[str], toml: str | None, code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if toml is not None:
        Path("bad.toml").write_text(toml)
    if any("okx-demo.toml" in a for a in argv):
        monkeypatch.setenv("MMBOT__CCXT__API_PASSWORD", "")  # key and secret set, passphrase missing
    assert main(argv) == code
    out = capsys.readouterr()
    assert out.err.strip(), "an error was reported"
    assert_clean("stdout", out.out)
    assert_clean("stderr", out.err)


# ---- property: no error or log line prints the value of an unknown key or a secret-looking name ----

SECRET_WORDS = ["key", "secret", "password", "passphrase", "token", "apikey", "api_key", "secrett", "signature"]
words = st.from_regex(r"[a-z]{1,6}", fullmatch=True)
secret_names = st.builds(
    lambda pre, word, post, upper: ("_".join(p for p in (pre, word, post) if p)).upper() if upper else "_".join(
        p for p in (pre, word, post) if p),
    st.one_of(st.just(""), words), st.sampled_from(SECRET_WORDS), st.one_of(st.just(""), st.just("2")), st.booleans(),
)  # fmt: skip
# distinctive: the prefix cannot occur in any message by chance; the rest is any printable text
printable = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
secret_values = st.builds(lambda tail: "Zq9" + tail, st.text(printable, min_size=3, max_size=12))
SECTIONS = sorted(Settings.model_fields)


def _known(section: str, key: str) -> bool:
    model = getattr(Settings.model_fields.get(section), "annotation", None)
    return key in getattr(model, "model_fields", {})


def _cli_output(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue() + err.getvalue()


@settings(max_examples=60)
@given(
    section=st.one_of(st.sampled_from(SECTIONS), words),
    key=st.one_of(secret_names, words),
    value=secret_values,
    from_env=st.booleans(),
)
def test_an_unknown_or_secret_looking_key_never_has_its_value_printed(
    section: str, key: str, value: str, from_env: bool
) -> None:
    assume(not _known(section.lower(), key.lower()))  # a known, ordinary field may show its bad value
    clean = {k: "" for k in os.environ if k.upper().startswith("MMBOT__")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        if from_env:
            env, argv = {**clean, f"MMBOT__{section}__{key}": value}, ["check-config", str(path)]
            path.write_text("")
        else:
            env, argv = clean, ["check-config", str(path)]
            path.write_text(f"[{section.lower()}]\n{key.lower()} = {json.dumps(value)}\n")
        code, output = _cli_output(argv, {k: v for k, v in env.items() if v != ""})
    assert code == 2, output
    assert value not in output and value[:6] not in output


@settings(max_examples=60)
@given(name=secret_names, value=secret_values)
def test_a_log_field_with_a_secret_looking_name_is_masked(name: str, value: str) -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    get_logger().info("venue.debug", **{name: value, "ok": 1})
    line = stream.getvalue()
    assert value not in line and "**********" in line and '"ok":1' in line
