"""The one composition root: builds venues, engine and runner from Settings, and the CLI commands
that run them."""

from __future__ import annotations

import argparse
import sys

import orjson

from bot.config import load_settings, masked_dump
from bot.logs import configure_logging


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)  # ConfigError -> exit 2 in the CLI
    configure_logging(args.log_format, args.log_level)
    sys.stdout.write(orjson.dumps(masked_dump(settings), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
