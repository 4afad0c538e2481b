"""`mmbot` entry point. Parses arguments and hands off to the module that owns each command.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad configuration (one line on stderr,
no traceback, before any venue is touched), 130 interrupted.

`main` is total: a bad argument is one line from the parser (`OneLineParser`), a bad config one
`ConfigError` line, and anything else a command lets escape (an exception group from a task group
included) one `unexpected error` line with exit 1, secret values masked. `MMBOT_TRACEBACK=1` shows
the traceback instead, for debugging.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn
from urllib.parse import urlsplit

from bot.config import ConfigError
from bot.secret_names import scrub, secret_values_in

# command -> "module:function"; each function takes the parsed argparse.Namespace and returns an exit code
HANDLERS: dict[str, str] = {
    "run": "bot.app:cmd_run",
    "check-config": "bot.app:cmd_check_config",
    "simulate as2008": "bot.sim.as2008:cmd_simulate_as2008",
    "simulate toxicity": "bot.sim.toxicity:cmd_simulate_toxicity",
    "simulate deal": "bot.sim.deal:cmd_simulate_deal",
    "exchange serve": "bot.venues.mock.dialects.cli:cmd_exchange_serve",
    "exchange record": "bot.venues.mock.record:cmd_exchange_record",
    "replay": "bot.replay_cli:cmd_replay",
    "calibrate": "bot.calibrate:cmd_calibrate",
    "sweep": "bot.sweep:cmd_sweep",
    "deal plan": "bot.deal_cli:cmd_deal_plan",
    "soak": "bot.sim.soak:cmd_soak",
    "status": "bot.runtime.status:cmd_status",
    "report": "bot.runtime.report:cmd_report",
}


def _duration_s(text: str) -> float:
    """'30s', '5m', '2h', '1500ms' or a bare number of seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            number = text[: -len(suffix)]
            break
    else:
        number, suffix = text, "s"
    try:
        value = float(number) * units[suffix]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30s, 5m, 2h)") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"duration must be > 0: {text!r}")
    return value


def _number(
    kind: Callable[[str], float], low: float | None = None, high: float | None = None, strict: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number of `kind` within [low, high] (low excluded when `strict`)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number: {text!r}")
        if low is not None and (value <= low if strict else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low:g}: {text!r}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high:g}: {text!r}")
        return value

    return parse


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"unknown log level {text!r} (use {', '.join(LOG_LEVELS)})")
    return level


def _http_url(text: str) -> str:
    url = urlsplit(text)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise argparse.ArgumentTypeError(f"not an http:// URL: {text!r} (e.g. http://127.0.0.1:9108)")
    return text


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (the error and where to find help) and exit 2,
    not the usage block followed by the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


SEED = _number(int, 0, 2**63 - 1)  # numpy's generators take non-negative seeds
POSITIVE = _number(float, 0, strict=True)
NON_NEGATIVE = _number(float, 0)
MINUTES = _number(float, 0, 7 * 24 * 60, strict=True)  # simulated: at most a week
JSON_HELP = "stdout: one JSON object and nothing else (tables and log lines go to stderr)"
LOG_FORMAT_HELP = "json lines, console, or auto: console on a terminal (default: %(default)s)"
LOG_LEVEL_HELP = f"{', '.join(LOG_LEVELS)} (default: %(default)s)"


