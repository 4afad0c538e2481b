/*
 * bot._native: the per-line and per-level loops of a replay, in C.
 *
 * A recorded Binance depth diff carries ~60 price levels. The replay decodes every line, converts each
 * level's decimal strings to integer ticks and lots, and applies each level to two order books (the
 * simulated venue's and the engine's). In Python those loops were most of a replay's cost. Each
 * function here has a Python reference that it must match exactly:
 *
 *   decode_lines                <->  bot.venues.binance.BinanceParser._parse_line_py (orjson + dicts)
 *   grid_levels                 <->  bot.venues.binance.BinanceParser._levels_py
 *   apply_side                  <->  bot.core.book.apply_side_py
 *   apply_delta                 <->  OrderBook._apply_delta's two apply_side calls and best-price walks
 *   extreme_price               <->  max(book) / min(book)
 *   suffix_sums                 <->  bot.core.sorted_pairs.suffix_sums_py (itertools.accumulate)
 *   float_sum                   <->  sum(values[lo:hi]) (Python 3.11's float loop)
 *   fast_init                   <->  the class's own dataclass __init__ (frozen, slotted events)
 *   fast_tuple_init             <->  the NamedTuple's generated __new__ (bot.core's per-requote records)
 *   fast_native_init            <->  the dataclass's generated __init__, as a tp_init (mypyc-built classes)
 *   plain_class_getattr         <->  EnumType's attribute lookup, without its members-map __getattr__
 *   decode_events               <->  bot.venues.event_cache._decode_py (the event cache's columns)
 *
 * Each handles only the plain, common shape of its input and returns None for anything else (a line:
 * hands it back), so the caller runs the Python reference: odd input (whitespace, escapes, an
 * exponent, a non-string, a huge number) behaves exactly as without this module, errors and drop
 * counters included. tests/unit/test_native.py checks each against its reference on every recorded
 * line and on generated and mutated input. Building this module is optional (setup.py): without a C
 * compiler the bot runs the same code paths in Python, only slower.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <structmember.h>

/* 10^0 .. 10^22: every one is exact in a double. */
static const double POW10[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};
#define MAX_EXACT_MANTISSA (1ULL << 53)

/*
 * round(float(text) / step), as Python computes it, for a plain decimal `-?digits[.digits]` of `n`
 * bytes. Returns 0 and sets *out; or -1 when the text is not plain or too long for the exact path
 * below (the caller then falls back to Python).
 *
 * Why this equals Python: a mantissa below 2^53 and a power of ten up to 10^22 are both exact
 * doubles, so one IEEE division gives the correctly rounded value of the decimal, which is what
 * float(text) returns (Clinger's fast path). The division by `step` and the round-half-even below
 * are then the same double operations Python's `round(x)` performs (IEEE-754 double arithmetic, as on
 * every 64-bit target; not x87 extended precision).
 */
static int decimal_steps(const unsigned char *s, Py_ssize_t n, double step, double *out)
{
    Py_ssize_t i = 0;
    int negative = 0;
    if (n > 0 && s[0] == '-') {
        negative = 1;
        i = 1;
    }
    unsigned long long mantissa = 0;
    int digits = 0;   /* digits read, leading zeros excluded */
    int decimals = 0; /* digits read after the point */
    int point = 0;
    int any = 0;
    for (; i < n; i++) {
        unsigned char c = s[i];
        if (c >= '0' && c <= '9') {
            any = 1;
            if (point) {
                decimals++;
            }
            if (mantissa == 0 && c == '0') {
                continue;
            }
            if (++digits > 16) {
                return -1; /* may not fit the exact path: let Python decide */
            }
            mantissa = mantissa * 10 + (unsigned long long)(c - '0');
        }
        else if (c == '.' && !point) {
            point = 1;
        }
        else {
            return -1;
        }
    }
    if (!any || decimals > 22 || mantissa >= MAX_EXACT_MANTISSA) {
        return -1;
    }
    double value = (double)mantissa / POW10[decimals];
    if (negative) {
        value = -value;
    }
    double x = value / step;
    if (!isfinite(x)) {
        return -1;
    }
    /* float.__round__ with no ndigits: nearest, ties to even */
    double rounded = round(x);
    if (fabs(x - rounded) == 0.5) {
        rounded = 2.0 * round(x / 2.0);
    }
    *out = rounded;
    return 0;
}

/* A rounded double (from decimal_steps) as an int: the common case without PyLong_FromDouble. */
static PyObject *steps_to_int(double rounded)
{
    if (rounded > -9.2e18 && rounded < 9.2e18) {
        return PyLong_FromLongLong((long long)rounded);
    }
    return PyLong_FromDouble(rounded);
}

/* decimal_steps of a str; a new int, or NULL without an exception set when not plain. */
/* (price, size) as a new 2-tuple that takes both references; NULL if either is NULL (the other is
 * released) or on out of memory. The garbage collector does not track it: a tuple of two ints can never
 * be part of a reference cycle. CPython untracks such tuples itself, but only at the first collection
 * that scans them, and a replay holds ~150,000 of them at a time (an event cache chunk): profiled,
 * collections scanning them were most of decoding's cost. */
static PyObject *level_pair(PyObject *price, PyObject *size)
{
    PyObject *level = price != NULL && size != NULL ? PyTuple_New(2) : NULL;
    if (level == NULL) {
        Py_XDECREF(price);
        Py_XDECREF(size);
        return NULL;
    }
    PyTuple_SET_ITEM(level, 0, price);
    PyTuple_SET_ITEM(level, 1, size);
    PyObject_GC_UnTrack(level);
    return level;
}

static PyObject *grid_steps(PyObject *text, double step)
{
    if (!PyUnicode_CheckExact(text) || PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) {
        return NULL;
    }
    double rounded;
    if (decimal_steps(PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text), step, &rounded) < 0) {
        return NULL;
    }
    return steps_to_int(rounded);
}

/*
 * grid_levels(pairs, tick_step, lot_step) -> tuple[tuple[int, int], ...] | None
 *
 * `pairs` as decoded from Binance JSON: a list of [price text, quantity text] lists. Returns the
 * levels in integer ticks and lots, or None when any pair is not two plain decimal strings.
 */
static PyObject *grid_levels(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *pairs;
    double tick, lot;
    if (!PyArg_ParseTuple(args, "Odd:grid_levels", &pairs, &tick, &lot)) {
        return NULL;
    }
    if (!PyList_CheckExact(pairs) || !(tick > 0) || !(lot > 0)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyList_GET_SIZE(pairs);
    PyObject *out = PyTuple_New(n);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        if (!PyList_CheckExact(pair) || PyList_GET_SIZE(pair) != 2) {
            goto not_plain;
        }
        PyObject *price = grid_steps(PyList_GET_ITEM(pair, 0), tick);
        if (price == NULL) {
            goto not_plain_or_error;
        }
        PyObject *size = grid_steps(PyList_GET_ITEM(pair, 1), lot);
        if (size == NULL) {
            Py_DECREF(price);
            goto not_plain_or_error;
        }
        PyObject *level = level_pair(price, size);
        if (level == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, level);
    }
    return out;

not_plain_or_error:
    if (PyErr_Occurred()) { /* out of memory */
        Py_DECREF(out);
        return NULL;
    }
not_plain:
    Py_DECREF(out); /* PyTuple_New filled it with NULLs, which dealloc skips */
    Py_RETURN_NONE;
}

/* book.pop(price, None) in one hash lookup: 1 if the level was there, 0 if not, -1 on error. */
static int pop_level(PyObject *book, PyObject *price)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyDict_Pop(book, price, NULL);
#else
    PyObject *old = _PyDict_Pop(book, price, Py_None);
    if (old == NULL) {
        return -1;
    }
    int had = old != Py_None; /* sizes are ints, never None */
    Py_DECREF(old);
    return had;
#endif
}

/*
 * apply_side(book, levels, best, dirty, is_bid) -> (best, dirty, ok) | None
 *
 * Sets (size > 0) or deletes (size == 0) `levels` in one side of an order book, a dict of price
 * ticks -> size lots, and moves the side's best-price bound: see bot.core.book.apply_side_py, which
 * this mirrors line for line. Returns None, touching nothing, unless every level is a tuple of two
 * exact ints that fit in 64 bits.
 */
