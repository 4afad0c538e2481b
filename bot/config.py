"""Settings: one frozen pydantic-settings model loaded from a TOML file plus environment overrides.

Precedence (highest first): environment variables `MMBOT__SECTION__KEY`, then the TOML file, then
the defaults below. Secrets (`SecretStr`) are accepted only from the environment: a TOML file that
contains one is refused, so a key can never be committed with a config.

Every parameter carries its unit in its name (`_s`, `_ms`, `_bps`, `_base`, `_quote`, `_px`) or in
its description. `docs/config.md` is the reference generated from these models.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from bot.secret_names import looks_secret

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "default.toml"

PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuntimeConfig(Section):
    """Which venue the bot trades on and the runner's clocks (bot/app.py, bot/runtime/runner.py)."""

    venue: str = Field(
        "mock",
        description='"mock" (in-process mock exchange), "ws://HOST:PORT" (websocket mock exchange) '
        'or "ccxt" (the [ccxt] section)',
    )
    timer_ms: Annotated[int, Field(ge=1, le=60_000)] = Field(100, description="engine timer period")
    stale_feed_ms: Annotated[int, Field(ge=10)] = Field(
        3000, description="no book update for this long pulls all quotes until the feed is fresh"
    )
    cancel_timeout_ms: Annotated[int, Field(ge=10)] = Field(
        5000, description="bound on cancelling every open order at shutdown"
    )
    speed: PosFloat = Field(1.0, description="mock exchange clock speed vs wall clock (dry run)")
    warmup_s: NonNegFloat = Field(5.0, description="excluded from in-band statistics")

    @field_validator("venue")
    @classmethod
    def _known_venue(cls, venue: str) -> str:
        if venue in ("mock", "ccxt"):
            return venue
        url = urlsplit(venue)
        if url.scheme not in ("ws", "wss") or not _has_host_and_port(url):
            scheme = f"scheme {url.scheme!r}" if url.scheme else "no scheme"
            # the value itself is not repeated: a URL can carry credentials (ws://user:pass@host)
            raise ValueError(f'unknown venue ({scheme}): use "mock", "ccxt" or "ws://HOST:PORT"')
        if url.username or url.password:
            raise ValueError("a venue URL carries no credentials (keys come from the environment)")
        return venue


def _has_host_and_port(url: SplitResult) -> bool:
    """A host, and a port that is a number in range if one is given (`url.port` raises otherwise)."""
    try:
        return bool(url.hostname) and (url.port is None or url.port >= 0)
    except ValueError:
        return False


VenueName = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")]


class SpotMarketConfig(Section):
    """One spot market of a multi-venue session ([[market.quote_on]]); unset keys take [quoter]'s."""

    venue: VenueName = Field(description="a venue of [venues]")
    symbol: str | None = Field(None, min_length=3, description="ccxt-unified spot symbol (unset: market.spot_symbol)")
    order_size_base: PosFloat | None = Field(None, description="quote size on this venue (unset: [quoter]'s)")
    levels: Annotated[int, Field(ge=1, le=20)] | None = Field(None, description="ladder levels (unset: [quoter]'s)")
    obligation: str | None = Field(
        None,
        description="a key of [risk.obligations] (unset: the venue's own entry there, else the venue's "
        "[[deal.venues]] entry, else none)",
    )


class MockVenueConfig(Section):
    """One venue of the multi-venue mock ([venues.NAME]): the [mock] exchange, scaled. Every venue is
    priced off one common fair value; each has its own liquidity, fees, latency and takers."""

    kind: Literal["mock"] = Field("mock", description='"mock": a venue of the in-process multi-venue mock')
    liquidity_scale: PosFloat = Field(1.0, description="background size × this (spot and perp)")
    taker_rate_scale: PosFloat = Field(1.0, description="uninformed taker arrivals × this")
    fee_scale: NonNegFloat = Field(1.0, description="maker and taker fees × this")
    latency_scale: PosFloat = Field(1.0, description="order and response latencies × this")


class WsVenueConfig(Section):
    """One venue of a multi-venue session reached over websockets: a mock exchange server
    (`mmbot exchange serve`, docs/mock-protocol.md) at `url`, on its own market and clock."""

    kind: Literal["ws"] = Field(description='"ws": a mock exchange server (every venue of the session must be one)')
    url: str = Field(description="ws://HOST:PORT of the server")

    @field_validator("url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        url = urlsplit(value)
        if url.scheme not in ("ws", "wss") or not _has_host_and_port(url):
            raise ValueError("must be ws://HOST:PORT")
        return value


class CcxtVenueConfig(Section):
    """One venue of a multi-venue session on an exchange through ccxt (bot/venues/ccxt_venue.py): its
    exchange, mode and keys, configured once; every other ccxt setting is [ccxt]'s. Its spot symbol is
    its `quote_on` entry's (else market.spot_symbol), its perp market.perp_symbol when it is the hedge
    venue. Keys only from the environment: MMBOT__MARKET__VENUES__<NAME>__API_KEY, ..._API_SECRET,
    ..._API_PASSWORD (okx passphrase), never from a file; the mainnet guard is [ccxt]'s."""

    kind: Literal["ccxt"] = Field(description='"ccxt": an exchange through ccxt (paper, testnet or demo)')
    exchange: Literal["bybit", "binance", "okx"] = Field(description="the ccxt exchange id")
    mode: Literal["paper", "testnet", "demo"] = Field(
        "paper", description='"paper": public data, simulated fills (no keys); "testnet"/"demo": the sandbox'
    )
    sandbox_url_base: str | None = Field(
        None, description="loopback only: every ccxt URL of this venue goes to a dialect server (see [ccxt])"
    )
    spot_base_allocation: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="base balance on this venue that is not inventory (see [ccxt])"
    )
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    api_password: SecretStr | None = None


VENUE_SECRET_KEYS = ("api_key", "api_secret", "api_password")


def _venue_kind(value: Any) -> str:
    return str(value.get("kind", "mock") if isinstance(value, dict) else getattr(value, "kind", "mock"))


# tagged by `kind` (absent: "mock"), so a bad entry is reported against its own kind's fields only
VenueConfig = Annotated[
    Annotated[MockVenueConfig, Tag("mock")]
    | Annotated[WsVenueConfig, Tag("ws")]
    | Annotated[CcxtVenueConfig, Tag("ccxt")],
    Discriminator(_venue_kind),
]


class MarketConfig(Section):
    """The engine's instruments: the spot it quotes and the linear perp it hedges in. With
    `quote_on` the spot is quoted on several venues at once and hedged on `hedge_venue`."""

    spot_symbol: str = Field("TOKEN/USDT", description="ccxt-unified symbol of the quoted spot market")
    perp_symbol: str = Field(
        "TOKEN/USDT:USDT", description='ccxt-unified symbol of the hedge perp ("" or unknown: no hedging)'
    )
    quote_on: tuple[SpotMarketConfig, ...] = Field(
        (),
        description="the spot markets of a multi-venue session (runtime.venue = mock), main venue first "
        "(empty, or a ws:// or ccxt venue: one venue, spot_symbol)",
    )
    hedge_venue: str = Field("", description="the venue of perp_symbol in a multi-venue session (a key of venues)")
    venues: dict[VenueName, VenueConfig] = Field(
        default_factory=dict,
        description="the venues of a multi-venue session, each once ([market.venues.NAME]): all in-process "
        'mocks (kind "mock", the default: one fair value, simulated time), or any mix of mock servers (kind "ws", '
        'url) and exchanges through ccxt (kind "ccxt": exchange, mode, sandbox_url_base, spot_base_allocation; '
        "keys only from MMBOT__MARKET__VENUES__<NAME>__API_KEY / _API_SECRET / _API_PASSWORD)",
    )

    @model_validator(mode="after")
    def _one_market_per_venue(self) -> MarketConfig:
        names = [m.venue for m in self.quote_on]
        if len(set(names)) != len(names):
            raise ValueError(f"quote_on: each venue once, got {names}")
        if self.quote_on and not self.hedge_venue and self.perp_symbol:
            raise ValueError("hedge_venue: a multi-venue session names the venue of perp_symbol")
        for i, spot in enumerate(self.quote_on):
            if spot.venue not in self.venues:
                raise ValueError(f"quote_on.{i}.venue: {spot.venue!r} is not a key of market.venues")
        if self.quote_on and self.hedge_venue and self.hedge_venue not in self.venues:
            raise ValueError(f"hedge_venue: {self.hedge_venue!r} is not a key of market.venues")
        kinds = {name: venue.kind for name, venue in self.venues.items() if name in self.session_venues()}
        if "mock" in kinds.values() and len(set(kinds.values())) > 1:
            # the in-process mock's simulated clock is not the wall clock of servers and exchanges
            others = sorted(name for name, kind in kinds.items() if kind != "mock")
            raise ValueError(f'venues: {", ".join(others)}: a session\'s venues are all kind "mock" or none (ws, ccxt)')
        return self

    def session_venues(self) -> list[str]:
        """The venues a multi-venue session uses: the quoted ones, main first, then the hedge venue."""
        names = [m.venue for m in self.quote_on]
        return [*names, self.hedge_venue] if self.hedge_venue and self.hedge_venue not in names else names

    def in_process(self) -> bool:
        """Every venue of the session an in-process mock (kind "mock"): simulated time, the [mock] market."""
        return all(isinstance(self.venues.get(name), MockVenueConfig) for name in self.session_venues())


