"""The one composition root: builds venues, engine and runner from Settings, and the CLI commands
that run them. Nothing else in the code base constructs a venue or an engine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from bot.config import ConfigError, Settings, check_instrument_bounds, load_settings, masked_dump
from bot.core.deal import DealEvent, DealLifecycle, DealState, DealTerms, ns_date, sale_schedule
from bot.core.engine import Engine, EngineParams, MarketSpec
from bot.core.estimators import ArrivalEstimator, SigmaEstimator
from bot.core.execution import SaleExecutor, SaleParams, SaleSchedule
from bot.core.hedger import HedgeParams
from bot.core.lp import PoolState
from bot.core.quoting import QuoteParams
from bot.domain import DEFAULT_VENUE, Instrument, market_key
from bot.logs import bind_context, configure_logging, get_logger
from bot.runtime.ledger import Ledger, LedgerError, LedgerFailed, LedgerObserver
from bot.runtime.metrics import Metrics, MetricsObserver, MetricsServer
from bot.runtime.recovery import reconcile
from bot.runtime.runner import Observer, Runner
from bot.runtime.status_feed import StatusFeed
from bot.venues.base import Venue, VenueGroup, fill_session

NS_PER_S = 1_000_000_000


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret, so the log redactor can mask it wherever it appears."""
    from bot.config import VENUE_SECRET_KEYS, CcxtVenueConfig

    ccxt = settings.ccxt
    secrets = [s for s in (ccxt.api_key, ccxt.api_secret, ccxt.api_password) if s is not None]
    for venue in settings.market.venues.values():  # a multi-venue session's ccxt venues: each its own keys
        if isinstance(venue, CcxtVenueConfig):
            secrets.extend(s for s in (getattr(venue, key) for key in VENUE_SECRET_KEYS) if s is not None)
    return [s.get_secret_value() for s in secrets]


class VenueStartError(Exception):
    """The venue could not be reached or refused us at start: one line for the operator, exit 1."""


def build_engine(
    settings: Settings,
    spot: Instrument,
    perp: Instrument | None,
    start_ns: int,
    venue_name: str | None = None,
    client_id_tag: str = "",
    deal_state: DealState | None = None,
    spot_venues: Mapping[str, Instrument] | None = None,
    pair_venues: tuple[str, str] | None = None,
) -> Engine:
    """`deal_state`: where the deal stood (from the ledger's deal events): its start when the config
    has no start_date, and the tranches already settled. None: a deal starting at `start_ns`.

    `spot_venues` (venue → its spot instrument): a multi-venue session, one market per entry of
    `market.quote_on` (the first is the main one, `spot` is ignored) hedged with `perp` on
    `market.hedge_venue`. None: the single-venue engine on `spot`.

    `pair_venues` (spot venue, hedge venue): the one spot market quoted on the first venue and hedged
    with `perp` on the second (a replay of a spot recording with a perp recording from another venue);
    its events must name those venues. None: both on the one venue of the single-venue path."""
    check_instrument_bounds(settings, spot.lot_size, min_notional_quote=spot.min_notional)  # ConfigError: exit 2
    q = settings.quoter
    est = settings.estimator
    deal = settings.deal
    state = deal_state or DealState()
    deal_start = state.start_ns if state.start_ns is not None else start_ns
    terms = DealTerms.from_config(deal, start_ns=deal_start) if deal.apply_to_portfolio else None
    risk = settings.risk.to_params(stale_feed_ms=settings.runtime.stale_feed_ms, venue=venue_name)
    markets: list[MarketSpec] = []
    spot_venue, hedge_venue = pair_venues or (DEFAULT_VENUE, DEFAULT_VENUE)
    if spot_venues is not None:
        markets = market_specs(settings, spot_venues)
        spot, risk = markets[0].spot, markets[0].risk
        spot_venue, hedge_venue = markets[0].venue, settings.market.hedge_venue
    params = EngineParams(
        spot=spot,
        perp=perp,
        quote=markets[0].quote if markets else QuoteParams(**q.model_dump()),  # a mirror of [quoter]
        stale_feed_ns=settings.runtime.stale_feed_ms * 1_000_000,
        price_tolerance_ticks=q.price_tolerance_ticks,
        max_order_age_ns=q.max_order_age_ms * 1_000_000,
        warmup_ns=int(settings.runtime.warmup_s * NS_PER_S),
        hedge=HedgeParams.from_config(settings.hedger),
        risk=risk,
        hedge_resume_after_ns=int(settings.hedger.halt_resume_s * NS_PER_S),
        client_id_tag=client_id_tag,
        options=terms.call_options(settled=state.settled_strikes) if terms is not None else (),
        lp=(
            terms.lp_position(state.pool, state.venue_session)
            if terms is not None and terms.dex_pool_size_quote > 0
            else None
        ),
        option_vol_annual=None if deal.use_estimator_vol else deal.implied_vol_annual,
        lp_volume_ratio=deal.dex_volume_ratio if terms is not None else 0.0,
        deal_lifecycle=(
            DealLifecycle(terms.loan_return_ns, terms.tokens_lent_base, returned=state.loan_returned_base > 0)
            if terms is not None
            else None
        ),
        sale=_sale_executor(settings, terms, state, spot, perp, spot_venue, client_id_tag),
        venue=spot_venue,
        extra_markets=tuple(markets[1:]),
        hedge_venue=hedge_venue,
    )

    def estimators(spec: MarketSpec | None = None) -> tuple[SigmaEstimator, ArrivalEstimator, SigmaEstimator]:
        """One market's estimators, warm-started from [estimator]; A and k fill-weighted by its quote size."""
        size_base = spec.quote.order_size_base if spec is not None else q.order_size_base
        arrivals = ArrivalEstimator(
            est.a_per_s,
            est.k_per_px,
            est.ak_window_s,
            est.ak_min_trades,
            buckets=est.ak_buckets,
            refit_ms=est.ak_refit_ms,
            start_ns=start_ns,
            order_size_base=size_base if est.ak_fill_weighted else None,
            depth_resolution_px=0.5 * (spec.spot if spec is not None else spot).tick_size,
        )
        return (
            SigmaEstimator(est.sigma_px_per_sqrt_s, est.sigma_halflife_s, est.sigma_sample_ms),
            arrivals,
            SigmaEstimator(est.sigma_px_per_sqrt_s, est.sigma_long_halflife_s, est.sigma_sample_ms),
        )

    sigma, arrivals, sigma_long = estimators(markets[0] if markets else None)
    return Engine(params, sigma, arrivals, start_ns=start_ns, sigma_long=sigma_long, make_estimators=estimators)


