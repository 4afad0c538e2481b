"""Many small Binance spot buys, each paying its fee in BTC, finer than the lot, then a restart: the
ledger's spot position equals the wallet's BTC less the allocation, exactly.

Binance charges a spot trade's commission in the asset received (a buy pays BTC: `commission`,
`commissionAsset` in myTrades and the executionReport, binance-spot-api-docs), and BTCUSDT's lot is
0.00001 BTC while a 0.002 BTC buy at the 0.1 % taker rate pays 0.000002 BTC, a fifth of a lot. The
adapter used to book each buy as `amount - fee` rounded to lots, so every buy's fee rounded away
while the wallet paid it: after 30 buys the ledger held 6 lots more than the wallet and a restart
reported a spot mismatch (issue #18's caveat). The ledger now keeps each fill's size and fee as the
venue reported them (ccxt's `trade['fee']` {cost, currency}) and rounds the exact sum once.

ccxt's real binance client against the Binance dialect server on 127.0.0.1 (signatures checked), the
adapter, a real ledger file and the restart reconciliation (`bot/runtime/recovery.py`); no network.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from conftest import until
from test_dialect_binance_private import SPOT, config, dialect

from bot.app import build_engine
from bot.config import load_settings
from bot.domain import OrderFilled, OrderType, PlaceOrder, Side
from bot.runtime.ledger import Ledger
from bot.runtime.recovery import reconcile
from bot.venues.base import fill_session
from bot.venues.ccxt_safety import build_exchange
from bot.venues.ccxt_venue import CcxtVenue
from bot.venues.mock.dialects import DialectServer

CONFIG = Path(__file__).resolve().parents[2] / "config" / "binance-demo.toml"
ALLOCATION = "1.0"  # the dialect account's starting BTC: not the bot's inventory
BUYS_SEEN, BUYS_WHILE_DEAD = 25, 5


def venue_trades(server: DialectServer) -> list[Any]:
    return list(server.dialect.trading.trades[SPOT])  # type: ignore[attr-defined]


async def wallet_btc(server: DialectServer) -> Decimal:
    """The account's total BTC as Binance's GET /api/v3/account states it (text, 8 decimals)."""
    rows = server.dialect.trading.spot_balances()  # type: ignore[attr-defined]
    (btc,) = [r for r in rows if r["asset"] == "BTC"]
    return Decimal(btc["free"]) + Decimal(btc["locked"])


async def test_a_restart_after_many_btc_fee_buys_finds_the_ledger_equal_to_the_wallet(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    async with dialect() as server:
        cfg = config(server, spot_base_allocation=float(ALLOCATION))
        # ---- the first run: every buy's fill reaches the ledger through the adapter
        venue = CcxtVenue(cfg)
        ledger = Ledger(path)
        fills: list[OrderFilled] = []

        def on_event(event: Any) -> None:
            if isinstance(event, OrderFilled):
                fills.append(event)
                ledger.record_event("run-1", event)

        await venue.connect()
        ledger.start_run(
            "run-1", 1, venue=venue.name, instruments=venue.instruments.values(), session=fill_session(venue)
        )
        stream = asyncio.create_task(venue.stream(on_event))
        try:
            await until(lambda: server.dialect._ws_subscriptions, what="the user data subscription")  # type: ignore[attr-defined]
            for i in range(BUYS_SEEN):
                await venue.execute(PlaceOrder(SPOT, f"b{i}", Side.BUY, 0, 200, OrderType.MARKET, post_only=False))
            await until(lambda: len(fills) == len(venue_trades(server)) >= BUYS_SEEN, 20.0, "every fill on the stream")
            in_session = sum(f.size_lots for f in fills)  # what the engine booked while running
            in_session_venue = (await venue.positions())[SPOT]
        finally:
            stream.cancel()
            await asyncio.gather(stream, return_exceptions=True)
            await venue.close()
            ledger.close()  # no end_run: the run did not end cleanly (a crash)

        # ---- while the bot is down: more buys it never sees
        exchange = build_exchange(cfg)
        try:
            await exchange.load_markets()
            for _ in range(BUYS_WHILE_DEAD):
                await exchange.create_order(SPOT, "market", "buy", 0.002)
        finally:
            await exchange.close()

        # ---- the restart: the ledger, the venue's fill history and the venue's balance
        venue = CcxtVenue(cfg)
        try:
            await venue.connect()
            with Ledger(path) as ledger:
                state = ledger.recover(venue.name, fill_session(venue))
                spot, perp = venue.instruments[SPOT], next(i for s, i in venue.instruments.items() if s != SPOT)
                engine = build_engine(load_settings(CONFIG, {}), spot, perp, start_ns=server.now_ns())
                recovery = await reconcile(engine, venue, state, ledger)
                after = ledger.recover(venue.name, fill_session(venue))
        finally:
            await venue.close()
        trades = venue_trades(server)
        wallet = await wallet_btc(server)

    lot = Decimal("0.00001")
    commissions = [Decimal(f"{t.commission:.8f}") for t in trades]  # as the venue stated each one
    assert all(t.commission_asset == "BTC" for t in trades) and len(trades) >= BUYS_SEEN + BUYS_WHILE_DEAD
    assert all(c % lot for c in commissions)  # every fee is finer than the lot: the case in point
    assert recovery["fills_recovered"] == len(trades) - len(fills) >= BUYS_WHILE_DEAD
    venue_lots = recovery["positions_lots"][SPOT]
    assert venue_lots == int(((wallet - Decimal(ALLOCATION)) / lot).to_integral_value())
    assert recovery["mismatches"] == {}  # today's code: {"ledger_lots": 6000, "venue_lots": 5994}
    assert recovery["ledger_positions_lots"][SPOT] == venue_lots
    # exactly, not to the lot: the sizes the venue executed less the BTC it withheld
    assert after.positions_base[SPOT] == wallet - Decimal(ALLOCATION)
    assert after.fees_paid["BTC"] == sum(commissions)
    assert after.spot_balances["BTC"] == wallet - Decimal(ALLOCATION)
    # and while it ran, the engine's lots followed the wallet too (no per-fill rounding)
    assert in_session == in_session_venue
