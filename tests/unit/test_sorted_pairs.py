"""SortedPairs (bot/core/sorted_pairs.py) against the two plain sorted lists it replaces: after any
sequence of inserts and removals the same pairs in the same order, and the same answers from every
query the arrival fit makes (the sums bit for bit, with and without the C kernels)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import sorted_pairs
from bot.core.sorted_pairs import SortedPairs, suffix_sums_py


class PlainPairs:
    """The arrival estimator's window as it was: two flat lists, insort_right and the weight scan."""

    def __init__(self) -> None:
        self.keys: list[float] = []
        self.weights: list[float] = []

    def insert(self, key: float, weight: float) -> None:
        i = bisect_right(self.keys, key)
        self.keys.insert(i, key)
        self.weights.insert(i, weight)

    def remove(self, key: float, weight: float) -> None:
        i = bisect_left(self.keys, key)
        while self.weights[i] != weight:
            i += 1
        del self.keys[i]
        del self.weights[i]


def hexes(values: list[float]) -> list[str]:
    return [v.hex() for v in values]


# few distinct keys and weights: equal keys with different weights, the case the weight scan is for
keys_st = st.sampled_from([0.0, 0.005, 0.01, 0.02, 0.5, 1.0, 3.25]) | st.floats(0.0, 10.0)
weights_st = st.sampled_from([1.0, 0.5, 0.25, 0.1]) | st.floats(1e-6, 1.0)
ops_st = st.lists(st.tuples(st.booleans(), keys_st, weights_st, st.integers(0, 10**6)), max_size=400)


@settings(max_examples=150, deadline=None)
@given(ops_st, st.integers(1, 6))
def test_the_same_pairs_in_the_same_order_as_plain_lists(ops: list[tuple[bool, float, float, int]], block: int) -> None:
    window, plain = SortedPairs(block), PlainPairs()
    live: list[tuple[float, float]] = []  # inserted, not yet removed (in insertion order, like the trade deque)
    for remove, key, weight, pick in ops:
        if remove and live:
            k, w = live.pop(pick % len(live))
            window.remove(k, w)
            plain.remove(k, w)
        else:
            window.insert(key, weight)
            plain.insert(key, weight)
            live.append((key, weight))
        assert len(window) == len(plain.keys)
    assert hexes(window.keys()) == hexes(plain.keys)
    assert hexes(window.weights()) == hexes(plain.weights)
    assert all(block_keys and len(block_keys) <= 2 * block for block_keys in window._keys)


def filled(block: int, pairs: list[tuple[float, float]]) -> tuple[SortedPairs, PlainPairs]:
    window, plain = SortedPairs(block), PlainPairs()
    for key, weight in pairs:
        window.insert(key, weight)
        plain.insert(key, weight)
    return window, plain


pairs_st = st.lists(st.tuples(keys_st, weights_st), min_size=1, max_size=300)


@pytest.mark.parametrize("kernels", [True, False])
@settings(max_examples=100, deadline=None)
@given(pairs=pairs_st, block=st.integers(1, 6), data=st.data())
def test_the_fits_queries_answer_as_on_plain_lists(
    pairs: list[tuple[float, float]], block: int, data: st.DataObject, kernels: bool
) -> None:
    window, plain = filled(block, pairs)
    n = len(plain.keys)
    with pytest.MonkeyPatch.context() as patch:
        if not kernels:
            patch.setattr(sorted_pairs, "_native_suffix_sums", None)
            patch.setattr(sorted_pairs, "_native_float_sum", None)
        for index in data.draw(st.lists(st.integers(0, n - 1), max_size=5)):
            assert window.key_at(index) == plain.keys[index]
        for probe in [*data.draw(st.lists(keys_st, max_size=5)), -1.0, 11.0]:
            assert window.bisect_key_left(probe) == bisect_left(plain.keys, probe)
        lo = data.draw(st.integers(0, n - 1))
        hi = data.draw(st.integers(lo + 1, n))
        assert window.key_sum(lo, hi).hex() == float(sum(plain.keys[lo:hi])).hex()
        starts = sorted(data.draw(st.lists(st.integers(0, n - 1), max_size=10)))
        assert hexes(window.weight_suffix_sums(starts)) == hexes(suffix_sums_py(plain.weights, starts))


def test_key_at_past_the_end_raises() -> None:
    window, _ = filled(2, [(1.0, 1.0), (2.0, 1.0), (3.0, 1.0)])
    assert window.key_at(2) == 3.0
    with pytest.raises(IndexError):
        window.key_at(3)


def test_a_block_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="block"):
        SortedPairs(0)
