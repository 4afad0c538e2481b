"""Which of our fills carry the adverse selection, and what could the bot have seen before each?

A diagnostic, not part of the bot (issue #16, docs/research/toxicity-guard.md round seven):
`.venv/bin/python scripts/toxicity_fills.py MINUTES on|off OUT.jsonl SEED...` runs the toxicity
experiment's scenario (`bot.sim.toxicity.run_once` on config/default.toml) and writes one JSON line per
spot maker fill of ours: what hit it (`ladder` / `flow` / `informed`, as scripts/toxicity_sources.py
tags it), its 5 s fair-value markout and notional, and the bot-visible signals *as of the end of the
engine step before the fill* (what the resting quote was set on): the monitor's flow score and OFI, a
square-root impact owed (1 bps at 0.5 base, 0.3 s half-life, from the public prints), the print rate
over 1 s against its 30 s mean (bursts), the book mid's move over the last 0.3 s / 1 s / 3 s, the book's
spread, our quote's distance from the book mid, σ short. "Against" a fill's side means the way that
hurts it (our bid is hurt by sellers / a falling price). Analyse the lines with
`scripts/toxicity_fills.py --report OUT.jsonl`; `--decompose OUT.jsonl` prints the signed decomposition
(round eight): per unit of notional, the edge at the fill, the fair value's move over the 5 s after it,
their sum (the markout) and the loss Σ max(0, −markout), by what hit the fill; the loss by the time since
our previous fill on the same side; and per seed the loss the same fills would have had with their mean
markout moved to 0 and to +2 bps (the spread of the outcomes kept): the floor of a response that only
removes the adverse drift. `--dispersion OUT.jsonl` (round nine) asks whether the outcome's SPREAD is
predictable: per unsigned signal (the mid's realized vol, print-rate and traded-size bursts, the time since a
large move, the background's spread, ...; `DISPERSION_KEYS`) deciles cut on half the seeds and read on the
other half, with each decile's |markout|, mean markout, loss, sd and loss at a zero mean, and what removing
the top decile / quintile of fills would cut; each row also splits the 5 s move into the fair value's
diffusion and the prints' impact.
"""

import bisect
import json
import math
import sys
from collections import defaultdict, deque
from typing import Any

import bot.sim.toxicity as T
from bot.config import load_settings
from bot.core.toxicity import DecayedSum, ImpactOwed
from bot.domain import TradePrint

sys.path.insert(0, "scripts")
from toxicity_sources import TaggedExchange

HORIZON_S = 5.0
# the unsigned signals of the outcome's spread (round nine): realized vol of the book mid over 0.5 / 1 /
# 2 s, its 1 s share against the 30 s average, print rate 0.5 s / 30 s, traded size 1 s / 30 s, seconds
# since the mid last moved >= 3 / 6 bps in one step, the background's spread
DISPERSION_KEYS = ("rv05", "rv1", "rv2", "rv1_ratio", "burst05", "vburst", "since_jump3_s", "since_jump6_s",
                   "bg_spread_ticks")  # fmt: skip
NS = T.NS_PER_S


