"""Several venue adapters, each on its own connection, as one `Venue` for the runner (issue #14).

    venue "main"   (WsMockVenue, ccxt, ...) ──stream──┐
    venue "second" (...)                    ──stream──┼─▶ stamped with the venue's name ─▶ the runner's one queue
    venue "perpx"  (...)                    ──stream──┘
    execute(command) ─▶ the adapter its `command.venue` names

Each adapter streams in its own task of a TaskGroup inside `stream` (the runner's feed task), and
reconnects inside itself as every adapter does, so one flaky socket stays that venue's trouble: the
engine sees that venue's `FeedStatus` and pulls that venue's quotes only. Adapters need not know
their name: their events are stamped with it here, and fill ids are prefixed with it (each venue
numbers its own fills; a fill id must be unique per symbol in the ledger), as the in-process
multi-venue mock does (`bot.venues.mock.venues.stamp`). Positions are keyed by market
(`symbol@venue`). The clock is the wall clock: every adapter here is a real-time one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace

from bot.domain import Command, Event, Instrument, OpenOrder, OrderFilled, market_key
from bot.venues.base import EventSink, Venue, fetch_fills_since, fill_session, stamp, stamp_fill


class VenueSet:
    """Named `Venue`s as one (a `bot.venues.base.VenueGroup`); the first is the main one."""

    name = "venues"

    def __init__(self, venues: Mapping[str, Venue]) -> None:
        if not venues:
            raise ValueError("VenueSet needs at least one venue")
        self.venues = dict(venues)

    @property
    def fill_session(self) -> str:
        """Every adapter's own fill namespace: one of them changing (a venue restarted) is a new one."""
        return "|".join(f"{name}={fill_session(v)}" for name, v in self.venues.items())

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return next(iter(self.venues.values())).instruments

    def instruments_of(self, venue: str) -> Mapping[str, Instrument]:
        return self.venues[venue].instruments

    async def connect(self) -> None:
        for venue in self.venues.values():
            await venue.connect()

    async def stream(self, sink: EventSink) -> None:
        async with asyncio.TaskGroup() as tg:
            for name, venue in self.venues.items():
                tg.create_task(venue.stream(self._stamping(sink, name)), name=f"feed:{name}")

    @staticmethod
    def _stamping(sink: EventSink, venue: str) -> EventSink:
        def deliver(event: Event) -> None:
            sink(stamp(event, venue))

        return deliver

    async def execute(self, command: Command) -> None:
        await self.venues[command.venue].execute(command)

    async def open_orders(self) -> list[OpenOrder]:
        return [replace(o, venue=name) for name, v in self.venues.items() for o in await v.open_orders()]

    async def positions(self) -> dict[str, int]:
        """Per market key (`symbol@venue`), lots."""
        out: dict[str, int] = {}
        for name, venue in self.venues.items():
            out.update((market_key(name, symbol), lots) for symbol, lots in (await venue.positions()).items())
        return out

    async def fills_since(self, since_ns: int) -> list[OrderFilled]:
        fills: list[OrderFilled] = []
        for name, venue in self.venues.items():
            fills.extend(stamp_fill(f, name) for f in await fetch_fills_since(venue, since_ns) or [])
        return sorted(fills, key=lambda f: f.ts_venue_ns)

    async def close(self) -> None:
        """Close every adapter, even when one fails to; then raise the first failure."""
        failures: list[BaseException] = []
        for venue in self.venues.values():
            try:
                await venue.close()
            except Exception as exc:  # the others must still be closed
                failures.append(exc)
        if failures:
            raise failures[0]