def _sale_schedule(settings: Settings, terms: DealTerms) -> SaleSchedule:
    """`mmbot deal plan`'s schedule of the initial sale."""
    deal = settings.deal
    return sale_schedule(
        terms,
        deal.sale_twap_days,
        deal.sale_fee_rate,
        deal.sale_daily_volume_quote,
        deal.sale_max_participation,
        deal.sale_floor_pct,
    )


def _sale_executor(
    settings: Settings,
    terms: DealTerms | None,
    state: DealState,
    spot: Instrument,
    perp: Instrument | None,
    venue: str,
    client_id_tag: str,
) -> SaleExecutor | None:
    """The deal's initial sale carried out by the running bot (`deal.sale_execute`): the schedule of
    `mmbot deal plan`, paced from the deal's start, what earlier runs sold (the ledger's `sold`
    events) counted. None without the deal in the portfolio or a perp to cover the delta sold."""
    deal = settings.deal
    if terms is None or perp is None or not deal.sale_execute or not settings.hedger.enabled:
        return None
    schedule = _sale_schedule(settings, terms)
    if schedule.total_base <= 0:
        return None
    params = SaleParams.from_schedule(
        schedule,
        terms.start_ns,
        deal.sale_floor_pct,
        deal.sale_child_base or settings.quoter.order_size_base,
        settings.quoter.max_order_age_ms * 1_000_000,
    )
    tag = f"-{client_id_tag}" if client_id_tag else ""
    return SaleExecutor(
        params,
        spot,
        client_id_prefix=f"s{tag}",
        venue=venue,
        sold_by_day=state.sold_by_day(terms.start_ns),
        carried_lots=state.sale_carried_lots,
    )


def market_specs(settings: Settings, spot_venues: Mapping[str, Instrument]) -> list[MarketSpec]:
    """The spot markets of `market.quote_on`, main venue first: each with [quoter] and [risk] as
    configured, its own size and levels if set, and its venue's obligation (`Settings.obligation_of`)."""
    quoter = settings.quoter.model_dump()
    out = []
    for market in settings.market.quote_on:
        own = {"order_size_base": market.order_size_base, "levels": market.levels}
        quote = QuoteParams(**{**quoter, **{k: v for k, v in own.items() if v is not None}})
        name, obligation = settings.obligation_of(market) or (None, None)
        risk = settings.risk.to_params(stale_feed_ms=settings.runtime.stale_feed_ms, venue=name, obligation=obligation)
        out.append(MarketSpec(spot_venues[market.venue], quote, risk, venue=market.venue))
    return out


