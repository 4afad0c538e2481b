"""The soak's market: the config's venues, each a mock exchange that logs its own fills.

A multi-venue config (`market.quote_on`, the embedded default) soaks on every venue of its session:
each spot venue it quotes and its hedge venue, one `RecordingMockExchange` each, built from `[mock]`
scaled by the venue's entry, all on one fair value with cross-venue arbitrage
(`bot.venues.mock.venues.MockVenues`, as `mmbot run` builds them), every fault on every venue. A
single-venue config soaks on one exchange on the default venue (""), so its markets are the bare
symbols, as before multi-venue soaks existed.

`SoakExchanges` is that set as the driver's exchange (`advance`, `submit`, `next_event_ns`; events
stamped with their venue, fill ids prefixed with it, as the runtime delivers them) and as the
checker's and the restarts' ground truth, keyed by market (`market_key(venue, symbol)`): positions,
open orders (each naming its venue), fill history, and each exchange's own log of the fills it booked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from bot.config import ConfigError, MockExchangeConfig, MockVenueConfig, Settings
from bot.domain import DEFAULT_VENUE, Command, Event, Instrument, OpenOrder, OrderFilled, market_key
from bot.sim.soak_checks import ExchangeFill
from bot.sim.soak_setup import RecordingMockExchange
from bot.venues.base import stamp_fill
from bot.venues.mock.venues import MockVenues


class SoakExchanges:
    """One exchange per venue; `group` advances several together (None: one exchange, the default venue)."""

    def __init__(
        self,
        exchanges: Mapping[str, RecordingMockExchange],
        spot_symbol: str,
        perp_symbol: str,
        spot_venues: tuple[str, ...],
        hedge_venue: str,
        group: MockVenues | None = None,
    ) -> None:
        self.exchanges = dict(exchanges)
        self.spot_symbol = spot_symbol
        self.spot_venues = spot_venues
        self.hedge_venue = hedge_venue
        self.group = group
        self.spots: dict[str, Instrument] = {}
        for venue in spot_venues:
            listed = self.exchanges[venue].instruments.get(spot_symbol)
            if listed is None:
                raise ConfigError(f"config error: soak: venue {venue or 'mock'} lists no {spot_symbol!r}")
            self.spots[venue] = listed
        self.perp = self.exchanges[hedge_venue].instruments.get(perp_symbol)
        markets = {market_key(v, spot_symbol): inst for v, inst in self.spots.items()}
        if self.perp is not None:
            markets[market_key(hedge_venue, self.perp.symbol)] = self.perp
        self.instruments: dict[str, Instrument] = markets
        """The engine's markets, by market key (the spot on each spot venue, the perp on the hedge venue)."""

    @property
    def multi(self) -> bool:
        return self.group is not None

    # ---- the driver's exchange

    def advance(self, now_ns: int) -> list[Event]:
        if self.group is not None:
            return self.group.advance(now_ns)
        return self.exchanges[DEFAULT_VENUE].advance(now_ns)

    def next_event_ns(self) -> int | None:
        if self.group is not None:
            return self.group.next_event_ns()
        return self.exchanges[DEFAULT_VENUE].next_event_ns()

    def submit(self, command: Command, now_ns: int) -> None:
        self.exchanges[command.venue].submit(command, now_ns)

    @property
    def now_ns(self) -> int:
        return max(ex.now_ns for ex in self.exchanges.values())

    # ---- ground truth

    def take_fills(self) -> list[ExchangeFill]:
        """Executions each exchange booked since the last call, ids as they are delivered."""
        out: list[ExchangeFill] = []
        for venue, exchange in self.exchanges.items():
            for fill in exchange.take_fills():
                out.append(replace(fill, venue=venue, fill_id=self._fill_id(venue, fill.fill_id)))
        return out

    def _fill_id(self, venue: str, fill_id: str) -> str:
        return f"{venue}:{fill_id}" if self.multi else fill_id

    def fill_id_prefix(self, venue: str) -> str:
        """What every fill id of `venue` starts with, before its number."""
        return self._fill_id(venue, "F")

    def positions(self) -> dict[str, int]:
        """Per market key, every symbol of every exchange (lots)."""
        return {
            market_key(venue, symbol): lots
            for venue, exchange in self.exchanges.items()
            for symbol, lots in exchange.positions().items()
        }

    def open_orders(self) -> list[OpenOrder]:
        return [replace(o, venue=venue) for venue, ex in self.exchanges.items() for o in ex.open_orders()]

    def fills_since(self, since_ns: int) -> list[OrderFilled]:
        """Our fills with `ts_venue_ns >= since_ns` on every exchange, as each venue's history answers."""
        fills: list[OrderFilled] = []
        for venue, exchange in self.exchanges.items():
            fills.extend(stamp_fill(f, venue) if self.multi else f for f in exchange.fills_since(since_ns))
        return sorted(fills, key=lambda f: f.ts_venue_ns)

    def faults_fired(self) -> dict[str, int]:
        """Venue -> how many faults fired on it so far (all kinds)."""
        return {venue: sum(ex.faults.counts.values()) for venue, ex in self.exchanges.items()}

    def fault_counts(self) -> dict[str, int]:
        """Fault name -> how often it fired, summed over the venues."""
        names = sorted({name for ex in self.exchanges.values() for name in ex.faults.counts})
        return {name: sum(ex.faults.counts.get(name, 0) for ex in self.exchanges.values()) for name in names}

    def fault_counts_by_venue(self) -> dict[str, dict[str, int]]:
        return {venue or "default": dict(sorted(ex.faults.counts.items())) for venue, ex in self.exchanges.items()}


def build_exchanges(
    settings: Settings, mock: MockExchangeConfig, start_ns: int, fill_history_size: int
) -> SoakExchanges:
    """The soak's exchanges for `settings` (see the module doc). `fill_history_size`: in all (split
    over the venues: the exchanges' own memory counts against the bot's memory check)."""
    market = settings.market
    if not settings.multi_venue:
        exchange = RecordingMockExchange(mock, start_ns=start_ns, fill_history_size=fill_history_size)
        exchanges = {DEFAULT_VENUE: exchange}
        return SoakExchanges(exchanges, market.spot_symbol, market.perp_symbol, (DEFAULT_VENUE,), DEFAULT_VENUE)
    if not market.hedge_venue:
        raise ConfigError("config error: soak: market.hedge_venue: a multi-venue soak needs the perp's venue")
    names = market.session_venues()
    venues: dict[str, MockVenueConfig] = {}
    for name in names:
        cfg = market.venues.get(name)
        if not isinstance(cfg, MockVenueConfig):
            kind = getattr(cfg, "kind", "missing")
            raise ConfigError(
                f"config error: soak: market.venues.{name} is kind {kind!r}; the soak runs in-process mock venues only"
            )
        venues[name] = cfg
    for i, spec in enumerate(market.quote_on):
        if spec.symbol not in (None, market.spot_symbol):
            raise ConfigError(
                f"config error: soak: market.quote_on.{i}.symbol {spec.symbol!r}:"
                f" the mock venues list {market.spot_symbol!r}"
            )
    group = MockVenues(
        mock,
        venues,
        start_ns=start_ns,
        make_exchange=RecordingMockExchange,
        fill_history_size=max(fill_history_size // len(venues), 1),
    )
    exchanges = {name: ex for name, ex in group.exchanges.items() if isinstance(ex, RecordingMockExchange)}
    spot_venues = tuple(m.venue for m in market.quote_on)
    return SoakExchanges(exchanges, market.spot_symbol, market.perp_symbol, spot_venues, market.hedge_venue, group)
