"""What a command writes to stdout with `--json`: one JSON document and nothing else.

`bot.cli.main` runs a command that was given `--json` with `sys.stdout` pointed at stderr, so its
tables, progress lines and log lines all land on stderr without each command arranging it, and keeps
the real stdout on the parsed arguments (`args.json_stdout`). The command writes its document with
`write_json`, the one thing that reaches stdout: `mmbot simulate toxicity --json | jq` works.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson


def write_json(args: argparse.Namespace, payload: Any) -> None:
    """`payload` as one line of JSON on the command's real stdout."""
    stream = getattr(args, "json_stdout", None) or sys.stdout
    stream.write(orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
    stream.flush()
