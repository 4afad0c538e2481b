"""A sorted window of (key, weight) pairs, kept in blocks: what the arrival estimator's fit reads.

The estimator keeps its 300 s window of trades sorted by depth, each with its fill weight. One plain
sorted list per column (as before) moves the whole tail on every insert and every expiry: ~4,500 trades
in the window, four memmoves of ~36 KB per trade, ~10 % of a replay. `SortedPairs` holds the same
sequence cut into blocks of 256-512 pairs, so an insert or a removal moves at most one block.

The blocks' concatenation is exactly the pair of lists the plain version keeps: `insert` puts a pair
where `bisect.insort_right` would (after every equal key), `remove` takes the first pair at or after
`bisect_left(key)` with that weight, and every sum runs over the pairs in that order with the same
floating-point additions, so the fit's values are the same bit for bit (tests/unit/test_sorted_pairs.py
checks the sequences against plain lists, tests/unit/test_native.py the sums against their references).
The sums run in C when the optional extension is built (`bot/_native.c`: `suffix_sums`, `float_sum`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate, chain

try:  # the sums in C, when the optional extension was built (setup.py); same values
    from bot._native import float_sum as _native_float_sum
    from bot._native import suffix_sums as _native_suffix_sums
except ImportError:  # pragma: no cover - no C compiler at install: the Python references below
    _native_float_sum = None  # type: ignore[assignment]
    _native_suffix_sums = None  # type: ignore[assignment]


class SortedPairs:
    """(key, weight) pairs in ascending key order, equal keys in insertion order."""

    __slots__ = ("_block", "_keys", "_len", "_maxes", "_weights")

    def __init__(self, block: int = 256) -> None:
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block!r}")
        self._block = block  # a block that grows past twice this is split in two
        self._keys: list[list[float]] = []  # the blocks, none empty
        self._weights: list[list[float]] = []  # each key's weight, block for block
        self._maxes: list[float] = []  # each block's last (largest) key
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def insert(self, key: float, weight: float) -> None:
        """Add a pair after every pair whose key is <= `key` (where `bisect.insort_right` puts it)."""
        maxes = self._maxes
        self._len += 1
        if not maxes:
            self._keys.append([key])
            self._weights.append([weight])
            maxes.append(key)
            return
        b = bisect_right(maxes, key)  # the first block with a larger key; earlier blocks hold keys <= key
        if b == len(maxes):
            b -= 1  # no larger key anywhere: the end of the last block
        keys = self._keys[b]
        i = bisect_right(keys, key)
        keys.insert(i, key)
        self._weights[b].insert(i, weight)
        maxes[b] = keys[-1]
        half = self._block
        if len(keys) > 2 * half:
            self._keys[b : b + 1] = [keys[:half], keys[half:]]
            weights = self._weights[b]
            self._weights[b : b + 1] = [weights[:half], weights[half:]]
            maxes[b : b + 1] = [keys[half - 1], keys[-1]]

    def remove(self, key: float, weight: float) -> None:
        """Remove the first pair at or after `bisect_left(key)` whose weight is `weight` (it must be there)."""
        b = bisect_left(self._maxes, key)  # the first block with a key >= key; earlier ones are all smaller
        i = bisect_left(self._keys[b], key)
        while self._weights[b][i] != weight:  # equal keys: find the pair with this weight
            i += 1
            if i == len(self._weights[b]):
                b += 1
                i = 0
        keys = self._keys[b]
        del keys[i]
        del self._weights[b][i]
        self._len -= 1
        if keys:
            self._maxes[b] = keys[-1]
        else:
            del self._keys[b]
            del self._weights[b]
            del self._maxes[b]

    def keys(self) -> list[float]:
        """Every key, in order (one flat list: for tests and the Python reference sums)."""
        return list(chain.from_iterable(self._keys))

    def weights(self) -> list[float]:
        """Every weight, in key order."""
        return list(chain.from_iterable(self._weights))

    def key_at(self, index: int) -> float:
        """The key at position `index` (0 <= index < len) of the sorted sequence."""
        for keys in self._keys:
            if index < len(keys):
                return keys[index]
            index -= len(keys)
        raise IndexError("SortedPairs index out of range")

    def bisect_key_left(self, key: float) -> int:
        """`bisect.bisect_left` of `key` in the sorted keys."""
        b = bisect_left(self._maxes, key)
        before = 0
        for keys in self._keys[:b]:
            before += len(keys)
        if b == len(self._keys):
            return before
        return before + bisect_left(self._keys[b], key)

    def key_sum(self, lo: int, hi: int) -> float:
        """`sum(keys[lo:hi])`, the keys added in order (C `float_sum` when it can give the same value)."""
        if _native_float_sum is not None:
            total = _native_float_sum(self._keys, lo, hi)
            if total is not None:
                return total
        return sum(self.keys()[lo:hi])

    def weight_suffix_sums(self, starts: list[int]) -> list[float]:
        """`Σ weights[i:]` for each i in `starts` (non-decreasing), each summed from the last weight
        backwards (C `suffix_sums` when it can; `suffix_sums_py` is the reference)."""
        if _native_suffix_sums is not None:
            sums = _native_suffix_sums(self._weights, starts)
            if sums is not None:
                return sums
        return suffix_sums_py(self.weights(), starts)


def suffix_sums_py(weights: list[float], starts: list[int]) -> list[float]:
    """`Σ weights[i:]` for each i in `starts`, summed as `accumulate(reversed(weights))` sums: from the
    last weight backwards, one addition at a time (the reference for the C `suffix_sums`)."""
    suffix = list(accumulate(reversed(weights)))  # suffix[n − 1 − i] = Σ weights[i:]
    n = len(weights)
    return [suffix[n - 1 - i] for i in starts]
