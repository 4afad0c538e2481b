"""The log pipeline: redaction (secret-looking keys and registered secret values never reach a log
line), and the lean processors writing what structlog's stock ones wrote, one flushed line at a time."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
import os
import re
import select
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import structlog
from conftest import LogSink
from hypothesis import given
from hypothesis import strategies as st

from bot.logs import (
    REDACTED,
    IsoTimestamper,
    Redactor,
    bind_context,
    clear_context,
    configure_logging,
    get_logger,
    info_writer,
    render_json,
)
from bot.secret_names import looks_secret


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


TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def stamp(clock_ns: int, stamper: IsoTimestamper | None = None) -> str:
    stamper = stamper or IsoTimestamper(clock_ns=lambda: clock_ns)
    return str(stamper(None, "info", {})["ts"])


def test_timestamp_hand_computed() -> None:
    # 1723075200 s is 2024-08-08T00:00:00Z
    assert stamp(1_723_075_200_000_000_000) == "2024-08-08T00:00:00.000000Z"
    assert stamp(1_723_075_261_000_123_999) == "2024-08-08T00:01:01.000123Z"  # ns below a microsecond dropped
    assert stamp(0) == "1970-01-01T00:00:00.000000Z"


@given(st.lists(st.integers(min_value=0, max_value=4_102_444_800 * 10**9), min_size=1, max_size=30))
def test_timestamps_match_datetime_isoformat_whatever_the_order_of_the_clock(clocks_ns: list[int]) -> None:
    """The once-a-second prefix is never stale: each stamp equals structlog's (with microseconds)."""
    now = iter(clocks_ns)
    stamper = IsoTimestamper(clock_ns=lambda: next(now))
    for ns in clocks_ns:
        expected = datetime.fromtimestamp(ns // 1000 / 1e6, tz=UTC).replace(microsecond=ns // 1000 % 1_000_000)
        assert stamp(ns, stamper) == expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _reference_redact(secrets: list[str], event: dict[str, Any]) -> dict[str, Any]:
    """The rule as it was written before the fast path: check every key, walk every value."""

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            for secret in secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [scrub(v) for v in value]
        return value

    # which keys look secret is bot.secret_names' rule (tested on its own in tests/unit/test_secret_names.py)
    return {
        k: REDACTED if looks_secret(k) and v not in (None, "") else scrub(v) if secrets else v for k, v in event.items()
    }


SECRETS = ["hunter2", 'qu"ote\\', "ключ"]  # plain, one JSON escapes, one non-ASCII
texts = st.one_of(st.text(max_size=8), st.sampled_from(SECRETS), st.builds("".join, st.lists(st.sampled_from(
    ["a", "=", '"', "\\", "\n", *SECRETS]), max_size=4)))  # fmt: skip
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.floats(allow_nan=False), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)
keys = st.one_of(
    st.sampled_from(["event", "url", "api_secret", "auth_token", "tokens", "Signature"]), st.text(max_size=6)
)


@given(st.dictionaries(keys, values, max_size=6), st.booleans())
def test_the_fast_paths_redact_exactly_as_walking_every_value_did(event: dict[str, Any], with_secrets: bool) -> None:
    secrets = SECRETS if with_secrets else []
    redact = Redactor(secrets)
    for _ in range(2):  # the second time, every key's verdict comes from the cache
        assert redact(None, "info", dict(event)) == _reference_redact(secrets, dict(event))


def test_a_secret_that_json_escapes_is_still_found_and_masked() -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", secrets=['p"w\\d'], stream=stream)
    get_logger().info("venue.error", nested={"error": ['auth p"w\\d failed']})
    assert json.loads(stream.getvalue())["nested"] == {"error": [f"auth {REDACTED} failed"]}


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


class _SelfLogging:
    def __structlog__(self) -> dict[str, int]:
        return {"n": 1}