class Probe:
    """Bot-visible state, refreshed at the end of every engine step (after its requote)."""

    def __init__(self) -> None:
        self.engine: Any = None
        self.impact = ImpactOwed(1.0, 0.5, 0.3)
        self.rate_1s = DecayedSum(1.0)
        self.rate_30s = DecayedSum(30.0)
        self.signed_1s = DecayedSum(1.0)
        # dispersion signals (round nine): print rate over 0.5 s, traded size over 1 s / 30 s, the
        # long average of the mid's squared returns, the last time the mid jumped
        self.rate_05s = DecayedSum(0.5)
        self.vol_1s = DecayedSum(1.0)
        self.vol_30s = DecayedSum(30.0)
        self.sq_30s = DecayedSum(30.0)
        self.last_jump: dict[float, int] = {3.0: 0, 6.0: 0}
        self.mids: deque[tuple[int, float]] = deque()
        self.snap: dict[str, float] = {}

    def mid_move_bps(self, now: int, back_s: float, mid: float) -> float:
        t0 = now - int(back_s * NS)
        old = mid
        for t, m in self.mids:  # oldest first
            if t <= t0:
                old = m
            else:
                break
        return 1e4 * (mid - old) / mid

    def realized_bps(self, now: int, back_s: float) -> float:
        """sqrt of the sum of the book mid's squared log moves (bps) within the last back_s."""
        t0 = now - int(back_s * NS)
        total, prev = 0.0, None
        for t, m in self.mids:
            if prev is not None and t > t0:
                r = 1e4 * math.log(m / prev)
                total += r * r
            prev = m
        return math.sqrt(total)

    def on_step(self, now: int, events: list[Any]) -> None:
        q = self.engine.quoters[0]
        for e in events:
            if isinstance(e, TradePrint) and e.symbol == q.spot.symbol:
                size = q.spot.size(e.size_lots)
                self.impact.on_trade(e.aggressor.sign, size, e.ts_recv_ns)
                self.rate_1s.add(now, 1.0)
                self.rate_30s.add(now, 1.0)
                self.signed_1s.add(now, float(e.aggressor.sign))
                self.rate_05s.add(now, 1.0)
                self.vol_1s.add(now, size)
                self.vol_30s.add(now, size)
        book = q.book
        bid, ask = book.best_bid_ticks, book.best_ask_ticks
        if bid is None or ask is None:
            return
        tick = q.spot.tick_size
        mid = (bid + ask) / 2 * tick
        if not self.mids or self.mids[-1][1] != mid:
            if self.mids:
                r = 1e4 * math.log(mid / self.mids[-1][1])
                self.sq_30s.add(now, r * r)
                for bps in self.last_jump:
                    if abs(r) >= bps:
                        self.last_jump[bps] = now
            self.mids.append((now, mid))
        while len(self.mids) > 2 and self.mids[1][0] < now - 4 * NS:
            self.mids.popleft()
        tox = q.risk.toxicity
        live = {o.side.sign: o.price_ticks * tick for o in q.orders.live_orders(q.spot.symbol, "quote")}
        rate30 = self.rate_30s.at(now) / 30.0
        vol30 = self.vol_30s.at(now) / 30.0
        sq30 = self.sq_30s.at(now) * math.log(2.0) / 30.0  # bps² per s: a half-life h sum weighs h/ln2 s
        bg_bid, bg_ask = q.background_top()
        self.snap = {
            "mid": mid,
            "spread_ticks": ask - bid,
            "flow": tox.flow_score,
            "ofi": tox.ofi,
            "impact": self.impact.bps(now),
            "burst": (self.rate_1s.at(now) / 1.0) / rate30 if rate30 > 0 else 0.0,
            "signed_rate": self.signed_1s.at(now),
            "mom03": self.mid_move_bps(now, 0.3, mid),
            "mom1": self.mid_move_bps(now, 1.0, mid),
            "mom3": self.mid_move_bps(now, 3.0, mid),
            "sigma_bps": 1e4 * q.sigma.sigma_px_per_sqrt_s / mid,
            "rv05": self.realized_bps(now, 0.5),
            "rv1": self.realized_bps(now, 1.0),
            "rv2": self.realized_bps(now, 2.0),
            "rv1_ratio": self.realized_bps(now, 1.0) ** 2 / sq30 if sq30 > 0 else math.nan,
            "burst05": (self.rate_05s.at(now) / 0.5) / rate30 if rate30 > 0 else 0.0,
            "vburst": (self.vol_1s.at(now) / 1.0) / vol30 if vol30 > 0 else 0.0,
            "since_jump3_s": (now - self.last_jump[3.0]) / NS,
            "since_jump6_s": (now - self.last_jump[6.0]) / NS,
            "bg_spread_ticks": bg_ask - bg_bid if bg_bid is not None and bg_ask is not None else math.nan,
            "bid_dist_bps": 1e4 * (mid - live[1]) / mid if 1 in live else math.nan,
            "ask_dist_bps": 1e4 * (live[-1] - mid) / mid if -1 in live else math.nan,
        }