class QuoterConfig(Section):
    model: Literal["glft", "as"] = Field("glft", description="GLFT infinite horizon or A-S finite horizon")
    glft_xi: Literal["gamma", "zero"] = Field(
        "gamma", description='GLFT market-impact parameter ξ: "gamma" (ξ = γ) or "zero" (ξ = 0, Guéant 2017)'
    )
    gamma_per_quote: PosFloat = Field(
        0.05, description="risk aversion γ, 1/quote currency (CARA utility of wealth in quote)"
    )
    horizon_s: PosFloat = Field(60.0, description="A-S only: rolling horizon T−t, seconds")
    order_size_base: PosFloat = Field(1.0, description="size of one quote level, base units")
    inventory_target_base: float = Field(0.0, allow_inf_nan=False, description="target spot inventory")
    min_spread_bps: NonNegFloat = Field(2.0, description="floor on the quoted spread, bps of mid")
    levels: Annotated[int, Field(ge=1, le=20)] = 1
    level_spacing_bps: NonNegFloat = Field(5.0, description="distance between ladder levels, bps of mid")
    size_decay: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = Field(
        1.0, description="level i size = order_size_base * size_decay**i"
    )
    price_tolerance_ticks: Annotated[int, Field(ge=0)] = Field(
        1, description="a live order within this many ticks of its target is kept"
    )
    max_order_age_ms: Annotated[int, Field(ge=0)] = Field(
        30_000, description="refresh a resting order older than this (0 = never)"
    )


class EstimatorConfig(Section):
    sigma_px_per_sqrt_s: PosFloat = Field(0.02, description="warm start for σ, price units per √second")
    sigma_halflife_s: PosFloat = Field(60.0, description="EWMA half-life of the σ estimator used for quoting")
    sigma_long_halflife_s: PosFloat = Field(
        1800.0, description="half-life of a second, slow σ estimator: the risk guard's volatility-spike ratio"
    )
    sigma_sample_ms: Annotated[int, Field(ge=1)] = Field(
        1000, description="σ samples mid changes on this wall-clock grid"
    )
    a_per_s: PosFloat = Field(1.0, description="warm start for A: taker arrivals per second at δ=0")
    k_per_px: PosFloat = Field(20.0, description="warm start for k: decay of arrival rate per price unit")
    ak_window_s: PosFloat = Field(300.0, description="rolling window of public trades for the A, k fit")
    ak_min_trades: Annotated[int, Field(ge=5)] = Field(50, description="trades needed before fitting")
    ak_buckets: Annotated[int, Field(ge=3, le=100)] = Field(
        10, description="depth buckets of the A, k fit (edges span 3 mean trade depths)"
    )
    ak_refit_ms: Annotated[int, Field(ge=0)] = Field(1000, description="refit A, k at most this often")
    ak_fill_weighted: bool = Field(
        True,
        description="A, k as the fill rate of one quoter.order_size_base quote: a print counts min(1, size/Δ) "
        "fills (false: every print counts one, as before issue #16)",
    )


class VenueCredentials(Section):
    """Only from the environment: MMBOT__CCXT__API_KEY and friends."""


CCXT_MODES: dict[str, tuple[str, ...]] = {
    # exchange -> sandboxed modes ccxt can reach ("paper" is always allowed: it sends no orders)
    "bybit": ("testnet", "demo"),  # set_sandbox_mode / enable_demo_trading
    "binance": ("testnet", "demo"),  # testnet: spot only (ccxt deprecated the futures sandbox)
    "okx": ("demo",),  # set_sandbox_mode: the x-simulated-trading header
}


