"""The in-process `Venue` over `MockExchange`, paced against an injectable monotonic clock.

The implementation lives in `bot.venues.mock_inprocess` (written with the composition root, which
needed it first); this module is its home inside the mock package.
"""

from bot.venues.mock_inprocess import InProcessMockVenue

__all__ = ["InProcessMockVenue"]
