"""`docs/config.md`, generated from the Settings models so the reference cannot drift from the code.

    .venv/bin/python -m bot.config_doc > docs/config.md

A test regenerates it and fails if the committed file differs (tests/unit/test_config_doc.py).
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bot.config import SECRET_FIELDS, Settings

HEADER = """# Configuration reference

Generated from `bot/config.py` by `python -m bot.config_doc > docs/config.md`; do not edit by hand.
Every key can be set in the TOML file (`[section]`, nested tables for nested sections) or in the
environment as `MMBOT__SECTION__KEY` (nested: `MMBOT__MOCK__SPOT__TAKER_FEE`), which wins over the file.
Secrets (marked below) are read only from the environment. Units are in the names or descriptions.
The defaults are the models' own; `config/default.toml` (the dry run) overrides some of them.
"""


def _type_name(info: FieldInfo) -> str:
    text = repr(info.annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
    for prefix in ("bot.config.", "pydantic.types.", "annotated_types."):
        text = text.replace(prefix, "")
    return text


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "(required)"
    value: Any = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(table)"
    if isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
        return f"{len(value)} entries"
    return f"`{value!r}`" if value is not None else "`None`"


def _rows(model: type[BaseModel], path: str, env: str) -> list[str]:
    rows: list[str] = []
    nested: list[tuple[type[BaseModel], str, str]] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        key, var = f"{path}.{name}", f"{env}__{name.upper()}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested.append((annotation, key, var))
            continue
        description = (info.description or "").replace("|", "\\|").replace("\n", " ")
        section, _, field = key.partition(".")
        if (section, field) in SECRET_FIELDS:
            description = f"**secret, environment only**. {description}"
        rows.append(f"| `{key}` | {_type_name(info)} | {_default(info)} | `{var}` | {description} |")
    for sub, key, var in nested:
        rows.extend(_rows(sub, key, var))
    return rows


def render() -> str:
    out = [HEADER]
    for name, info in Settings.model_fields.items():
        model = info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        doc = " ".join((model.__doc__ or "").split())
        out.append(f"\n## `[{name}]`\n" + (f"\n{doc}\n" if doc else ""))
        out.append("| key | type | default | environment | description |\n|---|---|---|---|---|")
        out.extend(_rows(model, name, f"MMBOT__{name.upper()}"))
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render())
