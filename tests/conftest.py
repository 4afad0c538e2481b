"""Shared fixtures and helpers (`from conftest import ...`). Tests never touch the network and never
sleep for a fixed time."""

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from hypothesis import HealthCheck, settings

from bot.config import ConfigError, load_settings
from bot.domain import Event
from bot.logs import clear_context, configure_logging

# Deterministic property tests: the same examples on every run and every machine.
settings.register_profile("ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _logging_to_current_stdout() -> None:
    """Each test starts with the default log pipeline (JSON to whatever stdout is now) and nothing
    bound: a test that pointed the loggers at its own stream, since closed, or ran a command that bound
    its `run_id`, must not leak into the next one."""
    configure_logging("json", "INFO")
    clear_context()


Record = dict[str, Any]


def is_event(record: Record, name: str, **fields: Any) -> bool:
    """Whether a JSON log record is the event `name` carrying (at least) these field values."""
    return record.get("event") == name and all(record.get(k) == v for k, v in fields.items())


class LogSink:
    """A text stream for `configure_logging` that keeps each JSON log line as a dict."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def write(self, text: str) -> int:
        self.records.extend(orjson.loads(line) for line in text.splitlines() if line.strip())
        return len(text)

    def flush(self) -> None: ...

    def isatty(self) -> bool:
        return False


@pytest.fixture
def log_sink() -> Iterator[LogSink]:
    """The bot's JSON log lines, as dicts, for the duration of a test."""
    sink = LogSink()
    configure_logging("json", "INFO", stream=sink)
    yield sink
    structlog.reset_defaults()
    clear_context()


async def until(predicate: Callable[[], object], timeout_s: float = 5.0, what: str = "") -> None:
    """Wait (on a condition, polled, with a timeout) until `predicate()` is true; on timeout the test
    fails naming `what` it waited for."""
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout_s} s waiting for {what or predicate}")


async def wait_for_event(events: list[Event], pred: Callable[[Event], bool], timeout_s: float = 5.0) -> Event:
    """Wait (on a condition, with a timeout) until an event matching `pred` has arrived."""
    await until(lambda: any(pred(e) for e in events), timeout_s, what="a matching event")
    return next(e for e in events if pred(e))


def config_error(tmp_path: Path, toml: str) -> str:
    """The one-line message `load_settings` refuses this TOML file with (fails the test if it loads)."""
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)
