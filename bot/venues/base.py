"""The interface every venue adapter implements (mock in-process, mock over websockets, replay, ccxt).

Adapters parse venue payloads at the edge into `bot.domain` events; they reconnect with capped
exponential backoff and jitter *inside* `stream`, so one flaky socket never tears down the runner's
TaskGroup. Results of commands (acks, rejects, fills) arrive later as events, never as return values:
an order's state changes only on events from the venue.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol, runtime_checkable

from bot.domain import Command, Event, Instrument, OpenOrder, OrderFilled, Timer

EventSink = Callable[[Event], None]
"""Where an adapter delivers events (the runner's queue `put_nowait`). Must not block."""


@runtime_checkable
class SettlingSink(Protocol):
    """An `EventSink` that can also say when its consumer has caught up: `settled()` returns once
    every event handed to it so far has been applied and the consumer's answers (commands) sent.

    The runner's sink is one. A venue on simulated time that advances by progress
    (`bot.venues.mock.pacing.ProgressPacer`) awaits it before moving its clock on, so a slow process
    slows simulated time down instead of letting it race ahead of the bot."""

    def __call__(self, event: Event, /) -> None: ...
    async def settled(self) -> None: ...


class Venue(Protocol):
    name: str
    # Optional: `fill_session: str`, the namespace in which the venue's fill ids are unique (read it
    # with `fill_session(venue)`). A venue that numbers fills again whenever it starts (the mock
    # exchange, simulated execution) names each start differently; one whose ids never repeat (a real
    # exchange's trade ids) leaves it out, which means "".
    # Optional: `ticks_in_feed: bool` (read it with `ticks_in_feed(venue)`): True for a venue on
    # simulated time that advances by progress (`bot.venues.mock.pacing.ProgressPacer`): its feed
    # carries the runner's `Timer` ticks, on its own clock, and it waits for the sink to settle.

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        """Markets by symbol; valid after `connect`."""
        ...

    async def connect(self) -> None:
        """Open connections, load markets. Raises on a configuration the venue refuses."""
        ...

    async def stream(self, sink: EventSink) -> None:
        """Deliver events to `sink` until cancelled; reconnect and resync inside."""
        ...

    async def execute(self, command: Command) -> None:
        """Send one command. Never raises for venue-side refusals: those come back as events."""
        ...

    async def open_orders(self) -> list[OpenOrder]:
        """Our open orders as the venue sees them (reconciliation)."""
        ...

    async def positions(self) -> dict[str, int]:
        """Our position per symbol in lots as the venue sees it (reconciliation)."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class FillHistory(Protocol):
    """The optional fill-history capability of a venue (ccxt `fetch_my_trades`).

    `fills_since(since_ns)` returns our fills with `ts_venue_ns >= since_ns` (venue clock), oldest
    first, each once, as `OrderFilled` with the same `fill_id` the live stream gives that execution
    (so a restart can dedupe by `(symbol, fill_id)`); `ts_recv_ns` is when the answer came. It is how
    a restarted bot finds the fills it never saw: those made while it was dead, or in flight when it
    died. A venue may keep only a bounded history; `leaves_lots` is 0 where the venue does not say.
    A venue that cannot answer either lacks the method or raises `NotImplementedError`: use
    `fetch_fills_since`, which maps both to None.
    """

    async def fills_since(self, since_ns: int) -> list[OrderFilled]: ...


def fill_session(venue: object) -> str:
    """The venue's fill-id namespace (see `Venue`): the ledger keys fills by it, so ids that repeat
    across venue sessions never collide and a restart on the same session recognises its fills."""
    return str(getattr(venue, "fill_session", "") or "")


@runtime_checkable
class VenueGroup(Protocol):
    """Several venues behind one `Venue` (the multi-venue mock, `bot.venues.mock.venues.MultiMockVenue`):
    each venue's markets by name. Commands and events name their venue."""

    def instruments_of(self, venue: str) -> Mapping[str, Instrument]: ...


def ticks_in_feed(venue: object) -> bool:
    """Whether the venue's feed carries the timer ticks (see `Venue`): the runner then runs no wall
    timer of its own, which would tick at times the simulation does not control."""
    return bool(getattr(venue, "ticks_in_feed", False))


async def fetch_fills_since(venue: object, since_ns: int) -> list[OrderFilled] | None:
    """The venue's fills since `since_ns`, or None if it has no fill history."""
    if not isinstance(venue, FillHistory):
        return None
    try:
        return await venue.fills_since(since_ns)
    except NotImplementedError:
        return None


def backoff_delays_s(base_s: float = 0.2, cap_s: float = 10.0, rng: random.Random | None = None):  # type: ignore[no-untyped-def]
    """Capped exponential backoff with full jitter: yields the next wait before a reconnect."""
    rand = rng or random.Random()
    attempt = 0
    while True:
        ceiling = min(cap_s, base_s * (2**attempt))
        yield rand.uniform(ceiling / 2, ceiling)
        attempt += 1


def stamp(event: Event, venue: str) -> Event:
    """The event as from `venue` (an adapter of a multi-venue session names its venue on every event
    it makes); a fill's id made unique across venues."""
    if isinstance(event, OrderFilled):
        return stamp_fill(event, venue)
    if isinstance(event, Timer):  # the runner's, never an exchange's
        return event
    return replace(event, venue=venue)


def stamp_fill(fill: OrderFilled, venue: str) -> OrderFilled:
    return replace(fill, venue=venue, fill_id=f"{venue}:{fill.fill_id}")