def run(seed: int, minutes: float, guard_on: bool, out: Any) -> T.RunReport:
    exchanges: list[TaggedExchange] = []
    probe = Probe()
    fills: list[dict[str, Any]] = []

    class Ex(TaggedExchange):
        def _fill(self, market: Any, order: Any, price: Any, lots: Any, liquidity: Any) -> None:
            if market is self._spot:
                fills.append({"t": self._now_ns, "snap": dict(probe.snap)})
            super()._fill(market, order, price, lots, liquidity)

    def make(*a: Any, **k: Any) -> Ex:
        exchanges.append(Ex(*a, **k))
        return exchanges[-1]

    real_build = T.build_engine

    def build(*a: Any, **k: Any) -> Any:
        probe.engine = real_build(*a, **k)
        return probe.engine

    on_step = T._Recorder.on_step

    def step(self: Any, now: int, events: Any, cmds: Any) -> None:
        on_step(self, now, events, cmds)
        ex = exchanges[-1]
        ex.tape.append((now, ex._fv.now_px, ex._impact.log_offset if ex._impact else 0.0))
        probe.on_step(now, events)

    captured: list[Any] = []
    hs = T.horizon_stats

    def cap(f: Any, tape: Any, h: float, end: Any) -> Any:
        if h == HORIZON_S:
            captured.append(list(f))
        return hs(f, tape, h, end)

    saved = T.MockExchange, T.build_engine, T._Recorder.on_step, T.horizon_stats
    T.MockExchange, T.build_engine, T._Recorder.on_step, T.horizon_stats = make, build, step, cap  # type: ignore
    try:
        report = T.run_once(load_settings(None), seed, guard_on, minutes * 60)
    finally:  # un-patch: a second seed in the same process would otherwise run every earlier probe too
        T.MockExchange, T.build_engine, T._Recorder.on_step, T.horizon_stats = saved  # type: ignore
    ex = exchanges[-1]
    recs = captured[-1]
    assert len(recs) == len(fills) == len(ex.tags)
    times = [t for t, _, _ in ex.tape]
    end = times[-1]
    h_ns = int(HORIZON_S * NS)

    def fair(t: int) -> float:
        _, fv, io = ex.tape[bisect.bisect_right(times, t) - 1]
        return fv * math.exp(io)

    def parts(t: int) -> tuple[float, float]:
        """The fair value's diffusion (GBM + jumps) price and the prints' impact log offset at t."""
        _, fv, io = ex.tape[bisect.bisect_right(times, t) - 1]
        return fv, io

    for rec, f, (kind, taker) in zip(recs, fills, ex.tags, strict=True):
        if rec.ts_ns + h_ns > end:
            continue
        s, p, q = rec.side_sign, rec.price_px, rec.size_base
        m = (fair(rec.ts_ns + h_ns) - p) * s * q
        snap = f["snap"]
        row = {
            "seed": seed,
            "kind": kind,
            "taker": taker,
            "side": s,
            "notional": p * q,
            "edge": (fair(rec.ts_ns) - p) * s * q,
            "markout": m,
            "loss": max(0.0, -m),
            "t_s": (rec.ts_ns - T.START_NS) / NS,
        }
        # the 5 s move split, bps signed for the fill: the diffusion's (unpredictable by construction on
        # a constant-sigma GBM) and the prints' impact's (round nine)
        (fv0, io0), (fv1, io1) = parts(rec.ts_ns), parts(rec.ts_ns + h_ns)
        row["move_diffusion_bps"] = 1e4 * s * math.log(fv1 / fv0)
        row["move_impact_bps"] = 1e4 * s * (io1 - io0)
        # the signals turned "against this fill": positive = pushing the way that hurts it
        for key in ("flow", "ofi", "impact", "signed_rate", "mom03", "mom1", "mom3"):
            row[key + "_against"] = -s * snap.get(key, math.nan)
        for key in ("burst", "sigma_bps", "spread_ticks", *DISPERSION_KEYS):
            row[key] = snap.get(key, math.nan)
        row["dist_bps"] = snap.get("bid_dist_bps" if s > 0 else "ask_dist_bps", math.nan)
        row["other_dist_bps"] = snap.get("ask_dist_bps" if s > 0 else "bid_dist_bps", math.nan)
        out.write(json.dumps(row) + "\n")
    return report


