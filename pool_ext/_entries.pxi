# C entry points, and every patch of a type's slots (included by _pool.pyx,
# last: after every class).  A class's own file says when its type is
# patched here: ObjectPool's and BufferPool's acquire() and lease(), the
# GC hooks of ObjectPool and _Lease, _Lease's dealloc, the private classes
# that refuse creation from Python, and _PoolBase's "no subclass" flag.
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


# acquire_async() and the async lease's __aenter__ / __aexit__ on CPython
# 3.12+: coroutines compiled by CPython, so that `await` resumes them
# without a StopIteration (_async.pxi says why).
cdef int _install_coroutines() except -1:
    cdef dict ns = _async_coroutines()
    cdef type cls
    for name, cls in (("acquire_async", _PoolBase), ("__aenter__", _AsyncLease),
                      ("__aexit__", _AsyncLease)):
        PyDict_SetItemString((<PyTypeObject *>cls).tp_dict, name.encode(), ns[name])
        PyType_Modified(<PyTypeObject *>cls)
    return 0


from cpython.version cimport PY_VERSION_HEX
if PY_VERSION_HEX >= 0x030C0000:
    _install_coroutines()

# -- the type slots -----------------------------------------------------------------
# ObjectPool's objects, a queue's items and a lease's raw fields, seen by the
# garbage collector (_objectpool_items.pxi, _queue.pxi, _lease.pxi); a
# lease's dealloc gives its item back (_lease.pxi).

_objectpool_cython_traverse = (<PyTypeObject *>ObjectPool).tp_traverse
_objectpool_cython_clear = (<PyTypeObject *>ObjectPool).tp_clear
(<PyTypeObject *>ObjectPool).tp_traverse = <traverseproc><void *>_objectpool_traverse
(<PyTypeObject *>ObjectPool).tp_clear = <inquiry><void *>_objectpool_clear
_lease_cython_dealloc = (<PyTypeObject *>_Lease).tp_dealloc
(<PyTypeObject *>_Lease).tp_dealloc = <destructor><void *>_lease_dealloc
_lease_cython_traverse = (<PyTypeObject *>_Lease).tp_traverse
(<PyTypeObject *>_Lease).tp_traverse = <traverseproc><void *>_lease_traverse
_queue_cython_traverse = (<PyTypeObject *>Queue).tp_traverse
for _t in (Queue, LifoQueue):
    (<PyTypeObject *>_t).tp_traverse = <traverseproc><void *>_queue_traverse
    (<PyTypeObject *>_t).tp_clear = <inquiry><void *>_queue_clear
del _t

# _PoolBase is an implementation detail of the two final pool classes: no
# Python class may derive from it (it has no pool behaviour of its own).
# Its subclasses exist by now, so the flag no longer matters to them.
(<PyTypeObject *>_PoolBase).tp_flags &= ~Py_TPFLAGS_BASETYPE
PyType_Modified(<PyTypeObject *>_PoolBase)

# What the pools make for themselves must not be made by Python code: a
# half-built one (no pool, no memory) reads through NULL fields (a lease
# over None, an array base over no buffer).  Their tp_new slot refuses, as
# a type without tp_new does ("cannot create 'X' instances"), for T() and
# T.__new__(T) alike (and T() finds the slot: Cython's own vectorcall of the
# type, which would bypass it, is cleared); this module's own T.__new__(T)
# compiles to a direct call of the generated tp_new function, not through
# the slot, so it costs nothing.  PooledBuffer stays public: one made by
# Python is a dead handle.
cdef extern from *:
    """
    static PyObject *pool_refuse_new(PyTypeObject *t, PyObject *args, PyObject *kwds) {
        (void)args; (void)kwds;
        PyErr_Format(PyExc_TypeError, "cannot create '%s' instances", t->tp_name);
        return NULL;
    }
    static void pool_refuse_creation(PyObject *t) {
        ((PyTypeObject *)t)->tp_new = pool_refuse_new;
        ((PyTypeObject *)t)->tp_vectorcall = NULL;   /* T() then calls tp_new */
        PyType_Modified((PyTypeObject *)t);
    }
    """
    void pool_refuse_creation(object t)

for _t in (_Hold, _Holders, _Lease, _ArrayLease, _AsyncLease, _Store, _BufferStore,
           _ArrayCache, _Block, _BufferArrayBase, _SlotAfterDestroy, _AsyncWaiter, _Round,
           _Segment, _SharedLease, _SharedArrayBase):
    pool_refuse_creation(_t)
del _t
# _Store is the one private class that is not final: no Python class derives from it.
(<PyTypeObject *>_Store).tp_flags &= ~Py_TPFLAGS_BASETYPE
PyType_Modified(<PyTypeObject *>_Store)
