# _PoolBase: what ObjectPool and BufferPool share (included by _pool.pyx):
# counters, waiting for a free slot, closing, the public gauges, and the
# observing options (name=, track=, leak_timeout=; the records themselves
# are in _holders.pxi).  The wait queue's protocol itself (no lost wake-up,
# close, fork) is C: src/pool_waitq.h; this file only sleeps and wakes
# Python threads with it.  The statistics' reset is C too: src/pool_stats.h.


cdef inline void _count(uint64_t *counter) noexcept:
    # relaxed: a statistic; nothing is ordered by it
    pool_fetch_add64(counter, 1, POOL_RELAXED)


cdef inline void _uncount(uint64_t *counter) noexcept:
    # relaxed: a statistic; wraps to counter - 1 (in_use's two counters are
    # read apart anyway)
    pool_fetch_add64(counter, <uint64_t>-1, POOL_RELAXED)


cdef inline uint64_t _read(uint64_t *counter) noexcept:
    return pool_load64(counter, POOL_RELAXED)   # relaxed: a statistic


cdef inline uint64_t _read_acquires(_PoolBase pool) noexcept:
    """acquires: the pool's counter, plus its threads' caches' (free-threaded)."""
    return _read(&pool._acquires) + pool_cache_sum(&pool._cache, 0)


cdef inline uint64_t _read_releases(_PoolBase pool) noexcept:
    return _read(&pool._releases) + pool_cache_sum(&pool._cache, 1)


cdef inline bint _is_closed(_PoolBase pool) noexcept:
    return pool_waitq_is_closed(&pool._waitq)


cdef inline void _notify(_PoolBase pool) noexcept:
    """After every push onto a free-list: grant it to a waiter, if any."""
    if pool_waitq_notify(&pool._waitq):
        pool._released()


# stats(): the counters' names, in the order stats() lists their fields, and
# the keys each pool reports, in order.
cdef tuple _COUNTER_NAMES = (
    "acquires", "releases", "creations", "destructions", "waits", "timeouts",
    "wait_ns_total", "holds", "hold_ns_total", "leaks",
    "checks_failed", "expired", "discarded")
_COMMON_KEYS = ("acquires", "releases", "creations", "destructions", "waits", "timeouts",
                "wait_ns_total", "wait_ns_max", "holds", "hold_ns_total", "hold_ns_max",
                "leaks")
_GAUGE_KEYS = ("waiting", "capacity", "size", "in_use", "available")
cdef tuple _BUFFERPOOL_COUNTERS = _COMMON_KEYS + _GAUGE_KEYS
cdef tuple _OBJECTPOOL_COUNTERS = (_COMMON_KEYS + ("checks_failed", "expired", "discarded")
                                   + _GAUGE_KEYS + ("idle",))
del _COMMON_KEYS, _GAUGE_KEYS


cdef object _closed_error(_PoolBase pool):
    """A wait met a closed pool (close() or drain() woke it, or came first)."""
    raise PoolClosed(f"acquire() on a closed {pool._label()}")