class CcxtConfig(Section):
    """A real exchange through ccxt (bot/venues/ccxt_venue.py). Keys only from the environment:
    MMBOT__CCXT__API_KEY, MMBOT__CCXT__API_SECRET, MMBOT__CCXT__API_PASSWORD (okx passphrase)."""

    exchange: Literal["bybit", "binance", "okx"] = "bybit"
    mode: Literal["paper", "testnet", "demo"] = Field(
        "paper",
        description='"paper": public data from mainnet, simulated fills (no keys); '
        '"testnet"/"demo": real orders on the exchange\'s sandbox (keys required)',
    )
    spot_symbol: str = Field("BTC/USDT", min_length=3, description="ccxt-unified spot symbol; must match [market]")
    perp_symbol: str = Field(
        "BTC/USDT:USDT", validate_default=True, description='ccxt-unified linear perp symbol; "" for none'
    )
    book_depth_levels: Annotated[int, Field(ge=1, le=1000)] = Field(
        25, description="book levels per side passed to the engine"
    )
    book_stale_ms: Annotated[int, Field(ge=100)] = Field(
        10_000, description="no book update for this long: resubscribe (bybit sends no sequence check)"
    )
    reconnect_base_ms: Annotated[int, Field(ge=1)] = Field(200, description="first reconnect wait (doubles)")
    reconnect_cap_ms: Annotated[int, Field(ge=1)] = Field(10_000, description="cap on the reconnect wait")
    order_retries: Annotated[int, Field(ge=0, le=5)] = Field(
        2, description="resends of a create/cancel after a network error (same client id)"
    )
    rate_limit_pause_ms: Annotated[int, Field(ge=0)] = Field(
        2000, description="after a rate-limit error, new orders are rejected locally for this long"
    )
    position_poll_ms: Annotated[int, Field(ge=0)] = Field(
        5000, description="PositionSnapshot poll period in testnet/demo mode (0 = off)"
    )
    private_poll_ms: Annotated[int, Field(ge=50)] = Field(
        1000, description="order/fill poll period where the venue has no watch_orders / watch_my_trades"
    )
    paper_advance_ms: Annotated[int, Field(ge=1)] = Field(
        20, description="paper mode: how often the simulated execution's clock is advanced"
    )
    paper_latency_ms: Annotated[int, Field(ge=0)] = Field(
        20, description="paper mode: simulated one-way latency of our commands and of the venue's answers"
    )
    sandbox_url_base: str | None = Field(
        None,
        description='loopback only, e.g. "http://127.0.0.1:8790": every ccxt REST and websocket URL goes to a '
        "dialect server (`mmbot exchange serve --dialect NAME`) instead of the venue",
    )
    spot_base_allocation: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="base-currency balance that is not the bot's inventory: spot position = base balance minus "
        "this (survives restarts); unset = the balance at connect (a restart resets spot inventory to 0)",
    )
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    api_password: SecretStr | None = None

    @field_validator("sandbox_url_base")
    @classmethod
    def _loopback_only(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parsed = urlsplit(value)
        host = parsed.hostname or ""
        loopback = host == "localhost" or _is_loopback_ip(host)
        if parsed.scheme != "http" or not loopback or parsed.port is None or parsed.path not in ("", "/"):
            raise ValueError(f"must be http://<loopback address>:<port> (127.0.0.1, ::1, localhost), not {value!r}")
        return value.rstrip("/")

    @field_validator("mode")
    @classmethod
    def _mode_supported(cls, mode: str, info: Any) -> str:
        exchange = info.data.get("exchange")
        if mode != "paper" and exchange in CCXT_MODES and mode not in CCXT_MODES[exchange]:
            allowed = ", ".join(('"paper"', *(f'"{m}"' for m in CCXT_MODES[exchange])))
            raise ValueError(f"{exchange} has no {mode} environment in ccxt (use {allowed})")
        return mode

    @field_validator("perp_symbol")
    @classmethod
    def _no_binance_futures_testnet(cls, perp_symbol: str, info: Any) -> str:
        if perp_symbol and info.data.get("exchange") == "binance" and info.data.get("mode") == "testnet":
            raise ValueError('binance futures have no testnet in ccxt any more: use mode = "demo" or perp_symbol = ""')
        return perp_symbol


class MetricsConfig(Section):
    """HTTP endpoint for Prometheus `/metrics`, `/health` and `/status` (bot/runtime/metrics)."""

    enabled: bool = True
    host: str = Field("127.0.0.1", description='bind address; "0.0.0.0" inside a container')
    port: Annotated[int, Field(ge=0, le=65535)] = Field(9108, description="0 picks a free port")
    status_push_ms: Annotated[int, Field(ge=10, le=60_000)] = Field(
        1000, description="how often the runner refreshes the /status snapshot and the gauges"
    )


class LedgerConfig(Section):
    """Append-only SQLite ledger (bot/runtime/ledger)."""

    path: str = Field("var/ledger.sqlite", description="SQLite (WAL) ledger of orders, fills, hedges")
    quote_sample_ms: Annotated[int, Field(ge=0, le=3_600_000)] = Field(
        1000, description="at most one quote sample per symbol per this period, venue time (0 = every one)"
    )
    commit_interval_ms: Annotated[int, Field(ge=0, le=60_000)] = Field(
        250, description="pending rows are committed at least this often (fills are committed at once)"
    )
    commit_rows: Annotated[int, Field(ge=1, le=100_000)] = Field(
        500, description="...or as soon as this many rows are pending"
    )


# ---- Sections owned by other modules: each owner fills in its own class body only. ----


class MockMarketConfig(Section):
    """One market of the mock exchange: its grid, fees, background liquidity and taker flow."""

    symbol: str = Field(..., description='ccxt-unified symbol; must match [market] ("TOKEN/USDT", "TOKEN/USDT:USDT")')
    tick_size: PosFloat = Field(0.01, description="price grid, quote per base")
    lot_size: PosFloat = Field(0.01, description="size grid, base units")
    min_notional_quote: NonNegFloat = Field(5.0, description="smallest order value accepted, quote")
    maker_fee: Annotated[float, Field(ge=-0.01, le=0.01, allow_inf_nan=False)] = Field(
        0.0001, description="fraction of notional; negative = rebate"
    )
    taker_fee: Annotated[float, Field(ge=0, le=0.01, allow_inf_nan=False)] = Field(
        0.0005, description="fraction of notional"
    )
    bg_levels: Annotated[int, Field(ge=1, le=200)] = Field(20, description="background price levels per side")
    bg_half_spread_ticks: Annotated[float, Field(ge=0.5, le=1000, allow_inf_nan=False)] = Field(
        2.0, description="background best bid/ask distance from fair value, ticks"
    )
    bg_level_spacing_ticks: Annotated[int, Field(ge=1, le=1000)] = Field(1, description="between levels, ticks")
    bg_size_base: PosFloat = Field(2.0, description="mean background size at the best level, base units")
    bg_size_growth: NonNegFloat = Field(0.2, description="level j mean size = bg_size_base * (1 + growth * j)")
    bg_refill_s: PosFloat = Field(2.0, description="time constant for a depleted level to refill, seconds")
    bg_churn_per_s: NonNegFloat = Field(4.0, description="random background re-sizes per second per side")
    taker_a_per_s: NonNegFloat = Field(
        1.0, description="A: uninformed taker arrivals per second per side (intensity at δ=0)"
    )
    taker_k_per_px: PosFloat = Field(
        20.0, description="k: a taker's reach δ from mid is Exp(k), so a level at δ is hit at rate A·exp(−k·δ)"
    )
    taker_size_base: PosFloat = Field(0.5, description="mean uninformed taker size (exponential), base units")
    informed_share: Annotated[float, Field(ge=0, le=0.95, allow_inf_nan=False)] = Field(
        0.1, description="share of taker arrivals that are informed (toxic)"
    )
    informed_size_base: PosFloat = Field(1.0, description="mean informed taker size (exponential), base units")
    # the "hawkes" flow model (mock.flow_model; docs/mock-market.md); the "classic" model ignores these
    hawkes_base_per_s: NonNegFloat = Field(
        1.0, description="hawkes: mu, exogenous taker arrivals per second (both sides; mean rate mu / (1 - n))"
    )
    hawkes_branching: Annotated[float, Field(ge=0, le=0.99, allow_inf_nan=False)] = Field(
        0.5, description="hawkes: n, arrivals each arrival triggers on average (self-excitation)"
    )
    hawkes_decay_per_s: PosFloat = Field(20.0, description="hawkes: beta, decay rate of the excitation, per second")
    meta_share: Fraction = Field(0.5, description="hawkes: share of uninformed arrivals that are metaorder pieces")
    meta_len_alpha: Annotated[float, Field(gt=1.0, le=10, allow_inf_nan=False)] = Field(
        1.5, description="hawkes: Pareto tail index of metaorder lengths (sign autocorrelation ~ lag^-(alpha-1))"
    )
    meta_len_min: Annotated[float, Field(ge=1, le=10_000, allow_inf_nan=False)] = Field(
        1.0, description="hawkes: smallest metaorder length, pieces"
    )
    size_median_base: PosFloat = Field(0.3, description="hawkes: median taker size, base units")
    size_log_sigma: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)] = Field(
        1.0, description="hawkes: log-sigma of the lognormal body of taker sizes"
    )
    size_tail_alpha: Annotated[float, Field(gt=0.2, le=20, allow_inf_nan=False)] = Field(
        1.3, description="hawkes: tail index of taker sizes above their 95th percentile (power law)"
    )
    size_max_base: PosFloat = Field(100.0, description="hawkes: cap on one taker order, base units")
    taker_reach_ticks: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        20, description="hawkes: an uninformed taker walks the book at most this far past the best, ticks"
    )
    impact_bps: NonNegFloat = Field(
        0.2, description="hawkes: fair-value push of a median-size taker order, bps (square-root law in size)"
    )
    bg_spread_ticks: Annotated[int, Field(ge=1, le=10_000)] = Field(
        1, description="hawkes: background best ask - best bid when every ladder level is occupied, ticks"
    )
    bg_size_log_sigma: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)] = Field(
        0.5, description="hawkes: log-sigma of background level sizes around their mean (classic: 0.5)"
    )
    bg_new_level_share: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        1.0, description="hawkes: a level the ladder opens starts with this share of its size, then refills"
    )
    bg_occupancy: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        1.0, description="hawkes: probability a background ladder level holds size (thin books: gaps, wide spread)"
    )
    bg_requote_bps: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)] = Field(
        0.0,
        description="hawkes: background makers requote only when fair value leaves this band around their "
        "quotes' centre, bps (0: every step); the book's mid then moves in jumps, as a real one does",
    )
    bg_step_log_sigma: Annotated[float, Field(ge=0, le=3, allow_inf_nan=False)] = Field(
        0.0,
        description="hawkes: a depleted queue steps fair value by bg_requote_bps x exp(this x a standard "
        "normal) (0: by the band exactly); real mid moves have a size law, not one size",
    )
    bg_bounce_share: Fraction = Field(
        0.0,
        description="hawkes: share of depleted queues that are not news: the fair value steps back two "
        "steps later and the book requotes at the eaten price (0: every depletion is news)",
    )
    bg_depletion_news: bool = Field(
        True,
        description="hawkes, with bg_requote_bps: a taker that eats a whole background queue here steps the "
        "fair value both markets share and this book requotes (false: the queue refills like any eaten "
        "level; a calibrated config's perp, a copy of the recorded market's flow, must not move its value)",
    )
    bg_outer_levels: Annotated[int, Field(ge=0, le=500)] = Field(
        0, description="hawkes: deep background levels per side beyond the ladder, on a coarse grid"
    )
    bg_outer_spacing_ticks: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        100, description="hawkes: spacing of the deep levels, ticks"
    )
    bg_outer_size_base: PosFloat = Field(1.0, description="hawkes: mean size of the first deep level, base units")
    bg_outer_size_decay: Annotated[float, Field(gt=0, le=2, allow_inf_nan=False)] = Field(
        1.0, description="hawkes: deep level j mean size = bg_outer_size_base * decay^j"
    )


