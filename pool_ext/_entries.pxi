# C entry points (included by _pool.pyx, after the classes).
#
# A Cython `def` method with an optional argument gets Cython's generic
# argument parsing, which the common call, with no argument, does not need.
# These methods are written against CPython's METH_FASTCALL | METH_KEYWORDS
# convention instead, and installed in their class's dict at import: with no
# argument they go straight to the hot path; anything else goes to one
# out-of-line parser that raises what Python itself would.  Measured with
# benchmarks/callgrind.py (see docs/performance.md).


cdef extern from "Python.h":
    void PyUnicode_InternInPlace(PyObject **s)

# The keyword "timeout" as the interpreter's kwnames carry it: interned, so
# that one pointer comparison recognises it (_timeout_at).
cdef str _TIMEOUT_KEY = "timeout"
cdef PyObject *_timeout_key_p = <PyObject *>_TIMEOUT_KEY
Py_INCREF(_TIMEOUT_KEY)
PyUnicode_InternInPlace(&_timeout_key_p)   # (the interned object, kept for ever)
_TIMEOUT_KEY = <str>_timeout_key_p


cdef object _timeout_arg(PyObject **args, Py_ssize_t nargs, PyObject *kwnames,
                         str name):
    """The only argument of acquire() / lease(), `timeout`, from a
    vectorcall: positional or by keyword, at most once."""
    cdef Py_ssize_t nkw = 0 if kwnames == NULL else PyTuple_GET_SIZE(kwnames)
    if nargs + nkw > 1:
        raise TypeError(f"{name}() takes at most 1 argument ({nargs + nkw} given)")
    if nkw == 1:
        key = <object>PyTuple_GET_ITEM(kwnames, 0)
        if key is not _TIMEOUT_KEY and key != "timeout":   # (interned: `is` first)
            raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
    if nargs + nkw == 1:
        return <object>args[0]    # a keyword's value follows the positional ones
    return None


cdef inline PyObject *_timeout_at(PyObject **args, Py_ssize_t nargs,
                                  PyObject *kwnames) noexcept:
    """The timeout of the common call with one, acquire(t) or
    acquire(timeout=t), borrowed; NULL for any other shape (the full parser
    then decides)."""
    if kwnames == NULL:
        return args[0] if nargs == 1 else NULL
    if (nargs == 0 and PyTuple_GET_SIZE(kwnames) == 1
            and PyTuple_GET_ITEM(kwnames, 0) == _timeout_key_p):   # (both interned)
        return args[0]
    return NULL


cdef object _objectpool_acquire(ObjectPool self, PyObject **args, Py_ssize_t nargs,
                                PyObject *kwnames):
    cdef PyObject *item
    cdef PyObject *timeout
    if nargs == 0 and kwnames == NULL:
        item = _idle_now(self)
        if item != NULL:
            return <object>item
        return self._cold_acquire(None)
    # A timeout costs nothing when an object is free: checked in a few
    # instructions here (in full only if it is not a plain number), and
    # read only by a caller that must wait.
    timeout = _timeout_at(args, nargs, kwnames)
    if timeout != NULL and _timeout_fast_p(timeout):
        item = _idle_now(self)
        if item != NULL:
            return <object>item
    return _objectpool_acquire_args(self, args, nargs, kwnames)


cdef object _objectpool_acquire_args(ObjectPool self, PyObject **args, Py_ssize_t nargs,
                                     PyObject *kwnames):
    timeout = _timeout_arg(args, nargs, kwnames, "acquire")
    _check_timeout(timeout)   # validated even when an object is free
    return self._cold_acquire(timeout)


cdef object _objectpool_lease(ObjectPool self, PyObject **args, Py_ssize_t nargs,
                              PyObject *kwnames):
    if nargs == 0 and kwnames == NULL and not _is_closed(self):
        return _lease_new(self, None)
    return _pool_lease_args(self, args, nargs, kwnames)


cdef object _pool_lease_args(_PoolBase self, PyObject **args, Py_ssize_t nargs,
                             PyObject *kwnames):
    return self._new_lease(_timeout_arg(args, nargs, kwnames, "lease"))


