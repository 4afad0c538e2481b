"""Config loading: file + environment precedence, one-line errors, secrets only from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import config_error

from bot.cli import main
from bot.config import load_settings


def test_default_config_loads() -> None:
    settings = load_settings()
    assert settings.runtime.venue == "mock"
    assert settings.quoter.order_size_base > 0


def test_environment_overrides_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMBOT__QUOTER__GAMMA_PER_QUOTE", "0.25")
    assert load_settings().quoter.gamma_per_quote == 0.25


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[quoter]\ngamma_per_quote = -1\n", "quoter.gamma_per_quote"),
        ("[quoter]\nlevels = 'many'\n", "quoter.levels"),
        ("[quoter]\norder_size_base = nan\n", "quoter.order_size_base"),
        ("[quoter]\norder_size_base = inf\n", "quoter.order_size_base"),
        ("[quoter]\nno_such_key = 1\n", "quoter.no_such_key"),
        ("[no_such_section]\nx = 1\n", "no_such_section"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, toml: str, field: str) -> None:
    message = config_error(tmp_path, toml)
    assert "\n" not in message
    assert message.startswith(f"config error: {field}:")


def test_secret_in_file_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path, "[ccxt]\napi_key = 'abc123'\n")
    assert "ccxt.api_key: secrets are read only from the environment" in message


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[runtime]\ntimer_ms = 0\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "runtime.timer_ms" in err
    assert main(["check-config"]) == 0


def test_check_config_masks_secrets(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MMBOT__CCXT__API_KEY", "very-secret-key-123")
    monkeypatch.setenv("MMBOT__CCXT__API_SECRET", "very-secret-secret-456")
    assert main(["check-config", "--log-format", "json"]) == 0
    out = capsys.readouterr()
    assert "very-secret" not in out.out + out.err
    assert '"api_key": "**********"' in out.out
