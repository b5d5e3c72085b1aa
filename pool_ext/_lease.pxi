# _Lease: what lease() returns, for both pools (included by _pool.pyx).

cdef enum:
    _LEASE_IDLE = 0
    _LEASE_ENTERING = 1   # __enter__ is acquiring
    _LEASE_ACTIVE = 2     # entered: _item is out


@cython.freelist(16)
@cython.no_gc_clear   # __dealloc__ needs _pool and _item to give the item back
cdef class _Lease:
    """``with pool.lease() as item``: the item goes back to the pool on exit.

    One class for both pools: the pool decides what "give back" means
    (ObjectPool.release, or releasing a PooledBuffer unless its holder did).
    Its state changes under a critical section (free-threaded builds), so
    two threads entering one lease cannot both acquire."""

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
        try:
            item = self._pool._acquire(self._timeout)
        except BaseException:
            with cython.critical_section(self):
                self._state = _LEASE_IDLE
            raise
        with cython.critical_section(self):
            self._item = item
            self._state = _LEASE_ACTIVE
        return item

    def __exit__(self, exc_type, exc, tb):
        item = _NOTHING
        with cython.critical_section(self):
            if self._state == _LEASE_ACTIVE:
                item = self._item
                self._item = None
                self._state = _LEASE_IDLE
        if item is not _NOTHING:
            self._pool._lease_exit(item)
        return False

    def __dealloc__(self):
        # Entered and dropped without __exit__: give the item back and say
        # so, as a dropped PooledBuffer does.
        if self._state != _LEASE_ACTIVE or self._pool is None:
            return
        self._state = _LEASE_IDLE
        self._pool._lease_exit(self._item)
        _warnings.warn(f"a lease of {self._pool!r} was entered and never exited; what "
                       f"it held was given back when it was garbage collected",
                       ResourceWarning, stacklevel=1)