class MockLatencyConfig(Section):
    """Per-message latencies: lognormal with the given median and log-sigma (sigma 0 = constant)."""

    order_median_ms: NonNegFloat = Field(20.0, description="command travel time to the matching engine")
    order_sigma: NonNegFloat = Field(0.5, description="log-sigma of the command latency")
    response_median_ms: NonNegFloat = Field(20.0, description="ack / reject / fill / position travel time")
    response_sigma: NonNegFloat = Field(0.5, description="log-sigma of the private-message latency")
    feed_ms: NonNegFloat = Field(10.0, description="public market-data latency (constant, keeps the feed in order)")
    max_ms: PosFloat = Field(2000.0, description="cap on any sampled latency")


class MockFaultConfig(Section):
    """Fault injection. Probabilities are per message; episodes arrive as Poisson events per hour.
    All can be changed at run time through `MockExchange.faults`."""

    drop_prob: Fraction = Field(0.0, description="drop a public message (book delta, trade, mark)")
    duplicate_prob: Fraction = Field(0.0, description="deliver a public message twice")
    gap_per_hour: NonNegFloat = Field(0.0, description="skip book sequence numbers")
    gap_size: Annotated[int, Field(ge=1, le=1_000_000)] = Field(5, description="sequence ids skipped by a gap")
    disconnect_per_hour: NonNegFloat = 0.0
    disconnect_ms: Annotated[int, Field(ge=1)] = Field(2000, description="outage length")
    stale_per_hour: NonNegFloat = Field(0.0, description="frozen feed: no public messages, still connected")
    stale_ms: Annotated[int, Field(ge=1)] = 5000
    crossed_per_hour: NonNegFloat = Field(0.0, description="a bogus crossing level in the published deltas")
    crossed_ms: Annotated[int, Field(ge=1)] = 1000
    restart_per_hour: NonNegFloat = Field(0.0, description="venue restart: outage and all open orders dropped")
    restart_ms: Annotated[int, Field(ge=1)] = 3000
    reject_prob: Fraction = Field(0.0, description='reject an order with reason "venue_overloaded"')
    delayed_ack_prob: Fraction = Field(0.0, description="hold an ack back (it may arrive after its fills)")
    delayed_ack_ms: Annotated[int, Field(ge=1)] = 1000
    duplicate_fill_prob: Fraction = Field(0.0, description="deliver a fill message twice (same fill_id)")


def _spot_market() -> MockMarketConfig:
    return MockMarketConfig(symbol="TOKEN/USDT")


def _perp_market() -> MockMarketConfig:
    return MockMarketConfig(symbol="TOKEN/USDT:USDT", maker_fee=0.0002, taker_fee=0.0005)


class MockExchangeConfig(Section):
    """The mock exchange (bot/venues/mock): a seeded synthetic market, spot + linear perp."""

    seed: int = Field(1, description="same seed and same commands => identical event stream")
    step_ms: Annotated[int, Field(ge=1, le=60_000)] = Field(100, description="fair-value path resolution")
    book_interval_ms: Annotated[int, Field(ge=1, le=60_000)] = Field(
        100, description="book deltas are aggregated and emitted at most this often"
    )
    initial_px: PosFloat = Field(100.0, description="spot fair value at start, quote per base")
    process: Literal["abm", "gbm"] = Field("abm", description="arithmetic or geometric Brownian motion")
    sigma_px_per_sqrt_s: NonNegFloat = Field(
        0.02, description="fair-value volatility, price units per √s (gbm: relative to initial_px)"
    )
    jumps_per_hour: NonNegFloat = Field(0.5, description="Poisson rate of fair-value jumps")
    jump_sigma_bps: NonNegFloat = Field(50.0, description="std of a jump, bps of price")
    informed_horizon_s: PosFloat = Field(5.0, description="informed takers know the fair value this far ahead")
    flow_model: Literal["classic", "hawkes"] = Field(
        "classic",
        description='"classic": Poisson takers, exponential sizes, a fixed-spread book; "hawkes": self-exciting '
        "arrivals, metaorder signs, power-law sizes, price impact, spread from liquidity (docs/mock-market.md)",
    )
    impact_arrival_s: NonNegFloat = Field(0.1, description="hawkes: time constant for a taker's impact to arrive")
    impact_decay_s: PosFloat = Field(5.0, description="hawkes: half-life of the transient part of impact, seconds")
    impact_permanent_share: Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)] = Field(
        0.5,
        description="hawkes: share of impact that never decays (below 0: the transient part overshoots, "
        "so a trade's impact reverses after it arrived)",
    )
    basis_bps: float = Field(5.0, ge=-1000, le=1000, allow_inf_nan=False, description="mean perp premium over spot")
    basis_vol_bps_per_sqrt_s: NonNegFloat = Field(0.5, description="volatility of the perp basis (OU)")
    basis_halflife_s: PosFloat = Field(300.0, description="mean reversion of the basis")
    mark_interval_ms: Annotated[int, Field(ge=1)] = Field(1000, description="perp mark price period")
    funding_interval_s: PosFloat = Field(3600.0, description="funding settlement period")
    funding_cap: Fraction = Field(0.0075, description="cap on |funding rate| per interval")
    position_interval_ms: Annotated[int, Field(ge=1)] = Field(5000, description="periodic position snapshots")
    initial_quote: NonNegFloat = Field(1_000_000.0, description="starting quote balance (USDT)")
    initial_base: NonNegFloat = Field(10_000.0, description="starting spot base balance (TOKEN)")
    enforce_balances: bool = Field(True, description="reject spot orders the free balance cannot cover")
    spot: MockMarketConfig = Field(default_factory=_spot_market)
    perp: MockMarketConfig = Field(default_factory=_perp_market)
    latency: MockLatencyConfig = MockLatencyConfig()
    faults: MockFaultConfig = MockFaultConfig()

    @field_validator("perp")
    @classmethod
    def _linear_perp(cls, perp: MockMarketConfig) -> MockMarketConfig:
        base_quote, _, settle = perp.symbol.partition(":")
        if "/" not in base_quote or base_quote.split("/")[1] != settle:
            raise ValueError(f"perp symbol must be linear BASE/QUOTE:QUOTE, got {perp.symbol!r}")
        return perp


class ReplayConfig(Section):
    """Replay of recorded Binance streams and simulated execution (bot/venues/replay, bot/venues/paper)."""

    speed: Literal["max"] | PosFloat = Field(
        "max", description='replay-time multiple of wall time, or "max" for as fast as possible'
    )
    order_latency_ms: NonNegFloat = Field(20.0, description="simulated: from sending a command to the venue acting")
    report_latency_ms: NonNegFloat = Field(10.0, description="simulated: from the venue acting to our receiving it")
    perp_order_latency_ms: NonNegFloat | None = Field(
        None, description="the perp's order latency, for a perp on another venue (VENUE=FILE); unset: order_latency_ms"
    )
    perp_report_latency_ms: NonNegFloat | None = Field(
        None, description="...and its report latency; unset: report_latency_ms"
    )
    spot_maker_fee: float | None = Field(
        None, ge=-0.01, le=0.01, description="fraction of notional (negative = rebate); unset: Binance VIP 0 (0.001)"
    )
    spot_taker_fee: float | None = Field(None, ge=0, le=0.01, description="unset: Binance VIP 0 (0.001)")
    perp_maker_fee: float | None = Field(None, ge=-0.01, le=0.01, description="unset: Binance USD-M VIP 0 (0.0002)")
    perp_taker_fee: float | None = Field(None, ge=0, le=0.01, description="unset: Binance USD-M VIP 0 (0.0005)")
    diff_book_warmup_s: NonNegFloat = Field(
        120.0,
        description="a recording with no REST snapshot (a continuation day): its book is built from its "
        "diffs alone once they have run this long without a gap (docs/replay.md)",
    )
    diff_book_depth_bps: PosFloat = Field(
        10.0, description="...and hold levels on both sides at least this far from the mid, bps"
    )