def report(path: str) -> None:
    with open(path) as lines:
        rows = [json.loads(line) for line in lines]
    seeds = sorted({r["seed"] for r in rows})
    halves = (set(seeds[::2]), set(seeds[1::2]))
    tot_n = sum(r["notional"] for r in rows)
    tot_l = sum(r["loss"] for r in rows)
    print(f"{len(rows)} fills, {len(seeds)} seeds, loss {tot_l:.1f}, {1e4 * tot_l / tot_n:.2f} bps")
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for r in rows:
        a = by_kind[r["kind"]]
        a[0] += 1
        a[1] += r["notional"]
        a[2] += r["loss"]
        a[3] += r["edge"]
    for k, (n, no, lo, ed) in sorted(by_kind.items()):
        print(
            f"  {k:9s} fills {n:6d}  notional {no / tot_n:5.1%}  loss {lo / tot_l:5.1%}  {1e4 * lo / no:5.2f} bps"
            f"  edge {1e4 * ed / no:5.2f} bps"
        )
    feats = [k for k in rows[0] if k.endswith("_against")] + [
        "burst",
        "sigma_bps",
        "spread_ticks",
        "dist_bps",
        "other_dist_bps",
        "taker",
    ]
    print("per feature: quintiles fitted on half A, loss bps per quintile on A | on B (out of sample)")
    for f in feats:
        a = [r for r in rows if r["seed"] in halves[0] and math.isfinite(r[f])]
        b = [r for r in rows if r["seed"] in halves[1] and math.isfinite(r[f])]
        if len(a) < 50:
            continue
        vals = sorted(r[f] for r in a)
        cuts = [vals[int(len(vals) * i / 5)] for i in range(1, 5)]

        def table(rs: list[dict[str, Any]], f: str = f, cuts: list[float] = cuts) -> str:
            acc = [[0.0, 0.0] for _ in range(5)]
            for r in rs:
                i = bisect.bisect_right(cuts, r[f])
                acc[i][0] += r["notional"]
                acc[i][1] += r["loss"]
            return " ".join(
                f"{1e4 * lo / no:5.2f}({no / max(1e-9, sum(x[0] for x in acc)):3.0%})" if no else "  -  "
                for no, lo in acc
            )

        print(f"  {f:18s} cuts {' '.join(f'{c:7.2f}' for c in cuts)}\n     A: {table(a)}\n     B: {table(b)}")


def _per_unit(rows: list[dict[str, Any]]) -> tuple[float, float, float, float]:
    """Edge, move, markout and loss, bps of the rows' notional."""
    n = sum(r["notional"] for r in rows)
    edge = sum(r["edge"] for r in rows)
    mark = sum(r["markout"] for r in rows)
    return 1e4 * edge / n, 1e4 * (mark - edge) / n, 1e4 * mark / n, 1e4 * sum(r["loss"] for r in rows) / n


