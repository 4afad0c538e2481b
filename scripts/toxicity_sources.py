"""Where does adverse selection come from on a hawkes mock market (issue #16, docs/research/toxicity-guard.md round
four)?

A diagnostic, not part of the bot: `.venv/bin/python scripts/toxicity_sources.py MINUTES on|off SEED...`
runs `bot.sim.toxicity.run_once` (the toxicity experiment's scenario on config/default.toml) with the
mock exchange subclassed to tag each of our spot maker fills by what hit it: `informed` (a hawkes
informed taker), `flow` (a metaorder piece / noise taker), or `ladder` (no taker at all: the background
ladder refilling or relocating to a moved fair value crossed our resting quote). Each fill's 5 s
fair-value markout is split into edge at the fill + the fair value's diffusion part (GBM + jumps) + its
impact part (what flow pushed). `flow/big` = taker size >= 2 base. One JSON line per seed.

The tags come from the exchange's own taker (`MockExchange._on_hawkes_taker`), observed, not copied:
only its informed branch asks for `_future_px`, and its size is the size law's sample. The experiment's
module is patched for the run (its exchange, recorder and 5 s horizon), so this stays outside the bot.
"""

import bisect
import json
import math
import sys
from collections import defaultdict
from typing import Any

import bot.sim.toxicity as T
from bot.config import load_settings
from bot.venues.mock.exchange import MockExchange

BIG_TAKER_BASE = 2.0
HORIZON_S = 5.0


class _RememberedSizes:
    """The market's size law, remembering its last sample (the taker's wanted size)."""

    def __init__(self, law: Any) -> None:
        self.law, self.last = law, 0.0

    def sample(self, rng: Any) -> float:
        self.last = self.law.sample(rng)
        return self.last


class TaggedExchange(MockExchange):
    """The mock exchange, tagging each spot maker fill with what hit it; and its fair-value tape."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = "ladder"
        self.sizes: _RememberedSizes | None = None  # set during a hawkes arrival only
        self.tags: list[tuple[str, float]] = []
        self.tape: list[tuple[int, float, float]] = []

    def _on_hawkes_taker(self, market: Any) -> None:
        law = market.sizes
        self.kind, self.sizes = "flow", _RememberedSizes(law)
        market.sizes = self.sizes
        try:
            super()._on_hawkes_taker(market)
        finally:
            market.sizes, self.kind, self.sizes = law, "ladder", None

    def _future_px(self, market: Any) -> float:
        if self.sizes is not None:  # asked inside a hawkes arrival: only the informed branch asks
            self.kind = "informed"
        return super()._future_px(market)

    def _fill(self, market: Any, order: Any, price: Any, lots: Any, liquidity: Any) -> None:
        if market is self._spot:
            taker_base = 0.0
            if self.sizes is not None:  # as the taker rounds its sample to whole lots
                inst = market.instrument
                taker_base = inst.size(max(1, round(self.sizes.last / inst.lot_size)))
            self.tags.append((self.kind, taker_base))
        super()._fill(market, order, price, lots, liquidity)


def _patch_experiment(exchanges: list[TaggedExchange], captured: list[list[Any]]) -> None:
    """Run the experiment on TaggedExchange, record its fair-value tape, keep the fills it marks at 5 s."""

    def make(*args: Any, **kwargs: Any) -> TaggedExchange:
        exchanges.append(TaggedExchange(*args, **kwargs))
        return exchanges[-1]

    on_step, horizon_stats = T._Recorder.on_step, T.horizon_stats

    def recording_step(self: Any, now_ns: int, events: Any, cmds: Any) -> None:
        on_step(self, now_ns, events, cmds)
        ex = exchanges[-1]
        ex.tape.append((now_ns, ex._fv.now_px, ex._impact.log_offset if ex._impact else 0.0))

    def capturing_stats(fills: Any, tape: Any, h: float, end: Any) -> Any:
        if h == HORIZON_S:
            captured.append(list(fills))
        return horizon_stats(fills, tape, h, end)

    # a diagnostic's patch of the experiment module for this process's run, untyped on purpose
    T.MockExchange, T._Recorder.on_step, T.horizon_stats = make, recording_step, capturing_stats  # type: ignore


def analyse(
    seed: int, minutes: float, guard_on: bool, exchanges: list[TaggedExchange], captured: list[list[Any]]
) -> tuple[Any, dict[str, dict[str, float]]]:
    """One run: the experiment's report and, per tag (and tag/size class), the split 5 s markout."""
    exchanges.clear()
    captured.clear()
    rep = T.run_once(load_settings(None), seed, guard_on, minutes * 60)
    ex, fills = exchanges[-1], captured[-1]
    assert len(ex.tags) == len(fills), (len(ex.tags), len(fills))  # one tag per fill
    times = [t for t, _, _ in ex.tape]

    def at(t: int) -> tuple[int, float, float]:
        return ex.tape[bisect.bisect_right(times, t) - 1]

    end = times[-1]
    horizon_ns = int(HORIZON_S * T.NS_PER_S)
    agg: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for f, (kind, taker_base) in zip(fills, ex.tags, strict=True):
        if f.ts_ns + horizon_ns > end:
            continue
        _, fv0, io0 = at(f.ts_ns)
        _, fv5, io5 = at(f.ts_ns + horizon_ns)
        fair0, fair5 = fv0 * math.exp(io0), fv5 * math.exp(io5)
        s, q, p = f.side_sign, f.size_base, f.price_px
        diffusion = fair0 * (fv5 / fv0 - 1) * s * q
        markout = (fair5 - p) * s * q
        size_class = "big" if taker_base >= BIG_TAKER_BASE else "small"
        for key in (kind, f"{kind}/{size_class}", "all"):
            a = agg[key]
            a["n"] += 1
            a["notional"] += p * q
            a["edge"] += (fair0 - p) * s * q
            a["diffusion"] += diffusion
            a["impact"] += (fair5 - fair0) * s * q - diffusion
            a["loss"] += max(0.0, -markout)
            a["markout"] += markout
    return rep, {k: {kk: round(vv, 3) for kk, vv in v.items()} for k, v in sorted(agg.items())}


def main(argv: list[str]) -> None:
    minutes, guard_on = float(argv[0]), argv[1] == "on"
    exchanges: list[TaggedExchange] = []
    captured: list[list[Any]] = []
    _patch_experiment(exchanges, captured)
    for seed in map(int, argv[2:]):
        rep, agg = analyse(seed, minutes, guard_on, exchanges, captured)
        print(json.dumps({"seed": seed, "guard_on": guard_on, "loss": rep.adverse_selection_loss, "agg": agg}))


if __name__ == "__main__":
    main(sys.argv[1:])
