"""The mock exchange: a seeded synthetic spot + linear-perp market with queue-aware matching.

- `MockExchange` (exchange.py): the synchronous, deterministic core, driven by simulated time.
- `InProcessMockVenue` (bot/venues/mock_inprocess.py): the `Venue` adapter pacing it against a clock
  (pacing.py: the wall-clock pace and pump wait it shares with the server).
- `MockExchangeServer` (server.py) and `WsMockVenue` (client.py): the same over websockets.

Only the synchronous core is imported here, so simulations do not pull in asyncio or websockets.
"""

from bot.venues.mock.exchange import MockExchange
from bot.venues.mock.faults import FaultInjector

__all__ = ["FaultInjector", "MockExchange"]