static PyObject *apply_side(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *book, *levels, *best_obj;
    int dirty, is_bid;
    if (!PyArg_ParseTuple(args, "O!OOpp:apply_side", &PyDict_Type, &book, &levels, &best_obj, &dirty, &is_bid)) {
        return NULL;
    }
    if (!PyTuple_CheckExact(levels) || !PyLong_CheckExact(best_obj)) {
        Py_RETURN_NONE;
    }
    int best_overflow = 0;
    long long best = PyLong_AsLongLongAndOverflow(best_obj, &best_overflow);
    if (best_overflow) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(levels);
    /* check the whole input first: falling back half way would leave the book half updated */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *level = PyTuple_GET_ITEM(levels, i);
        if (!PyTuple_CheckExact(level) || PyTuple_GET_SIZE(level) != 2 ||
            !PyLong_CheckExact(PyTuple_GET_ITEM(level, 0)) || !PyLong_CheckExact(PyTuple_GET_ITEM(level, 1))) {
            Py_RETURN_NONE;
        }
        int overflow = 0;
        (void)PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(level, 0), &overflow);
        if (overflow) {
            Py_RETURN_NONE;
        }
        (void)PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(level, 1), &overflow);
        if (overflow) {
            Py_RETURN_NONE;
        }
    }
    int ok = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *level = PyTuple_GET_ITEM(levels, i);
        PyObject *price_obj = PyTuple_GET_ITEM(level, 0);
        PyObject *size_obj = PyTuple_GET_ITEM(level, 1);
        long long price = PyLong_AsLongLong(price_obj);
        long long size = PyLong_AsLongLong(size_obj);
        if (price <= 0) {
            ok = 0;
        }
        else if (size > 0) {
            if (PyDict_SetItem(book, price_obj, size_obj) < 0) {
                return NULL;
            }
            if (is_bid ? price >= best : price <= best) {
                best = price;
                dirty = 0;
            }
        }
        else if (size == 0) {
            int had = pop_level(book, price_obj);
            if (had < 0) {
                return NULL;
            }
            if (had && price == best) {
                dirty = 1;
            }
        }
        else {
            ok = 0;
        }
    }
    return Py_BuildValue("(LOO)", best, dirty ? Py_True : Py_False, ok ? Py_True : Py_False);
}

/*
 * extreme_price(book, is_bid, empty) -> int | None
 *
 * max(book, default=empty) for bids, min(book, default=empty) for asks: the full scan the book falls
 * back to when its best level was deleted and the next one is not within a short walk. Comparing
 * keys as C integers is ~5x cheaper than max()'s rich comparisons; None (the caller then runs
 * max/min) unless every key is an exact int that fits in 64 bits.
 */
static PyObject *extreme_price(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *book, *empty;
    int is_bid;
    if (!PyArg_ParseTuple(args, "O!pO:extreme_price", &PyDict_Type, &book, &is_bid, &empty)) {
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value, *best_key = NULL;
    long long best = 0;
    while (PyDict_Next(book, &pos, &key, &value)) {
        if (!PyLong_CheckExact(key)) {
            Py_RETURN_NONE;
        }
        int overflow = 0;
        long long price = PyLong_AsLongLongAndOverflow(key, &overflow);
        if (overflow) {
            Py_RETURN_NONE;
        }
        if (best_key == NULL || (is_bid ? price > best : price < best)) {
            best = price;
            best_key = key;
        }
    }
    return Py_NewRef(best_key != NULL ? best_key : empty);
}

/* Every level a tuple of two exact ints that fit in 64 bits (what apply_side checks first). */
static int plain_levels(PyObject *levels)
{
    if (!PyTuple_CheckExact(levels)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(levels); i++) {
        PyObject *level = PyTuple_GET_ITEM(levels, i);
        if (!PyTuple_CheckExact(level) || PyTuple_GET_SIZE(level) != 2 ||
            !PyLong_CheckExact(PyTuple_GET_ITEM(level, 0)) || !PyLong_CheckExact(PyTuple_GET_ITEM(level, 1))) {
            return 0;
        }
        int overflow = 0;
        (void)PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(level, 0), &overflow);
        if (overflow) {
            return 0;
        }
        (void)PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(level, 1), &overflow);
        if (overflow) {
            return 0;
        }
    }
    return 1;
}

/*
 * A side's best-price hint (bot.core.book: one bytearray per side, HINT_SLOTS int64s): [valid, m,
 * h_1 .. h_m], the side's prices from its best down to h_m (bids; up, for asks) as of the last full
 * scan, kept whole since: while valid, every price of the side at or better than h_m is among the h_i
 * (a price newly set there is inserted; a deleted one stays until it is looked at). So when the best
 * level goes, the first h_i still in the side is the new best, which is what the walk and the scan
 * find (max(bids) / min(asks)); an exhausted hint means a scan, which rebuilds it. Anything else that
 * changes the side (a snapshot, the Python path) zeroes it: invalid.
 */
#define HINT_PRICES 16
#define HINT_SLOTS (2 + HINT_PRICES)

/* The hint's int64s, or NULL when `obj` is not a hint bytearray. */
static long long *hint_of(PyObject *obj)
{
    if (!PyByteArray_CheckExact(obj) || PyByteArray_GET_SIZE(obj) != (Py_ssize_t)(HINT_SLOTS * sizeof(long long))) {
        return NULL;
    }
    return (long long *)PyByteArray_AS_STRING(obj);
}

/* at or better than the hint's last price: bids higher, asks lower */
static int hint_covers(const long long *hint, long long price, int is_bid)
{
    long long last = hint[1 + hint[1]];
    return is_bid ? price >= last : price <= last;
}

/* A price newly set in the side, at or better than the hint's last one: into its place (ties keep
 * their order; the hint full, its last price goes and the next one is the new last). */
static void hint_insert(long long *hint, long long price, int is_bid)
{
    long long *h = hint + 2;
    long long m = hint[1];
    long long i = 0;
    while (i < m && (is_bid ? h[i] > price : h[i] < price)) {
        i++;
    }
    if (m == HINT_PRICES) {
        m--; /* the last one drops out: it is worse than every one kept, and the last kept covers it */
    }
    for (long long j = m; j > i; j--) {
        h[j] = h[j - 1];
    }
    h[i] = price;
    hint[1] = m + 1;
}

/* apply_side's loop on plain levels; -1 on error. `hint` (NULL: none) follows the new prices. */
static int apply_levels(PyObject *book, PyObject *levels, long long *best, int *dirty, int is_bid, int *ok,
                        long long *hint)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(levels); i++) {
        PyObject *level = PyTuple_GET_ITEM(levels, i);
        PyObject *price_obj = PyTuple_GET_ITEM(level, 0);
        PyObject *size_obj = PyTuple_GET_ITEM(level, 1);
        long long price = PyLong_AsLongLong(price_obj);
        long long size = PyLong_AsLongLong(size_obj);
        if (price <= 0) {
            *ok = 0;
        }
        else if (size > 0) {
            Py_ssize_t before = PyDict_GET_SIZE(book);
            if (PyDict_SetItem(book, price_obj, size_obj) < 0) {
                return -1;
            }
            if (hint != NULL && hint[0] && PyDict_GET_SIZE(book) > before && hint_covers(hint, price, is_bid)) {
                hint_insert(hint, price, is_bid);
            }
            if (is_bid ? price >= *best : price <= *best) {
                *best = price;
                *dirty = 0;
            }
        }
        else if (size == 0) {
            int had = pop_level(book, price_obj);
            if (had < 0) {
                return -1;
            }
            if (had && price == *best) {
                *dirty = 1;
            }
        }
        else {
            *ok = 0;
        }
    }
    return 0;
}

#define WALK_STEPS 64 /* bot.core.book._WALK_STEPS */

/* A dirty side's best, as bot.core.book._walk_down / _walk_up then _extreme find it: the first price
 * present in a walk of WALK_STEPS grid steps from the bound, else a full scan (`empty` when the side is
 * empty). 0 with *best set; 1 when a key is not a plain int (the side stays dirty: Python resolves it);
 * -1 on error. */
static int resolve_best(PyObject *book, long long bound, int is_bid, long long empty, long long *best, long long *hint)
{
    if (hint != NULL && hint[0]) { /* the first hinted price still in the side */
        long long *h = hint + 2;
        long long m = hint[1], i = 0;
        while (i < m) {
            PyObject *key = PyLong_FromLongLong(h[i]);
            if (key == NULL) {
                return -1;
            }
            int has = PyDict_Contains(book, key);
            Py_DECREF(key);
            if (has < 0) {
                return -1;
            }
            if (has) {
                break;
            }
            i++;
        }
        if (i < m) {
            *best = h[i];
            for (long long j = i; j < m; j++) { /* the ones gone are dropped */
                h[j - i] = h[j];
            }
            hint[1] = m - i;
            return 0;
        }
        hint[0] = 0; /* exhausted: the scan below rebuilds it */
    }
    long long price = is_bid ? bound - 1 : bound + 1;
    for (int step = 0; step < WALK_STEPS; step++) {
        PyObject *key = PyLong_FromLongLong(price);
        if (key == NULL) {
            return -1;
        }
        int has = PyDict_Contains(book, key);
        Py_DECREF(key);
        if (has < 0) {
            return -1;
        }
        if (has) {
            *best = price;
            return 0;
        }
        price += is_bid ? -1 : 1;
    }
    /* the scan: the best HINT_PRICES prices, best first (the first is max(bids) / min(asks)) */
    long long top[HINT_PRICES];
    long long m = 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(book, &pos, &key, &value)) {
        if (!PyLong_CheckExact(key)) {
            if (hint != NULL) {
                hint[0] = 0;
            }
            return 1;
        }
        int overflow = 0;
        long long p = PyLong_AsLongLongAndOverflow(key, &overflow);
        if (overflow) {
            if (hint != NULL) {
                hint[0] = 0;
            }
            return 1;
        }
        if (m == HINT_PRICES && (is_bid ? p <= top[m - 1] : p >= top[m - 1])) {
            continue; /* not among the best: the usual case, one comparison */
        }
        long long i = m < HINT_PRICES ? m : m - 1;
        while (i > 0 && (is_bid ? top[i - 1] < p : top[i - 1] > p)) {
            top[i] = top[i - 1];
            i--;
        }
        top[i] = p;
        if (m < HINT_PRICES) {
            m++;
        }
    }
    *best = m > 0 ? top[0] : empty;
    if (hint != NULL) {
        hint[0] = m > 0;
        hint[1] = m;
        for (long long i = 0; i < m; i++) {
            hint[2 + i] = top[i];
        }
    }
    return 0;
}

