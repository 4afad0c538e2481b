"""Give a Binance recording that has no REST snapshot the book its recorder had when it started.

hftbacktest's collector writes one file a day and takes its REST depth snapshot only when it connects,
so the second day's file (`examples/spot/ethusdt_20240809.gz`) holds diffs but no snapshot and
cannot be synced alone. Its first diff continues the previous day's file without a gap (U = the last
u + 1). This script syncs the previous day's file by Binance's documented procedure (drop diffs with
u <= lastUpdateId, the first kept one must straddle lastUpdateId + 1, then every U must be the last
u + 1) with the standard library only (not the bot's reader, which then checks the result), and writes

    <first receive time of NEXT - 1 ns> {"lastUpdateId": <last u of PREV>, "bids": [...], "asks": [...]}

followed by NEXT's lines unchanged. The snapshot line is derived (the book Binance's own snapshot and
diffs give at that update id), not one Binance sent; tests/data/binance/README.md says so.

USD-M futures files (diffs with `pu`) are synced by the futures procedure instead: the first kept diff
must straddle the snapshot (U <= id + 1) or follow an update in it (pu <= id), then every pu must be
the last u, and NEXT continues PREV when its first diff's pu is PREV's last u. SECONDS, if given, keeps
only NEXT's lines received within that many seconds of its first (a smaller file).

    python scripts/binance_continue_snapshot.py PREV.gz NEXT.gz OUT.gz [SECONDS]
"""

from __future__ import annotations

import gzip
import json
import sys
from decimal import Decimal


def synced_book(path: str) -> tuple[int, dict[str, str], dict[str, str]]:
    """(last update id, bids, asks) after every diff of the spot recording `path`; price -> qty strings."""
    snapshot: dict | None = None
    buffered: list[dict] = []
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    last_u: int | None = None

    def apply(diff: dict) -> None:
        nonlocal last_u
        if last_u is not None and not _continues(diff, last_u):
            raise SystemExit(f"{path}: gap in the diffs, U {diff['U']} pu {diff.get('pu')} after u {last_u}")
        for side, book in (("b", bids), ("a", asks)):
            for px, qty in diff[side]:
                if Decimal(qty) == 0:
                    book.pop(px, None)
                else:
                    book[px] = qty
        last_u = diff["u"]

    with gzip.open(path, "rt") as fh:
        for line in fh:
            _, text = line.rstrip("\n").split(" ", 1)
            message = json.loads(text)
            if "lastUpdateId" in message:
                if snapshot is not None:
                    raise SystemExit(f"{path}: more than one REST snapshot (not handled)")
                snapshot = message
                bids.update((px, qty) for px, qty in message["bids"] if Decimal(qty) != 0)
                asks.update((px, qty) for px, qty in message["asks"] if Decimal(qty) != 0)
                kept = [d for d in buffered if d["u"] > snapshot["lastUpdateId"]]
                if kept and not _straddles(kept[0], snapshot["lastUpdateId"]):
                    raise SystemExit(f"{path}: the snapshot is older than the buffered diffs")
                for diff in kept:
                    apply(diff)
                continue
            data = message.get("data", {})
            if data.get("e") != "depthUpdate":
                continue
            if snapshot is None:
                buffered.append(data)
            elif data["u"] > snapshot["lastUpdateId"]:
                if last_u is None and not _straddles(data, snapshot["lastUpdateId"]):
                    raise SystemExit(f"{path}: the first diff after the snapshot does not straddle it")
                apply(data)
    if snapshot is None or last_u is None:
        raise SystemExit(f"{path}: no REST snapshot, or no diff after it")
    return last_u, bids, asks


def _continues(diff: dict, last_u: int) -> bool:
    """Does `diff` follow the update `last_u` (futures: pu; spot: U = last u + 1)?"""
    return diff["pu"] == last_u if "pu" in diff else diff["U"] == last_u + 1


def _straddles(diff: dict, snapshot_id: int) -> bool:
    """Is `diff` the first one to apply after a snapshot at `snapshot_id`?"""
    if "pu" in diff:
        return diff["U"] <= snapshot_id + 1 <= diff["u"] or diff["pu"] <= snapshot_id < diff["u"]
    return diff["U"] <= snapshot_id + 1 <= diff["u"]


def main(prev: str, nxt: str, out: str, seconds: str | None = None) -> None:
    last_u, bids, asks = synced_book(prev)
    with gzip.open(nxt, "rt") as fh:
        lines = fh.readlines()
    first_ns = int(lines[0].split(" ", 1)[0])
    if seconds is not None:
        end_ns = first_ns + round(float(seconds) * 1e9)
        lines = [s for s in lines if int(s.split(" ", 1)[0]) < end_ns]
    first_diff = next(json.loads(s.split(" ", 1)[1])["data"] for s in lines if '"depthUpdate"' in s)
    if not _continues(first_diff, last_u):
        raise SystemExit(f"{nxt} does not continue {prev}: its first diff U {first_diff['U']}, the last u {last_u}")
    snapshot = {
        "lastUpdateId": last_u,
        "bids": [[px, bids[px]] for px in sorted(bids, key=Decimal, reverse=True)],
        "asks": [[px, asks[px]] for px in sorted(asks, key=Decimal)],
    }
    with gzip.open(out, "wt") as fh:
        fh.write(f"{first_ns - 1} {json.dumps(snapshot, separators=(',', ':'))}\n")
        fh.writelines(lines)
    print(f"{out}: snapshot at update id {last_u} ({len(bids)} bids, {len(asks)} asks) + {len(lines)} lines")


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
