"""Each risk guard fires on the mock exchange in the scenario that should trigger it, and says why.

Every scenario runs the real engine (`bot.app.build_engine`) against the seeded in-process mock
exchange on simulated time (`bot.sim.driver`), with one setting pushed so its guard must act, and
checks the `risk.*` note (rule and reason) and the guard's effect on the orders actually sent.
"""

from __future__ import annotations

from typing import Any

from bot.app import build_engine
from bot.config import load_settings
from bot.domain import Command, Event, PlaceOrder
from bot.sim.driver import SimResult, run_simulation
from bot.venues.mock.exchange import MockExchange

NS_PER_S = 1_000_000_000
START_NS = 1_700_000_000 * NS_PER_S


class Run:
    def __init__(self, result: SimResult, notes: list[tuple[int, str, dict[str, Any]]], places: list[int]) -> None:
        self.result = result
        self.notes = notes  # (time, name, fields)
        self.places = places  # times of quote PlaceOrders

    def fired(self, name: str, rule: str | None = None) -> list[tuple[int, dict[str, Any]]]:
        return [(t, f) for t, n, f in self.notes if n == name and (rule is None or f.get("rule") == rule)]


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def simulate(seconds: float, **sections: dict[str, Any]) -> Run:
    default = load_settings().model_dump(mode="json")
    settings = load_settings(None, {name: deep_merge(default[name], values) for name, values in sections.items()})
    exchange = MockExchange(settings.mock, start_ns=START_NS)
    spot = exchange.instruments[settings.market.spot_symbol]
    perp = exchange.instruments[settings.market.perp_symbol]
    engine = build_engine(settings, spot, perp, START_NS, venue_name="mock")
    notes: list[tuple[int, str, dict[str, Any]]] = []
    places: list[int] = []
    now = [START_NS]

    def on_step(t: int, _events: list[Event], commands: list[Command]) -> None:
        now[0] = t
        places.extend(t for c in commands if isinstance(c, PlaceOrder) and c.tag == "quote")

    result = run_simulation(
        exchange,
        engine,
        start_ns=START_NS,
        duration_ns=int(seconds * NS_PER_S),
        on_step=on_step,
        on_note=lambda name, fields: notes.append((now[0], name, fields)),
    )
    return Run(result, notes, places)


def test_inventory_hard_limit_quotes_only_the_reducing_side() -> None:
    run = simulate(300, risk={"inventory_soft_base": 1.0, "inventory_hard_base": 2.0})
    disabled = run.fired("risk.side_disabled", "inventory_hard")
    assert disabled, "inventory never reached the hard limit"
    assert "inventory_hard" in disabled[0][1]["reason"]
    assert run.fired("risk.widened", "inventory_soft")  # the soft limit widened first
    # the exposure cap keeps position + resting orders within the limit: never past it by an order
    assert run.result.summary["max_abs_inventory"] <= 2.0 + 1.0


def test_drawdown_pauses_then_a_second_breach_halts_and_the_process_keeps_running() -> None:
    run = simulate(600, risk={"max_drawdown_quote": 0.5, "pause_cooldown_s": 20.0, "halt_window_s": 3600.0})
    paused = run.fired("risk.paused", "drawdown")
    halted = run.fired("risk.halted", "drawdown")
    assert paused and halted and paused[0][0] < halted[0][0]
    assert paused[0][1]["drawdown_quote"] >= 0.5
    assert run.fired("risk.resumed", "drawdown")  # the pause ended after its cooldown
    halt_ns = halted[0][0]
    assert not [t for t in run.places if t > halt_ns]  # halted: nothing placed again
    assert run.result.end_ns >= START_NS + 600 * NS_PER_S  # ... while the session ran to its end
    assert run.result.summary["open_orders_at_exit"] == 0


def test_frozen_feed_pulls_quotes_until_it_is_fresh() -> None:
    faults = {"stale_per_hour": 60.0, "stale_ms": 8000}
    run = simulate(600, runtime={"stale_feed_ms": 3000}, mock={"faults": faults})
    stale = run.fired("feed.stale")
    fresh = run.fired("feed.fresh")
    assert stale and fresh
    for (t_stale, _), (t_fresh, _) in zip(stale, fresh, strict=False):
        assert t_stale < t_fresh
        assert not [t for t in run.places if t_stale < t < t_fresh]  # no quote placed on a stale book


def test_volatility_spike_widens() -> None:
    mock = {"jumps_per_hour": 120.0, "jump_sigma_bps": 300.0}
    run = simulate(600, mock=mock, risk={"vol_ratio_threshold": 1.5})
    widened = run.fired("risk.widened", "volatility_spike")
    assert widened and widened[0][1]["vol_ratio"] > 1.5
    assert widened[0][1]["spread_mult"] > 1.0


def test_quote_outside_the_reference_band_is_refused() -> None:
    # a band narrower than the quoted half-spread: the model's quotes sit outside it, so the guard
    # must refuse them; the mock's perp mark is the reference
    run = simulate(120, risk={"reference_band_bps": 0.5})
    refused = run.fired("risk.side_disabled", "reference_band_bid") + run.fired(
        "risk.side_disabled", "reference_band_ask"
    )
    assert refused
    fields = refused[0][1]
    assert fields["band_bps"] == 0.5 and fields["reference_px"] > 0


def test_order_rate_limit_holds_new_orders_back() -> None:
    loose = simulate(120)
    tight = simulate(120, risk={"order_rate_per_s": 0.2, "order_burst": 2.0})
    assert tight.fired("risk.rate_limited", "order_rate")
    assert len(tight.places) <= 2 + 0.2 * 120 + 1  # the token bucket's budget over the run
    assert len(tight.places) < len(loose.places)


def test_toxic_flow_widens_the_side_being_picked_off() -> None:
    informed = {"informed_share": 0.6}
    run = simulate(600, mock={"spot": informed})
    toxic = run.fired("risk.toxic")
    assert toxic
    assert toxic[0][1]["rule"] in ("toxic_bid", "toxic_ask")
    assert toxic[0][1]["intensity"] > 0.0
