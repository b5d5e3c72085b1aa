# _PoolBase: what ObjectPool and BufferPool share (included by _pool.pyx):
# counters, waiting for a free slot, closing, the public gauges.  The wait
# queue's protocol itself (no lost wake-up, close, fork) is C:
# src/pool_waitq.h; this file only sleeps and wakes Python threads with it.


cdef inline void _count(uint64_t *counter) noexcept:
    # relaxed: a statistic; nothing is ordered by it
    pool_fetch_add64(counter, 1, POOL_RELAXED)


cdef inline uint64_t _read(uint64_t *counter) noexcept:
    return pool_load64(counter, POOL_RELAXED)   # relaxed: a statistic


cdef inline bint _is_closed(_PoolBase pool) noexcept:
    return pool_waitq_is_closed(&pool._waitq)


cdef inline void _notify(_PoolBase pool) noexcept:
    """After every push onto a free-list: wake one sleeper, if any."""
    if pool_waitq_notify(&pool._waitq):
        pool._wake(1)


cdef void _wake_thread(pool_waiter_t *w) noexcept nogil:
    # Called under the wait queue's lock: a thread waiter sleeps on its own
    # lock (held while it sleeps); releasing it never blocks.
    PyThread_release_lock(<PyThread_type_lock>w.ctx)


