-- A schema version 2 ledger as mmbot at 2eaa66d (session 5 main) wrote it, dumped with sqlite3 iterdump.
BEGIN TRANSACTION;
CREATE TABLE deal_events (     -- the token-loan deal's life (bot/core/deal.py DealEvent)
    id            INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL,
    ts_ns         INTEGER NOT NULL,
    kind          TEXT NOT NULL,        -- started|sold|exercised|lapsed|loan_returned|lp_deposited
    quantity_base REAL NOT NULL,
    price_px      REAL NOT NULL,
    strike_px     REAL,                 -- exercised/lapsed: the tranche
    amount_quote  REAL NOT NULL
);
CREATE TABLE deal_pool (       -- the simulated DEX pool's latest state (bot/core/lp.py PoolState)
    id          INTEGER PRIMARY KEY CHECK (id = 1),   -- one row: the state now, not a history
    run_id      TEXT NOT NULL,
    ts_ns       INTEGER NOT NULL,
    state_json  TEXT NOT NULL           -- reserves, our share, fees, swap counts, recent trade ids
);
CREATE TABLE fills (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    ts_venue_ns INTEGER NOT NULL,
    ts_recv_ns  INTEGER NOT NULL,
    symbol      TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    fill_id     TEXT NOT NULL,
    side        TEXT NOT NULL,
    price_ticks INTEGER NOT NULL,
    size_lots   INTEGER NOT NULL,
    price_px    REAL NOT NULL,          -- quote per base (price_ticks * tick_size)
    size_base   REAL NOT NULL,          -- base units (size_lots * lot_size)
    fee_quote   REAL NOT NULL,          -- positive = paid
    liquidity   TEXT NOT NULL,
    leaves_lots INTEGER NOT NULL,
    tag         TEXT NOT NULL,          -- quote|hedge|recovered|'' (from the order's PlaceOrder.tag)
    venue       TEXT NOT NULL DEFAULT '',
    venue_session TEXT NOT NULL DEFAULT '',
    UNIQUE (venue, venue_session, symbol, fill_id)
);
INSERT INTO "fills" VALUES(1,'old',2000,2000,'BTC/USDT','q1','T0','buy',6000000,200,60000.0,0.002,0.12,'maker',0,'quote','ccxt:binance:demo','');
INSERT INTO "fills" VALUES(2,'old',2001,2001,'BTC/USDT','q1','T1','buy',6000000,200,60000.0,0.002,0.12,'maker',0,'quote','ccxt:binance:demo','');
INSERT INTO "fills" VALUES(3,'old',2002,2002,'BTC/USDT:USDT','h1','T2','sell',600000,2,60000.0,0.002,0.066,'maker',0,'hedge','ccxt:binance:demo','');
CREATE TABLE funding (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT NOT NULL,
    ts_venue_ns  INTEGER NOT NULL,
    symbol       TEXT NOT NULL,
    rate         REAL NOT NULL,
    amount_quote REAL NOT NULL,         -- > 0: received
    venue        TEXT NOT NULL DEFAULT ''
);
CREATE TABLE hedges (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    ts_ns       INTEGER NOT NULL,
    symbol      TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    side        TEXT NOT NULL,
    order_type  TEXT NOT NULL,
    price_ticks INTEGER NOT NULL,
    size_lots   INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    venue       TEXT NOT NULL DEFAULT ''
);
INSERT INTO "hedges" VALUES(1,'old',1002,'BTC/USDT:USDT','h1','sell','ioc',600000,2,'','ccxt:binance:demo');
CREATE TABLE instruments (
    run_id    TEXT NOT NULL,
    symbol    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    base      TEXT NOT NULL,
    quote     TEXT NOT NULL,
    tick_size REAL NOT NULL,            -- quote per base
    lot_size  REAL NOT NULL,            -- base units
    maker_fee REAL NOT NULL,
    taker_fee REAL NOT NULL,
    venue     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, symbol)
);
INSERT INTO "instruments" VALUES('old','BTC/USDT','spot','BTC','USDT',0.01,1.0e-05,0.0,0.0,'ccxt:binance:demo');
INSERT INTO "instruments" VALUES('old','BTC/USDT:USDT','perp','BTC','USDT',0.1,0.001,0.0,0.0,'ccxt:binance:demo');
CREATE TABLE order_events (
    id             INTEGER PRIMARY KEY,
    run_id         TEXT NOT NULL,
    ts_ns          INTEGER NOT NULL,    -- commands: when sent; events: local receive time
    ts_venue_ns    INTEGER,             -- events only
    kind           TEXT NOT NULL,       -- place|cancel|cancel_all|accepted|rejected|canceled|cancel_rejected
    symbol         TEXT,                -- NULL for cancel_all on every symbol
    client_id      TEXT,
    side           TEXT,
    price_ticks    INTEGER,
    size_lots      INTEGER,
    order_type     TEXT,
    post_only      INTEGER,
    reduce_only    INTEGER,
    tag            TEXT,
    venue_order_id TEXT,
    reason         TEXT,
    venue          TEXT NOT NULL DEFAULT ''
);
INSERT INTO "order_events" VALUES(1,'old',1001,NULL,'place','BTC/USDT','q1','buy',6000000,200,'limit',1,0,'quote',NULL,'','ccxt:binance:demo');
INSERT INTO "order_events" VALUES(2,'old',1002,NULL,'place','BTC/USDT:USDT','h1','sell',600000,2,'ioc',0,0,'hedge',NULL,'','ccxt:binance:demo');
CREATE TABLE pnl (
    id              INTEGER PRIMARY KEY,
    run_id          TEXT NOT NULL,
    ts_ns           INTEGER NOT NULL,
    total_quote     REAL NOT NULL,      -- sum of the components
    components_json TEXT NOT NULL       -- {"spread": .., "inventory": .., "fees": -.., ...}
);
CREATE TABLE quotes (
    id             INTEGER PRIMARY KEY,
    run_id         TEXT NOT NULL,
    ts_ns          INTEGER NOT NULL,
    symbol         TEXT NOT NULL,
    mid_px         REAL NOT NULL,
    bid_px         REAL,                -- NULL: side not quoted
    ask_px         REAL,
    reservation_px REAL,
    spread_bps     REAL,                -- (ask - bid) / mid * 1e4; NULL unless both sides quoted
    inventory_base REAL NOT NULL,
    net_delta_base REAL NOT NULL,
    risk_state     TEXT NOT NULL,
    venue          TEXT NOT NULL DEFAULT ''
);
CREATE TABLE runs (
    run_id       TEXT PRIMARY KEY,
    started_ns   INTEGER NOT NULL,
    ended_ns     INTEGER,               -- NULL: the run did not end cleanly (or is still running)
    venue        TEXT NOT NULL DEFAULT '',
    venue_session TEXT NOT NULL DEFAULT '',  -- the namespace of the venue's fill ids (see above)
    config_json  TEXT,
    summary_json TEXT
);
INSERT INTO "runs" VALUES('old',1000,3000,'ccxt:binance:demo','',NULL,'{"fills": 3}');
CREATE INDEX order_events_client ON order_events (client_id);
COMMIT;
PRAGMA user_version=2;