def decompose(path: str) -> None:
    with open(path) as lines:
        rows = [json.loads(line) for line in lines]
    total = sum(r["notional"] for r in rows)
    print(f"{len(rows)} fills; per unit of notional, bps: edge + move (5 s) = markout; loss = sum max(0, -markout)")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups["all"].append(r)
        groups[r["kind"]].append(r)
    for kind, g in groups.items():
        per = [1e4 * r["markout"] / r["notional"] for r in g]
        mean = sum(per) / len(per)
        sd = math.sqrt(sum((x - mean) ** 2 for x in per) / len(per))
        share = sum(r["notional"] for r in g) / total
        e, mv, mk, lo = _per_unit(g)
        print(f"  {kind:9s} fills {len(g):6d} notional {share:6.1%}  edge {e:6.2f} move {mv:6.2f} markout {mk:6.2f}"
              f"  loss {lo:6.2f}  sd of a fill's markout {sd:5.1f}")  # fmt: skip
    by_seed: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_seed[r["seed"]].append(r)
    since: dict[int, list[dict[str, Any]]] = defaultdict(list)
    edges = (0.0, 0.2, 2.0)
    for g in by_seed.values():
        g.sort(key=lambda r: r["t_s"])
        last = {1: -math.inf, -1: -math.inf}
        for r in g:
            since[bisect.bisect_right(edges, r["t_s"] - last[r["side"]]) - 1].append(r)
            last[r["side"]] = r["t_s"]
    print("  by the time since our previous fill on the same side:")
    for i, lo_s in enumerate(edges):
        g = since[i]
        if g:
            e, mv, mk, lo = _per_unit(g)
            share = sum(r["notional"] for r in g) / total
            print(f"    >= {lo_s:4.1f} s: notional {share:6.1%}  edge {e:6.2f} move {mv:6.2f} loss {lo:6.2f}")
    print("  per seed: loss; with the mean markout moved to 0 / to +2 bps (each fill's spread kept):")
    for seed, g in sorted(by_seed.items()):
        n = sum(r["notional"] for r in g)
        _, _, mk, lo = _per_unit(g)
        floors = [1e4 * sum(max(0.0, -(r["markout"] + (to - mk) * 1e-4 * r["notional"])) for r in g) / n
                  for to in (0.0, 2.0)]  # fmt: skip
        cuts = [100 * (1 - f / lo) for f in floors]
        print(
            f"    seed {seed}: fills {len(g):5d} loss {lo:5.2f} markout {mk:6.2f} | at 0: {floors[0]:5.2f}"
            f" ({cuts[0]:3.0f} % less) | at +2: {floors[1]:5.2f} ({cuts[1]:3.0f} % less)"
        )


def _decile_rows(rows: list[dict[str, Any]], f: str, cuts: list[float]) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = [[] for _ in range(len(cuts) + 1)]
    for r in rows:
        out[bisect.bisect_right(cuts, r[f])].append(r)
    return out


def _spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(v: list[float]) -> list[float]:
        # tied values share their mean rank: several signals have long runs of ties (0 realized vol,
        # integer spreads, the "no move yet" sentinel), which ranked by input order would correlate
        # with the seeds' order instead of with the outcome
        order = sorted(range(len(v)), key=v.__getitem__)
        rk = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                rk[order[k]] = (i + j) / 2
            i = j + 1
        return rk

    rx, ry = ranks(xs), ranks(ys)
    n = len(xs)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))