/*
 * apply_delta(bids, asks, bid_levels, ask_levels, bid, bid_dirty, ask, ask_dirty, no_ask, bid_hint, ask_hint)
 *     -> (bid, bid_dirty, ask, ask_dirty, ok) | None
 *
 * One delta's two sides, as bot.core.book.OrderBook._apply_delta applies them through apply_side: the
 * bids, then (when they were valid) the asks; then each side whose best level went is resolved at once
 * (the walk and the scan of _walk_down / _walk_up; the delta's own crossed check reads both bests right
 * after, so resolving now finds what that read would). One call instead of two, and the walk in C; a
 * side whose hint (above) is valid takes its new best from it, without walking or scanning (the scans
 * of a side of ~1,200 levels were a third of the book's cost). None, touching nothing, unless every
 * level of both sides is plain (as apply_side) and both hints are hint bytearrays.
 */
static PyObject *apply_delta(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 11 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[1]) || !PyLong_CheckExact(args[4]) ||
        !PyLong_CheckExact(args[6]) || !PyLong_CheckExact(args[8])) {
        Py_RETURN_NONE;
    }
    PyObject *bids = args[0], *asks = args[1];
    long long *bid_hint = hint_of(args[9]), *ask_hint = hint_of(args[10]);
    if (bid_hint == NULL || ask_hint == NULL) {
        Py_RETURN_NONE;
    }
    if (!plain_levels(args[2]) || !plain_levels(args[3])) {
        Py_RETURN_NONE;
    }
    int overflow = 0;
    long long bid = PyLong_AsLongLongAndOverflow(args[4], &overflow);
    if (overflow) {
        Py_RETURN_NONE;
    }
    long long ask = PyLong_AsLongLongAndOverflow(args[6], &overflow);
    if (overflow) {
        Py_RETURN_NONE;
    }
    long long no_ask = PyLong_AsLongLongAndOverflow(args[8], &overflow);
    if (overflow) {
        Py_RETURN_NONE;
    }
    int bid_dirty = PyObject_IsTrue(args[5]), ask_dirty = PyObject_IsTrue(args[7]);
    if (bid_dirty < 0 || ask_dirty < 0) {
        return NULL;
    }
    int ok = 1;
    if (apply_levels(bids, args[2], &bid, &bid_dirty, 1, &ok, bid_hint) < 0) {
        return NULL;
    }
    if (ok && apply_levels(asks, args[3], &ask, &ask_dirty, 0, &ok, ask_hint) < 0) {
        return NULL;
    }
    if (ok) {
        if (bid_dirty) {
            int r = resolve_best(bids, bid, 1, 0, &bid, bid_hint);
            if (r < 0) {
                return NULL;
            }
            bid_dirty = r == 1;
        }
        if (ask_dirty) {
            int r = resolve_best(asks, ask, 0, no_ask, &ask, ask_hint);
            if (r < 0) {
                return NULL;
            }
            ask_dirty = r == 1;
        }
    }
    return Py_BuildValue("(LOLOO)", bid, bid_dirty ? Py_True : Py_False, ask, ask_dirty ? Py_True : Py_False,
                         ok ? Py_True : Py_False);
}

/* --------------------------------------------------------------------------------------------- */
/* the arrival fit's sums over its sorted window (bot/core/estimators.py)                          */
/* --------------------------------------------------------------------------------------------- */

/* The blocks of a bot.core.sorted_pairs.SortedPairs column: a list of lists of exact floats, none empty.
 * Their total length into *n; 0 on success, -1 (no exception set) if not that shape. */
static int block_total(PyObject *blocks, Py_ssize_t *n)
{
    Py_ssize_t total = 0;
    for (Py_ssize_t b = 0; b < PyList_GET_SIZE(blocks); b++) {
        PyObject *block = PyList_GET_ITEM(blocks, b);
        if (!PyList_CheckExact(block) || PyList_GET_SIZE(block) == 0) {
            return -1;
        }
        total += PyList_GET_SIZE(block);
    }
    *n = total;
    return 0;
}

/*
 * suffix_sums(blocks, starts) -> [sum(weights[i:]) for i in starts] | None
 *
 * `weights` is the concatenation of `blocks` (a list of non-empty lists). Each sum is taken as
 * itertools.accumulate(reversed(weights)) takes it: the last weight first, then each earlier weight
 * added to the running double, one IEEE addition at a time, so every result is the reference's value
 * bit for bit (bot.core.sorted_pairs.suffix_sums_py). One backward pass serves all the starts; the
 * reference builds a list of every suffix (a float object each) and reads a few. None, touching
 * nothing, unless `starts` is non-decreasing exact ints in [0, len(weights)) and every weight summed
 * is an exact float.
 */
static PyObject *suffix_sums(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *blocks, *starts;
    if (!PyArg_ParseTuple(args, "O!O!:suffix_sums", &PyList_Type, &blocks, &PyList_Type, &starts)) {
        return NULL;
    }
    Py_ssize_t n;
    if (block_total(blocks, &n) < 0) {
        Py_RETURN_NONE;
    }
    Py_ssize_t m = PyList_GET_SIZE(starts);
    Py_ssize_t previous = 0;
    for (Py_ssize_t j = 0; j < m; j++) {
        PyObject *start = PyList_GET_ITEM(starts, j);
        if (!PyLong_CheckExact(start)) {
            Py_RETURN_NONE;
        }
        Py_ssize_t i = PyLong_AsSsize_t(start);
        if (i == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        if (i < previous || i >= n) {
            Py_RETURN_NONE;
        }
        previous = i;
    }
    PyObject *out = PyList_New(m);
    if (out == NULL || m == 0) {
        return out;
    }
    /* g: the global index of the weight last added; (b, k): where it is */
    Py_ssize_t g = n - 1;
    Py_ssize_t b = PyList_GET_SIZE(blocks) - 1;
    PyObject *block = PyList_GET_ITEM(blocks, b);
    Py_ssize_t k = PyList_GET_SIZE(block) - 1;
    PyObject *w = PyList_GET_ITEM(block, k);
    if (!PyFloat_CheckExact(w)) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    double total = PyFloat_AS_DOUBLE(w);
    for (Py_ssize_t j = m - 1; j >= 0; j--) {
        Py_ssize_t start = PyLong_AsSsize_t(PyList_GET_ITEM(starts, j));
        while (g > start) {
            g--;
            if (--k < 0) {
                block = PyList_GET_ITEM(blocks, --b);
                k = PyList_GET_SIZE(block) - 1;
            }
            w = PyList_GET_ITEM(block, k);
            if (!PyFloat_CheckExact(w)) {
                Py_DECREF(out);
                Py_RETURN_NONE;
            }
            total += PyFloat_AS_DOUBLE(w);
        }
        PyObject *value = PyFloat_FromDouble(total);
        if (value == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, j, value);
    }
    return out;
}

/*
 * float_sum(blocks, lo, hi) -> sum(values[lo:hi]) | None
 *
 * `values` is the concatenation of `blocks` (a list of non-empty lists). What Python 3.11's sum()
 * computes for a run of exact floats: 0 + the first (0.0 + x), then each next one added to a C double
 * in order; without the flat list, the slice and the iterator. None unless 0 <= lo < hi <= len(values),
 * every item in the range is an exact float, and this is Python < 3.12 (3.12's sum() compensates its
 * rounding: another result).
 */
static PyObject *float_sum(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *blocks;
    Py_ssize_t lo, hi;
    if (!PyArg_ParseTuple(args, "O!nn:float_sum", &PyList_Type, &blocks, &lo, &hi)) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030C0000
    Py_RETURN_NONE;
#else
    Py_ssize_t n;
    if (block_total(blocks, &n) < 0 || lo < 0 || hi <= lo || hi > n) {
        Py_RETURN_NONE;
    }
    double total = 0.0;
    Py_ssize_t g = 0; /* the global index of the first item of block b */
    for (Py_ssize_t b = 0; b < PyList_GET_SIZE(blocks) && g < hi; b++) {
        PyObject *block = PyList_GET_ITEM(blocks, b);
        Py_ssize_t size = PyList_GET_SIZE(block);
        Py_ssize_t first = lo > g ? lo - g : 0;
        Py_ssize_t last = hi - g < size ? hi - g : size;
        for (Py_ssize_t k = first; k < last; k++) {
            PyObject *v = PyList_GET_ITEM(block, k);
            if (!PyFloat_CheckExact(v)) {
                Py_RETURN_NONE;
            }
            total += PyFloat_AS_DOUBLE(v);
        }
        g += size;
    }
    return PyFloat_FromDouble(total);
#endif
}

/* --------------------------------------------------------------------------------------------- */
/* decode_lines: recorded Binance diff, trade and ticker lines, without building their JSON objects */
/* --------------------------------------------------------------------------------------------- */

/* A cursor over the line; every reader returns 0 on success, -1 when the input is not the plain
 * shape it handles (then the whole line goes to the Python reference, which decides). */
typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} Cursor;