class HedgerConfig(Section):
    """Perp hedger (bot/core/hedger): keeps net delta (spot + perp + LP + options, base units) near target."""

    enabled: bool = Field(True, description="send perp hedges (off: net delta is only reported)")
    target_base: float = Field(0.0, allow_inf_nan=False, description="net delta to hedge back to, base units")
    band_base: NonNegFloat = Field(
        2.0, description="hedge when |net delta − target| exceeds this many base units (0 = off)"
    )
    band_notional_quote: NonNegFloat = Field(
        0.0, description="...or exceeds this notional at the perp mid, quote currency (0 = off); the tighter wins"
    )
    hedge_every_fill: bool = Field(True, description="hedge back to target after every spot fill, band or not")
    order_type: Literal["ioc", "market", "limit"] = Field(
        "ioc", description='"ioc" (aggressive limit, immediate-or-cancel), "market", or "limit" (aggressive, rests)'
    )
    aggressive_ticks: Annotated[int, Field(ge=0, le=10_000)] = Field(
        5, description="ioc/limit price: this many ticks through the opposite best"
    )
    aggressive_bps: Annotated[float, Field(ge=0.0, le=1000.0, allow_inf_nan=False)] = Field(
        0.0, description="...or this many bps of the opposite best through it, if that is wider (0 = ticks only)"
    )
    max_order_base: PosFloat | None = Field(None, description="cap on one hedge order, base units (none = no cap)")
    order_timeout_ms: Annotated[int, Field(ge=1)] = Field(
        2000, description="a hedge order not done after this long is cancelled (and dropped after twice this)"
    )
    retry_backoff_ms: Annotated[int, Field(ge=0)] = Field(250, description="first wait after a failed hedge")
    retry_backoff_max_ms: Annotated[int, Field(ge=0)] = Field(5000, description="cap on the doubling backoff")
    max_retries: Annotated[int, Field(ge=0, le=1000)] = Field(
        5,
        description="consecutive failed hedge attempts (rejects, unfilled IOCs; orders decided on one book"
        " count once) before the hedger halts",
    )
    halt_resume_s: PosFloat = Field(
        30.0, description="a halted hedger (and quoting, which stops with it) retries after this many seconds"
    )


class CallTrancheConfig(Section):
    """One tranche of call options on the token received in the deal."""

    strike_quote: PosFloat = Field(description="strike price, quote per token")
    quantity_base: PosFloat = Field(description="tokens the call is on")
    expiry_date: datetime.date | None = Field(
        None, description="expiry, ISO date (00:00 UTC); give this or expiry_days"
    )
    expiry_days: PosFloat | None = Field(None, description="...or days after the deal's start (deal.start_date)")

    @model_validator(mode="after")
    def _one_expiry(self) -> CallTrancheConfig:
        if (self.expiry_date is None) == (self.expiry_days is None):
            raise ValueError("give exactly one of expiry_date and expiry_days")
        return self


class VenueObligationConfig(Section):
    """A CEX market-making obligation: resting depth within ±depth_band_pct of mid, spread cap."""

    name: str
    bid_depth_quote: NonNegFloat = Field(description="bids within the band, quote currency")
    ask_depth_quote: NonNegFloat = Field(description="asks within the band, quote currency")
    depth_band_pct: PosFloat = Field(2.0, description="band around mid the depth is measured in, percent")
    max_spread_pct: PosFloat = Field(0.1, description="maximum quoted spread, percent of mid")

    def as_risk_obligation(self) -> RiskObligationConfig:
        """The risk guard's obligation for this venue: the spread cap in bps and one depth a side,
        the larger of the two (the guard checks one minimum on both sides)."""
        return RiskObligationConfig(
            max_spread_bps=self.max_spread_pct * 100.0,
            depth_band_pct=self.depth_band_pct,
            min_depth_quote=max(self.bid_depth_quote, self.ask_depth_quote),
        )


def _article_calls() -> tuple[CallTrancheConfig, ...]:
    return tuple(
        CallTrancheConfig(strike_quote=k, quantity_base=100_000.0, expiry_days=365.0) for k in (1.25, 1.5, 2.0)
    )


def _article_venues() -> tuple[VenueObligationConfig, ...]:
    return (
        VenueObligationConfig(name="main", bid_depth_quote=100_000.0, ask_depth_quote=100_000.0),
        VenueObligationConfig(name="second", bid_depth_quote=50_000.0, ask_depth_quote=50_000.0),
        VenueObligationConfig(name="third", bid_depth_quote=50_000.0, ask_depth_quote=50_000.0),
    )


class DealConfig(Section):
    """The token-loan + call-option deal (bot/core/deal). Defaults: the example of docs/hedging.md."""

    apply_to_portfolio: bool = Field(
        False, description="count the deal's calls and LP in the running bot's net delta (off: plan only)"
    )
    start_date: datetime.date | None = Field(
        None,
        description="the deal's start, ISO date (00:00 UTC); none: the first run's start, kept in the ledger",
    )
    loan_return_date: datetime.date | None = Field(
        None, description="when the lent tokens go back, ISO date (none: start + loan_term_days)"
    )
    loan_term_days: PosFloat = Field(365.0, description="loan term when loan_return_date is not given, days")
    token_price_quote: PosFloat = Field(1.0, description="token price the plan is made at, quote per token")
    tokens_lent_base: PosFloat = Field(3_000_000.0, description="tokens the project lends the market maker")
    calls: tuple[CallTrancheConfig, ...] = Field(default_factory=_article_calls)
    implied_vol_annual: PosFloat = Field(
        1.0, description="Black-Scholes σ of the calls, annualised relative (1.0 = 100 %/year)"
    )
    use_estimator_vol: bool = Field(
        False,
        description="live: price the calls with the long σ estimator (sigma_long_halflife_s, annualised) "
        "instead of implied_vol_annual; never the quoting σ",
    )
    venues: tuple[VenueObligationConfig, ...] = Field(default_factory=_article_venues)
    dex_pool_size_quote: NonNegFloat = Field(1_000_000.0, description="value of the DEX pool we provide")
    dex_token_fraction: Fraction = Field(
        0.5, description="share of the pool value held in the token: a constant-product pool is always 0.5"
    )
    dex_fee_rate: Fraction = Field(0.003, description="fraction of swap volume paid to the pool")
    dex_pool_share: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        1.0,
        description="our share of the simulated pool's liquidity (the pool holds dex_pool_size_quote / this); "
        "our delta, value and fees are this share of the pool's",
    )
    dex_pool_model: Literal["constant_product", "concentrated", "formula"] = Field(
        "constant_product",
        description='"constant_product": a simulated x·y = k pool with its own price (public trades as noise '
        'swaps, arbitrage to the spot mid); "concentrated": the same as a Uniswap v3 range position '
        '(dex_range_width); "formula": fees on volume, pool price = the mid',
    )
    dex_range_width: Annotated[float, Field(gt=1, allow_inf_nan=False)] | None = Field(
        None,
        description="concentrated pool: the range [P/w, P·w] around token_price_quote (centred, so 50/50 "
        "in value); required with dex_pool_model = concentrated",
    )
    dex_volume_ratio: NonNegFloat = Field(
        0.0, description="simulated DEX volume = this × the spot venue's public trade volume (quote)"
    )

    sale_twap_days: PosFloat = Field(10.0, description="the initial sale: TWAP over this many days")
    sale_max_participation: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        0.25, description="the sale sells at most this share of the token's daily volume a day"
    )
    sale_daily_volume_quote: PosFloat | None = Field(
        None, description="the token's daily volume for the participation cap, quote (none: no cap)"
    )
    sale_floor_pct: Annotated[float, Field(gt=0, lt=100, allow_inf_nan=False)] = Field(
        5.0, description="limit: no part of a day's slice sells more than this % below the reference price"
    )
    sale_fee_rate: Fraction = Field(0.001, description="taker fee on the sale, fraction of notional")
    sale_execute: bool = Field(
        True,
        description="the running bot sells the schedule itself (with apply_to_portfolio and a perp to hedge "
        "it): passive post-only sells on the main spot market, paced by the schedule, recorded in deal_events",
    )
    sale_child_base: PosFloat | None = Field(
        None, description="largest resting sale order, base units (none: quoter.order_size_base)"
    )

    @field_validator("dex_token_fraction")
    @classmethod
    def _constant_product_is_half(cls, value: float) -> float:
        # x·y = L² at price P = y/x holds x·P = y: equal value on both sides, whatever the deposit
        if value != 0.5:
            raise ValueError("a constant-product (x·y = L²) pool holds equal value of each asset: must be 0.5")
        return value

    @model_validator(mode="after")
    def _range_for_concentrated(self) -> DealConfig:
        if self.dex_pool_model == "concentrated" and self.dex_range_width is None:
            raise ValueError("dex_range_width: required with dex_pool_model = concentrated (the range [P/w, P·w])")
        return self

    @model_validator(mode="after")
    def _dates_in_order(self) -> DealConfig:
        start, loan_end = self.start_date, self.loan_return_date
        if start is not None and loan_end is not None and loan_end <= start:
            raise ValueError("loan_return_date must be after start_date")
        for i, call in enumerate(self.calls):
            if call.expiry_date is not None and self.start_date is not None and call.expiry_date <= self.start_date:
                raise ValueError(f"calls.{i}.expiry_date must be after start_date")
        return self