def build_venue(settings: Settings) -> tuple[Venue, Any]:
    """The configured venue and its clock (simulated for the in-process mock, wall clock otherwise)."""
    venue_spec = settings.runtime.venue
    if settings.multi_venue:
        from bot.config import MockVenueConfig, WsVenueConfig
        from bot.venues.mock.venues import MockVenues, MultiMockVenue

        used = {name: settings.market.venues[name] for name in settings.market.session_venues()}
        if not settings.market.in_process():  # mock servers and ccxt exchanges (no in-process mock), wall clock
            from bot.venues.venue_set import VenueSet

            adapters: dict[str, Venue] = {}
            for name, cfg in used.items():
                if isinstance(cfg, WsVenueConfig):
                    from bot.venues.mock.client import WsMockVenue

                    adapters[name] = WsMockVenue(cfg.url)
                else:
                    from bot.venues.ccxt_venue import CcxtVenue

                    adapters[name] = CcxtVenue(settings.ccxt_config_of(name))  # mainnet refused, keys: ConfigError
            return VenueSet(adapters), time.time_ns
        start_ns = time.time_ns()
        mocks = {name: cfg for name, cfg in used.items() if isinstance(cfg, MockVenueConfig)}
        group = MockVenues(settings.mock, mocks, start_ns=start_ns)
        multi = MultiMockVenue(
            group, speed=settings.runtime.speed, start_ns=start_ns, timer_ms=settings.runtime.timer_ms
        )
        return multi, multi.clock_ns
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
    if venue_spec == "ccxt":
        from bot.venues.ccxt_venue import CcxtVenue

        for key in ("spot_symbol", "perp_symbol"):
            ours, theirs = getattr(settings.market, key), getattr(settings.ccxt, key)
            if theirs and ours != theirs:
                raise ConfigError(f"config error: market.{key}: {ours!r} must equal ccxt.{key} {theirs!r}")
        return CcxtVenue(settings.ccxt), time.time_ns  # refuses mainnet orders, missing keys: ConfigError
    raise ConfigError(
        f'config error: runtime.venue: unknown venue {venue_spec!r} (use "mock", "ccxt" or "ws://HOST:PORT")'
    )


def _settings_from_args(args: argparse.Namespace) -> Settings:
    overrides: dict[str, dict[str, Any]] = {}
    if getattr(args, "venue", None):
        overrides.setdefault("runtime", {})["venue"] = args.venue
    if getattr(args, "ledger", None) is not None:  # --ledger "" means: no ledger
        overrides.setdefault("ledger", {})["path"] = args.ledger
    return load_settings(args.config, overrides)


@contextlib.asynccontextmanager
async def _starting(venue: Venue, what: str) -> AsyncIterator[None]:
    """A venue failing while the bot starts (connect, reconciliation) is one line for the operator and
    exit 1, not a traceback; a ConfigError stays a ConfigError (exit 2). Either way the venue is closed."""
    try:
        yield
    except ConfigError:
        await _close_quietly(venue)
        raise
    except Exception as exc:  # whatever the transport raised
        await _close_quietly(venue)
        raise VenueStartError(f"venue {venue.name}: {what}: {type(exc).__name__}: {exc}") from exc


async def _close_quietly(venue: Venue) -> None:
    with contextlib.suppress(Exception):  # already failing: the first error is the one to report
        await venue.close()


@contextlib.asynccontextmanager
async def _metrics_server(settings: Settings, metrics: Metrics) -> AsyncIterator[None]:
    """Serve /metrics, /health and /status while the bot runs. A taken port costs the endpoint, not
    the session: the bot trades on and says so (in a container the health check then fails)."""
    cfg = settings.metrics
    if not cfg.enabled:
        yield
        return
    server = MetricsServer(metrics, cfg.host, cfg.port)
    try:
        await server.start()
    except OSError as exc:
        get_logger().error("metrics.unavailable", host=cfg.host, port=cfg.port, error=str(exc))
        yield
        return
    get_logger().info("metrics.serving", url=server.url)
    try:
        yield
    finally:
        await server.stop()


class LedgerFailure:
    """What the ledger's `on_failure` does while the bot runs: log `ledger.failed` once and stop the
    runner cleanly (orders canceled, summary logged); the command then exits 1 with that line."""

    def __init__(self) -> None:
        self.runner: Runner | None = None
        self.reason: str | None = None

    def __call__(self, line: str) -> None:
        self.reason = line
        get_logger().error("ledger.failed", reason=line)
        if self.runner is not None:
            self.runner.request_stop("ledger_failed")