static int expect(Cursor *c, unsigned char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 0;
    }
    return -1;
}

/* A string of printable ASCII without escapes (what orjson decodes to the same bytes); its body. */
static int read_string(Cursor *c, const unsigned char **start, Py_ssize_t *len)
{
    if (expect(c, '"') < 0) {
        return -1;
    }
    const unsigned char *s = c->p;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p < 0x20 || *c->p > 0x7e || *c->p == '\\') {
            return -1;
        }
        c->p++;
    }
    if (c->p >= c->end) {
        return -1;
    }
    *start = s;
    *len = c->p - s;
    c->p++;
    return 0;
}

/* A JSON integer (no fraction or exponent: those are floats) of at most 18 digits. */
static int read_int(Cursor *c, long long *out)
{
    int negative = expect(c, '-') == 0;
    const unsigned char *s = c->p;
    long long value = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        value = value * 10 + (*c->p - '0');
        c->p++;
    }
    Py_ssize_t n = c->p - s;
    if (n == 0 || n > 18 || (n > 1 && *s == '0')) {
        return -1;
    }
    if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E')) {
        return -1;
    }
    *out = negative ? -value : value;
    return 0;
}

static int read_literal(Cursor *c, const char *word)
{
    for (; *word; word++) {
        if (expect(c, (unsigned char)*word) < 0) {
            return -1;
        }
    }
    return 0;
}

static int read_bool(Cursor *c, int *out)
{
    if (c->p < c->end && *c->p == 't') {
        *out = 1;
        return read_literal(c, "true");
    }
    *out = 0;
    return read_literal(c, "false");
}

/* Any scalar value we do not use: a plain string, an integer, true, false or null. */
static int skip_scalar(Cursor *c)
{
    const unsigned char *start;
    Py_ssize_t len;
    long long ignored;
    if (c->p >= c->end) {
        return -1;
    }
    switch (*c->p) {
    case '"':
        return read_string(c, &start, &len);
    case 't':
        return read_literal(c, "true");
    case 'f':
        return read_literal(c, "false");
    case 'n':
        return read_literal(c, "null");
    default:
        return read_int(c, &ignored);
    }
}

/* (ticks, lots): a new 2-tuple, or NULL with an exception set. */
static PyObject *level_tuple(double price, double qty)
{
    PyObject *p = steps_to_int(price);
    return level_pair(p, p == NULL ? NULL : steps_to_int(qty));
}

#define LEVELS_ON_STACK 256

/* [["price","qty"], ...] -> a new tuple of (ticks, lots), or NULL (with an exception set only on
 * out of memory). Levels are collected on the stack (a diff rarely has more than a few hundred),
 * then in a list past that. */
static PyObject *read_levels(Cursor *c, double tick, double lot)
{
    PyObject *stack[LEVELS_ON_STACK];
    Py_ssize_t n = 0;
    PyObject *overflow = NULL; /* a list of every level once the stack is full */
    PyObject *out = NULL;
    if (expect(c, '[') < 0) {
        return NULL;
    }
    if (expect(c, ']') == 0) {
        return PyTuple_New(0);
    }
    for (;;) {
        const unsigned char *price_text, *qty_text;
        Py_ssize_t price_len, qty_len;
        double price, qty;
        if (expect(c, '[') < 0 || read_string(c, &price_text, &price_len) < 0 || expect(c, ',') < 0 ||
            read_string(c, &qty_text, &qty_len) < 0 || expect(c, ']') < 0 ||
            decimal_steps(price_text, price_len, tick, &price) < 0 ||
            decimal_steps(qty_text, qty_len, lot, &qty) < 0) {
            goto done;
        }
        PyObject *level = level_tuple(price, qty);
        if (level == NULL) {
            goto done;
        }
        if (n < LEVELS_ON_STACK) {
            stack[n++] = level;
        }
        else {
            if (overflow == NULL && (overflow = PyList_New(0)) == NULL) {
                Py_DECREF(level);
                goto done;
            }
            int appended = PyList_Append(overflow, level);
            Py_DECREF(level);
            if (appended < 0) {
                goto done;
            }
        }
        if (expect(c, ']') == 0) {
            break;
        }
        if (expect(c, ',') < 0) {
            goto done;
        }
    }
    Py_ssize_t extra = overflow == NULL ? 0 : PyList_GET_SIZE(overflow);
    out = PyTuple_New(n + extra);
    if (out != NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            PyTuple_SET_ITEM(out, i, stack[i]); /* the tuple takes the references */
        }
        for (Py_ssize_t i = 0; i < extra; i++) {
            PyObject *level = PyList_GET_ITEM(overflow, i);
            Py_INCREF(level);
            PyTuple_SET_ITEM(out, n + i, level);
        }
        n = 0;
        PyObject_GC_UnTrack(out); /* only untracked (ticks, lots) tuples in it: no cycle */
    }
done:
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_DECREF(stack[i]);
    }
    Py_XDECREF(overflow);
    return out;
}

enum { KIND_NONE, KIND_DEPTH, KIND_TRADE, KIND_TICKER };

typedef struct {
    int kind, has_e;
    long long E, T, U, u, pu, t;
    int has_E, has_T, has_U, has_u, has_pu, has_t, has_m, has_p, has_q;
    int m;
    double p, q;
    PyObject *b, *a;         /* a diff's levels (owned; NULL unless the last "b" / "a" was a list) */
    int has_bt, has_at;      /* a ticker's best bid / ask: the last "b" / "a" was a plain decimal string */
    int has_bq, has_aq;      /* and its sizes "B" / "A" */
    double bt, at, bq, aq;
} Data;

/* A ticker's "b" / "B" / "a" / "A": *has is 1 when the value is a plain decimal string (then *value
 * is in steps), 0 for any other scalar, which only matters if the message turns out to be a ticker. */
static int read_decimal_field(Cursor *c, double step, double *value, int *has)
{
    const unsigned char *text;
    Py_ssize_t len;
    *has = 0;
    if (c->p < c->end && *c->p == '"') {
        if (read_string(c, &text, &len) < 0) {
            return -1;
        }
        *has = decimal_steps(text, len, step, value) == 0;
        return 0;
    }
    return skip_scalar(c);
}

static int key_is(const unsigned char *key, Py_ssize_t len, const char *name)
{
    return (Py_ssize_t)strlen(name) == len && memcmp(key, name, len) == 0;
}

/* The integer fields of a message: where each one's value goes, and the flag saying it was there. */
typedef struct {
    const char *name;
    long long *value;
    int *has;
} IntField;

/* The inner "data" object of a combined-stream message. */
static int read_data(Cursor *c, Data *d, double tick, double lot)
{
    if (expect(c, '{') < 0) {
        return -1;
    }
    if (expect(c, '}') == 0) {
        return 0;
    }
    const IntField ints[] = {
        {"E", &d->E, &d->has_E}, {"T", &d->T, &d->has_T},   {"U", &d->U, &d->has_U},
        {"u", &d->u, &d->has_u}, {"pu", &d->pu, &d->has_pu}, {"t", &d->t, &d->has_t},
    };
    const Py_ssize_t n_ints = sizeof ints / sizeof ints[0];
    for (;;) {
        const unsigned char *key, *text;
        Py_ssize_t len, text_len;
        if (read_string(c, &key, &len) < 0 || expect(c, ':') < 0) {
            return -1;
        }
        Py_ssize_t i = 0;
        while (i < n_ints && !key_is(key, len, ints[i].name)) {
            i++;
        }
        int r;
        if (i < n_ints) {
            r = read_int(c, ints[i].value);
            *ints[i].has = 1;
        }
        else if (key_is(key, len, "e")) {
            r = read_string(c, &text, &text_len);
            if (r == 0) {
                d->kind = key_is(text, text_len, "depthUpdate") ? KIND_DEPTH
                          : key_is(text, text_len, "trade")    ? KIND_TRADE
                          : key_is(text, text_len, "bookTicker") ? KIND_TICKER
                                                                : KIND_NONE;
                d->has_e = 1;
            }
        }
        else if (key_is(key, len, "m")) {
            r = read_bool(c, &d->m), d->has_m = 1;
        }
        else if (key_is(key, len, "p")) {
            r = read_string(c, &text, &text_len);
            r = r < 0 ? r : decimal_steps(text, text_len, tick, &d->p);
            d->has_p = 1;
        }
        else if (key_is(key, len, "q")) {
            r = read_string(c, &text, &text_len);
            r = r < 0 ? r : decimal_steps(text, text_len, lot, &d->q);
            d->has_q = 1;
        }
        else if (key_is(key, len, "b") || key_is(key, len, "a")) {
            PyObject **slot = *key == 'b' ? &d->b : &d->a;
            int *has_text = *key == 'b' ? &d->has_bt : &d->has_at;
            Py_CLEAR(*slot); /* a repeated key: the last one wins, as in any JSON decoder */
            *has_text = 0;
            if (c->p < c->end && *c->p == '[') { /* a diff's levels */
                *slot = read_levels(c, tick, lot);
                r = *slot == NULL ? -1 : 0;
            }
            else { /* a ticker's best price, or a trade's order id */
                r = read_decimal_field(c, tick, *key == 'b' ? &d->bt : &d->at, has_text);
            }
        }
        else if (key_is(key, len, "B")) {
            r = read_decimal_field(c, lot, &d->bq, &d->has_bq);
        }
        else if (key_is(key, len, "A")) {
            r = read_decimal_field(c, lot, &d->aq, &d->has_aq);
        }
        else {
            r = skip_scalar(c);
        }
        if (r < 0) {
            return -1;
        }
        if (expect(c, '}') == 0) {
            return 0;
        }
        if (expect(c, ',') < 0) {
            return -1;
        }
    }
}

