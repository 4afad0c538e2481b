"""docs/config.md is generated from the Settings models; it must match them."""

from __future__ import annotations

from pathlib import Path

from bot.config import SECRET_FIELDS, Settings
from bot.config_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_the_committed_reference_is_the_generated_one() -> None:
    assert DOC.read_text() == render(), "regenerate: .venv/bin/python -m bot.config_doc > docs/config.md"


def test_every_section_and_secret_is_documented() -> None:
    text = render()
    for section in Settings.model_fields:
        assert f"## `[{section}]`" in text
    for section, key in SECRET_FIELDS:
        line = next(row for row in text.splitlines() if row.startswith(f"| `{section}.{key}` "))
        assert "secret, environment only" in line
