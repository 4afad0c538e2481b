"""Synchronous, event-driven driver: the engine against the in-process mock exchange on simulated time.

No asyncio and no wall clock: time jumps from one pending exchange event (or engine timer) to the
next, so an hour of market runs in seconds and the same seed gives the same run. This is the loop
behind `mmbot simulate toxicity`, `mmbot soak`, the engine benchmark and most integration tests;
the live runner (`bot/runtime/runner.py`) drives the same engine from real sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.core.engine import EngineLike
from bot.domain import Command, Event, Timer

NS_PER_S = 1_000_000_000


class SimExchange(Protocol):
    def submit(self, command: Command, now_ns: int) -> None: ...
    def advance(self, now_ns: int) -> list[Event]: ...
    def next_event_ns(self) -> int | None: ...


@dataclass
class SimResult:
    summary: dict[str, Any]
    events: int
    commands: int
    end_ns: int
    notes: dict[str, int] = field(default_factory=dict)


StepHook = Callable[[int, list[Event], list[Command]], None]
NoteHook = Callable[[str, dict[str, Any]], None]


def run_simulation(
    exchange: SimExchange,
    engine: EngineLike,
    *,
    start_ns: int,
    duration_ns: int,
    timer_ns: int = NS_PER_S // 10,
    cancel_timeout_ns: int = 5 * NS_PER_S,
    on_step: StepHook | None = None,
    on_note: NoteHook | None = None,
    shutdown: bool = True,
) -> SimResult:
    """Run until `start_ns + duration_ns`, then shut down (cancel all, wait for the venue's answers);
    `shutdown=False` just stops there, as a bot killed outright would (its orders stay at the venue)."""
    now = start_ns
    end = start_ns + duration_ns
    next_timer = start_ns + timer_ns
    events_seen = 0
    commands_sent = 0
    note_counts: dict[str, int] = {}

    def handle_notes() -> None:
        for name, fields in engine.drain_notes():
            note_counts[name] = note_counts.get(name, 0) + 1
            if on_note is not None:
                on_note(name, fields)

    def step(now: int, events: list[Event], commands: list[Command]) -> None:
        nonlocal events_seen, commands_sent
        for command in commands:
            exchange.submit(command, now)
        events_seen += len(events)
        commands_sent += len(commands)
        handle_notes()
        if on_step is not None:
            on_step(now, events, commands)

    while now < end:
        pending = exchange.next_event_ns()
        now = min(next_timer, end) if pending is None else min(max(pending, now), next_timer, end)
        events = exchange.advance(now)
        commands: list[Command] = []
        for event in events:
            commands.extend(engine.apply(event, now))
        if now >= next_timer:
            commands.extend(engine.apply(Timer(now, now), now))
            next_timer += timer_ns
        commands.extend(engine.requote(now))
        step(now, events, commands)

    if not shutdown:
        return SimResult(engine.summary(now), events_seen, commands_sent, now, note_counts)
    step(now, [], engine.shutdown(now))
    now = deliver_until(exchange, engine, now, now + cancel_timeout_ns, lambda: engine.open_order_count() == 0, step)
    return SimResult(engine.summary(now), events_seen, commands_sent, now, note_counts)


def deliver_until(
    exchange: SimExchange,
    engine: EngineLike,
    now_ns: int,
    deadline_ns: int,
    done: Callable[[], bool],
    step: StepHook,
) -> int:
    """Deliver the venue's pending events to the engine, without timers (the wind-down after the
    run), until `done()`, the deadline, or nothing is pending; returns the time reached. `step`
    gets each batch with the engine's answers and must send them to the exchange."""
    while not done() and now_ns < deadline_ns:
        pending = exchange.next_event_ns()
        if pending is None:
            break
        now_ns = min(max(pending, now_ns), deadline_ns)
        events = exchange.advance(now_ns)
        commands = [cmd for event in events for cmd in engine.apply(event, now_ns)]
        step(now_ns, events, commands)
    return now_ns