/* The top level: {"stream": "...", "data": {...}} in either order, nothing else. */
static int read_message(Cursor *c, Data *d, double tick, double lot)
{
    int has_data = 0;
    if (expect(c, '{') < 0) {
        return -1;
    }
    for (;;) {
        const unsigned char *key, *text;
        Py_ssize_t len, text_len;
        if (read_string(c, &key, &len) < 0 || expect(c, ':') < 0) {
            return -1;
        }
        if (key_is(key, len, "stream")) {
            if (read_string(c, &text, &text_len) < 0) {
                return -1;
            }
        }
        else if (key_is(key, len, "data") && !has_data) {
            if (read_data(c, d, tick, lot) < 0) {
                return -1;
            }
            has_data = 1;
        }
        else {
            return -1;
        }
        if (expect(c, '}') == 0) {
            return has_data && c->p == c->end ? 0 : -1;
        }
        if (expect(c, ',') < 0) {
            return -1;
        }
    }
}

/*
 * decode_bytes(line, tick_step, lot_step): one line of decode_lines.
 *
 * A recorded line `<receive ns> {"stream": ..., "data": {...}}` holding a diff-depth, trade or ticker message
 * in the plain shape Binance sends (no whitespace, no escapes, integer ids and times, decimal
 * strings), decoded straight from its bytes:
 *
 *   (1, recv_ns, E, U, u, pu or None, bids, asks)      a depthUpdate, levels in ticks and lots
 *   (2, recv_ns, T, t, price_ticks, size_lots, m)      a trade (t: the id as an int)
 *   (3, recv_ns, u, bid_ticks, bid_lots, ask_ticks, ask_lots, venue_ms or 0)   a bookTicker
 *
 * None for every other line (snapshots, anything unusual or malformed), which the Python
 * reference (orjson + BinanceParser.parse_message) then decodes or drops with its reason.
 */
/* Returns a new tuple (above), a new reference to None when not plain, or NULL on error. */
static PyObject *decode_bytes(const unsigned char *buf, Py_ssize_t len, double tick, double lot)
{
    PyObject *out = NULL;
    Data d;
    memset(&d, 0, sizeof d);
    Cursor c = {buf, buf + len};
    unsigned long long recv_ns = 0; /* 19 digits: check it fits a long long */
    const unsigned char *digits = c.p;
    while (c.p < c.end && *c.p >= '0' && *c.p <= '9') {
        recv_ns = recv_ns * 10 + (unsigned long long)(*c.p - '0');
        c.p++;
    }
    if (c.p == digits || c.p - digits > 19 || recv_ns > (unsigned long long)LLONG_MAX || expect(&c, ' ') < 0 ||
        !(tick > 0) || !(lot > 0) || read_message(&c, &d, tick, lot) < 0) {
        goto not_plain;
    }
    if (d.kind == KIND_DEPTH && d.has_E && d.has_U && d.has_u && d.b != NULL && d.a != NULL) {
        PyObject *pu = d.has_pu ? PyLong_FromLongLong(d.pu) : Py_NewRef(Py_None);
        out = Py_BuildValue("(iLLLLNOO)", KIND_DEPTH, (long long)recv_ns, d.E, d.U, d.u, pu, d.b, d.a);
    }
    else if (d.kind == KIND_TRADE && d.has_T && d.has_t && d.has_p && d.has_q && d.has_m) {
        out = Py_BuildValue("(iLLLNNO)", KIND_TRADE, (long long)recv_ns, d.T, d.t, steps_to_int(d.p),
                            steps_to_int(d.q), d.m ? Py_True : Py_False);
    }
    else if ((d.kind == KIND_TICKER || (!d.has_e && d.has_u && d.has_bq)) && d.has_u && d.has_bt && d.has_at &&
             d.has_bq && d.has_aq) { /* spot's tickers have no "e": the reference's rule */
        /* venue time: "T" or else "E" (futures), each only when non-zero; else the receive time */
        long long venue_ms = d.has_T && d.T ? d.T : (d.has_E && d.E ? d.E : 0);
        out = Py_BuildValue("(iLLNNNNL)", KIND_TICKER, (long long)recv_ns, d.u, steps_to_int(d.bt), steps_to_int(d.bq),
                            steps_to_int(d.at), steps_to_int(d.aq), venue_ms);
    }
    else {
        goto not_plain;
    }
    goto done;

not_plain:
    if (!PyErr_Occurred()) {
        out = Py_NewRef(Py_None);
    }
done:
    Py_XDECREF(d.b);
    Py_XDECREF(d.a);
    return out;
}

/* line.find(b'@bookTicker"', 0, 80) >= 0: bot.venues.binance.is_book_ticker_line */
static int is_ticker_line(const char *buf, Py_ssize_t len)
{
    static const char needle[] = "@bookTicker\"";
    const Py_ssize_t n = sizeof needle - 1;
    Py_ssize_t limit = len < 80 ? len : 80;
    for (Py_ssize_t i = 0; i + n <= limit; i++) {
        if (buf[i] == '@' && memcmp(buf + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * decode_lines(lines, tick_step, lot_step, skip_tickers) -> (items, tickers_skipped)
 *
 * decode_bytes over a list of recorded lines (bytes), in order: each item is the decoded tuple, or
 * the line itself (bytes) where decode_bytes answers None, for the Python path. With
 * skip_tickers, bookTicker lines (is_ticker_line) are left out and counted instead.
 */
static PyObject *decode_lines(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *lines;
    double tick, lot;
    int skip_tickers;
    if (!PyArg_ParseTuple(args, "O!ddp:decode_lines", &PyList_Type, &lines, &tick, &lot, &skip_tickers)) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(lines);
    Py_ssize_t skipped = 0;
    PyObject *items = PyList_New(0);
    if (items == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        if (!PyBytes_CheckExact(line)) {
            PyErr_SetString(PyExc_TypeError, "decode_lines: every line must be bytes");
            Py_DECREF(items);
            return NULL;
        }
        const char *buf = PyBytes_AS_STRING(line);
        Py_ssize_t len = PyBytes_GET_SIZE(line);
        if (skip_tickers && is_ticker_line(buf, len)) {
            skipped++;
            continue;
        }
        PyObject *item = decode_bytes((const unsigned char *)buf, len, tick, lot);
        if (item == NULL) {
            Py_DECREF(items);
            return NULL;
        }
        if (item == Py_None) {
            Py_DECREF(item);
            item = Py_NewRef(line);
        }
        int appended = PyList_Append(items, item);
        Py_DECREF(item);
        if (appended < 0) {
            Py_DECREF(items);
            return NULL;
        }
    }
    return Py_BuildValue("(Nn)", items, skipped);
}

/*
 * fast_init(cls, names, defaults) -> None
 *
 * Constructing a frozen, slotted dataclass runs its generated Python __init__, which stores each field
 * through object.__setattr__: ~9,000 instructions for a 7-field event, and a replay builds ~30,000 of
 * them (trades, diffs, timers, order events, commands): ~15 % of the whole replay. This installs a C
 * constructor as the class's own vectorcall (`cls(...)`, positional or keyword): it fills the same
 * slots with the same objects, defaults included, with no __init__ frame. Anything it does not handle
 * (too many arguments, an unknown or repeated keyword, a missing required field: the error cases)
 * goes to the class's normal constructor, type.__call__, which gives the normal result or error.
 * Subclasses are never affected (a type's vectorcall is not inherited, and the class is checked).
 *
 * `names`: the fields in __init__ order (each a slot of `cls` itself); `defaults`: the defaults of the
 * last len(defaults) fields. The caller (bot.domain) checks the class qualifies: every field in
 * __init__, plain defaults only (no default_factory), no __post_init__, __init__ the dataclass's own.
 */
#define FAST_MAX_FIELDS 16
#define FAST_MAX_CLASSES 48

typedef struct {
    PyTypeObject *type;
    Py_ssize_t n, n_required;
    Py_ssize_t offsets[FAST_MAX_FIELDS]; /* -1: a tuple's items (fast_tuple_init) */
    PyObject *names[FAST_MAX_FIELDS];    /* interned str */
    PyObject *defaults[FAST_MAX_FIELDS]; /* NULL: required */
} FastClass;

static FastClass fast_classes[FAST_MAX_CLASSES];
static int n_fast_classes;

/* type.__call__(cls, *args, **kwargs): the class's own __init__ (its result, or its TypeError). */
static PyObject *slow_construct(PyObject *cls, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *tuple = PyTuple_New(nargs);
    if (tuple == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(tuple, i, args[i]);
    }
    PyObject *kwargs = NULL;
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nkw > 0) {
        kwargs = PyDict_New();
        if (kwargs == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        for (Py_ssize_t j = 0; j < nkw; j++) {
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, j), args[nargs + j]) < 0) {
                Py_DECREF(tuple);
                Py_DECREF(kwargs);
                return NULL;
            }
        }
    }
    PyObject *out = PyType_Type.tp_call(cls, tuple, kwargs);
    Py_DECREF(tuple);
    Py_XDECREF(kwargs);
    return out;
}

static PyObject *fast_construct(PyObject *cls, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    FastClass *c = NULL;
    for (int i = 0; i < n_fast_classes; i++) {
        if ((PyObject *)fast_classes[i].type == cls) {
            c = &fast_classes[i];
            break;
        }
    }
    if (c == NULL || nargs > c->n) {
        return slow_construct(cls, args, nargs, kwnames);
    }
    PyObject *values[FAST_MAX_FIELDS] = {NULL};
    for (Py_ssize_t i = 0; i < nargs; i++) {
        values[i] = args[i];
    }
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t j = 0; j < nkw; j++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, j);
        Py_ssize_t k = -1;
        for (Py_ssize_t f = 0; f < c->n; f++) { /* keyword names are interned, as are the fields' */
            if (c->names[f] == name) {
                k = f;
                break;
            }
        }
        if (k < 0) {
            for (Py_ssize_t f = 0; f < c->n; f++) {
                if (PyUnicode_Check(name) && PyUnicode_Compare(c->names[f], name) == 0) {
                    k = f;
                    break;
                }
            }
        }
        if (k < 0 || values[k] != NULL) { /* unknown or given twice: the normal TypeError */
            return slow_construct(cls, args, nargs, kwnames);
        }
        values[k] = args[nargs + j];
    }
    for (Py_ssize_t f = 0; f < c->n; f++) {
        if (values[f] == NULL) {
            if (c->defaults[f] == NULL) { /* a required field missing: the normal TypeError */
                return slow_construct(cls, args, nargs, kwnames);
            }
            values[f] = c->defaults[f];
        }
    }
    if (c->offsets[0] < 0) { /* a NamedTuple: what tuple.__new__(cls, values) builds */
        PyObject *obj = c->type->tp_alloc(c->type, c->n);
        if (obj == NULL) {
            return NULL;
        }
        for (Py_ssize_t f = 0; f < c->n; f++) {
            Py_INCREF(values[f]);
            PyTuple_SET_ITEM(obj, f, values[f]);
        }
        return obj;
    }
    PyObject *obj = c->type->tp_alloc(c->type, 0); /* what object.__new__ does for these classes */
    if (obj == NULL) {
        return NULL;
    }
    for (Py_ssize_t f = 0; f < c->n; f++) {
        Py_INCREF(values[f]);
        *(PyObject **)((char *)obj + c->offsets[f]) = values[f];
    }
    return obj;
}

