"""structlog configuration: one JSON object per line on stdout (console rendering on a TTY).

Event names are stable `noun.verb` strings (`quote.updated`, `order.filled`); data goes in fields.
`run_id`, `venue` and `symbol` are bound with `bind_context` (contextvars) and merged into every
line. Stdlib loggers (ccxt, websockets, asyncio) go through the same processors, and a redaction
processor masks anything that looks secret, by key name and by registered secret value.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO

import orjson
import structlog

LogFormat = Literal["json", "console", "auto"]

REDACTED = "**********"
_SECRET_KEY_PARTS = ("secret", "password", "api_key", "apikey", "signature", "passphrase")


def _is_secret_key(key: str) -> bool:
    """`api_secret`, `auth_token`, `Signature`...; not `tokens` (a rate-limit bucket's level)."""
    lowered = key.lower()
    return lowered.endswith("token") or any(part in lowered for part in _SECRET_KEY_PARTS)


class Redactor:
    """Masks values under secret-looking keys and any registered secret string wherever it appears."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s)
        self._secret_keys: dict[str, bool] = {}  # log keys are few and repeat: decide each once

    def __call__(self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
        secret_keys = self._secret_keys
        for key in list(event_dict):
            value = event_dict[key]
            is_secret = secret_keys.get(key)
            if is_secret is None:
                is_secret = secret_keys[key] = _is_secret_key(key)
            if is_secret and value not in (None, ""):
                event_dict[key] = REDACTED
            elif self._secrets:
                event_dict[key] = self._scrub(value)
        return event_dict

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        return value


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str, option=orjson.OPT_NON_STR_KEYS).decode()


def _silence_stdout() -> None:
    """The reader of our stdout went away (`mmbot run | head`). Lost log lines must not stop the bot
    from cancelling its orders and shutting down cleanly: point stdout at /dev/null and carry on."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class _CurrentStdout:
    """Writes to whatever `sys.stdout` is at write time, not at configure time: a test harness or a
    daemon that swaps stdout (and closes the old one) must not leave the loggers on a closed file."""

    def write(self, text: str) -> int:
        try:
            return sys.stdout.write(text)
        except (BrokenPipeError, ValueError):
            _silence_stdout()
            return 0

    def flush(self) -> None:
        try:
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            _silence_stdout()

    def isatty(self) -> bool:
        return sys.stdout.isatty()


def configure_logging(
    fmt: LogFormat = "auto",
    level: str = "INFO",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger to write one pipeline to `stream`."""
    out: Any = stream if stream is not None else _CurrentStdout()
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        Redactor(secrets),
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if use_console
        else structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Stdlib loggers (ccxt, websockets, asyncio): same processors, same stream.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for noisy in ("websockets", "ccxt", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def bind_context(**fields: Any) -> None:
    """Bind `run_id`, `venue`, `symbol`, ... for every log line of the current context."""
    structlog.contextvars.bind_contextvars(**fields)


def get_logger(name: str = "mmbot") -> Any:
    return structlog.get_logger(name)
