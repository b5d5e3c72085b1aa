# _Lease: what lease() returns, for both pools (included by _pool.pyx).

cdef enum:
    _LEASE_IDLE = 0
    _LEASE_ENTERING = 1   # __enter__ is acquiring
    _LEASE_ACTIVE = 2     # entered: _item is out


cdef inline object _lease_take_idle(_PoolBase pool):
    """The hot path of a lease's entry: an ObjectPool's idle object, taken
    without a call through the vtable; _NOTHING when that is not at hand
    (any other case goes through pool._acquire)."""
    cdef ObjectPool objects
    cdef uint32_t i
    if type(pool) is ObjectPool and not _is_closed(pool):
        objects = <ObjectPool>pool
        if not objects._plain_take:
            return _NOTHING   # health rules or tracking: pool._acquire does it all
        i = objects._pop_idle()
        if i != POOL_NIL:
            return <object>objects._items[i]
    return _NOTHING


@cython.freelist(16)
@cython.no_gc_clear   # dealloc needs _pool and _item to give the item back
cdef class _Lease:
    """``with pool.lease() as item``: the item goes back to the pool on exit.

    One class for both pools: the pool decides what "give back" means
    (ObjectPool.release, or releasing a PooledBuffer unless its holder did).
    Its state changes under a critical section (free-threaded builds), so
    two threads entering one lease cannot both acquire.  Entered and dropped
    without exit, it gives its item back with a ResourceWarning."""

    @cython.always_allow_keywords(False)
    def __enter__(self):
        cdef bint busy
        if self._pool is None:
            raise TypeError("leases come from pool.lease()")
        with cython.critical_section(self):
            busy = self._state != _LEASE_IDLE
            if not busy:
                self._state = _LEASE_ENTERING
        if busy:
            raise RuntimeError("this lease is already active; call pool.lease() again")
        item = _lease_take_idle(self._pool)
        if item is _NOTHING:
            item = self._cold_enter()
        with cython.critical_section(self):
            self._item = item
            self._state = _LEASE_ACTIVE
        return item

    cdef object _cold_enter(self):
        """Acquire the slow way (factory, waiting, errors); a failure leaves
        the lease idle, to be entered again."""
        try:
            return self._pool._acquire(self._timeout)
        except BaseException:
            with cython.critical_section(self):
                self._state = _LEASE_IDLE
            raise

    def __exit__(self, exc_type, exc, tb):
        item = _NOTHING
        with cython.critical_section(self):
            if self._state == _LEASE_ACTIVE:
                item = self._item
                self._item = None
                self._state = _LEASE_IDLE
        if item is not _NOTHING:
            if type(self._pool) is ObjectPool:
                (<ObjectPool>self._pool)._release(item, True)   # inline, no vtable
            else:
                self._pool._lease_exit(item)
        return False


# A lease dropped while active must give its item back, which runs Python
# code.  Cython would wrap every deallocation in a save and restore of the
# exception state to run a __dealloc__; this tp_dealloc pays that only for
# a lease that is still active (measured: 26 instructions per lease on
# CPython 3.11), then hands over to Cython's.

cdef extern from "Python.h":
    void Py_SET_REFCNT(PyObject *o, Py_ssize_t n)
    void PyErr_Fetch(PyObject **t, PyObject **v, PyObject **tb)
    void PyErr_Restore(PyObject *t, PyObject *v, PyObject *tb)
    void PyErr_WriteUnraisable(PyObject *o)

cdef destructor _lease_cython_dealloc = NULL


cdef void _lease_dealloc(_Lease lease) noexcept:
    # (typed: the same pointer as tp_dealloc's PyObject *, untouched refcount)
    if lease._state == _LEASE_ACTIVE and lease._pool is not None:
        _lease_dropped(lease)
    _lease_cython_dealloc(<PyObject *>lease)


cdef void _lease_dropped(_Lease lease) noexcept:
    cdef PyObject *t
    cdef PyObject *v
    cdef PyObject *tb
    Py_SET_REFCNT(<PyObject *>lease, 1)   # alive while Python code runs
    PyErr_Fetch(&t, &v, &tb)
    lease._state = _LEASE_IDLE
    try:
        where = _lease_item_stack_text(lease._pool, lease._item)   # before the exit
        lease._pool._lease_exit(lease._item)
        _warnings.warn(f"a lease of {lease._pool!r} was entered and never exited; "
                       f"what it held was given back when it was garbage collected"
                       f"{where}", ResourceWarning, stacklevel=1)
    except BaseException:
        PyErr_WriteUnraisable(<PyObject *>lease)
    PyErr_Restore(t, v, tb)
    Py_SET_REFCNT(<PyObject *>lease, 0)


cdef str _lease_item_stack_text(_PoolBase pool, object item):
    """'; acquired at:' and the stack of a tracked lease's hand-out, or ''."""
    cdef uint32_t i
    if pool._holders is None:
        return ""
    if type(item) is PooledBuffer:
        if (<PooledBuffer>item)._released:   # its slot may be another's hand-out now
            return ""
        return _holder_stack_text(pool, (<PooledBuffer>item)._index)
    i = pool_addrmap_find(&(<ObjectPool>pool)._map, <uintptr_t><PyObject *>item)
    return "" if i == POOL_NIL else _holder_stack_text(pool, i)


_lease_cython_dealloc = (<PyTypeObject *>_Lease).tp_dealloc
(<PyTypeObject *>_Lease).tp_dealloc = <destructor><void *>_lease_dealloc
