"""The README's log-event catalogue is an interface: every event the code can emit is listed there."""

from __future__ import annotations

import re
from pathlib import Path

from bot.core.risk import _EVENTS

ROOT = Path(__file__).resolve().parents[2]
# `self._note("x.y"`, `quoter.note("x.y"`, `log.info("x.y"`, `get_logger().error("x.y"`, ... (also across a
# line break)
EMITTED = re.compile(r'(?:_note|\.note|\.(?:debug|info|warning|error|exception))\(\s*"([a-z_]+\.[a-z_]+)"')


def emitted_events() -> set[str]:
    names = {name for path in (ROOT / "bot").rglob("*.py") for name in EMITTED.findall(path.read_text())}
    return names | set(_EVENTS.values())  # risk transitions are named in a table, not at a call


def test_the_scan_finds_the_events_it_should() -> None:
    events = emitted_events()
    assert {"quote.updated", "order.filled", "session.summary", "risk.paused", "recovery.completed"} <= events


def test_every_emitted_event_is_in_the_readme_catalogue() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(name for name in emitted_events() if f"`{name}`" not in readme)
    assert missing == [], f"add to the README's log-event catalogue: {missing}"
