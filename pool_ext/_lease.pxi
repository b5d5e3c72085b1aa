# _Lease: what lease() returns, for both pools (included by _pool.pyx).
#
# A lease is made and dropped once per `with pool.lease() as obj:`, so its
# fields are kept cheap: `_timeout` and `_item` are raw references (NULL for
# "none") that this file manages by hand instead of Cython (no None to
# reference-count on every lease), seen by the garbage collector through the
# tp_traverse that _entries.pxi installs.

# A lease's state: one encoding for the three lease classes (_Lease here,
# _ArrayLease in _arraypool.pxi, _AsyncLease in _async.pxi).
cdef enum:
    _LEASE_IDLE = 0
    _LEASE_ENTERING = 1   # __enter__ (or __aenter__) is acquiring
    _LEASE_ACTIVE = 2     # entered: _item is out


cdef inline _Lease _lease_new(_PoolBase pool, object timeout):
    """A lease of pool; timeout already checked (None: NULL)."""
    cdef _Lease lease = _Lease.__new__(_Lease)
    lease._pool = pool
    if timeout is not None:
        Py_INCREF(timeout)
        lease._timeout = <PyObject *>timeout
    return lease


cdef inline PyObject *_lease_take_idle(_Lease lease) noexcept:
    """The hot path of a lease's entry: an ObjectPool's idle object, taken
    without a call through the vtable.  The lease keeps the hand-out's slot
    and generation, not a reference: the pool holds the object while it is
    out, and the exit releases it by slot, with no lookup.  Returns the pool's
    (borrowed) reference, or NULL when no idle object is at hand (then
    lease._cold_enter)."""
    cdef uint32_t i
    if (type(lease._pool) is ObjectPool and (<ObjectPool>lease._pool)._plain_take
            and pool_waitq_gate(&lease._pool._waitq) == 0):   # open, nobody waits
        i = (<ObjectPool>lease._pool)._pop_idle(&lease._gen)
        if i != POOL_NIL:
            lease._index = i
            (<ObjectPool>lease._pool)._mark_leased(i, lease._gen)
            return (<ObjectPool>lease._pool)._items[i]
    return NULL     # (health rules or tracking: pool._acquire does it all)


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
        cdef PyObject *item
        cdef bint busy
        with cython.critical_section(self):
            busy = self._state != _LEASE_IDLE
            if not busy:
                self._state = _LEASE_ENTERING
        if busy:
            raise RuntimeError("this lease is already active; call pool.lease() again")
        item = _lease_take_idle(self)
        if item == NULL:
            return self._cold_enter()
        with cython.critical_section(self):
            self._state = _LEASE_ACTIVE   # _item stays NULL: by slot (above)
        return <object>item

    cdef object _cold_enter(self):
        """Acquire the slow way (factory, waiting, errors); a failure leaves
        the lease idle, to be entered again."""
        cdef uint32_t i = POOL_NIL
        try:
            if self._pool is None:
                raise TypeError("leases come from pool.lease()")
            timeout = None if self._timeout == NULL else <object>self._timeout
            item = self._pool._acquire(timeout)
        except BaseException:
            with cython.critical_section(self):
                self._state = _LEASE_IDLE
            raise
        # By slot for an ObjectPool, as on the hot path: the hand-out just
        # made is HELD, and its object is in the address map (unless another
        # thread discarded or released it already: then by object, and the
        # exit says it is not in use).
        if type(self._pool) is ObjectPool:
            i = pool_addrmap_find(&(<ObjectPool>self._pool)._map, <uintptr_t><PyObject *>item)
        if i != POOL_NIL:
            self._index = i
            self._gen = POOL_SLOT_GEN(pool_slots_load(&(<ObjectPool>self._pool)._slots,
                                                      self._index))
            (<ObjectPool>self._pool)._mark_leased(self._index, self._gen)
        else:
            Py_INCREF(item)
            self._item = <PyObject *>item
        with cython.critical_section(self):
            self._state = _LEASE_ACTIVE
        return item

    def __exit__(self, exc_type, exc, tb):
        cdef PyObject *item = NULL
        cdef bint active
        with cython.critical_section(self):
            active = self._state == _LEASE_ACTIVE
            if active:
                item = self._item          # the lease's reference is ours now
                self._item = NULL
                self._state = _LEASE_IDLE
        if active:
            if item == NULL:
                (<ObjectPool>self._pool)._release_slot(self._index, self._gen)
            else:
                self._give_back(item)
        return False

    cdef int _give_back(self, PyObject *item) except -1:
        """Returns item (whose reference the caller hands over) to the pool."""
        obj = <object>item      # a reference of this frame's, dropped on any exit
        Py_XDECREF(item)        # so the caller's can go now
        if type(self._pool) is ObjectPool:
            return (<ObjectPool>self._pool)._release(obj, True)   # no vtable
        return self._pool._lease_exit(obj)