def dispersion(path: str) -> None:
    """Is the outcome's spread predictable? Per signal: deciles cut on half A (even-indexed seeds), read
    on half B: notional share, Σ|markout|, Σmarkout and Σmax(0, −markout) per unit, the sd of a fill's
    markout, and the loss the decile's fills would have with their mean markout moved to 0 (its spread
    alone). Spearman of the signal against a fill's |markout| in bps, on A and on B."""
    with open(path) as lines:
        rows = [json.loads(line) for line in lines]
    for r in rows:
        r["abs_bps"] = 1e4 * abs(r["markout"]) / r["notional"]
        r["m_bps"] = 1e4 * r["markout"] / r["notional"]
        r["abs_mom1"] = abs(r["mom1_against"])
        r["abs_impact"] = abs(r["impact_against"])
    seeds = sorted({r["seed"] for r in rows})
    halves = (set(seeds[::2]), set(seeds[1::2]))
    print(f"{len(rows)} fills, {len(seeds)} seeds; B columns: share | |m| m loss (bps/unit) | sd | loss at mean 0")
    for name, key in (("edge", "edge"), ("move", None), ("markout", "markout")):
        xs = [1e4 * ((r[key] if key else r["markout"] - r["edge"]) / r["notional"]) for r in rows]
        mean = sum(xs) / len(xs)
        sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))
        print(f"  a fill's {name}: mean {mean:6.2f} bps, sd {sd:5.2f}")
    for key in ("move_diffusion_bps", "move_impact_bps"):
        xs = [r[key] for r in rows if key in r]
        if xs:
            mean = sum(xs) / len(xs)
            sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))
            print(f"  ... of the move, {key}: mean {mean:6.2f}, sd {sd:5.2f}")
    for f in (*DISPERSION_KEYS, "burst", "sigma_bps", "spread_ticks", "abs_mom1", "abs_impact", "dist_bps"):
        a = [r for r in rows if r["seed"] in halves[0] and math.isfinite(r.get(f, math.nan))]
        b = [r for r in rows if r["seed"] in halves[1] and math.isfinite(r.get(f, math.nan))]
        if len(a) < 100 or len(b) < 100:
            continue
        vals = sorted(r[f] for r in a)
        cuts = sorted({vals[int(len(vals) * i / 10)] for i in range(1, 10)})
        rho_a = _spearman([r[f] for r in a], [r["abs_bps"] for r in a])
        rho_b = _spearman([r[f] for r in b], [r["abs_bps"] for r in b])
        print(f"  {f}: spearman(|m|) A {rho_a:+.3f} B {rho_b:+.3f}; cuts {' '.join(f'{c:.3g}' for c in cuts)}")
        total = sum(r["notional"] for r in b)
        for i, g in enumerate(_decile_rows(b, f, cuts)):
            if not g:
                continue
            n = sum(r["notional"] for r in g)
            _, _, mk, lo = _per_unit(g)
            absu = 1e4 * sum(abs(r["markout"]) for r in g) / n
            mean = sum(r["m_bps"] for r in g) / len(g)
            sd = math.sqrt(sum((r["m_bps"] - mean) ** 2 for r in g) / len(g))
            at0 = 1e4 * sum(max(0.0, -(r["markout"] - mk * 1e-4 * r["notional"])) for r in g) / n
            print(f"    d{i}: {n / total:5.1%} | {absu:6.2f} {mk:6.2f} {lo:6.2f} | {sd:5.1f} | {at0:5.2f}")
        # the most a response on this signal alone could buy: B's fills above A's top-decile / top-quintile
        # cut removed (exactly those, nothing else changed), loss per unit against all of B's fills
        lo_all = _per_unit(b)[3]
        drops = []
        for q in (0.9, 0.8):
            cut = vals[int(len(vals) * q)]
            kept = [r for r in b if r[f] < cut]
            drops.append(f"top {1 - q:.0%} ({1 - sum(r['notional'] for r in kept) / total:.0%} of B): "
                         f"{100 * (1 - _per_unit(kept)[3] / lo_all):5.1f} % less per unit")  # fmt: skip
        print("    dropped " + "; ".join(drops))


def main(argv: list[str]) -> None:
    if argv[0] == "--dispersion":
        dispersion(argv[1])
        return
    if argv[0] == "--report":
        report(argv[1])
        return
    if argv[0] == "--decompose":
        decompose(argv[1])
        return
    minutes, guard_on, path = float(argv[0]), argv[1] == "on", argv[2]
    with open(path, "w") as out:
        for seed in map(int, argv[3:]):
            run(seed, minutes, guard_on, out)


if __name__ == "__main__":
    main(sys.argv[1:])
