"""Shared fixtures. Tests never touch the network and never sleep for a fixed time."""

import pytest
from hypothesis import HealthCheck, settings

from bot.logs import configure_logging

# Deterministic property tests: the same examples on every run and every machine.
settings.register_profile("ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _logging_to_current_stdout() -> None:
    """Each test starts with the default log pipeline (JSON to whatever stdout is now): a test that
    pointed the loggers at its own stream, since closed, must not break the next one."""
    configure_logging("json", "INFO")