class RiskToxicityConfig(Section):
    """Toxic-flow protection (bot/core/toxicity): markouts of our fills and public order-flow imbalance."""

    markout_horizons_s: tuple[PosFloat, ...] = Field(
        (1.0, 5.0, 30.0), min_length=1, description="markout horizons of our fills, seconds"
    )
    signal_horizon_s: PosFloat = Field(1.0, description="the horizon whose markouts drive the toxicity signal")
    markout_window_s: PosFloat = Field(30.0, description="rolling window of resolved markouts per side, seconds")
    markout_min_fills: Annotated[int, Field(ge=1)] = Field(3, description="fills in the window before it counts")
    markout_enter_bps: NonNegFloat = Field(3.0, description="mean markout below −this (bps) turns a side toxic")
    markout_exit_bps: NonNegFloat = Field(1.0, description="... and it stays toxic while below −this (bps)")
    ofi_window_s: PosFloat = Field(5.0, description="rolling window of public trades for the imbalance, seconds")
    ofi_min_trades: Annotated[int, Field(ge=1)] = Field(5, description="trades in the window before it counts")
    ofi_enter: Fraction = Field(0.5, description="|imbalance| against a side above this turns it toxic")
    ofi_exit: Fraction = Field(0.2, description="... and it stays toxic while above this")
    widen_bps: NonNegFloat = Field(15.0, description="extra distance of a toxic side at full intensity, bps of mid")
    skew_bps: NonNegFloat = Field(0.0, description="shift of both quotes away from a toxic side, bps of mid")
    decay_halflife_s: PosFloat = Field(2.0, description="half-life of the response once a side clears, seconds")
    flow_halflife_s: PosFloat = Field(
        1.0, description="concentrated-flow score: half-life of its signed print weights, s"
    )
    flow_norm_halflife_s: PosFloat = Field(
        30.0, description="... and of the typical print size and weight it is normalised by, s (> flow_halflife_s)"
    )
    flow_size_power: NonNegFloat = Field(2.0, description="... a print weighs (size / typical size) ** this")
    flow_enter: Annotated[float, Field(ge=0)] = Field(
        0.5, description="score against a side above this turns it toxic (~1 = steady one-sided flow; inf: off)"
    )
    flow_exit: Annotated[float, Field(ge=0)] = Field(0.2, description="... and it stays toxic while above this")
    check_horizon_s: PosFloat = Field(
        5.0, description="self-check: the guard's calls are judged by the mid's move this long after them, s"
    )
    check_sample_s: PosFloat = Field(0.25, description="... one call sampled every this, s (<= check_horizon_s)")
    check_halflife_s: PosFloat = Field(
        120.0, description="... half-life of the regression's sums, s (> check_horizon_s)"
    )
    check_z: NonNegFloat = Field(1.0, description="... the move per call must clear this many standard errors")
    check_full_bps: NonNegFloat = Field(
        1.0, description="... move per unit of call beyond noise (bps) at which the response is whole (0: no check)"
    )
    predict_share: NonNegFloat = Field(
        1.0, description="both quotes move by this share of the self-check's predicted move (β × flow score); 0: off"
    )
    widen_net: bool = Field(
        True, description="a toxic side is widened by its intensity less the other side's (false: by its own)"
    )
    rest_behind_background: bool = Field(
        False,
        description="rest no nearer the mid than the book's best level without our own orders in it (bid and ask)",
    )
    inward_tolerance_ticks: Annotated[int, Field(ge=0)] | None = Field(
        None,
        description="a quote more than this many ticks nearer the mid than wanted is replaced (unset: price tolerance)",
    )
    impact_bps: NonNegFloat = Field(
        0.0,
        description="a print's expected impact: this × sqrt(size / impact_median_base), bps (0: no impact response)",
    )
    impact_median_base: PosFloat = Field(1.0, description="... the print size whose impact is impact_bps, base")
    impact_halflife_s: PosFloat = Field(
        0.3, description="... half-life of a print's owed impact (the book catches up), s"
    )
    impact_response: Literal["widen", "skew"] = Field(
        "widen", description="... widen the side the owed impact is against, or move both quotes by it (skew)"
    )
    check_source: Literal["mid", "fills"] = Field(
        "mid",
        description="self-check: the calls are judged by the mid's move (mid) or by our fills' markouts (fills)",
    )
    fill_check_halflife_s: PosFloat = Field(
        600.0, description="... fills: half-life of the fill regression's sums, s (> signal_horizon_s)"
    )
    fill_backoff_bps: NonNegFloat = Field(
        0.0, description="each of our fills pushes its side out by this, bps of mid, easing (0: off)"
    )
    fill_backoff_halflife_s: PosFloat = Field(0.5, description="... half-life of that back-off, s")
    burst_widen_bps: NonNegFloat = Field(
        0.0, description="both sides widen by this, bps of mid, while public prints arrive in a burst (0: off)"
    )

    @field_validator("signal_horizon_s")
    @classmethod
    def _signal_is_a_horizon(cls, value: float, info: Any) -> float:
        horizons = info.data.get("markout_horizons_s")
        if horizons is not None and value not in horizons:
            raise ValueError(f"must be one of markout_horizons_s {tuple(horizons)}")
        return value

    @field_validator("markout_exit_bps", "ofi_exit", "flow_exit")
    @classmethod
    def _exit_below_enter(cls, value: float, info: Any) -> float:
        enter = info.data.get(str(info.field_name).replace("_exit", "_enter"))
        if enter is not None and value > enter:
            raise ValueError("must not exceed the matching _enter threshold (hysteresis)")
        return value

    @field_validator("fill_check_halflife_s")
    @classmethod
    def _fill_check_outlasts_its_horizon(cls, value: float, info: Any) -> float:
        horizon = info.data.get("signal_horizon_s")
        if horizon is not None and not value > horizon:
            raise ValueError("must be > signal_horizon_s")
        return value

    @field_validator("check_halflife_s")
    @classmethod
    def _check_times_in_order(cls, value: float, info: Any) -> float:
        sample, horizon = info.data.get("check_sample_s"), info.data.get("check_horizon_s")
        if sample is not None and horizon is not None and not sample <= horizon < value:
            raise ValueError("need check_sample_s <= check_horizon_s < check_halflife_s")
        return value