# -- the type's slots ---------------------------------------------------------
# tp_traverse: Cython's (the pool) plus the raw fields.  tp_dealloc: a lease
# dropped while active gives its item back, which runs Python code; Cython
# would wrap every deallocation in a save and restore of the exception
# state to run a __dealloc__, so this one pays for that only when the lease
# is still active, then drops the raw fields and hands over to Cython's.
# (They take the lease typed, which the C calling convention makes the same
# as the slots' PyObject *, so that Cython does not touch its refcount.)

cdef extern from "Python.h":
    void Py_SET_REFCNT(PyObject *o, Py_ssize_t n)
    void PyErr_Fetch(PyObject **t, PyObject **v, PyObject **tb)
    void PyErr_Restore(PyObject *t, PyObject *v, PyObject *tb)
    void PyErr_WriteUnraisable(PyObject *o)
    void PyObject_GC_Track(PyObject *o)
    void PyObject_GC_UnTrack(PyObject *o)
    Py_ssize_t Py_REFCNT(PyObject *o)

cdef destructor _lease_cython_dealloc = NULL
cdef traverseproc _lease_cython_traverse = NULL


cdef int _lease_traverse(_Lease lease, visitproc visit, void *arg) noexcept:
    cdef int rc = _lease_cython_traverse(<PyObject *>lease, visit, arg)
    if rc == 0 and lease._item != NULL:
        rc = visit(lease._item, arg)
    if rc == 0 and lease._timeout != NULL:
        rc = visit(lease._timeout, arg)
    return rc


cdef void _lease_dealloc(_Lease lease) noexcept:
    if lease._state == _LEASE_ACTIVE and lease._pool is not None:
        if _lease_dropped(lease):
            return      # kept by the Python code it ran: it lives on, idle
    Py_XDECREF(lease._item)
    lease._item = NULL
    Py_XDECREF(lease._timeout)
    lease._timeout = NULL
    _lease_cython_dealloc(<PyObject *>lease)


cdef void _write_unraisable(BaseException e, object where) noexcept:
    """sys.unraisablehook(e) about `where`.  Inside Cython's `except` clause
    the exception is no longer in the error indicator, where
    PyErr_WriteUnraisable reads it: it is put back first."""
    cdef object tb = e.__traceback__
    cdef object t = type(e)
    cdef PyObject *tb_p = NULL
    if tb is not None:
        Py_INCREF(tb)
        tb_p = <PyObject *>tb
    Py_INCREF(t)
    Py_INCREF(e)
    PyErr_Restore(<PyObject *>t, <PyObject *>e, tb_p)   # (the three references go in)
    PyErr_WriteUnraisable(<PyObject *>where)


cdef bint _lease_dropped(_Lease lease) noexcept:
    cdef PyObject *t
    cdef PyObject *v
    cdef PyObject *tb
    cdef PyObject *item = lease._item
    # Alive while Python code runs (hooks, warnings, repr), and out of the
    # GC's lists, so that gc.get_referrers() and the like cannot reach it.
    PyObject_GC_UnTrack(<PyObject *>lease)
    Py_SET_REFCNT(<PyObject *>lease, 1)
    PyErr_Fetch(&t, &v, &tb)
    lease._item = NULL
    lease._state = _LEASE_IDLE
    try:
        where = ""
        try:
            where = _lease_stack_text(lease, item)    # before the exit
        except BaseException:   # (at interpreter exit, say): the slot goes back anyway
            pass
        if item == NULL:
            (<ObjectPool>lease._pool)._release_slot(lease._index, lease._gen)
        else:
            lease._give_back(item)
        if _warnings is not None:   # (None at interpreter exit)
            _warnings.warn(f"a lease of {lease._pool!r} was entered and never exited; "
                           f"what it held was given back when it was garbage collected"
                           f"{where}", ResourceWarning, stacklevel=1)
    except BaseException as e:
        # about the pool, not the lease: a hook that keeps its `object`
        # would keep a lease that is being freed (its count goes back to 0)
        _write_unraisable(e, lease._pool)
    PyErr_Restore(t, v, tb)
    if Py_REFCNT(<PyObject *>lease) != 1:
        # Something kept a reference (a warning's or a hook's code): the
        # lease lives on, idle (its item is back), as CPython lets an object
        # resurrected by its finalizer live.  (Our 1 goes.)
        Py_SET_REFCNT(<PyObject *>lease, Py_REFCNT(<PyObject *>lease) - 1)
        PyObject_GC_Track(<PyObject *>lease)
        return True
    Py_SET_REFCNT(<PyObject *>lease, 0)
    return False


cdef str _lease_stack_text(_Lease lease, PyObject *item):
    """'; acquired at:' and the stack of a tracked lease's hand-out, or ''."""
    cdef _PoolBase pool = lease._pool
    if pool._holders is None:
        return ""
    if item == NULL:     # an ObjectPool hand-out, by slot: still that hand-out?
        if not pool_slots_is_held(&(<ObjectPool>pool)._slots, lease._index, lease._gen):
            return ""
        return _holder_stack_text(pool, lease._index)
    if type(<object>item) is PooledBuffer:
        if (<PooledBuffer>item)._released:   # its slot may be another's hand-out now
            return ""
        return _holder_stack_text(pool, (<PooledBuffer>item)._index)
    return ""
