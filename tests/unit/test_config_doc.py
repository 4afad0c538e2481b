"""docs/config.md is generated from the Settings models; it must match them."""

from __future__ import annotations

from pathlib import Path

from bot.config import SECRET_FIELDS, Settings
from bot.config_doc import _fields, render, render_env_example

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "config.md"
ENV_EXAMPLE = ROOT / ".env.example"


def test_the_committed_reference_is_the_generated_one() -> None:
    assert DOC.read_text() == render(), "regenerate: .venv/bin/python -m bot.config_doc > docs/config.md"


def test_every_section_and_secret_is_documented() -> None:
    text = render()
    for section in Settings.model_fields:
        assert f"## `[{section}]`" in text
    for section, key in SECRET_FIELDS:
        line = next(row for row in text.splitlines() if row.startswith(f"| `{section}.{key}` "))
        assert "secret, environment only" in line


def test_env_example_is_generated_and_lists_every_setting() -> None:
    assert ENV_EXAMPLE.read_text() == render_env_example(), (
        "regenerate: .venv/bin/python -m bot.config_doc --env > .env.example"
    )
    text = ENV_EXAMPLE.read_text()
    for name, info in Settings.model_fields.items():
        model = info.annotation
        assert isinstance(model, type)
        for _key, var, _field in _fields(model, name, f"MMBOT__{name.upper()}"):  # type: ignore[arg-type]
            assert f"{var}=" in text, var