def _common(p: argparse.ArgumentParser, config: bool = True) -> None:
    if config:
        p.add_argument("--config", metavar="FILE", help="TOML config (default: config/default.toml)")
    p.add_argument("--log-format", choices=["json", "console", "auto"], default="auto", help=LOG_FORMAT_HELP)
    p.add_argument("--log-level", type=_log_level, default="INFO", help=LOG_LEVEL_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="mmbot", description="Paper-trading market-making bot")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the bot (default: dry run on the in-process mock exchange)")
    _common(p)
    p.add_argument("--duration", type=_duration_s, help="stop by itself after this long (30s, 5m)")
    p.add_argument("--venue", help='"mock", "ws://127.0.0.1:8765" or "ccxt" (overrides runtime.venue)')
    p.add_argument("--ledger", metavar="PATH", help="SQLite ledger path (overrides ledger.path)")

    p = sub.add_parser("check-config", help="print the effective config (secrets masked)")
    p.add_argument("file", nargs="?", help="TOML config (default: config/default.toml)")
    p.add_argument("--log-format", choices=["json", "console", "auto"], default="auto", help=LOG_FORMAT_HELP)
    p.add_argument("--log-level", type=_log_level, default="INFO", help=LOG_LEVEL_HELP)

    sim = sub.add_parser("simulate", help="offline experiments").add_subparsers(dest="experiment", required=True)
    p = sim.add_parser("as2008", help="Avellaneda-Stoikov (2008) Monte Carlo, section 3")
    p.add_argument(
        "--gamma", type=POSITIVE, default=0.1, help="risk aversion, per unit of price (default: %(default)s)"
    )
    p.add_argument(
        "--paths",
        type=_number(int, 1, 1_000_000),
        default=1000,
        help="simulated paths per strategy (default: %(default)s)",
    )
    p.add_argument("--seed", type=SEED, default=1, help="random seed (default: %(default)s)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p = sim.add_parser("toxicity", help="same seeded toxic market, risk guard off vs on")
    _common(p)
    p.add_argument("--seed", type=SEED, default=1, help="random seed (default: %(default)s)")
    p.add_argument(
        "--minutes",
        type=MINUTES,
        default=30.0,
        help="simulated minutes per run (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = sim.add_parser("deal", help="the token-loan deal over its term: the article's sale vs holding vs hedging")
    _common(p)
    p.add_argument(
        "--paths", type=_number(int, 1, 1_000_000), default=1000, help="price paths per model (default: %(default)s)"
    )
    p.add_argument("--seed", type=SEED, default=1, help="random seed (default: %(default)s)")
    p.add_argument(
        "--model", choices=["all", "gbm", "jump", "pump_decay"], default="all", help="price paths (default: all)"
    )
    p.add_argument("--hedge-hours", type=float, default=24.0, help="perp rebalance interval (default: %(default)s)")
    p.add_argument(
        "--sale-days", type=float, default=None, help="TWAP length of the sale (default: deal.sale_twap_days)"
    )
    p.add_argument("--out", metavar="DIR", help="also write deal_pnl.png, deal_by_source.png and deal.md there")
    p.add_argument(
        "--cex-volume",
        type=NON_NEGATIVE,
        default=500_000.0,
        help="our CEX fills, quote/day at the start price (default: %(default)s)",
    )
    p.add_argument(
        "--pool-noise",
        type=NON_NEGATIVE,
        default=0.1,
        help="pool noise swaps per day, fraction of its value (default: %(default)s)",
    )
    p.add_argument(
        "--funding", type=_number(float), default=0.0, help="perp funding, per year, > 0 shorts receive (default: 0)"
    )
    p.add_argument(
        "--measure-minutes",
        type=float,
        default=10.0,
        help="mock minutes to measure the CEX edge (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    ex = sub.add_parser("exchange", help="the mock exchange").add_subparsers(dest="action", required=True)
    p = ex.add_parser("serve", help="serve the mock exchange over websockets")
    _common(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=_number(int, 0, 65535), default=8765, help="port to listen on (default: %(default)s)")
    p.add_argument(
        "--dialect",
        choices=["bybit", "binance"],
        help="speak this venue's protocol (loopback only; binance: public data)",
    )
    p.add_argument("--hedge-mode", action="store_true", help="--dialect: the account is in hedge position mode")
    p.add_argument(
        "--ws-max-age-s", type=POSITIVE, default=None, help="--dialect: close every websocket after this long"
    )
    p = ex.add_parser("record", help="write the mock market's public data as a Binance recording")
    _common(p)
    p.add_argument("--minutes", type=MINUTES, default=10.0, help="simulated minutes (default: %(default)s)")
    p.add_argument("--seed", type=SEED, default=None, help="random seed (default: the config's mock.seed)")
    p.add_argument("--out", required=True, metavar="FILE", help="the spot recording (.gz: gzipped)")
    p.add_argument("--perp-out", metavar="FILE", help="also the perp's recording (default: none)")

    p = sub.add_parser("replay", help="replay recorded Binance streams through the full bot")
    _common(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--speed", default=None, help='replay speed multiple, or "max" (default: replay.speed)')
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument("--cache", metavar="DIR", help="read each file's parsed events from DIR, or write them there")

    p = sub.add_parser("sweep", help="grid or Optuna search over config keys, each trial a full replay")
    _common(p)
    p.add_argument("targets", nargs="+", metavar="FILE", help="recordings (spot, then its perp) and/or mock:SEED")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...", help="a key and its values")
    p.add_argument(
        "--search",
        type=_number(int, 1, 1_000_000),
        metavar="N",
        help="an Optuna search of N trials over the --space keys",
    )
    p.add_argument("--space", action="append", default=[], metavar="KEY=LO:HI", help="a key's range for --search")
    p.add_argument("--seed", type=SEED, default=1, help="the search's random seed (default: %(default)s)")
    p.add_argument("--objective", default="pnl", help="best trial by this metric (default: %(default)s)")
    p.add_argument(
        "--workers", type=_number(int, 1, 1024), default=1, help="local worker processes (default: %(default)s)"
    )
    p.add_argument("--dask", metavar="ADDRESS", help="run on the Dask scheduler at ADDRESS instead")
    p.add_argument(
        "--minutes", type=MINUTES, default=10.0, help="simulated minutes per mock run (default: %(default)s)"
    )
    p.add_argument("--cache", metavar="DIR", help="replay recordings from their parsed events cached in DIR")
    p.add_argument("--out", metavar="DIR", help="write sweep.json and sweep.png there")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = sub.add_parser("calibrate", help="fit σ, A, k and the informed share from a recording; a TOML block")
    _common(p)
    p.add_argument("files", nargs="+", metavar="FILE", help="recorded Binance spot file (a perp file is ignored)")
    p.add_argument("--order-size", type=POSITIVE, help="Δ, base units (default: the config's quoter.order_size_base)")
    p.add_argument("--target-inventory-std", type=POSITIVE, help="suggest γ for this inventory std, base units")
    p.add_argument("--out", metavar="DIR", help="write intensity.png (fitted λ(δ) vs the data) here")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    from bot.market_calibrate import add_market_flags  # the mock-market flags (docs/mock-market.md)

    add_market_flags(p)

    deal = sub.add_parser("deal", help="the token-loan deal").add_subparsers(dest="action", required=True)
    p = deal.add_parser("plan", help="initial hedge plan of the token-loan + call-option deal")
    _common(p)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument("--at", default=None, help="value the calls on this ISO date (default: the deal's start)")

    p = sub.add_parser("soak", help="chaos soak on the in-process mock exchange")
    _common(p)
    p.add_argument(
        "--hours",
        type=_number(float, 0, 365 * 24, strict=True),
        default=2.0,
        help="simulated hours (default: %(default)s)",
    )
    p.add_argument("--faults", default="all", help='"all", "none" or a comma-separated list (default: %(default)s)')
    p.add_argument("--seed", type=SEED, default=1, help="random seed (default: %(default)s)")
    p.add_argument(
        "--restarts",
        type=_number(int, 0, 1000),
        default=6,
        help="bot restarts (clean stops and crashes in turn, each after an idle gap) against the running "
        "exchange, all runs on one ledger (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = sub.add_parser("status", help="one-screen view of a running bot")
    p.add_argument(
        "--url",
        type=_http_url,
        default="http://127.0.0.1:9108",
        help="the bot's metrics address (default: %(default)s)",
    )
    p.add_argument("--watch", action="store_true", help="redraw until Ctrl-C")
    p.add_argument(
        "--interval",
        type=_number(float, 0, 3600, strict=True),
        default=2.0,
        help="--watch refresh, seconds (default: %(default)s)",
    )

    p = sub.add_parser("report", help="HTML + PNG report from a ledger")
    p.add_argument("--ledger", metavar="PATH", help="SQLite ledger (default: the config's ledger.path)")
    p.add_argument("--out", default="report", help="output directory (default: %(default)s)")
    p.add_argument(
        "--sweep",
        metavar="PATH",
        help="report a sweep instead: its sweep.json or the `mmbot sweep --out` directory (plot, table, best TOML)",
    )
    return parser


def _handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    key = args.command
    for sub_attr in ("experiment", "action"):
        if getattr(args, sub_attr, None):
            key = f"{key} {getattr(args, sub_attr)}"
    module_name, func_name = HANDLERS[key].split(":")
    func: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module_name), func_name)
    return func


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, one line: OneLineParser), as a return value
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if getattr(args, "json", False):
            # stdout is the JSON document only (bot/output.py): everything else the command prints goes to stderr
            args.json_stdout = sys.stdout
            with contextlib.redirect_stdout(sys.stderr):
                return _handler(args)(args)
        return _handler(args)(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `mmbot deal plan | head`: the reader left, which is not our error
        sys.stderr.close()
        return 0
    except Exception as exc:  # the last resort: one line, never a traceback
        return _report(exc, _command_name(args))


def _command_name(args: argparse.Namespace) -> str:
    parts = ["mmbot", args.command, *(getattr(args, a) for a in ("experiment", "action") if getattr(args, a, None))]
    return " ".join(parts)


def _report(exc: Exception, command: str) -> int:
    """One line on stderr for whatever a command let escape: a ConfigError (also one raised inside a
    task group) is exit 2, anything else exit 1. Secret values from the environment are masked."""
    leaf = _first_leaf(exc)
    if isinstance(leaf, BrokenPipeError):
        return 0
    if os.environ.get("MMBOT_TRACEBACK") == "1":
        raise exc
    if isinstance(leaf, ConfigError):
        line, code = str(leaf), 2
    else:
        line, code = f"{command}: unexpected error: {type(leaf).__name__}: {leaf}", 1
    line = " ".join(scrub(line, secret_values_in(os.environ)).split())  # one line, whatever the message held
    print(line, file=sys.stderr)
    return code


def _first_leaf(exc: BaseException) -> BaseException:
    """The first exception that is not a group (an asyncio.TaskGroup wraps what its tasks raised)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
