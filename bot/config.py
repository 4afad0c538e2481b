"""Settings: one frozen pydantic-settings model loaded from a TOML file plus environment overrides.

Precedence (highest first): environment variables `MMBOT__SECTION__KEY`, then the TOML file, then
the defaults below. Secrets (`SecretStr`) are accepted only from the environment: a TOML file that
contains one is refused, so a key can never be committed with a config.

Every parameter carries its unit in its name (`_s`, `_ms`, `_bps`, `_base`, `_quote`, `_px`) or in
its description. `docs/config.md` is the reference generated from these models.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "default.toml"

PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuntimeConfig(Section):
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


class MarketConfig(Section):
    spot_symbol: str = "TOKEN/USDT"
    perp_symbol: str = "TOKEN/USDT:USDT"


class QuoterConfig(Section):
    model: Literal["glft", "as"] = Field("glft", description="GLFT infinite horizon or A-S finite horizon")
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


class VenueCredentials(Section):
    """Only from the environment: MMBOT__CCXT__API_KEY and friends."""


class CcxtConfig(Section):
    exchange: Literal["bybit", "binance", "okx"] = "bybit"
    mode: Literal["paper", "testnet", "demo"] = Field(
        "paper",
        description='"paper": public data from mainnet, simulated fills (no keys); '
        '"testnet"/"demo": real orders on the exchange\'s sandbox (keys required)',
    )
    spot_symbol: str = "BTC/USDT"
    perp_symbol: str = "BTC/USDT:USDT"
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    api_password: SecretStr | None = None


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


class MockExchangeConfig(Section):
    """The mock exchange (bot/venues/mock)."""


class ReplayConfig(Section):
    """Replay of recorded Binance streams and simulated execution (bot/venues/replay, bot/venues/paper)."""


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
    max_order_base: PosFloat | None = Field(None, description="cap on one hedge order, base units (none = no cap)")
    order_timeout_ms: Annotated[int, Field(ge=1)] = Field(
        2000, description="a hedge order not done after this long is cancelled (and dropped after twice this)"
    )
    retry_backoff_ms: Annotated[int, Field(ge=0)] = Field(250, description="first wait after a failed hedge")
    retry_backoff_max_ms: Annotated[int, Field(ge=0)] = Field(5000, description="cap on the doubling backoff")
    max_retries: Annotated[int, Field(ge=0, le=1000)] = Field(
        5, description="consecutive failed hedges (rejects, unfilled IOCs) before the hedger halts"
    )


class CallTrancheConfig(Section):
    """One tranche of call options on the token received in the deal."""

    strike_quote: PosFloat = Field(description="strike price, quote per token")
    quantity_base: PosFloat = Field(description="tokens the call is on")
    expiry_days: PosFloat = Field(description="days from the deal start to expiry")


class VenueObligationConfig(Section):
    """A CEX market-making obligation: resting depth within ±depth_band_pct of mid, spread cap."""

    name: str
    bid_depth_quote: NonNegFloat = Field(description="bids within the band, quote currency")
    ask_depth_quote: NonNegFloat = Field(description="asks within the band, quote currency")
    depth_band_pct: PosFloat = Field(2.0, description="band around mid the depth is measured in, percent")
    max_spread_pct: PosFloat = Field(0.1, description="maximum quoted spread, percent of mid")


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
    token_price_quote: PosFloat = Field(1.0, description="token price the plan is made at, quote per token")
    tokens_lent_base: PosFloat = Field(3_000_000.0, description="tokens the project lends the market maker")
    calls: tuple[CallTrancheConfig, ...] = Field(default_factory=_article_calls)
    implied_vol_annual: PosFloat = Field(
        1.0, description="Black-Scholes σ of the calls, annualised relative (1.0 = 100 %/year)"
    )
    use_estimator_vol: bool = Field(
        False, description="live: price the calls with the σ estimator (converted) instead of implied_vol_annual"
    )
    venues: tuple[VenueObligationConfig, ...] = Field(default_factory=_article_venues)
    dex_pool_size_quote: NonNegFloat = Field(1_000_000.0, description="value of the DEX pool we provide")
    dex_token_fraction: Fraction = Field(0.5, description="share of the pool value held in the token")
    dex_fee_rate: Fraction = Field(0.003, description="fraction of swap volume paid to the pool")
    dex_volume_ratio: NonNegFloat = Field(
        0.0, description="simulated DEX volume = this × the spot venue's public trade volume (quote)"
    )


class RiskConfig(Section):
    """Risk guard, toxic-flow protection and obligations (bot/core/risk)."""


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

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

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


SECRET_FIELDS = {("ccxt", "api_key"), ("ccxt", "api_secret"), ("ccxt", "api_password")}


def load_settings(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Load `path` (default: the embedded default config) plus environment overrides.

    `overrides` are nested section dicts applied over the file (used by CLI flags and tests).
    Raises ConfigError with a one-line message on any problem.
    """
    file_path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        with file_path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {file_path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file_path}: not valid TOML: {exc}") from None
    for section, key in SECRET_FIELDS:
        if isinstance(data.get(section), dict) and key in data[section]:
            raise ConfigError(
                f"{section}.{key}: secrets are read only from the environment "
                f"(MMBOT__{section.upper()}__{key.upper()}), never from a config file"
            )
    for section, values in (overrides or {}).items():
        merged = dict(data.get(section, {}))
        merged.update(values)
        data[section] = merged
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    """One line: the first failing field, the reason, and how many more errors there are."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "config"
    reason = first["msg"]
    if first["type"] == "extra_forbidden":
        reason = "unknown key"
    given = first.get("input")
    shown = "" if isinstance(given, dict | list) or first["type"] == "missing" else f" (got {given!r})"
    if any(part in {"api_key", "api_secret", "api_password"} for part in map(str, first["loc"])):
        shown = ""  # never echo a secret back
    more = f" [+{len(errors) - 1} more]" if len(errors) > 1 else ""
    return f"config error: {where}: {reason}{shown}{more}"


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective config as plain data, secrets shown as '**********' (or null when unset)."""
    return settings.model_dump(mode="json")
