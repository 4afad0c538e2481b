"""structlog configuration: one JSON object per line on stdout (console rendering on a TTY).

Event names are stable `noun.verb` strings (`quote.updated`, `order.filled`); data goes in fields.
`run_id`, `venue` and `symbol` are bound with `bind_context` (a contextvar of ours, not structlog's:
one lookup per line instead of a walk over every contextvar) and merged into every line. Stdlib
loggers (ccxt, websockets, asyncio) go through the same processors, and a redaction processor masks
anything that looks secret, by key name and by registered secret value.

A line costs a few microseconds (`bench/log_throughput.py`): the timestamp's date and second are
formatted once per second, secret values are looked for in the rendered line before any value is
walked, orjson renders straight to the line's text, and each line is one write and one flush (a batch
command's, `mmbot replay`: unflushed, out in 8 KB blocks; its JSON lines through one function, `info_writer`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import io
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any, Literal, TextIO

import orjson
import structlog

from bot.secret_names import REDACTED, looks_secret

LogFormat = Literal["json", "console", "auto"]

_NOTHING_BOUND: Mapping[str, Any] = MappingProxyType({})
# The fields `bind_context` bound in this context. Each bind sets a new dict: one never changes once set,
# so a task's copy of the context keeps what was bound when it started.
_BOUND_FIELDS: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("mmbot_log_fields")
_LEVEL_METHODS = (
    (logging.DEBUG, "debug"),
    (logging.INFO, "info"),
    (logging.WARNING, "warning"),
    (logging.ERROR, "error"),
    (logging.CRITICAL, "critical"),
)


def _is_secret_key(key: str) -> bool:
    """`api_secret`, `auth_token`, `Signature`...; not `tokens` (a rate-limit bucket's level)."""
    return looks_secret(key)  # the one rule, shared with config errors and the CLI


class Redactor:
    """Masks values under secret-looking keys and any registered secret string wherever it appears.

    Cheap on the common line: the keys' verdicts are cached (log keys are few and repeat), and the
    values are only walked when the line, rendered, holds a registered secret at all."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s)
        # A secret shows in a rendered line as itself or JSON-escaped (a quote or backslash in it).
        self._needles = tuple({form for s in self._secrets for form in (s, orjson.dumps(s).decode()[1:-1])})
        self._seen_keys: set[str] = set()
        self._secret_keys: set[str] = set()

    def __call__(self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
        keys = event_dict.keys()
        if not self._seen_keys.issuperset(keys):
            self._learn(keys)
        if not self._secret_keys.isdisjoint(keys):
            for key in self._secret_keys.intersection(keys):
                if event_dict[key] not in (None, ""):
                    event_dict[key] = REDACTED
        if self._needles and self._holds_secret(event_dict):
            for key, value in event_dict.items():
                event_dict[key] = self._scrub(value)
        return event_dict

    def _learn(self, keys: Iterable[str]) -> None:
        for key in list(keys):
            if key not in self._seen_keys:
                if _is_secret_key(key):
                    self._secret_keys.add(key)
                self._seen_keys.add(key)  # after: another thread must not skip a secret key half-learnt

    def _holds_secret(self, event_dict: MutableMapping[str, Any]) -> bool:
        """False only if no string `_scrub` would change holds a secret: JSON escapes character by
        character, so a string holding a secret renders holding the secret's rendering."""
        try:
            line = orjson.dumps(event_dict, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # cannot be rendered as JSON: look at every value
            return True
        for needle in self._needles:  # noqa: SIM110 (a loop: ~0.15 us less per line than any(...))
            if needle in line:
                return True
        return False

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


def _json_default(obj: Any) -> Any:
    """What the JSON renderer writes for a value orjson has no encoding for (structlog's rule)."""
    to_log = getattr(obj, "__structlog__", None)
    return to_log() if to_log is not None else repr(obj)


def render_json(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> str:
    """The line's JSON text. Keys that are not strings (rare) need orjson's slower option."""
    try:
        return orjson.dumps(event_dict, default=_json_default).decode()
    except TypeError:
        return orjson.dumps(event_dict, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


class IsoTimestamper:
    """Adds `ts`: now in ISO-8601 UTC with microseconds and `Z`. The date and time to the second are
    formatted once per second; each line formats only its microseconds."""

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock_ns = clock_ns  # ns since the Unix epoch
        self._second_prefix: tuple[int, str] = (-1, "")  # one attribute: threads see a matching pair

    def __call__(self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
        second, micros = divmod(self._clock_ns() // 1000, 1_000_000)
        cached_second, prefix = self._second_prefix
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            self._second_prefix = (second, prefix)
        event_dict["ts"] = f"{prefix}{micros:06d}Z"
        return event_dict


def _format_exc_info(logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog's `format_exc_info`, skipped on the lines (nearly all) that carry no exception."""
    if "exc_info" in event_dict:
        return structlog.processors.format_exc_info(logger, name, event_dict)
    return event_dict


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

    def __init__(self) -> None:
        self.blocked: Any = None  # the last stdout `write_block` wrote to (and made block-buffered)

    def write(self, text: str) -> int:
        try:
            return sys.stdout.write(text)
        except (BrokenPipeError, ValueError):
            _silence_stdout()
            return 0

    def write_block(self, text: str) -> int:
        """`write`, to a stdout whose lines are buffered into blocks (`block`)."""
        out = sys.stdout
        try:
            if out is not self.blocked:
                self.block(out)
            return out.write(text)
        except (BrokenPipeError, ValueError):
            _silence_stdout()
            return 0

    def block(self, out: Any) -> None:
        """A batch command's lines go out in blocks: a stdout that is not a terminal but flushes at
        each newline (`sys.stderr` does even into a pipe, and `mmbot replay --json` logs to it) or
        writes through at each write (any stream under PYTHONUNBUFFERED=1) stops doing so: that was
        one `write` system call per log line (2,911 on the bundled spot replay). The stream is
        flushed when it is closed, at exit; its bytes and their order do not change (every writer of
        it shares its one buffer)."""
        self.blocked = out
        if type(out) is io.TextIOWrapper and (out.line_buffering or out.write_through) and not out.isatty():
            out.reconfigure(line_buffering=False, write_through=False)

    def flush(self) -> None:
        try:
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            _silence_stdout()

    def isatty(self) -> bool:
        return sys.stdout.isatty()


class LineLogger:
    """What structlog's bound loggers write the rendered line to: one `write` of the whole line (so
    threads' lines never interleave, without a lock) and one `flush` (a pipe's reader sees it now)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def msg(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


class BlockLineLogger:
    """`LineLogger` without the flush: the stream's own buffer makes one write system call per block
    (~8 KB) instead of one per line. For batch commands (`mmbot replay`), whose reader wants the whole
    output rather than each line the moment it happens; the stream is flushed when the process exits.
    On the current stdout, one that buffers by line stops doing so (`_CurrentStdout.block`)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._write = stream.write_block if type(stream) is _CurrentStdout else stream.write

    def msg(self, line: str) -> None:
        self._write(line + "\n")

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


def _shallow_method(name: str, structlog_method: Callable[..., Any]) -> Callable[..., Any]:
    """`name` (info, warning...) without structlog's intermediate `_proxy_to_logger` call, which
    repacks every field into a new dict once more: ~0.7 us of a ~5.5 us line. Same processing."""

    def method(self: Any, event: Any = None, *args: Any, **fields: Any) -> Any:
        if args:  # %-style arguments: structlog's own path interpolates them
            return structlog_method(self, event, *args, **fields)
        try:
            line_args, line_kw = self._process_event(name, event, fields)
        except structlog.DropEvent:
            return None
        return getattr(self._logger, name)(*line_args, **line_kw)

    method.__name__ = name
    return method


def _level_number(level: str) -> int:
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}: one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return number


@functools.cache
def _bound_logger_class(min_level: int) -> type:
    """structlog's filtering bound logger for `min_level`, its enabled level methods made shallower."""
    base = structlog.make_filtering_bound_logger(min_level)
    enabled = (name for level, name in _LEVEL_METHODS if level >= min_level)
    return type(base.__name__, (base,), {name: _shallow_method(name, getattr(base, name)) for name in enabled})


def configure_logging(
    fmt: LogFormat = "auto",
    level: str = "INFO",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    flush_each_line: bool = True,
) -> None:
    """Configure structlog and the stdlib root logger to write one pipeline to `stream`.

    `flush_each_line=False`: batch commands (`BlockLineLogger`); a terminal still gets each line at once."""
    out: Any = stream if stream is not None else _CurrentStdout()
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    shared: list[Any] = [
        merge_context,
        structlog.processors.add_log_level,
        IsoTimestamper(),
        Redactor(secrets),
    ]
    line_logger = LineLogger if flush_each_line or out.isatty() else BlockLineLogger  # a terminal: every line now
    renderer: Any = structlog.dev.ConsoleRenderer(colors=out.isatty()) if use_console else render_json
    structlog.configure(
        processors=[*shared, _format_exc_info, renderer],
        wrapper_class=_bound_logger_class(_level_number(level)),
        logger_factory=lambda *_: line_logger(out),
        # Off: a logger bound before a reconfigure (a module's `log = get_logger(...)`, a test's sink)
        # must follow it. The hot paths (replay, runner) bind their logger once instead.
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
    _BOUND_FIELDS.set({**_BOUND_FIELDS.get(_NOTHING_BOUND), **fields})


def clear_context() -> None:
    """Unbind everything `bind_context` bound in the current context."""
    _BOUND_FIELDS.set(_NOTHING_BOUND)


def merge_context(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Adds the fields bound with `bind_context`; a field given on the line itself wins."""
    for key, value in _BOUND_FIELDS.get(_NOTHING_BOUND).items():
        event_dict.setdefault(key, value)
    return event_dict


def get_logger(name: str = "mmbot") -> Any:
    return structlog.get_logger(name)


def info_writer(logger: Any) -> Callable[[str, Mapping[str, Any]], None]:
    """`write(event, fields)` = `logger.info(event, **fields)`, for a batch command's per-event lines
    (the replay's engine notes, ~3k-12k a run): the bound logger's own processors over the same event
    dict, then its line logger's `info`, as structlog's `_process_event` runs them, without the three
    calls and the two dict repacks around them (~11 -> ~6 us a line). `logger` is a bound logger
    (`get_logger(...).bind()`); one that is not a structlog bound logger, or has info filtered out,
    gets `logger.info` itself (or nothing, as `info` would write nothing).

    Under the JSON configuration `configure_logging` builds (the replay's), the six processors run as
    one function (`_json_line_writer`): the same steps on the same dict in the same order, one
    interpreted call a line instead of nine."""
    try:
        processors = logger._processors
        context = logger._context
        line_logger = logger._logger
        enabled = logger.is_enabled_for(logging.INFO)
    except AttributeError:  # not structlog's filtering bound logger: let it do its own work
        return lambda event, fields: logger.info(event, **fields)
    if not enabled:
        return lambda event, fields: None
    emit = line_logger.info
    fused = _json_line_writer(processors, context, line_logger)

    def write(event: str, fields: Mapping[str, Any]) -> None:
        event_dict: Any = context.copy()
        event_dict.update(fields)
        event_dict["event"] = event
        try:
            for processor in processors:
                event_dict = processor(line_logger, "info", event_dict)
        except structlog.DropEvent:
            return
        if isinstance(event_dict, str | bytes | bytearray):
            emit(event_dict)
        elif isinstance(event_dict, tuple):
            emit(*event_dict[0], **event_dict[1])
        elif isinstance(event_dict, dict):
            emit(**event_dict)
        else:
            raise ValueError("Last processor didn't return an appropriate value.")  # as structlog does

    if fused is None:
        return write
    return functools.partial(fused, write)


def _json_line_writer(processors: Any, context: Any, line_logger: Any) -> Callable[..., None] | None:
    """`write(slow, event, fields)`: the JSON chain `configure_logging` builds (merge_context,
    add_log_level, IsoTimestamper, Redactor, _format_exc_info, render_json) as one function, or None
    when `processors` is any other chain. Each step is the processor's own, in its order, on the same
    dict (so the same keys in the same order, the same bytes); a line the shortcuts do not cover (an
    exception to format, a key never seen or a secret-looking one, registered secrets) is handed to
    the processor itself, and one with `exc_info` to `slow` (the generic loop). The line goes to the
    line logger's `info`, or straight to `sys.stdout` for a `BlockLineLogger` on the current stdout
    (what its `msg` and `_CurrentStdout.write` do, without their two calls)."""
    chain = list(processors)
    if (
        len(chain) != 6
        or chain[0] is not merge_context
        or chain[1] is not structlog.processors.add_log_level
        or type(chain[2]) is not IsoTimestamper
        or type(chain[3]) is not Redactor
        or chain[4] is not _format_exc_info
        or chain[5] is not render_json
    ):
        return None
    stamper: IsoTimestamper = chain[2]
    redactor: Redactor = chain[3]
    clock_ns = stamper._clock_ns
    secret_keys = redactor._secret_keys  # the redactor's own set, as it grows it
    clean: set[tuple[str, ...]] = set()  # key sequences with no secret-looking key
    needles = redactor._needles
    emit = line_logger.info
    stdout: _CurrentStdout | None = None
    if type(line_logger) is BlockLineLogger and type(line_logger._stream) is _CurrentStdout:
        stdout = line_logger._stream

    def write(slow: Callable[[str, Mapping[str, Any]], None], event: str, fields: Mapping[str, Any]) -> None:
        event_dict: Any = context.copy()
        event_dict.update(fields)
        event_dict["event"] = event
        # merge_context
        for key, value in _BOUND_FIELDS.get(_NOTHING_BOUND).items():
            event_dict.setdefault(key, value)
        if "exc_info" in event_dict:  # _format_exc_info has work to do: the generic loop, from the start
            slow(event, fields)
            return
        # add_log_level (map_method_name("info"))
        event_dict["level"] = "info"
        # IsoTimestamper.__call__
        second, micros = divmod(clock_ns() // 1000, 1_000_000)
        cached_second, prefix = stamper._second_prefix
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            stamper._second_prefix = (second, prefix)
        event_dict["ts"] = f"{prefix}{micros:06d}Z"
        # Redactor.__call__: nothing to do when no key is secret-looking and no secret value is
        # registered; otherwise the redactor itself. The lines' key sequences repeat (one per note
        # type): one found clean is remembered (whether a key looks secret never changes).
        if needles:
            event_dict = redactor(line_logger, "info", event_dict)
        else:
            keys = tuple(event_dict)
            if keys not in clean:
                event_dict = redactor(line_logger, "info", event_dict)
                if secret_keys.isdisjoint(keys) and len(clean) < 4096:
                    clean.add(keys)
        # render_json
        try:
            line = orjson.dumps(event_dict, default=_json_default).decode()
        except TypeError:
            line = orjson.dumps(event_dict, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
        if stdout is None:
            emit(line)
            return
        # BlockLineLogger.msg -> _CurrentStdout.write_block
        out = sys.stdout
        try:
            if out is not stdout.blocked:
                stdout.block(out)
            out.write(line + "\n")
        except (BrokenPipeError, ValueError):
            _silence_stdout()

    return write
