"""The pure, synchronous core: no I/O, no clock, no asyncio. Events in, commands out."""