@given(st.dictionaries(st.text(max_size=6), values, max_size=6), st.booleans())
def test_render_json_writes_what_structlogs_json_renderer_wrote(event: dict[str, Any], int_keys: bool) -> None:
    event = {**event, "opaque": _Opaque(), "own": _SelfLogging(), "pair": (1, "a")}
    if int_keys:  # the slower path
        event["by_id"] = {1: "x"}
    before = structlog.processors.JSONRenderer(
        serializer=lambda obj, default: orjson.dumps(obj, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    )
    assert render_json(None, "info", event) == before(None, "info", event)


def test_a_line_has_the_event_level_timestamp_bound_fields_and_its_own() -> None:
    sink = LogSink()
    configure_logging("json", "INFO", stream=sink)
    bind_context(run_id="r-1", venue="replay", symbol="BTC/USDT")
    get_logger("mmbot.replay").bind().info("order.placed", client_id="q-1", price=61831.45, symbol="ETH/USDT")
    clear_context()
    get_logger().warning("session.stopping")
    first, second = sink.records
    assert TS.match(first.pop("ts")) and TS.match(second.pop("ts"))
    assert first == {
        "event": "order.placed",
        "level": "info",
        "run_id": "r-1",
        "venue": "replay",
        "symbol": "ETH/USDT",  # the line's own field wins over the bound one
        "client_id": "q-1",
        "price": 61831.45,
    }
    assert second == {"event": "session.stopping", "level": "warning"}


async def test_a_task_binds_for_itself_and_keeps_what_was_bound_when_it_started() -> None:
    sink = LogSink()
    configure_logging("json", "INFO", stream=sink)
    bind_context(run_id="r-1")

    async def task() -> None:
        bind_context(venue="ws")
        get_logger().info("feed.connected")

    await asyncio.create_task(task())
    get_logger().info("session.started")
    assert [(r.get("run_id"), r.get("venue")) for r in sink.records] == [("r-1", "ws"), ("r-1", None)]


def test_levels_filter_interpolate_and_render_exceptions() -> None:
    sink = LogSink()
    configure_logging("json", "warning", stream=sink)  # level names in any case
    log = get_logger()
    log.info("quote.updated")
    log.debug("quote.updated")
    log.warning("retry %s of %d", "fetch", 3)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("feed.failed")
    warned, failed = sink.records
    assert (warned["event"], warned["level"]) == ("retry fetch of 3", "warning")
    assert failed["level"] == "error" and "RuntimeError: boom" in failed["exception"]
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("json", "LOUD", stream=sink)


def test_a_processor_may_drop_a_line() -> None:
    sink = LogSink()
    configure_logging("json", "INFO", stream=sink)

    def drop(_logger: Any, _name: str, _event: Any) -> Any:
        raise structlog.DropEvent

    structlog.configure(processors=[drop])
    get_logger().info("quote.updated")
    assert sink.records == []


def test_a_logger_taken_before_a_reconfigure_writes_to_the_new_stream() -> None:
    """Module-level `log = get_logger(...)` (mock server, ccxt venue) follows each configure_logging."""
    log = get_logger("mmbot.mock.server")
    first, second = LogSink(), LogSink()
    configure_logging("json", "INFO", stream=first)
    log.info("server.listening")
    configure_logging("json", "INFO", stream=second)
    log.info("server.stopped")
    assert [r["event"] for r in first.records] == ["server.listening"]
    assert [r["event"] for r in second.records] == ["server.stopped"]


class _Calls:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return len(text)

    def flush(self) -> None:
        self.calls.append("<flush>")

    def isatty(self) -> bool:
        return False


def test_each_line_is_one_write_then_one_flush() -> None:
    """One write keeps threads' lines whole; the flush after it makes a pipe's reader see the line now."""
    stream = _Calls()
    configure_logging("json", "INFO", stream=stream)  # type: ignore[arg-type]
    get_logger().info("order.placed", n=1)
    logging.getLogger("ccxt").warning("rate limited")
    assert [c if c == "<flush>" else json.loads(c)["event"] for c in stream.calls] == [
        "order.placed",
        "<flush>",
        "rate limited",
        "<flush>",
    ]
    assert all(c.endswith("\n") and c.count("\n") == 1 for c in stream.calls if c != "<flush>")


def test_the_default_stream_is_whatever_stdout_is_at_write_time(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("json", "INFO")
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stdout", swapped)
    get_logger().info("session.started")
    assert json.loads(swapped.getvalue())["event"] == "session.started"


CHILD = """
import sys
from bot.logs import configure_logging, get_logger
configure_logging("json", "INFO")
log = get_logger()
log.info("first.line")
sys.stdin.readline()  # the parent read the line from the pipe (it was flushed), and closed the pipe
for _ in range(3):
    log.info("after.close")
print("still running", file=sys.stderr)
"""


def test_a_line_reaches_a_pipe_at_once_and_a_closed_pipe_does_not_stop_the_bot() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},  # stdout block-buffered, as usual
    )
    try:
        assert child.stdout is not None
        # the child waits on stdin, so the line is here only if it was flushed when logged
        assert select.select([child.stdout], [], [], 30)[0], "the log line did not reach the pipe"
        line = child.stdout.readline()
        assert json.loads(line)["event"] == "first.line"
        child.stdout.close()
        _, err = child.communicate(b"go\n", timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert b"still running" in err


class _CountingStream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.flushes = 0
        self._tty = tty

    def flush(self) -> None:
        self.flushes += 1

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize(("tty", "flushes_per_line"), [(False, 0), (True, 1)])
def test_a_batch_command_writes_its_lines_unflushed_except_to_a_terminal(tty: bool, flushes_per_line: int) -> None:
    """`flush_each_line=False` (`mmbot replay`): the same lines, left to the stream's buffer; a
    terminal still sees each line as it is logged."""
    stream = _CountingStream(tty)
    configure_logging("json", "INFO", stream=stream, flush_each_line=False)  # type: ignore[arg-type]
    log = get_logger()
    for i in range(3):
        log.info("batch.line", i=i)
    if not tty:
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [(r["event"], r["i"]) for r in lines] == [("batch.line", 0), ("batch.line", 1), ("batch.line", 2)]
    assert stream.flushes == 3 * flushes_per_line


def written_both_ways(fmt: str, level: str, secrets: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """The same notes through `logger.info` and through `info_writer(logger)`, under one configuration,
    with their timestamps taken out."""
    lines = []
    notes = [
        ("quote.updated", {"bid_px": 61800.12, "ask_px": 61801.5, "symbol": "ETH/USDT", "reason": "timer"}),
        ("order.placed", {"client_id": "q-1", "price": 61831.45, "api_key": "k-123", "note": "uses s3cr3t"}),
        ("risk.paused", {}),
        ("order.filled", {"level": "mine", "ts": "mine", "size": 1}),  # overwritten by the processors
    ]
    for way in ("info", "writer"):
        sink = io.StringIO()
        configure_logging(fmt, level, secrets=secrets, stream=sink, flush_each_line=False)  # type: ignore[arg-type]
        bind_context(run_id="r-1", venue="replay", symbol="BTC/USDT")
        log = get_logger("mmbot.replay").bind()
        write = info_writer(log)
        for name, fields in notes:
            if way == "info":
                log.info(name, **fields)
            else:
                write(name, fields)
        clear_context()
        lines.append(re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z?", "<ts>", sink.getvalue()))
    return lines[0].splitlines(), lines[1].splitlines()


@pytest.mark.parametrize(
    ("fmt", "level", "secrets"),
    [("json", "INFO", ()), ("json", "INFO", ("s3cr3t",)), ("console", "INFO", ()), ("json", "WARNING", ())],
)
def test_info_writer_writes_what_logger_info_writes(fmt: str, level: str, secrets: tuple[str, ...]) -> None:
    by_info, by_writer = written_both_ways(fmt, level, secrets)
    assert by_writer == by_info  # every byte but the timestamps: key order, redaction, console format
    assert len(by_info) == (0 if level == "WARNING" else 4)
    if fmt == "json" and by_info:
        first = json.loads(by_info[0])
        assert list(first) == ["bid_px", "ask_px", "symbol", "reason", "event", "run_id", "venue", "level", "ts"]
        assert json.loads(by_writer[1])["api_key"] == REDACTED  # a secret-looking key, masked
        assert ("s3cr3t" in "".join(by_writer)) == (not secrets)  # a registered secret: masked in any value


def test_info_writer_honours_a_processor_that_drops_and_a_logger_that_is_not_structlogs() -> None:
    sink = LogSink()
    configure_logging("json", "INFO", stream=sink)

    def drop(_logger: Any, _name: str, _event: Any) -> Any:
        raise structlog.DropEvent

    structlog.configure(processors=[drop])
    info_writer(get_logger().bind())("quote.updated", {"n": 1})
    assert sink.records == []

    class Plain:
        def __init__(self) -> None:
            self.seen: list[tuple[str, dict[str, Any]]] = []

        def info(self, event: str, **fields: Any) -> None:
            self.seen.append((event, fields))

    plain = Plain()
    info_writer(plain)("order.placed", {"n": 2})
    assert plain.seen == [("order.placed", {"n": 2})]


class _RawCounter(io.RawIOBase):
    """A raw byte stream that counts the writes reaching it (what would be system calls)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.writes = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.writes += 1
        self.data += bytes(b)
        return len(b)


@pytest.mark.parametrize(("line_buffering", "write_through"), [(True, False), (False, True)])
def test_a_batch_commands_lines_on_stdout_go_out_in_blocks_with_the_same_bytes(
    line_buffering: bool, write_through: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mmbot replay --json` logs to stderr (as stdout), which flushes at each newline (or writes
    through, under PYTHONUNBUFFERED): one system call per line. The batch logger stops that, and its
    one-function JSON line (`info_writer`) writes what `logger.info` writes, byte for byte."""
    notes = [
        ("quote.updated", {"bid": 61800.12, "ask": 61801.5, "reasons": [], "trigger": "timer"}),
        ("order.placed", {"client_id": "q-1", "api_key": "k-123"}),  # a secret-looking key: the redactor's
        ("order.filled", {"level": "mine", "ts": "mine", "size": 1}),  # overwritten, as by the processors
        ("risk.paused", {"exc_info": False}),  # an exception field: the generic processors
    ]
    raws = []
    for way in ("info", "writer"):
        raw = _RawCounter()
        out = io.TextIOWrapper(io.BufferedWriter(raw), line_buffering=line_buffering, write_through=write_through)
        monkeypatch.setattr(sys, "stdout", out)
        configure_logging("json", "INFO", flush_each_line=False)
        bind_context(run_id="r-1", venue="replay", symbol="BTC/USDT")
        log = get_logger("mmbot.replay").bind()
        write = info_writer(log)
        for _ in range(50):
            for name, fields in notes:
                if way == "info":
                    log.info(name, **fields)
                else:
                    write(name, fields)
        clear_context()
        assert not out.line_buffering and not out.write_through  # blocks from the first line on
        out.flush()
        raws.append(raw)
    texts = [re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", "<ts>", raw.data.decode()) for raw in raws]
    assert texts[1] == texts[0] and texts[0].count("\n") == 200
    assert json.loads(texts[1].splitlines()[1])["api_key"] == REDACTED
    assert all(raw.writes < 20 for raw in raws)  # ~18 KB in 8 KB blocks, not 200 line writes


def test_info_writer_runs_the_json_chain_as_one_function_only_for_that_chain() -> None:
    configure_logging("json", "INFO", stream=io.StringIO())
    assert isinstance(info_writer(get_logger().bind()), functools.partial)  # the fused line (and its fallback)
    configure_logging("console", "INFO", stream=io.StringIO())
    assert not isinstance(info_writer(get_logger().bind()), functools.partial)