class RiskObligationConfig(Section):
    """One venue's market-making obligations (DOMAIN.md §2)."""

    max_spread_bps: PosFloat = Field(10.0, description="largest quoted spread, bps of mid (0.1 % = 10)")
    depth_band_pct: Annotated[float, Field(gt=0, lt=100, allow_inf_nan=False)] = Field(
        2.0, description="depth counts within ±this % of mid"
    )
    min_depth_quote: NonNegFloat = Field(100_000.0, description="required depth per side within the band, quote")


class RiskConfig(Section):
    """Risk guard, toxic-flow protection and obligations (bot/core/risk). See docs/risk.md."""

    inventory_soft_base: NonNegFloat = Field(5.0, description="|inventory| past which the spread widens, base")
    inventory_hard_base: PosFloat = Field(10.0, description="|inventory| at which only the reducing side quotes")
    inventory_max_mult: Annotated[float, Field(ge=1, allow_inf_nan=False)] = Field(
        3.0, description="spread multiplier reached at the hard limit (quadratic from the soft limit)"
    )
    max_notional_quote: PosFloat = Field(
        50_000.0, description="|inventory|·mid past which only the reducing side quotes"
    )
    max_drawdown_quote: PosFloat = Field(500.0, description="drawdown from peak equity that pauses quoting, quote")
    pause_cooldown_s: NonNegFloat = Field(60.0, description="pause length after a drawdown breach, seconds")
    halt_window_s: NonNegFloat = Field(3600.0, description="a second breach within this many seconds halts")
    vol_ratio_threshold: PosFloat = Field(2.0, description="σ_short/σ_long above this widens the spread")
    vol_max_mult: Annotated[float, Field(ge=1, allow_inf_nan=False)] = Field(
        3.0, description="cap on the volatility spread multiplier"
    )
    reference_band_bps: PosFloat = Field(
        100.0, description="a bid above / ask below the reference price by more than this (bps) is refused"
    )
    order_rate_per_s: PosFloat = Field(10.0, description="order placements per second (token bucket rate)")
    order_burst: Annotated[float, Field(ge=1, allow_inf_nan=False)] = Field(20.0, description="token bucket size")
    toxicity: RiskToxicityConfig = RiskToxicityConfig()
    obligations: dict[str, RiskObligationConfig] = Field(
        default_factory=dict, description="per venue name (e.g. 'mock', 'bybit'); none = no obligations"
    )

    @field_validator("inventory_hard_base")
    @classmethod
    def _hard_above_soft(cls, value: float, info: Any) -> float:
        soft = info.data.get("inventory_soft_base")
        if soft is not None and value <= soft:
            raise ValueError("must be above inventory_soft_base")
        return value

    def to_params(
        self, *, stale_feed_ms: int, venue: str | None = None, obligation: RiskObligationConfig | None = None
    ) -> Any:
        """The core's `RiskParams` (typed `Any` to keep config free of core imports at module level).

        `stale_feed_ms` comes from `[runtime]`; `venue` names the obligation, which is `obligation`
        if given, else `venue`'s entry of [risk.obligations] (none if absent).
        """
        from bot.core.obligations import Obligation
        from bot.core.risk import RiskParams
        from bot.core.toxicity import ToxicityParams

        if obligation is None and venue is not None:
            obligation = self.obligations.get(venue)
        return RiskParams(
            **self.model_dump(exclude={"toxicity", "obligations"}),  # the rest mirror RiskParams field for field
            stale_feed_ms=stale_feed_ms,
            toxicity=ToxicityParams(**self.toxicity.model_dump()),
            obligation=Obligation(venue, **obligation.model_dump()) if obligation and venue else None,
        )


