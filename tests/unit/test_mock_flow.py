"""The hawkes flow model's parts against known laws, and the mock running on it."""

import math
import random

import numpy as np
import pytest

from bot.config import MockExchangeConfig, MockMarketConfig
from bot.domain import Side
from bot.market_stats import autocorrelation, collect_events, hill_tail_index, market_stats
from bot.venues.mock.flow import TAIL_QUANTILE, HawkesClock, Impact, SignProcess, SizeLaw
from bot.venues.mock.record import START_NS, market_events, recording_exchange


def _arrivals(clock: HawkesClock, seconds: float) -> np.ndarray:
    t, out = 0.0, []
    while (t := t + clock.next_wait_s()) < seconds:
        out.append(t)
    return np.asarray(out)


def _fano(times: np.ndarray, seconds: float, bin_s: float) -> float:
    counts = np.bincount((times // bin_s).astype(int), minlength=int(seconds / bin_s))[: int(seconds / bin_s)]
    return float(counts.var() / counts.mean())


def test_hawkes_mean_rate_and_fano_factor_match_the_closed_forms() -> None:
    mu, n, beta, seconds = 2.0, 0.7, 10.0, 20_000.0
    times = _arrivals(HawkesClock(random.Random(1), mu, n, beta), seconds)
    assert len(times) / seconds == pytest.approx(mu / (1 - n), rel=0.05)
    # Var N(T) / E N(T) for the exponential kernel, with gamma = beta (1 - n) (e.g. Bacry et al. 2015,
    # "Hawkes processes in finance", Market Microstructure and Liquidity 1, eq. for the variance of counts)
    gamma, big_t = beta * (1 - n), 1.0
    expected = (1 - (1 - (1 - n) ** 2) * (1 - math.exp(-gamma * big_t)) / (gamma * big_t)) / (1 - n) ** 2
    assert _fano(times, seconds, big_t) == pytest.approx(expected, rel=0.1)
    # n = 0 is a Poisson process
    poisson = _arrivals(HawkesClock(random.Random(2), mu, 0.0, beta), seconds)
    assert _fano(poisson, seconds, 1.0) == pytest.approx(1.0, abs=0.05)


def test_size_law_median_tail_start_tail_index_and_cap() -> None:
    law = SizeLaw(median_base=0.5, log_sigma=1.2, tail_alpha=1.3, max_base=1e9)
    assert law.quantile(0.5) == pytest.approx(0.5)
    assert law.quantile(TAIL_QUANTILE) == pytest.approx(law.tail_start_base)
    assert law.quantile(TAIL_QUANTILE - 1e-9) == pytest.approx(law.tail_start_base)  # continuous at the splice
    rng = random.Random(3)
    sizes = np.asarray([law.sample(rng) for _ in range(200_000)])
    assert np.median(sizes) == pytest.approx(0.5, rel=0.02)
    assert hill_tail_index(sizes, top_share=0.02) == pytest.approx(1.3, rel=0.08)  # inside the Pareto tail
    capped = SizeLaw(0.5, 1.2, 1.3, max_base=3.0)
    assert max(capped.sample(rng) for _ in range(10_000)) == 3.0


def test_metaorder_signs_have_long_memory_and_noise_has_none() -> None:
    rng = random.Random(4)
    noise = SignProcess(rng, meta_share=0.0, len_alpha=1.5, len_min=1.0)
    acf = autocorrelation([noise.next_sign() for _ in range(100_000)], [1, 10])
    assert abs(acf[1]) < 0.02 and abs(acf[10]) < 0.02
    meta = SignProcess(rng, meta_share=1.0, len_alpha=1.5, len_min=2.0)
    acf = autocorrelation([meta.next_sign() for _ in range(200_000)], [1, 10, 100])
    assert acf[1] > 0.6
    assert acf[1] > acf[10] > acf[100] > 0.05
    assert acf[100] > 1e6 * acf[1] ** 100  # a power-law decay: an exponential one would be ~1e-10 by now
    half = SignProcess(rng, meta_share=0.5, len_alpha=1.5, len_min=2.0)
    acf_half = autocorrelation([half.next_sign() for _ in range(200_000)], [1])
    assert acf_half[1] == pytest.approx(acf[1] * 0.25, abs=0.05)  # noise dilutes it by the share squared


def test_impact_arrives_then_its_transient_part_halves_each_half_life() -> None:
    impact = Impact(step_s=0.1, arrival_s=0.0, decay_s=1.0, permanent_share=0.25)
    impact.push(+1, impact_bps=10.0, size_over_median=4.0)  # 10 bps * sqrt(4) = 20 bps
    assert impact.log_offset == 0.0  # nothing before the next step
    impact.step()
    assert impact.log_offset == pytest.approx(0.002)
    for _ in range(10):  # one half-life
        impact.step()
    assert impact.log_offset == pytest.approx(0.0005 + 0.0015 / 2)
    gradual = Impact(step_s=0.1, arrival_s=0.3, decay_s=1e9, permanent_share=1.0)
    gradual.push(-1, 10.0, 1.0)
    gradual.step()
    assert gradual.log_offset == pytest.approx(-0.001 * (1 - math.exp(-0.1 / 0.3)))


def _hawkes_config(**market: object) -> MockExchangeConfig:
    base = {"symbol": "TOKEN/USDT", "hawkes_base_per_s": 3.0, "hawkes_branching": 0.6, "bg_spread_ticks": 1}
    base.update(market)
    spot = MockMarketConfig(**base)
    perp = MockMarketConfig(**{**base, "symbol": "TOKEN/USDT:USDT"})
    return MockExchangeConfig(flow_model="hawkes", spot=spot, perp=perp)


def _spot_stats(config: MockExchangeConfig, seconds: float, seed: int = 1):
    exchange = recording_exchange(config, seed)
    spot = exchange.instruments["TOKEN/USDT"]
    events = ((e.ts_recv_ns, e) for e in market_events(exchange, START_NS + int(seconds * 1e9)))
    return collect_events(events, spot)


def test_hawkes_mock_is_deterministic_never_crossed_and_its_spread_follows_liquidity() -> None:
    liquid = _spot_stats(_hawkes_config(), 120)
    assert liquid.order_sign == _spot_stats(_hawkes_config(), 120).order_sign  # same seed, same flow
    assert min(liquid.grid_spread_ticks) >= 1  # the published book never crosses
    thin = _spot_stats(_hawkes_config(bg_occupancy=0.3, bg_refill_s=5.0), 120)
    assert min(thin.grid_spread_ticks) >= 1
    liquid_stats, thin_stats = market_stats(liquid), market_stats(thin)
    assert liquid_stats.spread_1tick_share > 0.8
    assert thin_stats.spread_median_ticks >= 3
    assert liquid_stats.fano_1s > 2  # bursts, where the classic model's Poisson takers give ~1


def test_with_a_requote_band_the_mid_is_sticky_and_moves_in_jumps() -> None:
    # 1 bps at 100 = 1 tick either side of the quotes' centre; 5 bps = 5 ticks
    follow = market_stats(_spot_stats(_hawkes_config(), 120))
    sticky = market_stats(_spot_stats(_hawkes_config(bg_requote_bps=5.0), 120))
    steps_per_s = 10  # the 100 ms grid
    assert follow.mid_moves_per_s > 0.5 * steps_per_s  # the book follows the diffusing value nearly every step
    assert sticky.mid_moves_per_s < 0.5 * follow.mid_moves_per_s
    assert sticky.mid_move_median_bps > 2 * follow.mid_move_median_bps
    assert sticky.mid_move_median_bps >= 4.0  # a band of 5 bps: the value leaves it by about that much


def test_a_taker_that_eats_the_best_queue_moves_the_book_in_its_direction() -> None:
    config = _hawkes_config(bg_requote_bps=5.0, hawkes_base_per_s=0.0, bg_churn_per_s=0.0)
    exchange = recording_exchange(config, 1)
    (bid, _), (ask, ask_lots) = exchange.top("TOKEN/USDT")
    fair = exchange.fair_value_px("TOKEN/USDT")
    exchange.simulate_taker("TOKEN/USDT", Side.BUY, ask_lots - 1, limit_ticks=ask)  # one lot left: no move
    assert exchange.top("TOKEN/USDT")[1] == (ask, 1)
    exchange.simulate_taker("TOKEN/USDT", Side.BUY, 1, limit_ticks=ask)  # the queue is gone
    (new_bid, _), (new_ask, _) = exchange.top("TOKEN/USDT")
    assert exchange.fair_value_px("TOKEN/USDT") == pytest.approx(fair * math.exp(5e-4))
    assert new_ask > ask and new_bid > bid  # both sides requoted upwards: the eaten price is not refilled
    assert new_ask - new_bid == 1
    # the makers requoted around the stepped value: its tick is within the (1-tick) book
    assert new_bid <= exchange.fair_value_px("TOKEN/USDT") / 0.01 <= new_ask


def test_a_negative_permanent_share_reverses_the_impact() -> None:
    # push x, then: permanent -0.5 x, transient 1.5 x halving each second: x at once, 0.25 x at 1 s,
    # zero at log2(3) = 1.58 s, -0.5 x + 1.5 x / 32 at 5 s
    impact = Impact(step_s=0.1, arrival_s=0.0, decay_s=1.0, permanent_share=-0.5)
    impact.push(+1, impact_bps=10.0, size_over_median=1.0)
    impact.step()
    assert impact.log_offset == pytest.approx(0.001)
    for _ in range(10):
        impact.step()
    assert impact.log_offset == pytest.approx(0.001 * 0.25)
    for _ in range(40):
        impact.step()
    assert impact.log_offset == pytest.approx(0.001 * (-0.5 + 1.5 / 32))


def _still_config(**market: object) -> MockExchangeConfig:
    """No takers, no churn, a fair value that does not diffuse and (almost) no impact: only what the
    test does moves the book."""
    base = {"symbol": "TOKEN/USDT", "hawkes_base_per_s": 0.0, "bg_spread_ticks": 1, "bg_churn_per_s": 0.0}
    base.update({"bg_requote_bps": 5.0, "impact_bps": 1e-9, **market})
    spot = MockMarketConfig(**base)
    perp = MockMarketConfig(**{**base, "symbol": "TOKEN/USDT:USDT"})
    return MockExchangeConfig(flow_model="hawkes", spot=spot, perp=perp, sigma_px_per_sqrt_s=0.0, jumps_per_hour=0.0)


def _eat_best_ask(exchange) -> None:
    _, (ask, lots) = exchange.top("TOKEN/USDT")
    exchange.simulate_taker("TOKEN/USDT", Side.BUY, lots, limit_ticks=ask)


def test_a_depletion_that_is_not_news_steps_back_two_steps_later() -> None:
    for share, reverts in ((1.0, True), (0.0, False)):
        exchange = recording_exchange(_still_config(bg_bounce_share=share), 1)
        fair, top = exchange.fair_value_px("TOKEN/USDT"), exchange.top("TOKEN/USDT")
        _eat_best_ask(exchange)
        stepped = exchange.fair_value_px("TOKEN/USDT")
        assert stepped == pytest.approx(fair * math.exp(5e-4))
        step_ns = 100_000_000  # the default step_ms
        exchange.advance(exchange.now_ns + step_ns)  # one step: still stepped
        assert exchange.fair_value_px("TOKEN/USDT") == pytest.approx(stepped)
        exchange.advance(exchange.now_ns + step_ns)  # the second: back, and the makers re-post the old prices
        if reverts:
            assert exchange.fair_value_px("TOKEN/USDT") == pytest.approx(fair)
            assert exchange.top("TOKEN/USDT")[0][0] == top[0][0] and exchange.top("TOKEN/USDT")[1][0] == top[1][0]
        else:
            assert exchange.fair_value_px("TOKEN/USDT") == pytest.approx(stepped)


def test_a_market_whose_depletions_are_not_news_leaves_the_shared_value_alone() -> None:
    """A calibrated config's perp copies the recorded market's flow: its depleted queues must not step
    the fair value the spot shares (they made most of the spot's moves on a quiet recording)."""
    for news in (True, False):
        config = _still_config()
        config = config.model_copy(update={"perp": config.perp.model_copy(update={"bg_depletion_news": news})})
        exchange = recording_exchange(config, 1)
        fair, perp_top = exchange.fair_value_px("TOKEN/USDT"), exchange.top("TOKEN/USDT:USDT")
        _, (ask, lots) = perp_top
        exchange.simulate_taker("TOKEN/USDT:USDT", Side.BUY, lots, limit_ticks=ask)  # the perp's best ask, whole
        if news:
            assert exchange.fair_value_px("TOKEN/USDT") == pytest.approx(fair * math.exp(5e-4))
            assert exchange.top("TOKEN/USDT:USDT")[1][0] > ask  # the perp's book requoted up
        else:
            assert exchange.fair_value_px("TOKEN/USDT") == pytest.approx(fair)
            assert exchange.top("TOKEN/USDT:USDT")[1][0] == ask + 1  # eaten, not requoted: the next level
    # the spot's own depletions are news either way
    config = _still_config()
    config = config.model_copy(update={"perp": config.perp.model_copy(update={"bg_depletion_news": False})})
    exchange = recording_exchange(config, 1)
    fair = exchange.fair_value_px("TOKEN/USDT")
    _eat_best_ask(exchange)
    assert exchange.fair_value_px("TOKEN/USDT") == pytest.approx(fair * math.exp(5e-4))


def test_depletion_steps_follow_the_size_law() -> None:
    exchange = recording_exchange(_still_config(bg_step_log_sigma=1.0), 1)
    logs = []
    for _ in range(200):
        before = exchange.fair_value_px("TOKEN/USDT")
        _eat_best_ask(exchange)
        logs.append(math.log(math.log(exchange.fair_value_px("TOKEN/USDT") / before) / 5e-4))
    assert abs(float(np.median(logs))) < 0.2  # the band is the median step
    assert 0.8 < float(np.std(logs)) < 1.2  # lognormal with log-sigma 1
    exact = recording_exchange(_still_config(), 1)  # 0: the band exactly (and no draw from the flow RNG)
    before = exact.fair_value_px("TOKEN/USDT")
    _eat_best_ask(exact)
    assert exact.fair_value_px("TOKEN/USDT") == pytest.approx(before * math.exp(5e-4))