cdef object _bufferpool_acquire(BufferPool self, PyObject **args, Py_ssize_t nargs,
                                PyObject *kwnames):
    if nargs == 0 and kwnames == NULL:
        item = self._take()
        if item is not _NOTHING:
            return item
        return _wait_sync(self, None, -1.0)
    return _bufferpool_acquire_args(self, args, nargs, kwnames)


cdef object _bufferpool_acquire_args(BufferPool self, PyObject **args, Py_ssize_t nargs,
                                     PyObject *kwnames):
    cdef PyObject *t = _timeout_at(args, nargs, kwnames)
    if t != NULL and _timeout_fast_p(t):   # (as ObjectPool's: cheap when a buffer is free)
        item = self._take()
        if item is not _NOTHING:
            return item
        return _wait_sync(self, <object>t, -1.0)
    timeout = _timeout_arg(args, nargs, kwnames, "acquire")
    _check_timeout(timeout)   # validated even when a buffer is free
    item = self._take()
    if item is _NOTHING:
        return _wait_sync(self, timeout, -1.0)
    return item


cdef object _bufferpool_lease(BufferPool self, PyObject **args, Py_ssize_t nargs,
                              PyObject *kwnames):
    if nargs == 0 and kwnames == NULL and not _is_closed(self):
        return _lease_new(self, None)
    return _pool_lease_args(self, args, nargs, kwnames)


cdef PyMethodDef _objectpool_acquire_def
cdef PyMethodDef _objectpool_lease_def
cdef PyMethodDef _bufferpool_acquire_def
cdef PyMethodDef _bufferpool_lease_def


cdef int _install_fastcall(type cls, PyMethodDef *d, const char *name, void *fn,
                           const char *doc) except -1:
    """Puts a C method (METH_FASTCALL | METH_KEYWORDS) in cls's dict."""
    d.ml_name = name
    d.ml_meth = fn
    d.ml_flags = METH_FASTCALL | METH_KEYWORDS
    d.ml_doc = doc
    PyDict_SetItemString((<PyTypeObject *>cls).tp_dict, name,
                         PyDescr_NewMethod(<PyTypeObject *>cls, d))
    PyType_Modified(<PyTypeObject *>cls)
    return 0


_install_fastcall(ObjectPool, &_objectpool_acquire_def, b"acquire",
                  <void *>_objectpool_acquire,
                  b"acquire($self, /, timeout=None)\n--\n\n"
                  b"Hands out an object; waits up to `timeout` seconds if none is free.\n\n"
                  b"timeout=None (or inf) waits forever, 0 never waits.  Raises\n"
                  b"PoolExhausted (a TimeoutError) when the time runs out, PoolClosed once\n"
                  b"closed, and whatever the factory raises.")
_install_fastcall(ObjectPool, &_objectpool_lease_def, b"lease",
                  <void *>_objectpool_lease,
                  b"lease($self, /, timeout=None)\n--\n\n"
                  b"A context manager: acquires on entry, releases on exit (also on\n"
                  b"an exception).  ``with pool.lease(timeout=2.0) as obj: ...``\n\n"
                  b"The same timeout rules as acquire(); PoolClosed at once if the pool\n"
                  b"is closed.  A lease is entered once at a time (RuntimeError if it is\n"
                  b"already active); entered and dropped without exit, it gives its\n"
                  b"object back with a ResourceWarning.")
_install_fastcall(BufferPool, &_bufferpool_acquire_def, b"acquire",
                  <void *>_bufferpool_acquire,
                  b"acquire($self, /, timeout=None)\n--\n\n"
                  b"Hands out a PooledBuffer; waits up to `timeout` seconds if none is\n"
                  b"free (None or inf: forever, 0: never).  PoolExhausted when time runs\n"
                  b"out, PoolClosed once closed.")
_install_fastcall(BufferPool, &_bufferpool_lease_def, b"lease",
                  <void *>_bufferpool_lease,
                  b"lease($self, /, timeout=None)\n--\n\n"
                  b"A context manager: ``with bufs.lease() as buf: ...`` acquires on\n"
                  b"entry and releases on exit (unless already released).  The same\n"
                  b"timeout rules as acquire(); PoolClosed at once if the pool is closed.")