static PyObject *fast_init(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *cls, *names, *defaults;
    if (!PyArg_ParseTuple(args, "O!O!O!:fast_init", &PyType_Type, &cls, &PyTuple_Type, &names, &PyTuple_Type,
                          &defaults)) {
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)cls;
    Py_ssize_t n = PyTuple_GET_SIZE(names), nd = PyTuple_GET_SIZE(defaults);
    for (int i = 0; i < n_fast_classes; i++) {
        if (fast_classes[i].type == type) {
            Py_RETURN_NONE; /* already installed */
        }
    }
    if (n > FAST_MAX_FIELDS || nd > n || n_fast_classes >= FAST_MAX_CLASSES) {
        PyErr_SetString(PyExc_ValueError, "fast_init: too many fields, defaults or classes");
        return NULL;
    }
    if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE) || type->tp_new != PyBaseObject_Type.tp_new ||
        type->tp_vectorcall != NULL || type->tp_alloc != PyType_GenericAlloc) {
        PyErr_Format(PyExc_ValueError, "fast_init: %s is not a plain Python class", type->tp_name);
        return NULL;
    }
    FastClass c = {type, n, n - nd, {0}, {NULL}, {NULL}};
    for (Py_ssize_t f = 0; f < n; f++) {
        PyObject *name = PyTuple_GET_ITEM(names, f);
        if (!PyUnicode_CheckExact(name)) {
            PyErr_SetString(PyExc_TypeError, "fast_init: field names are str");
            return NULL;
        }
        PyObject *descr = PyDict_GetItemWithError(type->tp_dict, name); /* borrowed */
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type) ||
            ((PyDescrObject *)descr)->d_type != type ||
            ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX ||
            (((PyMemberDescrObject *)descr)->d_member->flags & READONLY)) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_ValueError, "fast_init: %R is not a slot of %s", name, type->tp_name);
            }
            return NULL;
        }
        c.offsets[f] = ((PyMemberDescrObject *)descr)->d_member->offset;
    }
    for (Py_ssize_t f = 0; f < n; f++) {
        PyObject *name = PyTuple_GET_ITEM(names, f);
        Py_INCREF(name);
        PyUnicode_InternInPlace(&name);
        c.names[f] = name;
        if (f >= n - nd) {
            c.defaults[f] = PyTuple_GET_ITEM(defaults, f - (n - nd));
            Py_INCREF(c.defaults[f]);
        }
    }
    Py_INCREF(type);
    fast_classes[n_fast_classes++] = c;
    type->tp_vectorcall = fast_construct;
    Py_RETURN_NONE;
}

/* The fields' names (interned) and defaults into `c`; 0, or -1 with an exception set. */
static int fast_fields(FastClass *c, PyObject *names, PyObject *defaults)
{
    Py_ssize_t n = PyTuple_GET_SIZE(names), nd = PyTuple_GET_SIZE(defaults);
    if (n < 1 || n > FAST_MAX_FIELDS || nd > n) {
        PyErr_SetString(PyExc_ValueError, "fast constructor: 1 to 16 fields, at most one default each");
        return -1;
    }
    c->n = n;
    c->n_required = n - nd;
    for (Py_ssize_t f = 0; f < n; f++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(names, f))) {
            PyErr_SetString(PyExc_TypeError, "fast constructor: field names are str");
            return -1;
        }
    }
    for (Py_ssize_t f = 0; f < n; f++) {
        PyObject *name = PyTuple_GET_ITEM(names, f);
        Py_INCREF(name);
        PyUnicode_InternInPlace(&name);
        c->names[f] = name;
        c->defaults[f] = NULL;
        if (f >= n - nd) {
            c->defaults[f] = PyTuple_GET_ITEM(defaults, f - (n - nd));
            Py_INCREF(c->defaults[f]);
        }
    }
    return 0;
}

/*
 * fast_tuple_init(cls, names, defaults) -> None
 *
 * The same for a typing.NamedTuple (the risk decision, the model quote, a desired order: one each per
 * requote): its generated __new__ is a Python lambda, `_tuple_new(_cls, (a, b, ...))`, one interpreted
 * call per construction. The C constructor builds the same tuple subclass with the same items, defaults
 * included; anything else (the error cases) goes to type.__call__, i.e. that __new__. The caller
 * (bot.domain.install_fast_constructors) checks the class is a plain NamedTuple.
 */
static PyObject *fast_tuple_init(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *cls, *names, *defaults;
    if (!PyArg_ParseTuple(args, "O!O!O!:fast_tuple_init", &PyType_Type, &cls, &PyTuple_Type, &names, &PyTuple_Type,
                          &defaults)) {
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)cls;
    for (int i = 0; i < n_fast_classes; i++) {
        if (fast_classes[i].type == type) {
            Py_RETURN_NONE; /* already installed */
        }
    }
    if (n_fast_classes >= FAST_MAX_CLASSES) {
        PyErr_SetString(PyExc_ValueError, "fast_tuple_init: too many classes");
        return NULL;
    }
    if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE) || !PyType_IsSubtype(type, &PyTuple_Type) ||
        type->tp_basicsize != PyTuple_Type.tp_basicsize || type->tp_itemsize != PyTuple_Type.tp_itemsize ||
        type->tp_vectorcall != NULL || type->tp_alloc != PyType_GenericAlloc) {
        PyErr_Format(PyExc_ValueError, "fast_tuple_init: %s is not a plain tuple subclass", type->tp_name);
        return NULL;
    }
    FastClass c = {type, 0, 0, {0}, {NULL}, {NULL}};
    if (fast_fields(&c, names, defaults) < 0) {
        return NULL;
    }
    c.offsets[0] = -1;
    Py_INCREF(type);
    fast_classes[n_fast_classes++] = c;
    type->tp_vectorcall = fast_construct;
    Py_RETURN_NONE;
}

/*
 * fast_native_init(cls, names, defaults, frozen, post_init) -> None
 *
 * A dataclass whose instances are built by code that calls the type's tp_init (mypyc-compiled code
 * constructs its own dataclasses so: allocate, then tp_init) still runs the generated Python __init__:
 * one interpreted call and one object.__setattr__ (frozen) or attribute store per field, ~5,000-9,000
 * instructions for the engine's model inputs, orders and fit results. This installs a C tp_init doing
 * the same: the arguments bound to the fields in __init__ order (defaults for the ones not given),
 * each stored as __init__ stores it (object.__setattr__ for a frozen class, setattr otherwise), in
 * field order, then `self.__post_init__()` when the class has one. Anything it does not bind (too many
 * arguments, an unknown or repeated keyword, a missing required field) runs the class's own __init__,
 * so errors are the normal ones. The caller checks every field is a plain __init__ argument.
 */
