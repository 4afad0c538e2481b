"""The one composition root: builds venues, engine and runner from Settings, and the CLI commands
that run them. Nothing else in the code base constructs a venue or an engine."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from typing import Any

import orjson

from bot.config import ConfigError, Settings, load_settings, masked_dump
from bot.core.engine import Engine, EngineParams
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.hedger import HedgeParams
from bot.core.quoting import QuoteParams
from bot.domain import Instrument
from bot.logs import bind_context, configure_logging, get_logger
from bot.runtime.runner import Runner
from bot.venues.base import Venue

NS_PER_S = 1_000_000_000


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret, so the log redactor can mask it wherever it appears."""
    ccxt = settings.ccxt
    return [s.get_secret_value() for s in (ccxt.api_key, ccxt.api_secret, ccxt.api_password) if s is not None]


def quote_params(settings: Settings) -> QuoteParams:
    q = settings.quoter
    return QuoteParams(
        model=q.model,
        gamma_per_quote=q.gamma_per_quote,
        horizon_s=q.horizon_s,
        order_size_base=q.order_size_base,
        inventory_target_base=q.inventory_target_base,
        min_spread_bps=q.min_spread_bps,
        levels=q.levels,
        level_spacing_bps=q.level_spacing_bps,
        size_decay=q.size_decay,
        price_tolerance_ticks=q.price_tolerance_ticks,
        max_order_age_ms=q.max_order_age_ms,
    )


def build_engine(
    settings: Settings, spot: Instrument, perp: Instrument | None, start_ns: int, venue_name: str | None = None
) -> Engine:
    q = settings.quoter
    est = settings.estimator
    params = EngineParams(
        spot=spot,
        perp=perp,
        quote=quote_params(settings),
        stale_feed_ns=settings.runtime.stale_feed_ms * 1_000_000,
        price_tolerance_ticks=q.price_tolerance_ticks,
        max_order_age_ns=q.max_order_age_ms * 1_000_000,
        warmup_ns=int(settings.runtime.warmup_s * NS_PER_S),
        hedge=HedgeParams.from_config(settings.hedger),
        risk=settings.risk.to_params(stale_feed_ms=settings.runtime.stale_feed_ms, venue=venue_name),
    )
    sigma = SigmaEstimator(est.sigma_px_per_sqrt_s, est.sigma_halflife_s, est.sigma_sample_ms)
    arrivals = ArrivalEstimator(est.a_per_s, est.k_per_px, est.ak_window_s, est.ak_min_trades, start_ns=start_ns)
    sigma_long = SigmaEstimator(est.sigma_px_per_sqrt_s, est.sigma_long_halflife_s, est.sigma_sample_ms)
    return Engine(params, sigma, arrivals, start_ns=start_ns, sigma_long=sigma_long)


def build_venue(settings: Settings) -> tuple[Venue, Any]:
    """The configured venue and its clock (simulated for the in-process mock, wall clock otherwise)."""
    venue_spec = settings.runtime.venue
    if venue_spec == "mock":
        from bot.venues.mock.exchange import MockExchange
        from bot.venues.mock_inprocess import InProcessMockVenue

        start_ns = time.time_ns()
        exchange = MockExchange(settings.mock, start_ns=start_ns)
        venue = InProcessMockVenue(exchange, speed=settings.runtime.speed, start_ns=start_ns)
        return venue, venue.clock_ns
    if venue_spec.startswith(("ws://", "wss://")):
        from bot.venues.mock.client import WsMockVenue

        return WsMockVenue(venue_spec), time.time_ns
    raise ConfigError(f'runtime.venue: unknown venue {venue_spec!r} (use "mock" or "ws://HOST:PORT")')


def _settings_from_args(args: argparse.Namespace) -> Settings:
    overrides: dict[str, dict[str, Any]] = {}
    if getattr(args, "venue", None):
        overrides.setdefault("runtime", {})["venue"] = args.venue
    if getattr(args, "ledger", None):
        overrides.setdefault("ledger", {})["path"] = args.ledger
    return load_settings(args.config, overrides)


async def _run(settings: Settings, duration_s: float | None) -> dict[str, Any]:
    venue, clock_ns = build_venue(settings)
    await venue.connect()
    instruments = venue.instruments
    spot = instruments[settings.market.spot_symbol]
    perp = instruments.get(settings.market.perp_symbol)
    engine = build_engine(settings, spot, perp, clock_ns(), venue_name=venue.name)
    runner = Runner(
        engine,
        venue,
        clock_ns=clock_ns,
        timer_ms=settings.runtime.timer_ms,
        cancel_timeout_s=settings.runtime.cancel_timeout_ms / 1000,
    )
    return await runner.run(duration_s)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings_from_args(args)  # a bad config stops here, before any venue: exit 2
    configure_logging(args.log_format, args.log_level, secrets=secret_values(settings))
    bind_context(run_id=uuid.uuid4().hex[:12], venue=settings.runtime.venue, symbol=settings.market.spot_symbol)
    summary = asyncio.run(_run(settings, args.duration))
    if summary.get("open_orders_at_exit", 0) != 0:
        get_logger().error("session.unclean_exit", open_orders_at_exit=summary["open_orders_at_exit"])
        return 1
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)  # ConfigError -> exit 2 in the CLI
    configure_logging(args.log_format, args.log_level, secrets=secret_values(settings))
    sys.stdout.write(orjson.dumps(masked_dump(settings), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