class Settings(BaseSettings):
    """The whole configuration. Sections are added by the modules that own them."""

    model_config = SettingsConfigDict(
        env_prefix="MMBOT__",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    runtime: RuntimeConfig = RuntimeConfig()
    market: MarketConfig = MarketConfig()
    quoter: QuoterConfig = QuoterConfig()
    estimator: EstimatorConfig = EstimatorConfig()
    ccxt: CcxtConfig = CcxtConfig()
    mock: MockExchangeConfig = MockExchangeConfig()
    replay: ReplayConfig = ReplayConfig()
    hedger: HedgerConfig = HedgerConfig()
    deal: DealConfig = DealConfig()
    risk: RiskConfig = RiskConfig()
    metrics: MetricsConfig = MetricsConfig()
    ledger: LedgerConfig = LedgerConfig()

    @model_validator(mode="after")
    def _obligations_known(self) -> Settings:
        for i, spot in enumerate(self.market.quote_on):
            if spot.obligation is not None and spot.obligation not in self.risk.obligations:
                raise ValueError(f"market.quote_on.{i}.obligation: {spot.obligation!r} is not in [risk.obligations]")
        return self

    def obligation_of(self, market: SpotMarketConfig) -> tuple[str, RiskObligationConfig] | None:
        """A quoted market's obligation and its name: `market.obligation` (a key of
        [risk.obligations]), else the venue's own [risk.obligations] entry, else its [[deal.venues]]
        entry (the deal's obligations, DOMAIN.md); None: the venue has no obligation."""
        name = market.obligation or market.venue
        if name in self.risk.obligations:
            return name, self.risk.obligations[name]
        deal = next((v for v in self.deal.venues if v.name == market.venue), None)
        return (market.venue, deal.as_risk_obligation()) if deal is not None else None

    @model_validator(mode="after")
    def _ccxt_venues_valid(self) -> Settings:
        """Each ccxt venue's effective [ccxt] settings pass [ccxt]'s own checks (loopback sandbox URL,
        the exchange's modes), reported against the venue."""
        for name, venue in self.market.venues.items():
            if isinstance(venue, CcxtVenueConfig) and name in self.market.session_venues():
                try:
                    self.ccxt_config_of(name)
                except ValidationError as exc:
                    error = exc.errors(include_url=False)[0]
                    field = ".".join(str(p) for p in error["loc"])
                    raise ValueError(
                        f"market.venues.{name}.{field}: {error['msg'].removeprefix('Value error, ')}"
                    ) from None
        return self

    def ccxt_config_of(self, name: str) -> CcxtConfig:
        """[ccxt] with venue `name`'s exchange, mode, sandbox URL, allocation, keys and symbols."""
        venue = self.market.venues[name]
        assert isinstance(venue, CcxtVenueConfig)
        market = self.market
        spot = next((m.symbol for m in market.quote_on if m.venue == name and m.symbol), None)
        own = {
            "exchange": venue.exchange,
            "mode": venue.mode,
            "sandbox_url_base": venue.sandbox_url_base,
            "spot_base_allocation": venue.spot_base_allocation,
            "spot_symbol": spot or market.spot_symbol,
            "perp_symbol": market.perp_symbol if name == market.hedge_venue else "",
            **{key: getattr(venue, key) for key in VENUE_SECRET_KEYS},
        }
        return CcxtConfig(**{**self.ccxt.model_dump(), **own})

    @property
    def multi_venue(self) -> bool:
        """True when the session quotes several venues: `market.quote_on` (runtime.venue "mock": its
        venues are in-process mocks, or mock servers and ccxt exchanges, `market.venues`). With
        runtime.venue a websocket mock or ccxt (one venue), the session quotes `market.spot_symbol` there."""
        return bool(self.market.quote_on) and self.runtime.venue == "mock"

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _sizes_within_limits(self) -> Settings:
        """Sizes bounded by the risk limits always, and by the instrument where the config defines it
        (the in-process mock); other venues' instruments are checked when they are known
        (`check_instrument_bounds`, from `bot.app.build_engine`)."""
        largest = largest_level_base(self.quoter)
        hard = self.risk.inventory_hard_base
        if largest > hard:
            raise ValueError(
                f"quoter.order_size_base: the largest quote level ({largest:g} base) is above "
                f"risk.inventory_hard_base ({hard:g}): one fill would pass the hard inventory limit"
            )
        if self.runtime.venue == "mock" and (not self.market.quote_on or self.market.in_process()):
            spot = self.mock.spot
            check_instrument_bounds(self, spot.lot_size, self.mock.initial_px, spot.min_notional_quote, ValueError)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file's values arrive as init kwargs; the environment overrides them.
        return (env_settings, file_secret_settings, init_settings)


class ConfigError(Exception):
    """A bad configuration, with one line that names the field and the reason."""


MAX_EXACT_LOTS = 2**53  # sizes are whole lots, and a float holds every integer up to here exactly


def largest_level_base(quoter: QuoterConfig) -> float:
    """The size of the quote ladder's largest level (level i is order_size_base * size_decay**i)."""
    return quoter.order_size_base * max(1.0, quoter.size_decay ** (quoter.levels - 1))


def check_instrument_bounds(
    settings: Settings,
    lot_size: float,
    reference_px: float | None = None,
    min_notional_quote: float = 0.0,
    error: type[Exception] = ConfigError,
) -> None:
    """Refuse sizes the instrument cannot carry, naming the field: a quote level smaller than one lot
    (it would round to nothing), any size past `MAX_EXACT_LOTS` lots, and, when a reference price is
    known, a quote level whose notional is below the venue's minimum (every order refused) or above
    `risk.max_notional_quote` (one fill past the notional limit)."""
    q, risk = settings.quoter, settings.risk
    prefix = "" if error is ValueError else "config error: "
    smallest = q.order_size_base * min(1.0, q.size_decay ** (q.levels - 1))
    largest = largest_level_base(q)
    if smallest < lot_size:
        raise error(
            f"{prefix}quoter.order_size_base: a quote level of {smallest:g} base is smaller than one lot "
            f"({lot_size:g}): it would round to nothing"
        )
    sizes = [("quoter.order_size_base", largest), ("risk.inventory_hard_base", risk.inventory_hard_base)]
    if settings.hedger.max_order_base is not None:
        sizes.append(("hedger.max_order_base", settings.hedger.max_order_base))
    for name, size in sizes:
        if size / lot_size > MAX_EXACT_LOTS:
            raise error(f"{prefix}{name}: {size:g} base is more than 2^53 lots of {lot_size:g}")
    if reference_px is None:
        return
    notional = largest * reference_px
    if notional > risk.max_notional_quote:
        raise error(
            f"{prefix}quoter.order_size_base: the largest quote level is worth {notional:,.0f} quote at "
            f"{reference_px:g}, above risk.max_notional_quote ({risk.max_notional_quote:,.0f})"
        )
    if smallest * reference_px < min_notional_quote:
        raise error(
            f"{prefix}quoter.order_size_base: a quote level of {smallest:g} base is worth "
            f"{smallest * reference_px:g} quote at {reference_px:g}, below the venue's minimum order "
            f"value ({min_notional_quote:g})"
        )


SECRET_FIELDS = {("ccxt", "api_key"), ("ccxt", "api_secret"), ("ccxt", "api_password")}


def load_settings(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load `path` (default: the embedded default config) plus environment overrides.

    `overrides` are nested section dicts applied over the file (used by CLI flags and tests).
    `environ` is checked for `MMBOT__...` names that match no setting (default: `os.environ`, which
    is also what pydantic-settings reads). Raises ConfigError with a one-line message on any problem.
    """
    file_path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    data = _read_toml(file_path)
    for section, key in SECRET_FIELDS:
        if isinstance(data.get(section), dict) and key in data[section]:
            raise ConfigError(
                f"config error: {section}.{key}: secrets are read only from the environment "
                f"(MMBOT__{section.upper()}__{key.upper()}), never from a config file"
            )
    venues = data.get("market", {}).get("venues", {}) if isinstance(data.get("market"), dict) else {}
    for name, venue in venues.items() if isinstance(venues, dict) else ():
        for key in VENUE_SECRET_KEYS if isinstance(venue, dict) else ():
            if key in venue:
                raise ConfigError(
                    f"config error: market.venues.{name}.{key}: secrets are read only from the environment "
                    f"(MMBOT__MARKET__VENUES__{str(name).upper()}__{key.upper()}), never from a config file"
                )
    check_environment(os.environ if environ is None else environ)
    for section, values in (overrides or {}).items():
        merged = dict(data.get(section, {}))
        merged.update(values)
        data[section] = merged
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    except SettingsError as exc:  # an environment value pydantic-settings cannot parse (check_environment missed it)
        raise ConfigError(f"config error: environment: {exc}") from None


def _read_toml(file_path: Path) -> dict[str, Any]:
    """The file's TOML as a dict; every way it can fail is one ConfigError line naming the file."""
    try:
        with file_path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {file_path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config error: {file_path}: is a directory, not a TOML config file") from None
    except OSError as exc:  # permission denied, an I/O error
        raise ConfigError(f"config error: {file_path}: cannot read: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8 (tomllib decodes before it parses)
        raise ConfigError(f"config error: {file_path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file_path}: not valid TOML: {exc}") from None


ENV_PREFIX = "MMBOT__"


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse `MMBOT__...` variables that name no setting, and values of list/table settings that are
    not JSON, with one line naming the variable and never its value.

    pydantic-settings reads only the variables of sections it knows, so a misspelt section
    (`MMBOT__QOUTER__GAMMA_PER_QUOTE`) would otherwise be ignored without a word, while a misspelt key
    in a known section is refused: both are refused here, the same way."""
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        field = _env_field(parts)
        if isinstance(field, str):
            raise ConfigError(f"config error: {field}: unknown key (environment variable {name})")
        if field is not None and _is_complex(field.annotation):
            try:
                json.loads(environ[name])
            except ValueError:
                raise ConfigError(
                    f"config error: {'.'.join(parts)}: environment variable {name} must hold JSON (a list or table)"
                ) from None


def _env_field(parts: list[str]) -> FieldInfo | str | None:
    """The setting `parts` names: its FieldInfo; None when it lies inside a free-form table or below
    a leaf (the model validates those); or, when a part names nothing, the dotted path up to it."""
    model: type[BaseModel] | None = Settings
    field: FieldInfo | None = None
    for i, part in enumerate(parts):
        if model is None:
            return None
        if part not in model.model_fields:
            return ".".join(parts[: i + 1]) if part else ".".join([*parts[:i], "(empty)"])
        field = model.model_fields[part]
        model = _section_model(field.annotation)
    return field


def _section_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _is_complex(annotation: Any) -> bool:
    """Does pydantic-settings read this field's environment value as JSON? (a section, list, tuple,
    set or dict, alone or in a union)"""
    if _section_model(annotation) is not None:
        return True
    origin = get_origin(annotation)
    if origin in (list, tuple, dict, set, frozenset):
        return True
    if origin in (Union, UnionType):
        return any(_is_complex(arg) for arg in get_args(annotation) if arg is not type(None))
    return False


_URL_USERINFO = re.compile(r"//[^/@\s]*@")


def format_validation_error(exc: ValidationError) -> str:
    """One line: the first failing field, the reason, and how many more errors there are.

    The value given is shown only for a known field whose name does not look secret: never for an
    unknown key (a misspelt `api_secrett` holds a secret as surely as `api_secret`)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    reason = first["msg"].removeprefix("Value error, ")  # pydantic's prefix for our validators' messages
    unknown = first["type"] == "extra_forbidden"
    if unknown:
        reason = "unknown key"
    given = first.get("input")
    shown = "" if isinstance(given, dict | list) or first["type"] == "missing" else f" (got {given!r})"
    shown = _URL_USERINFO.sub("//***@", shown)  # ws://user:pass@host: never the credentials
    if unknown or any(looks_secret(str(part)) for part in first["loc"]):
        shown = ""  # never echo what may be a secret
    more = f" [+{len(errors) - 1} more]" if len(errors) > 1 else ""
    if not where:  # a check across sections: its message starts with the field it names
        return f"config error: {reason}{more}"
    return f"config error: {where}: {reason}{shown}{more}"


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective config as plain data, secrets shown as '**********' (or null when unset)."""
    return settings.model_dump(mode="json")