def _open_ledger(settings: Settings, on_failure: LedgerFailure) -> Ledger | None:
    """The ledger, opened before any venue is touched: a second writer or a damaged file is refused
    (LedgerUnusable, one line, exit 1) before the bot cancels anyone's orders in reconciliation."""
    path = settings.ledger.path
    return Ledger(path, settings.ledger, on_failure=on_failure) if path else None


def _deal_state(
    settings: Settings, ledger: Ledger | None, run_id: str, now_ns: int, venue_session: str = ""
) -> DealState | None:
    """Where the deal stands, from the ledger (any venue: the deal outlives a venue session). A deal
    without a configured start_date starts at its first run, which the ledger records; the simulated
    pool is where the last run left it (its deposit is recorded once, by the first run).
    `venue_session`: the venue's fill session if it persists across runs, "" for a fresh exchange."""
    deal = settings.deal
    if not deal.apply_to_portfolio:
        return None
    state = DealState.from_events(ledger.deal_events()) if ledger is not None else DealState()
    if deal.start_date is None and state.start_ns is None:
        started = DealEvent("started", now_ns)
        if ledger is not None:
            ledger.record_deal_event(run_id, started)
        state = dataclasses.replace(state, start_ns=now_ns)
    terms = DealTerms.from_config(deal, start_ns=state.start_ns)
    saved = ledger.pool_state() if ledger is not None else None
    pool = PoolState.from_dict(saved) if saved is not None else None
    state = dataclasses.replace(state, pool=pool, venue_session=venue_session)
    simulated = deal.dex_pool_model in ("constant_product", "concentrated")
    if pool is None and ledger is not None and simulated and deal.dex_pool_size_quote:
        fresh = terms.lp_position()
        px = terms.token_price_px
        deposit = DealEvent("lp_deposited", now_ns, fresh.token_base(px), px, None, fresh.value_quote(px) / 2.0)
        ledger.record_deal_event(run_id, deposit)
    get_logger().info(
        "deal.state",
        start_date=ns_date(terms.start_ns),
        day=round((now_ns - terms.start_ns) / 86_400e9, 3),
        loan_return_date=ns_date(terms.loan_return_ns),
        calls_held=len(terms.calls) - len(state.settled_strikes & {c.strike_px for c in terms.calls}),
        calls_settled=sorted(state.settled_strikes),
        sold_base=state.sold_base,
        loan_returned_base=state.loan_returned_base,
        pool_restored=pool is not None,
        pool_token_base=pool.token_base if pool is not None else None,
        pool_quote=pool.quote if pool is not None else None,
        pool_fees_quote=pool.fees_quote if pool is not None else None,
    )
    if deal.sale_execute:
        schedule = _sale_schedule(settings, terms)
        get_logger().info(
            "deal.sale_schedule",
            total_base=round(schedule.total_base, 8),
            sold_base=state.sold_base,
            days=schedule.days,
            slice_base_per_day=round(schedule.slice_base, 8),
            binding=schedule.binding,
            ref_px=schedule.ref_px,
            floor_px=round(schedule.ref_px * (1 - deal.sale_floor_pct / 100), 8),
            expected_cost_quote=round(schedule.expected_cost_quote, 6),
            expected_avg_px=round(schedule.expected_avg_px, 8),
        )
    return state