typedef struct {
    PyTypeObject *type;
    initproc own_init; /* the class's tp_init before: its generated __init__ */
    int frozen, post_init;
    FastClass fields; /* names and defaults only */
} NativeInit;

#define NATIVE_MAX_CLASSES 32
static NativeInit native_inits[NATIVE_MAX_CLASSES];
static int n_native_inits;
static PyObject *str_post_init;

static int native_init(PyObject *obj, PyObject *args, PyObject *kwargs)
{
    NativeInit *c = NULL;
    for (int i = 0; i < n_native_inits; i++) {
        if (native_inits[i].type == Py_TYPE(obj)) {
            c = &native_inits[i];
            break;
        }
    }
    if (c == NULL) { /* a subclass that inherited this slot: its base's own __init__ */
        for (int i = 0; i < n_native_inits; i++) {
            if (PyObject_TypeCheck(obj, native_inits[i].type)) {
                return native_inits[i].own_init(obj, args, kwargs);
            }
        }
        PyErr_SetString(PyExc_SystemError, "fast_native_init: unknown class");
        return -1;
    }
    FastClass *f = &c->fields;
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    if (nargs > f->n) {
        return c->own_init(obj, args, kwargs);
    }
    PyObject *values[FAST_MAX_FIELDS] = {NULL};
    for (Py_ssize_t i = 0; i < nargs; i++) {
        values[i] = PyTuple_GET_ITEM(args, i);
    }
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(kwargs, &pos, &key, &value)) {
            Py_ssize_t k = -1;
            for (Py_ssize_t j = 0; j < f->n; j++) {
                if (f->names[j] == key) {
                    k = j;
                    break;
                }
            }
            if (k < 0) {
                for (Py_ssize_t j = 0; j < f->n; j++) {
                    if (PyUnicode_Check(key) && PyUnicode_Compare(f->names[j], key) == 0) {
                        k = j;
                        break;
                    }
                }
            }
            if (k < 0 || values[k] != NULL) {
                PyErr_Clear();
                return c->own_init(obj, args, kwargs);
            }
            values[k] = value;
        }
    }
    for (Py_ssize_t j = 0; j < f->n; j++) {
        if (values[j] == NULL) {
            if (f->defaults[j] == NULL) {
                return c->own_init(obj, args, kwargs);
            }
            values[j] = f->defaults[j];
        }
    }
    for (Py_ssize_t j = 0; j < f->n; j++) {
        int set = c->frozen ? PyObject_GenericSetAttr(obj, f->names[j], values[j])
                            : PyObject_SetAttr(obj, f->names[j], values[j]);
        if (set < 0) {
            return -1;
        }
    }
    if (c->post_init) {
        PyObject *out = PyObject_CallMethodNoArgs(obj, str_post_init);
        if (out == NULL) {
            return -1;
        }
        Py_DECREF(out);
    }
    return 0;
}

static PyObject *fast_native_init(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *cls, *names, *defaults;
    int frozen, post_init;
    if (!PyArg_ParseTuple(args, "O!O!O!pp:fast_native_init", &PyType_Type, &cls, &PyTuple_Type, &names,
                          &PyTuple_Type, &defaults, &frozen, &post_init)) {
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)cls;
    for (int i = 0; i < n_native_inits; i++) {
        if (native_inits[i].type == type) {
            Py_RETURN_NONE; /* already installed */
        }
    }
    if (n_native_inits >= NATIVE_MAX_CLASSES) {
        PyErr_SetString(PyExc_ValueError, "fast_native_init: too many classes");
        return NULL;
    }
    if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE) || type->tp_init == NULL || type->tp_init == native_init ||
        type->tp_init == PyBaseObject_Type.tp_init) {
        PyErr_Format(PyExc_ValueError, "fast_native_init: %s has no __init__ of its own", type->tp_name);
        return NULL;
    }
    if (str_post_init == NULL && (str_post_init = PyUnicode_InternFromString("__post_init__")) == NULL) {
        return NULL;
    }
    NativeInit c = {type, type->tp_init, frozen, post_init, {type, 0, 0, {0}, {NULL}, {NULL}}};
    if (fast_fields(&c.fields, names, defaults) < 0) {
        return NULL;
    }
    Py_INCREF(type);
    native_inits[n_native_inits++] = c;
    type->tp_init = native_init;
    Py_RETURN_NONE;
}

static PyObject *fast_native_installed(PyObject *self, PyObject *cls)
{
    (void)self;
    return PyBool_FromLong(PyType_Check(cls) && ((PyTypeObject *)cls)->tp_init == native_init);
}

/*
 * plain_class_getattr(meta) -> None
 *
 * Python 3.11's EnumType defines __getattr__ (a deprecated fallback to the members map), so every read
 * of a class attribute of an enum (`Side.BUY`, `OrderState.OPEN`, ~40,000 a replay from compiled
 * code) goes through slot_tp_getattr_hook, which calls type.__getattribute__ through a bound
 * method-wrapper: ~450 instructions instead of ~100. For an EnumType subclass whose enums keep every
 * member in their class dict (bot.domain checks), that fallback never finds anything the class dict
 * does not: this gives the metaclass type's own attribute lookup. (Assigning __getattr__ or
 * __getattribute__ on the metaclass later resets the slot, as for any type.)
 */
static PyObject *plain_class_getattr(PyObject *self, PyObject *meta)
{
    (void)self;
    if (!PyType_Check(meta) || !PyType_IsSubtype((PyTypeObject *)meta, &PyType_Type) ||
        !(((PyTypeObject *)meta)->tp_flags & Py_TPFLAGS_HEAPTYPE) || (PyTypeObject *)meta == &PyType_Type) {
        PyErr_SetString(PyExc_ValueError, "plain_class_getattr: a metaclass of our own");
        return NULL;
    }
    ((PyTypeObject *)meta)->tp_getattro = PyType_Type.tp_getattro;
    Py_RETURN_NONE;
}

static PyObject *fast_constructed(PyObject *self, PyObject *cls)
{
    (void)self;
    for (int i = 0; i < n_fast_classes; i++) {
        if ((PyObject *)fast_classes[i].type == cls) {
            return PyBool_FromLong(((PyTypeObject *)cls)->tp_vectorcall == fast_construct);
        }
    }
    Py_RETURN_FALSE;
}

/* --------------------------------------------------------------------------------------------- */
/* the event cache's columns back to events (bot/venues/event_cache.py)                           */
/* --------------------------------------------------------------------------------------------- */

/* A column of the event cache: a C-contiguous buffer of `itemsize`-byte integers. 0, or -1 (no exception
 * set, the view released) if the object is not that. */
