"""Market statistics on small synthetic tapes whose answers are computed by hand, and the estimators
against samples with a known law."""

import math
from pathlib import Path

import numpy as np
import pytest

from bot.domain import BookDelta, BookSnapshot, Instrument, InstrumentKind, Side, TradePrint
from bot.market_stats import (
    autocorrelation,
    collect_events,
    collect_tape,
    fano_factor,
    hill_tail_index,
    market_stats,
    passive_probe,
)

DATA = Path(__file__).parents[1] / "data" / "binance"
INST = Instrument("X/USDT", InstrumentKind.SPOT, "X", "USDT", tick_size=1.0, lot_size=1.0)
S = 1_000_000_000
MS = 1_000_000


def _trade(t_ns: int, px: int, lots: int, side: Side, venue_ms: int | None = None, n: int = 0) -> tuple:
    venue = (t_ns // MS if venue_ms is None else venue_ms) * MS
    return t_ns, TradePrint("X/USDT", px, lots, side, str(n), venue, t_ns)


def _book(t_ns: int, bid: int, ask: int, seq: int, bid_lots: int = 5, ask_lots: int = 5) -> tuple:
    bids = ((bid, bid_lots), (bid - 1, 10))
    return t_ns, BookSnapshot("X/USDT", seq, bids, ((ask, ask_lots), (ask + 1, 10)), t_ns, t_ns)


def test_hill_estimator_recovers_a_pareto_tail_index() -> None:
    rng = np.random.default_rng(7)
    for alpha in (1.0, 1.5, 3.0):
        sample = (1.0 - rng.random(200_000)) ** (-1.0 / alpha)  # P(X > x) = x^-alpha, x >= 1
        assert hill_tail_index(sample) == pytest.approx(alpha, rel=0.05)
    # exponential sizes have no power-law tail: the estimate is far larger than real markets' 1-1.3
    assert hill_tail_index(rng.exponential(1.0, 200_000)) > 3.0


def test_autocorrelation_of_known_sequences() -> None:
    alternating = [1, -1] * 500
    acf = autocorrelation(alternating, [1, 2])
    assert acf[1] == pytest.approx(-1.0, abs=0.01)
    assert acf[2] == pytest.approx(1.0, abs=0.01)
    # AR(1) with coefficient 0.6: acf(lag) = 0.6**lag
    rng = np.random.default_rng(3)
    x = np.zeros(200_000)
    for i in range(1, len(x)):
        x[i] = 0.6 * x[i - 1] + rng.normal()
    acf = autocorrelation(x, [1, 3])
    assert acf[1] == pytest.approx(0.6, abs=0.01)
    assert acf[3] == pytest.approx(0.216, abs=0.01)


def test_fano_factor_regular_poisson_and_bursty() -> None:
    regular = [i * S // 4 for i in range(400)]  # exactly 4 a second
    assert fano_factor(regular, 1.0, 0, 100 * S) == pytest.approx(0.0)
    rng = np.random.default_rng(5)
    poisson = np.cumsum(rng.exponential(0.1, 100_000) * S).astype(np.int64)
    assert fano_factor(list(poisson), 1.0, 0, int(poisson[-1])) == pytest.approx(1.0, abs=0.05)
    # all 10 events of every 10 s in one second: counts 10,0,...,0 -> mean 1, variance 9
    bursts = [k * 10 * S + i * MS for k in range(50) for i in range(10)]
    assert fano_factor(bursts, 1.0, 0, 500 * S) == pytest.approx(9.0)


def _tiny_tape() -> list[tuple]:
    """A 1-tick book at 100/101 for 10 s; a buy sweeping two levels at 2 s; sells at the bid at 3 s
    and 4 s; at 4.5 s the book moves down one tick (99/100)."""
    return [
        _book(0, 100, 101, 1),
        _trade(2 * S, 101, 5, Side.BUY, n=1),  # one taker order printing at two prices: a sweep
        _trade(2 * S + 10, 102, 2, Side.BUY, n=2),
        _trade(3 * S, 100, 3, Side.SELL, n=3),
        _trade(4 * S, 100, 3, Side.SELL, n=4),
        (4 * S + S // 2, BookDelta("X/USDT", 2, 2, ((100, 0), (99, 6)), ((100, 4), (101, 0)), 4 * S + S // 2, 0)),
        _trade(10 * S, 99, 1, Side.BUY, n=5),
    ]


def test_tape_groups_trades_into_taker_orders_and_samples_the_book() -> None:
    tape = collect_events(_tiny_tape(), INST)
    assert tape.order_sign == [1, -1, -1, 1]
    assert tape.order_size_base == [7.0, 3.0, 3.0, 1.0]
    assert tape.order_levels == [2, 1, 1, 1]
    assert set(tape.grid_spread_ticks) == {1}
    assert tape.grid_mid_px[0] == 100.5 and tape.grid_mid_px[-1] == 99.5
    stats = market_stats(tape, probe_every_s=1.0, probe_timeout_s=3.0)
    assert stats.spread_1tick_share == 1.0
    assert stats.sweep_share == 0.25
    assert stats.orders == 4
    # impact: the buy at 2 s and the sells at 3 s / 4 s; at 1 s later the mid moved only after the 4 s sell
    # (4 s + 1 s = 5 s > 4.5 s: mid 100.5 -> 99.5, a sell's favourable move of 1 / 100.5 = 99.5 bps)
    assert stats.impact_1s_bps == pytest.approx((0 + 0 + 1 / 100.5 * 10_000) / 3)


def test_passive_probe_waits_for_its_queue_and_marks_out_against_the_later_mid() -> None:
    tape = collect_events(_tiny_tape(), INST)
    # the grid runs 0.1 .. 10.0 s; probes one a second from 0.1 s with a 3 s timeout: 0.1 .. 6.1 s (7; a
    # later one would outlive the tape). Each joins behind the 5 lots at the bid (100).
    # 0.1 s: only the sell of 3 at 3 s before its timeout (3.1 s): 5 - 3 >= 0, not filled.
    # 1.1 s and 2.1 s: sells of 3 (3 s) and 3 (4 s): 5 - 6 < 0, filled at 4 s.
    # 3.1 s: one sell of 3 at 4 s, then the bid moves to 99: not filled; 4.1 .. 6.1 s: no sells.
    probe = passive_probe(tape, every_s=1.0, timeout_s=3.0)
    assert probe.fill_share == pytest.approx(2 / 7)
    assert probe.fill_median_s == pytest.approx(2.4)  # 2.9 s and 1.9 s
    # filled at 100 at 4 s; one second later the mid is 99.5: -0.5 / 100 = -50 bps
    assert probe.markout_1s_bps == pytest.approx(-50.0)
    assert probe.markout_5s_bps == pytest.approx(-50.0)


def test_depth_within_bps_of_the_mid() -> None:
    snap = BookSnapshot(
        "X/USDT", 1, ((10_000, 5), (9_995, 10), (9_980, 7)), ((10_001, 5), (10_010, 10), (10_060, 8)), 0, 0
    )
    tape = collect_events([(0, snap), _trade(2 * S, 10_001, 1, Side.BUY)], INST)
    # mid 10,000.5; 10 bps = 10.0005 -> 10 ticks: bids >= 9,990.5 (5 + 10), asks <= 10,010.5 (5 + 10)
    assert tape.depth10_base[0] == 30.0
    # 50 bps -> 50 ticks: bids >= 9,950.5 (+7), asks <= 10,050.5 (10,060 is out)
    assert tape.depth50_base[0] == 37.0


def test_bundled_recording_statistics() -> None:
    """The real BTCUSDT spot tape (not tuned on: these are the values the issue measured elsewhere)."""
    stats = market_stats(collect_tape(DATA / "spot_btcusdt_20240808.gz"))
    assert stats.spread_1tick_share > 0.95
    assert stats.fano_1s > 5
    assert stats.gap_under_10ms_share > 0.3
    assert 0.8 < stats.size_tail_index < 1.5
    assert stats.size_p99_over_p50 > 100
    assert 0.3 < stats.sign_acf[1] < 0.6
    assert stats.ret_acf_100ms > 0.1
    assert stats.impact_1s_bps > 0.3
    assert stats.probe_markout_1s_bps < 0
    assert not math.isnan(stats.depth50_median_base) and stats.depth50_median_base > stats.depth10_median_base


def test_mid_moves_count_changes_per_second_and_their_median_size() -> None:
    from bot.market_stats import Tape, mid_moves

    tape = Tape("X/USDT", 1.0, 1.0, 100)
    tape.grid_t_ns = [i * 100 * MS for i in range(11)]  # 10 steps of 100 ms: 1 s
    tape.grid_mid_px = [100.0, 100.0, 101.0, 101.0, 101.0, 100.0, 100.0, 100.0, 100.0, 102.0, 102.0]
    per_s, median_bps = mid_moves(tape)
    assert per_s == pytest.approx(3.0)  # three changes in 1 s
    # |changes|: 1 / 100, 1 / 101, 2 / 100 -> 100, 99.0099, 200 bps; the median is 100 bps
    assert median_bps == pytest.approx(100.0)
