/*
 * pool_args.h - argument checks too cheap to write in Cython: they read an
 * int's sign and size from CPython's own layout of an exact int, as Cython
 * itself does (CYTHON_USE_PYLONG_INTERNALS), for the timeout fast path.
 */
#ifndef POOL_ARGS_H
#define POOL_ARGS_H
#include <Python.h>

/* o is an exact int (PyLong_CheckExact): 1 if it is >= 0 and below 2**60
 * (at most two 30-bit digits), else 0 (negative, or big: the caller then
 * converts it in full, which raises OverflowError past a double). */
static inline int pool_int_small_nonneg(PyObject *o)
{
#if PY_VERSION_HEX >= 0x030C0000
    /* 3.12+: lv_tag = ndigits << 3 | sign (0 positive, 1 zero, 2 negative) */
    uintptr_t tag = ((PyLongObject *)o)->long_value.lv_tag;
    return (tag & 3) != 2 && (tag >> 3) <= 2;
#else
    /* up to 3.11: ob_size is the digit count, negative for a negative int */
    Py_ssize_t size = Py_SIZE(o);
    return size >= 0 && size <= 2;
#endif
}

#endif /* POOL_ARGS_H */