async def _run(settings: Settings, duration_s: float | None, run_id: str) -> dict[str, Any]:
    log = get_logger()
    failure = LedgerFailure()
    ledger = _open_ledger(settings, failure)
    try:
        venue, clock_ns = build_venue(settings)
        async with _starting(venue, "cannot start"):
            await venue.connect()
        instruments = venue.instruments
        spot = instruments.get(settings.market.spot_symbol)
        if spot is None:
            await _close_quietly(venue)
            raise ConfigError(
                f"config error: market.spot_symbol: venue {venue.name} lists no {settings.market.spot_symbol!r}"
            )
        perp = instruments.get(settings.market.perp_symbol)
        spot_venues: dict[str, Instrument] | None = None
        if settings.multi_venue and isinstance(venue, VenueGroup):  # a market per spot venue; the hedge venue's perp
            spot_venues = {}
            for i, market in enumerate(settings.market.quote_on):
                symbol = market.symbol or settings.market.spot_symbol
                listed = venue.instruments_of(market.venue).get(symbol)
                if listed is None:
                    await _close_quietly(venue)
                    raise ConfigError(f"config error: market.quote_on.{i}.symbol: {market.venue} lists no {symbol!r}")
                spot_venues[market.venue] = listed
            if settings.market.hedge_venue:
                hedge_instruments = venue.instruments_of(settings.market.hedge_venue)
                perp = hedge_instruments.get(settings.market.perp_symbol)
        try:  # the venue's own grid and minimum, before any order (build_engine checks again: cheap)
            check_instrument_bounds(settings, spot.lot_size, min_notional_quote=spot.min_notional)
        except ConfigError:
            await _close_quietly(venue)
            raise
        session = fill_session(venue)
        # the in-process mock (one venue or several) is a new, empty exchange every run: earlier runs
        # say nothing about it; every other venue (a mock server, a venue set of them, ccxt) keeps our
        # orders, fills and positions while the bot is down
        persistent_venue = not getattr(venue, "starts_empty", False)
        try:
            state = ledger.recover(venue.name, session) if ledger is not None and persistent_venue else None
        except LedgerFailed:
            await _close_quietly(venue)
            raise
        deal_state = _deal_state(settings, ledger, run_id, clock_ns(), session if persistent_venue else "")
        if deal_state is not None and ledger is not None and persistent_venue:  # this venue keeps earlier sales
            main_venue = next(iter(spot_venues)) if spot_venues else DEFAULT_VENUE  # the sale sells on the main one
            carried = ledger.tagged_position_lots("sale", venue.name, session).get(
                market_key(main_venue, spot.symbol), 0
            )
            deal_state = dataclasses.replace(deal_state, sale_carried_lots=carried)
        engine = build_engine(
            settings,
            spot,
            perp,
            clock_ns(),
            venue_name=venue.name,
            client_id_tag=run_id[:6],
            deal_state=deal_state,
            spot_venues=spot_venues,
        )
        async with _starting(venue, "reconciliation failed"):
            recovered = await reconcile(engine, venue, state, ledger if state is not None else None)
        log.info("recovery.completed", venue_session=session, **recovered)
        metrics = Metrics()
        observers: list[Observer] = [MetricsObserver(metrics)]
        if ledger is not None:
            # keyed by market, as the ledger keys fills: the same symbol on two venues is two markets
            markets = {key: position.instrument for key, position in engine.portfolio.positions.items()}
            ledger.start_run(run_id, clock_ns(), venue.name, markets, masked_dump(settings), session=session)
            observers.append(LedgerObserver(ledger, run_id))
        period_ns = settings.metrics.status_push_ms * 1_000_000
        observers.append(StatusFeed(run_id, venue.name, period_ns, metrics=metrics, ledger=ledger))
        runner = Runner(
            engine,
            venue,
            clock_ns=clock_ns,
            timer_ms=settings.runtime.timer_ms,
            cancel_timeout_s=settings.runtime.cancel_timeout_ms / 1000,
            observers=tuple(observers),
            clock_speed=1.0 if clock_ns is time.time_ns else settings.runtime.speed,  # a mock's clock runs at speed
        )
        failure.runner = runner
        if failure.reason is None:  # the ledger may already have failed in reconciliation
            async with _metrics_server(settings, metrics):
                summary = await runner.run(duration_s)
        else:
            summary = {}
            await _close_quietly(venue)
        if failure.reason is not None:
            raise LedgerFailed(failure.reason)
        if ledger is not None:
            ledger.end_run(run_id, clock_ns(), summary)
        return summary
    finally:
        if ledger is not None:
            ledger.close()


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings_from_args(args)  # a bad config stops here, before any venue: exit 2
    configure_logging(args.log_format, args.log_level, secrets=secret_values(settings))
    run_id = uuid.uuid4().hex[:12]
    bind_context(run_id=run_id, venue=settings.runtime.venue, symbol=settings.market.spot_symbol)
    try:
        summary = asyncio.run(_run(settings, args.duration, run_id))
    except (VenueStartError, LedgerError) as exc:  # an unreachable venue, a busy or damaged ledger
        get_logger().error("session.failed", reason=str(exc))
        print(f"mmbot: {exc}", file=sys.stderr)
        return 1
    if summary.get("open_orders_at_exit", 0) != 0:
        get_logger().error("session.unclean_exit", open_orders_at_exit=summary["open_orders_at_exit"])
        return 1
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)  # ConfigError -> exit 2 in the CLI
    configure_logging(args.log_format, args.log_level, secrets=secret_values(settings))
    sys.stdout.write(orjson.dumps(masked_dump(settings), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
