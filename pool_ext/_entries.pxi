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


# -- the drop-in queues' get() and put() ---------------------------------------
# What pools pass: get(), get(True, t), get(block=True, timeout=t), put(x),
# put(x, True, t), put(x, block=False), ...  Those shapes, with block an
# exact bool and (blocking) a timeout _timeout_fast_p accepts, are read
# here by pointer comparisons; any other call goes to the method Cython
# generated (_queue_get_full / _queue_put_full), which parses it in full and
# raises what it would raise.

cdef extern from "Python.h":
    # (not <PyObject *>True: Cython casts the C constant 1)
    PyObject *_TRUE "Py_True"
    PyObject *_FALSE "Py_False"

cdef str _BLOCK_KEY = "block"
cdef PyObject *_block_key_p = <PyObject *>_BLOCK_KEY
Py_INCREF(_BLOCK_KEY)
PyUnicode_InternInPlace(&_block_key_p)
_BLOCK_KEY = <str>_block_key_p

ctypedef object (*_fastcall_kw)(object, PyObject **, Py_ssize_t, PyObject *)
cdef _fastcall_kw _queue_get_full = NULL
cdef _fastcall_kw _queue_put_full = NULL


cdef inline bint _queue_call(PyObject **args, Py_ssize_t nargs, PyObject *kwnames,
                             Py_ssize_t first, PyObject **block,
                             PyObject **timeout) noexcept:
    """block and timeout of a get (first 0) or put (first 1: the item) call,
    borrowed, if the call is a plain one the fast path can take: at most the
    two positional arguments, keywords block= and timeout= (interned, as
    the interpreter passes them) for those not given, block an exact bool,
    and a blocking call's timeout valid at a glance.  False: anything else."""
    cdef Py_ssize_t n = nargs - first
    cdef Py_ssize_t k, nkw
    cdef PyObject *key
    if n < 0 or n > 2:
        return False
    block[0] = args[first] if n >= 1 else _TRUE
    timeout[0] = args[first + 1] if n == 2 else <PyObject *>None
    if kwnames != NULL:
        nkw = PyTuple_GET_SIZE(kwnames)
        for k in range(nkw):
            key = PyTuple_GET_ITEM(kwnames, k)
            if key == _block_key_p and n == 0:
                block[0] = args[nargs + k]
                n = 1                    # (a second block= is not plain)
            elif key == _timeout_key_p and n < 2:
                timeout[0] = args[nargs + k]
                n = 2
            else:
                return False
    if block[0] == _FALSE:
        return True                      # (the timeout is ignored, as queue.Queue does)
    return block[0] == _TRUE and _timeout_fast_p(timeout[0])


cdef object _queue_get(Queue self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    cdef PyObject *block
    cdef PyObject *timeout
    cdef void *p
    if nargs == 0 and kwnames == NULL:
        block = _TRUE
        timeout = <PyObject *>None
    elif not _queue_call(args, nargs, kwnames, 0, &block, &timeout):
        return _queue_get_full(self, args, nargs, kwnames)
    if pool_queue_get(&self._q, &p, NULL) == POOL_Q_DONE:
        return _steal(p)
    return self._get_slow(block == _TRUE, <object>timeout)


cdef object _queue_put(Queue self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    cdef PyObject *block
    cdef PyObject *timeout
    if nargs == 1 and kwnames == NULL:
        block = _TRUE
        timeout = <PyObject *>None
    elif nargs == 0 or not _queue_call(args, nargs, kwnames, 1, &block, &timeout):
        return _queue_put_full(self, args, nargs, kwnames)
    Py_INCREF(<object>args[0])           # the queue's reference, if it takes it
    if pool_queue_put(&self._q, <void *>args[0], NULL) != POOL_Q_DONE:
        self._put_slow(<object>args[0], block == _TRUE, <object>timeout)
    return None


cdef PyMethodDef _queue_get_def
cdef PyMethodDef _queue_put_def


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


# Queue's get()/put(): over the methods Cython generated for them, which the
# entry points call for any call that is not a plain one.
cdef extern from *:
    """
    /* The C function of a method descriptor of the METH_FASTCALL |
     * METH_KEYWORDS convention (a Cython def method), or NULL. */
    static void *pool_descr_fastcall_kw(PyObject *d) {
        PyMethodDef *m;
        if (!PyObject_TypeCheck(d, &PyMethodDescr_Type))
            return NULL;
        m = ((PyMethodDescrObject *)d)->d_method;
        if ((m->ml_flags & (METH_FASTCALL | METH_KEYWORDS | METH_CLASS | METH_STATIC))
                != (METH_FASTCALL | METH_KEYWORDS))
            return NULL;
        return (void *)m->ml_meth;
    }
    """
    void *pool_descr_fastcall_kw(object d)

_queue_get_full = <_fastcall_kw>pool_descr_fastcall_kw(Queue.__dict__["get"])
_queue_put_full = <_fastcall_kw>pool_descr_fastcall_kw(Queue.__dict__["put"])
if _queue_get_full != NULL and _queue_put_full != NULL:
    _install_fastcall(Queue, &_queue_get_def, b"get", <void *>_queue_get,
                      b"get($self, /, block=True, timeout=None)\n--\n\n"
                      b"Removes and returns an item; if there is none, waits (block, up\n"
                      b"to timeout seconds; None: forever), else raises queue.Empty.")
    _install_fastcall(Queue, &_queue_put_def, b"put", <void *>_queue_put,
                      b"put($self, /, item, block=True, timeout=None)\n--\n\n"
                      b"Puts item; if the queue is full, waits (block, up to timeout\n"
                      b"seconds; None: forever) for room, else raises queue.Full.")


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
