"""`mmbot status`: a one-screen view of a running bot, read from its `/status` endpoint.

    mmbot status                       # once, from http://127.0.0.1:9108
    mmbot status --url http://bot:9108 --watch --interval 1

Exit codes: 0 shown; 1 the bot is unreachable or answered something that is not a status document
(one line on stderr). With `--watch`, the first fetch must succeed; later failures are shown on the
screen and retried (the bot may be restarting) until Ctrl-C.

The document is the one `bot.runtime.metrics.Metrics.status()` serves: a `StatusSnapshot` as JSON
plus `health` and `snapshot_age_s`. Rendering is tolerant: a missing field shows as "-".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TextIO

CLEAR_SCREEN = "\x1b[2J\x1b[H"


class StatusError(Exception):
    """The bot could not be reached or did not answer with a status document (one-line message)."""


def fetch_status(url: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """GET `url`/status and parse it."""
    target = url.rstrip("/") + "/status"
    try:
        # no proxies: the bot is reached directly, and an HTTP(S)_PROXY in the environment must not intercept it
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(target, timeout=timeout_s) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        raise StatusError(f"cannot read the bot's status at {target}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StatusError(f"cannot reach the bot at {target}: {reason}") from None
    try:
        doc = json.loads(body)
    except ValueError:
        raise StatusError(f"{target} did not answer JSON: is this an mmbot metrics port?") from None
    if not isinstance(doc, dict) or "health" not in doc:
        raise StatusError(f"{target} did not answer an mmbot status document")
    return doc


def _num(value: Any, digits: int = 8) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:.{digits}g}"


def _money(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def render(doc: dict[str, Any]) -> str:
    """The one-screen text view of a status document."""
    health = doc.get("health") or {}
    ready = health.get("status") == "ready"
    lines = [
        f"mmbot  run {doc.get('run_id') or '-'}  venue {doc.get('venue') or '-'}  {doc.get('symbol') or ''}".rstrip(),
        f"health: {'READY' if ready else 'NOT READY (' + str(health.get('reason', '?')) + ')'}"
        f"   snapshot {_duration(doc.get('snapshot_age_s'))} old   up {_duration(doc.get('uptime_s'))}"
        f"   fills {doc.get('fills', '-')}",
        f"risk: {doc.get('risk_state', '-')}" + (f" ({doc['risk_reason']})" if doc.get("risk_reason") else ""),
        "",
        "Market",
    ]
    mid, res = doc.get("mid_px"), doc.get("reservation_px")
    skew = f" ({(res - mid) / mid * 1e4:+.1f} bps)" if isinstance(mid, int | float) and mid and res is not None else ""
    lines.append(
        f"  mid {_num(mid)}   reservation {_num(res)}{skew}   quoted spread {_num(doc.get('quoted_spread_bps'), 4)} bps"
    )
    lines.append(
        f"  sigma {_num(doc.get('sigma_px_per_sqrt_s'), 4)} px/√s   A {_num(doc.get('a_per_s'), 4)} /s"
        f"   k {_num(doc.get('k_per_px'), 4)} /px"
    )
    orders = list(doc.get("orders") or [])
    # like a book: asks above bids, highest price first
    orders.sort(key=lambda o: (o.get("symbol", ""), o.get("side") != "sell", -(o.get("price_px") or 0.0)))
    lines += ["", f"Orders ({len(orders)})"]
    if orders:
        lines.append(f"  {'symbol':<18}{'side':<6}{'price':>14}{'size':>12}{'age':>9}  tag")
        for o in orders:
            lines.append(
                f"  {o.get('symbol', '-'):<18}{o.get('side', '-'):<6}{_num(o.get('price_px')):>14}"
                f"{_num(o.get('size_base')):>12}{_duration(o.get('age_s')):>9}  {o.get('tag', '')}"
            )
    else:
        lines.append("  none")
    lines += ["", "Inventory (base)"]
    for symbol, base in (doc.get("inventory_base") or {}).items():
        lines.append(f"  {symbol:<18}{_num(base):>14}")
    lines.append(f"  {'net delta':<18}{_num(doc.get('net_delta_base')):>14}")
    lines += ["", "PnL (quote)"]
    for component, value in (doc.get("pnl_quote") or {}).items():
        lines.append(f"  {component:<18}{_money(value):>14}")
    lines.append(f"  {'total':<18}{_money(doc.get('pnl_total_quote')):>14}")
    obligations = doc.get("obligations") or []
    if obligations:
        lines += ["", "Obligations"]
        for ob in obligations:
            ratio = ob.get("compliance_ratio")
            shown = f"{ratio * 100:.1f}%" if isinstance(ratio, int | float) else "-"
            flag = "OK  " if ob.get("compliant") else "MISS"
            lines.append(f"  {ob.get('name', '-'):<18}{flag}  {shown:>6} of the time  {ob.get('detail', '')}".rstrip())
    return "\n".join(lines) + "\n"


def watch(
    url: str,
    interval_s: float,
    out: TextIO,
    frames: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Redraw every `interval_s` until Ctrl-C (or `frames` redraws). A failed fetch is shown, not fatal."""
    shown = 0
    while frames is None or shown < frames:
        try:
            screen = render(fetch_status(url))
        except StatusError as exc:
            screen = f"{exc} (retrying every {interval_s:g}s)\n"
        out.write(CLEAR_SCREEN + screen)
        out.flush()
        shown += 1
        if frames is None or shown < frames:
            sleep(interval_s)


def cmd_status(args: argparse.Namespace) -> int:
    try:
        doc = fetch_status(args.url)
    except StatusError as exc:
        print(f"mmbot status: {exc}", file=sys.stderr)
        return 1
    if not args.watch:
        sys.stdout.write(render(doc))
        return 0
    try:
        watch(args.url, max(args.interval, 0.1), sys.stdout)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
    return 0