static int column_view(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        return -1;
    }
    const char *fmt = view->format != NULL ? view->format : "";
    if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@') {
        fmt++;
    }
    /* signed integers only: what numpy's int8 / int32 / int64 columns export */
    if (view->itemsize != itemsize || view->ndim != 1 || fmt[0] == '\0' || fmt[1] != '\0' ||
        strchr("bhilq", fmt[0]) == NULL) {
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

#define DECODE_COLUMNS 12

/* (price, size) tuples of `n` levels from index `at` of the level columns. */
static PyObject *decode_levels(const long long *px, const long long *sz, Py_ssize_t at, Py_ssize_t n)
{
    PyObject *levels = PyTuple_New(n);
    if (levels == NULL) {
        return NULL;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *p = PyLong_FromLongLong(px[at + j]);
        PyObject *level = level_pair(p, p != NULL ? PyLong_FromLongLong(sz[at + j]) : NULL);
        if (level == NULL) {
            Py_DECREF(levels);
            return NULL;
        }
        PyTuple_SET_ITEM(levels, j, level);
    }
    PyObject_GC_UnTrack(levels); /* it holds only untracked tuples (level_pair): no cycle either */
    return levels;
}

/*
 * decode_events(columns, start, end, level_at, trade_ids, trade_at, symbol, venue, sides, classes)
 *     -> ([(now_ns, event), ...], level_at, trade_at) | None
 *
 * Rows start..end of an event cache file as events: bot.venues.event_cache._decode_py, which this
 * mirrors line for line. `columns`: the tuple (kind, now_ns, ts_venue_ns, ts_recv_ns, a, b, c, has_prev,
 * n_bids, n_asks, level_px, level_sz) of numpy arrays (int8 kind and has_prev, int32 level counts,
 * int64 the rest); `classes`: (TradePrint, BookDelta, BookSnapshot), each called with the positional
 * arguments the Python decoder gives it (so bot._native.fast_init's constructor builds them when
 * installed). `level_at`, `trade_at`: where the rows' levels and trade ids start. Returns None, having
 * built nothing that stays, when a column is not of that shape or a row points outside its columns or
 * holds a side code other than 0 or 1: the Python decoder then gives its own result or error.
 */
static PyObject *decode_events(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *columns, *trade_ids, *symbol, *venue, *sides, *classes;
    Py_ssize_t start, end, level_at, trade_at;
    if (!PyArg_ParseTuple(args, "O!nnnO!nOOO!O!:decode_events", &PyTuple_Type, &columns, &start, &end, &level_at,
                          &PyList_Type, &trade_ids, &trade_at, &symbol, &venue, &PyTuple_Type, &sides, &PyTuple_Type,
                          &classes)) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(columns) != DECODE_COLUMNS || PyTuple_GET_SIZE(sides) != 2 ||
        PyTuple_GET_SIZE(classes) != 3) {
        Py_RETURN_NONE;
    }
    static const Py_ssize_t itemsizes[DECODE_COLUMNS] = {1, 8, 8, 8, 8, 8, 8, 1, 4, 4, 8, 8};
    Py_buffer views[DECODE_COLUMNS];
    int n_views = 0;
    PyObject *out = NULL, *result = NULL;
    for (; n_views < DECODE_COLUMNS; n_views++) {
        if (column_view(PyTuple_GET_ITEM(columns, n_views), &views[n_views], itemsizes[n_views]) < 0) {
            goto done; /* result None */
        }
    }
    const signed char *kind = views[0].buf, *has_prev = views[7].buf;
    const long long *now = views[1].buf, *ts_v = views[2].buf, *ts_r = views[3].buf;
    const long long *a = views[4].buf, *b = views[5].buf, *c = views[6].buf;
    const int *n_bids = views[8].buf, *n_asks = views[9].buf;
    const long long *px = views[10].buf, *sz = views[11].buf;
    Py_ssize_t rows = views[0].len;
    for (int i = 1; i < 10; i++) {
        if (views[i].len / views[i].itemsize != rows) {
            goto done;
        }
    }
    Py_ssize_t n_levels = views[10].len / 8;
    if (views[11].len / 8 != n_levels || start < 0 || end > rows || start > end || level_at < 0 || trade_at < 0) {
        goto done;
    }
    /* check every row first: a None half way would be fine too, but this keeps the loop below simple */
    Py_ssize_t levels_end = level_at, trades_end = trade_at;
    for (Py_ssize_t i = start; i < end; i++) {
        if (kind[i] == 2) {
            if ((c[i] != 0 && c[i] != 1) || n_bids[i] != 0 || n_asks[i] != 0) {
                goto done;
            }
            trades_end++;
        }
        else {
            if (n_bids[i] < 0 || n_asks[i] < 0) {
                goto done;
            }
            levels_end += (Py_ssize_t)n_bids[i] + n_asks[i];
        }
    }
    if (levels_end > n_levels || trades_end > PyList_GET_SIZE(trade_ids)) {
        goto done;
    }
    PyObject *trade_cls = PyTuple_GET_ITEM(classes, 0), *delta_cls = PyTuple_GET_ITEM(classes, 1),
             *snapshot_cls = PyTuple_GET_ITEM(classes, 2);
    out = PyList_New(end - start);
    if (out == NULL) {
        goto done;
    }
    for (Py_ssize_t i = start; i < end; i++) {
        PyObject *event = NULL;
        PyObject *v_a = PyLong_FromLongLong(a[i]);
        PyObject *v_tv = PyLong_FromLongLong(ts_v[i]);
        PyObject *v_tr = PyLong_FromLongLong(ts_r[i]);
        PyObject *v_now = PyLong_FromLongLong(now[i]);
        if (v_a == NULL || v_tv == NULL || v_tr == NULL || v_now == NULL) {
            goto row_failed;
        }
        if (kind[i] == 2) {
            PyObject *v_b = PyLong_FromLongLong(b[i]);
            if (v_b == NULL) {
                goto row_failed;
            }
            PyObject *argv[8] = {symbol, v_a, v_b, PyTuple_GET_ITEM(sides, c[i]), PyList_GET_ITEM(trade_ids, trade_at),
                                 v_tv, v_tr, venue};
            trade_at++;
            event = PyObject_Vectorcall(trade_cls, argv, 8, NULL);
            Py_DECREF(v_b);
        }
        else {
            PyObject *bids = decode_levels(px, sz, level_at, n_bids[i]);
            PyObject *asks = bids != NULL ? decode_levels(px, sz, level_at + n_bids[i], n_asks[i]) : NULL;
            level_at += (Py_ssize_t)n_bids[i] + n_asks[i];
            if (asks != NULL && kind[i] == 1) {
                PyObject *v_b = PyLong_FromLongLong(b[i]);
                PyObject *v_prev = has_prev[i] ? PyLong_FromLongLong(c[i]) : Py_NewRef(Py_None);
                if (v_b != NULL && v_prev != NULL) {
                    PyObject *argv[9] = {symbol, v_a, v_b, bids, asks, v_tv, v_tr, v_prev, venue};
                    event = PyObject_Vectorcall(delta_cls, argv, 9, NULL);
                }
                Py_XDECREF(v_b);
                Py_XDECREF(v_prev);
            }
            else if (asks != NULL) {
                PyObject *argv[7] = {symbol, v_a, bids, asks, v_tv, v_tr, venue};
                event = PyObject_Vectorcall(snapshot_cls, argv, 7, NULL);
            }
            Py_XDECREF(bids);
            Py_XDECREF(asks);
        }
        PyObject *item = event != NULL ? PyTuple_New(2) : NULL;
        if (item == NULL) {
            Py_XDECREF(event);
            goto row_failed;
        }
        Py_DECREF(v_a);
        Py_DECREF(v_tv);
        Py_DECREF(v_tr);
        /* The event holds only ints, strs, None, a Side and untracked level tuples, and is frozen: it
         * cannot be part of a reference cycle, nor can (now_ns, event). Untracked, the collections a
         * chunk's allocations trigger do not scan them (see level_pair). Only when the class is
         * exactly the one expected: an unknown subclass may hold anything. */
        if (Py_IS_TYPE(event, (PyTypeObject *)(kind[i] == 2 ? trade_cls : kind[i] == 1 ? delta_cls : snapshot_cls))) {
            PyObject_GC_UnTrack(event);
        }
        PyTuple_SET_ITEM(item, 0, v_now);
        PyTuple_SET_ITEM(item, 1, event);
        if (!PyObject_GC_IsTracked(event)) {
            PyObject_GC_UnTrack(item);
        }
        PyList_SET_ITEM(out, i - start, item);
        continue;
    row_failed:
        Py_XDECREF(v_a);
        Py_XDECREF(v_tv);
        Py_XDECREF(v_tr);
        Py_XDECREF(v_now);
        Py_CLEAR(out);
        goto done;
    }
    result = Py_BuildValue("(Nnn)", out, level_at, trade_at);
    out = NULL;
done:
    for (int i = 0; i < n_views; i++) {
        PyBuffer_Release(&views[i]);
    }
    if (result == NULL && !PyErr_Occurred()) {
        Py_XDECREF(out);
        Py_RETURN_NONE;
    }
    return result;
}

static PyMethodDef methods[] = {
    {"grid_levels", grid_levels, METH_VARARGS,
     "grid_levels(pairs, tick_step, lot_step) -> levels in ticks and lots, or None if not plain"},
    {"apply_delta", (PyCFunction)(void (*)(void))apply_delta, METH_FASTCALL,
     "apply_delta(bids, asks, bid_levels, ask_levels, bid, bid_dirty, ask, ask_dirty, no_ask, bid_hint, ask_hint) -> "
     "(bid, bid_dirty, ask, ask_dirty, ok) | None"},
    {"apply_side", apply_side, METH_VARARGS,
     "apply_side(book, levels, best, dirty, is_bid) -> (best, dirty, ok), or None if not plain"},
    {"extreme_price", extreme_price, METH_VARARGS,
     "extreme_price(book, is_bid, empty) -> max (bids) or min (asks) key, empty if none; None if not plain"},
    {"suffix_sums", suffix_sums, METH_VARARGS,
     "suffix_sums(blocks, starts) -> [sum(weights[i:]) summed from the end, for i in starts], or None if not plain"},
    {"float_sum", float_sum, METH_VARARGS, "float_sum(blocks, lo, hi) -> sum(values[lo:hi]) as Python 3.11 sums floats, or None"},
    {"decode_lines", decode_lines, METH_VARARGS,
     "decode_lines(lines, tick_step, lot_step, skip_tickers) -> (decoded tuples or lines for Python, tickers skipped)"},
    {"fast_init", fast_init, METH_VARARGS,
     "fast_init(cls, names, defaults) -> None: construct this frozen slotted dataclass in C (same objects)"},
    {"decode_events", decode_events, METH_VARARGS,
     "decode_events(columns, start, end, level_at, trade_ids, trade_at, symbol, venue, sides, classes) -> "
     "(items, level_at, trade_at), or None if not plain"},
    {"fast_constructed", fast_constructed, METH_O, "fast_constructed(cls) -> whether fast_init's constructor is installed"},
    {"plain_class_getattr", plain_class_getattr, METH_O,
     "plain_class_getattr(meta) -> None: the metaclass's class attribute reads without EnumType.__getattr__"},
    {"fast_tuple_init", fast_tuple_init, METH_VARARGS,
     "fast_tuple_init(cls, names, defaults) -> None: build the NamedTuple cls in C"},
    {"fast_native_init", fast_native_init, METH_VARARGS,
     "fast_native_init(cls, names, defaults, frozen, post_init) -> None: the dataclass cls's __init__ in C"},
    {"fast_native_installed", fast_native_installed, METH_O,
     "fast_native_installed(cls) -> whether fast_native_init's __init__ is installed"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bot._native", "C versions of the replay's per-level loops.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    return PyModule_Create(&module);
}
