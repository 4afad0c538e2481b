"""`mmbot exchange serve [--dialect NAME]`: without a dialect, the mock's own websocket protocol
(bot/venues/mock/server.py); with one, that venue's REST + websocket protocol (loopback only)."""

from __future__ import annotations

import argparse
import asyncio
import signal

from bot.config import ConfigError, load_settings
from bot.logs import configure_logging
from bot.venues.mock.dialects import DIALECTS, DialectServer, dialect_factory
from bot.venues.mock.dialects.markets import btc_config


def cmd_exchange_serve(args: argparse.Namespace) -> int:
    if getattr(args, "dialect", None) is None:
        from bot.venues.mock.server import cmd_exchange_serve as serve_native

        return serve_native(args)
    if args.dialect not in DIALECTS:
        raise ConfigError(f"config error: --dialect: {args.dialect!r} is not one of {', '.join(DIALECTS)}")
    settings = load_settings(args.config)  # ConfigError -> exit 2 in the CLI
    configure_logging(args.log_format, getattr(args, "log_level", "INFO"))
    options = {"hedge_mode": True} if args.hedge_mode else {}  # bybit positionIdx 1/2, binance dualSidePosition
    server = DialectServer(
        dialect_factory(args.dialect, **options),
        btc_config(settings.mock, args.dialect),
        args.host,
        args.port,
        ws_max_age_s=args.ws_max_age_s,
    )  # a non-loopback --host is a ConfigError: exit 2
    asyncio.run(_serve_until_signal(server))
    return 0


async def _serve_until_signal(server: DialectServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