cdef str _pool_repr(_PoolBase pool, str details):
    """repr() of both pools: name, state, capacity, in use, idle, details."""
    cdef uint64_t used = pool._in_use()
    name = "" if pool._name is None else f" {pool._name!r}"
    state = "closed" if _is_closed(pool) else "open"
    idle = pool.idle if type(pool) is ObjectPool else pool._capacity - min(used, pool._capacity)
    return (f"<{type(pool).__name__}{name} {state} capacity={pool._capacity} "
            f"in_use={used} idle={idle} {details}>")


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
        pool_cache_none(&self._cache)

    def __dealloc__(self):
        pool_cache_free(&self._cache)

    cdef int _cache_init(self) except -1:
        """The threads' slot caches (src/pool_cache.h): free-threaded builds
        only, for pools with nothing to do at hand-out and release."""
        if POOL_THREAD_CACHE and pool_cache_init(&self._cache) != 0:
            raise MemoryError("the pool's per-thread slot caches")
        return 0

    cdef int _observe_init(self, object name, object track, object leak_timeout) except -1:
        """name=, track=, leak_timeout= of both constructors (after _capacity
        is set).  leak_timeout needs the records, so it turns tracking on."""
        cdef uint64_t leak_ns = _parse_limit(leak_timeout, "leak_timeout")
        self._name = _parse_name(name)
        if track or leak_ns != POOL_CLOCK_NEVER or _track_from_environment():
            self._holders = _Holders.__new__(_Holders, self._capacity, leak_ns)
        return 0

    # -- each pool's own -------------------------------------------------
    cdef object _try_take(self):
        """A hand-out, or _NOTHING if no slot is free."""
        raise NotImplementedError

    cdef int _lease_exit(self, object item) except -1:
        """Give back what a lease handed out, at its exit."""
        raise NotImplementedError

    cdef object _hand_out(self, uint32_t i, uint32_t k, double deadline):
        """The hand-out of slot i, owned and counted in acquires (granted, or
        taken by pool_waitq_join; k: its list): the item, or _REJECTED (an
        ObjectPool's idle object failed its check or time limits: destroyed,
        its slot gone on), or an exception with the slot given back."""
        raise NotImplementedError

    cdef int _give_up(self, uint32_t i, uint32_t k) except -1:
        """Slot i, owned and counted, goes back as a release would put it:
        uncounted, pushed on its list k, waiters notified."""
        raise NotImplementedError

    # -- acquiring ---------------------------------------------------------
    cdef object _acquire(self, object timeout):
        item = self._try_take()
        if item is _NOTHING:
            return _wait_sync(self, timeout, -1.0)
        return item

    cdef void _wake(self, uint32_t n) noexcept:
        """Wakes up to n waiters with a hint (drain(): look again)."""
        cdef pool_waiter_t *deferred = NULL
        pool_waitq_wake(&self._waitq, n, &deferred)
        _wake_deferred(self, deferred)

    cdef void _released(self) noexcept:
        """A push found the gate shut (pool_waitq_notify): grant the free
        slots to the oldest waiters, or, closed, wake one (a hint)."""
        cdef pool_waiter_t *deferred = NULL
        pool_waitq_released(&self._waitq, &deferred)
        _wake_deferred(self, deferred)

    cdef int _leave(self, pool_waiter_t *w, uint32_t *slot, uint32_t *k) noexcept:
        """A waiter leaves the queue (pool_waitq_leave): its grant, if any,
        comes out in *slot (else POOL_NIL); returns its flags."""
        cdef pool_waiter_t *deferred = NULL
        cdef int left = pool_waitq_leave(&self._waitq, w, slot, k, &deferred)
        _wake_deferred(self, deferred)
        return left

    cdef int _pass_grant(self, uint32_t slot, uint32_t k) except -1:
        """A granted slot its waiter will not use: to the next waiter, or
        back as a release would put it."""
        cdef pool_waiter_t *deferred = NULL
        if pool_waitq_pass_grant(&self._waitq, slot, k, &deferred):
            _wake_deferred(self, deferred)
            return 0
        return self._give_up(slot, k)

    # -- closing and leases ------------------------------------------------
    cdef bint _close_begin(self) noexcept:
        """Marks the pool closed and wakes every waiter; False if it already was."""
        cdef pool_waiter_t *deferred = NULL
        cdef bint closed_now = pool_waitq_close(&self._waitq, &deferred)
        _wake_deferred(self, deferred)
        return closed_now

    cdef object _new_lease(self, object timeout):
        """lease() of both pools, its arguments parsed."""
        _check_timeout(timeout)
        if _is_closed(self):
            raise PoolClosed(f"lease() on a closed {self._label()}")
        return _lease_new(self, timeout)

    # -- gauges ------------------------------------------------------------
    cdef uint64_t _in_use(self) noexcept:
        cdef uint64_t a = _read_acquires(self)
        cdef uint64_t r = _read_releases(self)
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

    @property
    def name(self):
        """The pool's label in messages, warnings and repr(); None if unnamed."""
        return self._name

    @property
    def track(self):
        """True if the pool records its hand-outs (track=True, leak_timeout=
        or POOL_EXT_TRACK=1): holders() works."""
        return self._holders is not None

    @property
    def leak_timeout(self):
        """Seconds after which a hand-out is reported (PoolLeakWarning), or None."""
        if self._holders is None or self._holders._leak_ns == POOL_CLOCK_NEVER:
            return None
        return self._holders._leak_ns / 1e9

    def holders(self):
        """Who holds what: a list of Holder(obj, thread_name, held_seconds,
        stack) named tuples, one per hand-out not yet returned, oldest first.

        Needs tracking (track=True, leak_timeout=, or POOL_EXT_TRACK=1 in the
        environment); PoolError otherwise.  Also reports hand-outs held past
        leak_timeout (PoolLeakWarning).

        >>> pool = ObjectPool(dict, 2, track=True)
        >>> d = pool.acquire()
        >>> [(h.obj is d, h.thread_name) for h in pool.holders()]
        [(True, 'MainThread')]

        Thread-safety: a snapshot, safe while other threads acquire and
        release; `obj` is the object as handed out (use it only to identify
        the hand-out: its holder owns it); for a BufferPool's empty() and
        zeros(), the array (its buffer is the array's own: no release)."""
        if self._holders is None:
            raise PoolError(f"holders() needs tracking: build the {self._label()} with "
                            f"track=True, or set POOL_EXT_TRACK=1 in the environment")
        self._check_leaks()
        return _holders_list(self)

    def stats(self, *, reset=False):
        """A dict of counters and gauges: a snapshot, each read on its own.

        Counters (since the pool was built, or since the last reset):
        acquires, releases, creations, destructions: successful operations;
        waits: acquires that had to sleep; timeouts: acquires that ran out
        of time (PoolExhausted); wait_ns_total, wait_ns_max: nanoseconds
        spent asleep in acquire() (only sleeping is timed, so a pool that
        never waits pays nothing for it); holds, hold_ns_total, hold_ns_max:
        tracked hand-outs that ended and how long they were out (tracking
        only); leaks: PoolLeakWarnings emitted.  An ObjectPool adds
        checks_failed (check() false or raised), expired (past max_lifetime
        or max_idle) and discarded (discard()).

        Gauges (now): waiting (acquirers asleep), capacity, size, in_use,
        available, and for an ObjectPool idle.

        stats(reset=True) returns the same and zeroes every counter, each
        in one atomic step, so each event is counted in exactly one resetting
        report (like psycopg_pool's pop_stats()); gauges are not reset.

        >>> pool = ObjectPool(dict, 2)
        >>> pool.release(pool.acquire())
        >>> pool.stats(reset=True)["acquires"], pool.stats()["acquires"]
        (1, 0)

        Thread-safety: any thread may call it, resetting or not, at any time.
        Also reports hand-outs held past leak_timeout (PoolLeakWarning)."""
        cdef bint r = bool(reset)
        cdef uint64_t *counters[_N_COUNTERS]
        cdef int k
        self._check_leaks()
        counters[:] = [&self._acquires, &self._releases, &self._creations,
                       &self._destructions, &self._waits, &self._timeouts,
                       &self._wait_ns, &self._holds, &self._hold_ns, &self._leaks,
                       &self._checks_failed, &self._expired, &self._discarded]
        names = _OBJECTPOOL_COUNTERS if type(self) is ObjectPool else _BUFFERPOOL_COUNTERS
        out = {}
        for k in range(_N_COUNTERS):
            if k < 2 and self._cache.shards != NULL:   # acquires, releases: with the shards'
                value = pool_stat_since_value(_read_acquires(self) if k == 0
                                              else _read_releases(self), &self._marks[k], r)
            else:
                value = pool_stat_since(counters[k], &self._marks[k], r)
            if _COUNTER_NAMES[k] in names:
                out[_COUNTER_NAMES[k]] = value
        out["wait_ns_max"] = pool_stat_max(&self._wait_ns_max, r)
        out["hold_ns_max"] = pool_stat_max(&self._hold_ns_max, r)
        out["waiting"] = pool_waitq_waiting(&self._waitq)
        out["capacity"] = self._capacity
        out["size"] = self.size
        out["in_use"] = self.in_use
        out["available"] = self.available
        if type(self) is ObjectPool:
            out["idle"] = self.idle
        return {key: out[key] for key in names}

    cdef int _check_leaks(self) except -1:
        return _warn_leaks(self)

    cdef str _label(self):
        """"pool 'name'", or "pool" if unnamed: for messages."""
        return "pool" if self._name is None else f"pool {self._name!r}"

    cdef str _exhausted_message(self, str what):
        """PoolExhausted's message: what happened, the pool's name, and with
        tracking, who has held a slot longest and where they acquired it."""
        where = "" if self._name is None else f" (pool {self._name!r})"
        if self._holders is None:   # untracked: a lost slot has no other symptom
            return (what + where + ("; an object dropped without release() keeps its slot"
                                    if type(self) is ObjectPool else "") +
                    "; track=True (or POOL_EXT_TRACK=1) names who holds each slot")
        return what + where + _longest_holder(self)

    # -- asyncio (_async.pxi) ----------------------------------------------
    async def acquire_async(self, timeout=None):
        """acquire() for asyncio: ``obj = await pool.acquire_async()``.

        When an object (or buffer) is free it is taken at once, without
        suspending the task.  Otherwise the task waits, in the same FIFO as
        waiting threads, without blocking its event loop; a release from any
        thread or loop wakes it.  timeout as for acquire(): PoolExhausted when
        it runs out, PoolClosed once closed.  The timeout bounds the whole
        call, an ObjectPool's coroutine hooks included: a factory() or
        check() still awaited at the deadline is cancelled, the slot given
        back (a checked object destroyed first) and PoolExhausted raised
        (timeout=0 only means: do not wait for a slot).  A cancellation
        (task.cancel(), asyncio.timeout(), wait_for, a TaskGroup failing)
        never loses a slot: a wake-up the task was given passes to the next
        waiter.  RuntimeError if no event loop is running."""
        _check_timeout(timeout)
        if _peek_running_loop() is None:
            _no_running_loop()
        item = _take_now(self)
        if item is _NOTHING:
            return await _acquire_slow(self, timeout)
        return item

    def lease_async(self, timeout=None):
        """lease() for asyncio: ``async with pool.lease_async() as obj: ...``
        acquires with acquire_async() on entry and gives back on exit.  The
        timeout bounds the whole entry, hooks included, as acquire_async's."""
        cdef _AsyncLease lease
        _check_timeout(timeout)
        if _is_closed(self):
            raise PoolClosed("lease_async() on a closed pool")
        lease = _AsyncLease.__new__(_AsyncLease)   # (its type refuses Python)
        lease._pool = self
        lease._timeout = timeout
        return lease

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False
