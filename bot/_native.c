/*
 * bot._native: the two per-price-level loops of a replay, in C.
 *
 * A recorded Binance depth diff carries ~60 price levels; the replay converts each level's decimal
 * strings to integer ticks and lots once, then applies it to two order books (the simulated venue's
 * and the engine's). In Python those loops are most of a replay's cost. Each function here has a
 * reference implementation in Python that it must match exactly:
 *
 *   grid_levels  <->  bot.venues.binance.BinanceParser._levels_py
 *   apply_side   <->  bot.core.book.apply_side_py
 *
 * Each handles only the plain, common shape of its input and returns None for anything else, so the
 * caller runs the Python reference: odd input (an exponent, a non-string, a huge number) behaves
 * exactly as without this module, errors included. tests/unit/test_native.py checks both against
 * their references, on the recorded data and on generated input. Building this module is optional
 * (setup.py): without a C compiler the bot runs the same code paths in Python, only slower.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

/* 10^0 .. 10^22: every one is exact in a double. */
static const double POW10[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};
#define MAX_EXACT_MANTISSA (1ULL << 53)

/*
 * round(float(text) / step), as Python computes it, for a plain decimal `-?digits[.digits]`.
 * Returns a new int, or NULL *without an exception set* when the text is not plain or too long for
 * the exact path below (the caller then falls back to Python).
 *
 * Why this equals Python: a mantissa below 2^53 and a power of ten up to 10^22 are both exact
 * doubles, so one IEEE division gives the correctly rounded value of the decimal, which is what
 * float(text) returns (Clinger's fast path). The division by `step` and the round-half-even below
 * are then the same double operations Python's `round(x)` performs.
 */
static PyObject *grid_steps(PyObject *text, double step)
{
    if (!PyUnicode_CheckExact(text) || PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) {
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(text);
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
        Py_UCS1 c = s[i];
        if (c >= '0' && c <= '9') {
            any = 1;
            if (point) {
                decimals++;
            }
            if (mantissa == 0 && c == '0') {
                continue;
            }
            if (++digits > 16) {
                return NULL; /* may not fit the exact path: let Python decide */
            }
            mantissa = mantissa * 10 + (unsigned long long)(c - '0');
        }
        else if (c == '.' && !point) {
            point = 1;
        }
        else {
            return NULL;
        }
    }
    if (!any || decimals > 22 || mantissa >= MAX_EXACT_MANTISSA) {
        return NULL;
    }
    double value = (double)mantissa / POW10[decimals];
    if (negative) {
        value = -value;
    }
    double x = value / step;
    if (!isfinite(x)) {
        return NULL;
    }
    /* float.__round__ with no ndigits: nearest, ties to even */
    double rounded = round(x);
    if (fabs(x - rounded) == 0.5) {
        rounded = 2.0 * round(x / 2.0);
    }
    return PyLong_FromDouble(rounded);
}

/*
 * grid_levels(pairs, tick_step, lot_step) -> tuple[tuple[int, int], ...] | None
 *
 * `pairs` as decoded from Binance JSON: a list of [price text, quantity text] lists. Returns the
 * levels in integer ticks and lots, or None when any pair is not two plain decimal strings.
 */
static PyObject *grid_levels(PyObject *self, PyObject *args)
{
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
        PyObject *level = PyTuple_New(2);
        if (level == NULL) {
            Py_DECREF(price);
            Py_DECREF(size);
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(level, 0, price);
        PyTuple_SET_ITEM(level, 1, size);
        PyTuple_SET_ITEM(out, i, level);
    }
    return out;

not_plain_or_error:
    if (PyErr_Occurred()) { /* out of memory in PyLong_FromDouble */
        Py_DECREF(out);
        return NULL;
    }
not_plain:
    Py_DECREF(out); /* PyTuple_New filled it with NULLs, which dealloc skips */
    Py_RETURN_NONE;
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
            int had = PyDict_Contains(book, price_obj);
            if (had < 0) {
                return NULL;
            }
            if (had) {
                if (PyDict_DelItem(book, price_obj) < 0) {
                    return NULL;
                }
                if (price == best) {
                    dirty = 1;
                }
            }
        }
        else {
            ok = 0;
        }
    }
    return Py_BuildValue("(LOO)", best, dirty ? Py_True : Py_False, ok ? Py_True : Py_False);
}

static PyMethodDef methods[] = {
    {"grid_levels", grid_levels, METH_VARARGS,
     "grid_levels(pairs, tick_step, lot_step) -> levels in ticks and lots, or None if not plain"},
    {"apply_side", apply_side, METH_VARARGS,
     "apply_side(book, levels, best, dirty, is_bid) -> (best, dirty, ok), or None if not plain"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bot._native", "C versions of the replay's per-level loops.", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void)
{
    return PyModule_Create(&module);
}
