"""Where does adverse selection come from on a hawkes mock market (issue #16, docs/risk.md round four)?

A diagnostic, not part of the bot: `.venv/bin/python scripts/toxicity_sources.py MINUTES on|off SEED...`
runs `bot.sim.toxicity.run_once` (the toxicity experiment's scenario on config/default.toml) with the
mock exchange subclassed to tag each of our spot maker fills by what hit it: `informed` (a hawkes
informed taker), `flow` (a metaorder piece / noise taker), or `ladder` (no taker at all: the background
ladder refilling or relocating to a moved fair value crossed our resting quote). Each fill's 5 s
fair-value markout is split into edge at the fill + the fair value's diffusion part (GBM + jumps) + its
impact part (what flow pushed). `flow/big` = taker size >= 2 base. One JSON line per seed.
The hawkes branch of `_on_hawkes_taker` is copied (with a tag): if bot/venues/mock/exchange.py changes
it, this copy must follow (the script asserts one tag per fill)."""
import math, sys, json
from collections import defaultdict
import bot.sim.toxicity as T
from bot.config import load_settings
from bot.domain import Side
from bot.venues.mock.exchange import MockExchange

class Tagged(MockExchange):
    kind = "ladder"
    def _on_hawkes_taker(self, market):
        rng = self._rng_flow; cfg = market.cfg; inst = market.instrument
        self._schedule_taker(market, self._now_ns)
        if rng.random() < cfg.informed_share:
            now_px = self.fair_value_px(inst.symbol); future_px = self._future_px(market)
            if future_px == now_px: return
            side = Side.BUY if future_px > now_px else Side.SELL
            limit = inst.ticks_ceil(future_px) - 1 if side is Side.BUY else inst.ticks_floor(future_px) + 1
            kind = "informed"
        else:
            side = Side.BUY if market.signs.next_sign() > 0 else Side.SELL
            best = market.book.side(side.opposite).best()
            if best is None: return
            limit = best + cfg.taker_reach_ticks if side is Side.BUY else best - cfg.taker_reach_ticks
            kind = "flow"
        lots = max(1, round(market.sizes.sample(rng) / inst.lot_size))
        executions, _ = market.book.side(side.opposite).take(limit, lots)
        if executions:
            self.kind = kind; self.taker_base = inst.size(lots)
            self._on_executions(market, side, executions, None)
            self._push_impact(market, side, executions)
            self.kind = "ladder"
    def _fill(self, market, order, price, lots, liquidity):
        if market is self._spot:
            self.tags.append((self._now_ns, self.kind, getattr(self, "taker_base", 0.0)))
        super()._fill(market, order, price, lots, liquidity)

EX = []
def make(*a, **k):
    ex = Tagged(*a, **k); ex.tags = []; ex.tape = []; EX.append(ex); return ex
T.MockExchange = make
orig = T._Recorder.on_step
def on_step(self, now_ns, events, cmds):
    orig(self, now_ns, events, cmds)
    ex = EX[-1]; ex.tape.append((now_ns, ex._fv.now_px, ex._impact.log_offset if ex._impact else 0.0))
T._Recorder.on_step = on_step
captured = []
orig_hs = T.horizon_stats
def hs(fills, tape, h, end):
    if h == 5.0: captured.append(list(fills))
    return orig_hs(fills, tape, h, end)
T.horizon_stats = hs

import bisect
def analyse(seed, minutes, guard_on):
    EX.clear(); captured.clear()
    rep = T.run_once(load_settings(None), seed, guard_on, minutes*60)
    ex = EX[-1]; fills = captured[-1]
    times = [t for t,_,_ in ex.tape]
    def at(t):
        i = bisect.bisect_right(times, t) - 1; return ex.tape[i]
    assert len(ex.tags) == len(fills), (len(ex.tags), len(fills))
    end = times[-1]
    agg = defaultdict(lambda: defaultdict(float))
    for f, (ts, kind, tb) in zip(fills, ex.tags):
        if f.ts_ns + 5*T.NS_PER_S > end: continue
        _, fv0, io0 = at(f.ts_ns); _, fv5, io5 = at(f.ts_ns + 5*T.NS_PER_S)
        fair0 = fv0*math.exp(io0); fair5 = fv5*math.exp(io5)
        s, q, p = f.side_sign, f.size_base, f.price_px
        edge = (fair0 - p)*s*q
        diff = fair0*(fv5/fv0 - 1)*s*q
        imp = (fair5 - fair0)*s*q - diff
        m = (fair5 - p)*s*q
        szb = "big" if tb >= 2.0 else "small"
        for key in (kind, f"{kind}/{szb}", "all"):
            a = agg[key]; a["n"] += 1; a["notional"] += p*q; a["edge"] += edge; a["diffusion"] += diff
            a["impact"] += imp; a["loss"] += max(0.0, -m); a["markout"] += m
    return rep, {k: {kk: round(vv, 3) for kk, vv in v.items()} for k, v in sorted(agg.items())}

if __name__ == "__main__":
    minutes = float(sys.argv[1]); on = sys.argv[2] == "on"
    for seed in map(int, sys.argv[3:]):
        rep, agg = analyse(seed, minutes, on)
        print(json.dumps({"seed": seed, "guard_on": on, "loss": rep.adverse_selection_loss, "agg": agg}))

def callers(seed, minutes):
    import traceback, collections
    c = collections.Counter()
    o = Tagged._fill
    def f(self, market, order, price, lots, liquidity):
        if market is self._spot and self.kind == "ladder":
            st = traceback.extract_stack(limit=6)
            c[(liquidity.name, " < ".join(fr.name for fr in st[-5:-1]))] += 1
        o(self, market, order, price, lots, liquidity)
    Tagged._fill = f
    analyse(seed, minutes, False)
    Tagged._fill = o
    return c