cdef class _PoolBase:
    """What ObjectPool and BufferPool share: counters, waiting, closing.
    Not a pool of its own: it can be neither instantiated nor subclassed."""

    def __cinit__(self):
        # ObjectPool and BufferPool are final: type(self) is exactly one.
        if type(self) is not ObjectPool and type(self) is not BufferPool:
            raise TypeError("_PoolBase is not a pool: use ObjectPool or BufferPool")
        # Closed until the subclass's __init__ opens it: a pool that was never
        # fully built refuses every call, never crashes.
        pool_waitq_init(&self._waitq)

    # -- each pool's own -------------------------------------------------
    cdef object _try_take(self):
        """A hand-out, or _NOTHING if no slot is free."""
        raise NotImplementedError

    cdef int _give_back(self, object item) except -1:
        """Return a hand-out nobody has seen yet (no hooks)."""
        raise NotImplementedError

    cdef int _lease_exit(self, object item) except -1:
        """Give back what a lease handed out, at its exit."""
        raise NotImplementedError

    # -- acquiring ---------------------------------------------------------
    cdef object _acquire(self, object timeout):
        item = self._try_take()
        if item is _NOTHING:
            return self._acquire_wait(timeout)
        return item

    cdef object _acquire_wait(self, object timeout):
        """The slow path of acquire(): sleep until a slot is free or time is up."""
        cdef double t = _parse_timeout(timeout)
        cdef double deadline = -1.0
        cdef pool_waiter_t w
        cdef PyThread_type_lock lock
        cdef object item
        if t == 0.0:
            _count(&self._timeouts)
            raise PoolExhausted(f"no free slot among {self._capacity}")
        if t > 0.0:
            deadline = _monotonic() + t
        lock = PyThread_allocate_lock()   # a fresh lock per wait (pool_waitq.h)
        if lock == NULL:
            raise MemoryError()
        PyThread_acquire_lock(lock, 1)     # held: our next acquire sleeps
        w.wake = _wake_thread
        w.ctx = lock
        w.queued = w.signaled = False
        _count(&self._waits)
        try:
            while True:
                pool_waitq_enqueue(&self._waitq, &w)
                item = self._try_take()
                if item is not _NOTHING:
                    break
                if self._park(lock, deadline) == 0:
                    item = self._try_take()  # a slot may have come at the wire
                    if item is not _NOTHING:
                        break
                    _count(&self._timeouts)
                    raise PoolExhausted(
                        f"no free slot among {self._capacity} within {t:g} s")
                # Woken.  A signal (Ctrl-C) that came with the wake-up ends the
                # wait here, before we take a slot; then queue again and retry
                # (a caller that was not waiting may have taken the slot).
                PyErr_CheckSignals()
        finally:
            # Unlinked; a wake-up we were given and did not use goes on to the
            # next waiter (after a timeout, Ctrl-C, or a retry that succeeded).
            self._leave(&w)
            PyThread_free_lock(lock)
        # A signal that came while we took the slot: raise it here, with the
        # slot given back, rather than in our caller, who would never see the
        # hand-out (a KeyboardInterrupt would lose the slot for good).
        try:
            PyErr_CheckSignals()
        except BaseException:
            self._give_back(item)
            raise
        return item

    cdef int _park(self, void *lock, double deadline) except -1:
        """Sleeps without the GIL until woken (1) or the deadline passes (0)."""
        cdef long long us
        cdef double remaining
        cdef PyLockStatus r
        while True:
            if deadline < 0:
                us = -1
            else:
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    return 0
                if remaining * 1e6 >= <double>PY_TIMEOUT_MAX:
                    us = PY_TIMEOUT_MAX     # sleep in chunks; the loop recomputes
                else:
                    us = <long long>(remaining * 1e6) + 1
            with nogil:
                r = PyThread_acquire_lock_timed(<PyThread_type_lock>lock, us, 1)
            if r == PY_LOCK_ACQUIRED:
                return 1
            if r == PY_LOCK_INTR:
                PyErr_CheckSignals()   # Ctrl-C: raises KeyboardInterrupt here

    cdef void _wake(self, uint32_t n) noexcept:
        cdef pool_waiter_t *deferred = NULL
        pool_waitq_wake(&self._waitq, n, &deferred)
        _wake_deferred(deferred)

    cdef int _leave(self, pool_waiter_t *w) noexcept:
        """A waiter leaves the queue (pool_waitq_leave); returns its flags."""
        cdef pool_waiter_t *deferred = NULL
        cdef int left = pool_waitq_leave(&self._waitq, w, &deferred)
        _wake_deferred(deferred)
        return left

    # -- closing and leases ------------------------------------------------
    cdef bint _close_begin(self) noexcept:
        """Marks the pool closed and wakes every waiter; False if it already was."""
        cdef pool_waiter_t *deferred = NULL
        cdef bint closed_now = pool_waitq_close(&self._waitq, &deferred)
        _wake_deferred(deferred)
        return closed_now

    cdef object _new_lease(self, object timeout):
        """lease() of both pools, its arguments parsed."""
        _check_timeout(timeout)
        if _is_closed(self):
            raise PoolClosed("lease() on a closed pool")
        return _lease_new(self, timeout)

    # -- gauges ------------------------------------------------------------
    cdef uint64_t _in_use(self) noexcept:
        cdef uint64_t a = _read(&self._acquires)
        cdef uint64_t r = _read(&self._releases)
        return a - r if a > r else 0

    @property
    def capacity(self):
        """The most hand-outs the pool makes at once."""
        return self._capacity

    @property
    def in_use(self):
        """Hand-outs not yet returned to the pool."""
        return self._in_use()

    @property
    def available(self):
        """How many acquires would succeed now without waiting (0 once closed)."""
        if _is_closed(self):
            return 0
        return self._capacity - min(self._in_use(), self._capacity)

    @property
    def closed(self):
        """True once close() has been called."""
        return _is_closed(self)

    def stats(self):
        """A dict of counters: a snapshot, each read on its own.

        acquires, releases, creations, destructions: successful operations;
        waits: acquires that had to sleep; timeouts: acquires that ran out
        of time (PoolExhausted); waiting: acquirers asleep now; and the
        gauges capacity, size, in_use, available.
        """
        return {
            "acquires": _read(&self._acquires),
            "releases": _read(&self._releases),
            "creations": _read(&self._creations),
            "destructions": _read(&self._destructions),
            "waits": _read(&self._waits),
            "timeouts": _read(&self._timeouts),
            "waiting": pool_waitq_waiting(&self._waitq),
            "capacity": self._capacity,
            "size": self.size,
            "in_use": self.in_use,
            "available": self.available,
        }

    # -- asyncio (_async.pxi) ----------------------------------------------
    async def acquire_async(self, timeout=None):
        """acquire() for asyncio: ``obj = await pool.acquire_async()``.

        When an object (or buffer) is free it is taken at once, without
        suspending the task.  Otherwise the task waits, in the same FIFO as
        waiting threads, without blocking its event loop; a release from any
        thread or loop wakes it.  timeout as for acquire(): PoolExhausted when
        it runs out, PoolClosed once closed.  A cancellation (task.cancel(),
        asyncio.timeout(), wait_for, a TaskGroup failing) never loses a slot:
        a wake-up the task was given passes to the next waiter.
        RuntimeError if no event loop is running."""
        _check_timeout(timeout)
        if _peek_running_loop() is None:
            _no_running_loop()
        item = self._try_take()
        if item is _NOTHING:
            return await _wait_async(self, timeout)
        return item

    def lease_async(self, timeout=None):
        """lease() for asyncio: ``async with pool.lease_async() as obj: ...``
        acquires with acquire_async() on entry and gives back on exit."""
        _check_timeout(timeout)
        if _is_closed(self):
            raise PoolClosed("lease_async() on a closed pool")
        return _AsyncLease(self, timeout)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False
