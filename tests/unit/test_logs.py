"""Log redaction: secret-looking keys and registered secret values never reach a log line."""

from __future__ import annotations

import io
import json
import logging

from bot.logs import REDACTED, Redactor, configure_logging, get_logger


def test_values_under_secret_keys_are_masked_and_other_keys_kept() -> None:
    redact = Redactor()
    out = redact(None, "info", {"api_secret": "s3", "auth_token": "t0", "Signature": "sig", "tokens": 4.5, "x": 1})
    assert out == {"api_secret": REDACTED, "auth_token": REDACTED, "Signature": REDACTED, "tokens": 4.5, "x": 1}


def test_registered_secrets_are_masked_wherever_they_appear() -> None:
    redact = Redactor(["hunter2"])
    out = redact(None, "info", {"url": "wss://x?key=hunter2", "nested": {"a": ["hunter2!", 3]}, "n": None})
    assert out == {"url": f"wss://x?key={REDACTED}", "nested": {"a": [f"{REDACTED}!", 3]}, "n": None}


def test_the_pipeline_redacts_structlog_and_stdlib_lines_alike() -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", secrets=["hunter2"], stream=stream)
    get_logger().info("venue.error", error="auth failed for hunter2", api_key="k")
    logging.getLogger("ccxt").warning("retrying with hunter2")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["venue.error", f"retrying with {REDACTED}"]
    assert "hunter2" not in stream.getvalue()
    assert lines[0]["api_key"] == REDACTED
