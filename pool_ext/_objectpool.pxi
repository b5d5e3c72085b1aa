# ObjectPool: a bounded pool of arbitrary Python objects (included by _pool.pyx).
#
# Slots and lists.  Slot i holds _items[i] (NULL while it holds nothing), a
# C array of owned references that the garbage collector sees through the
# type's tp_traverse (_objectpool_items.pxi; installed by _entries.pxi).  Every FREE slot
# is on exactly one of two lock-free free-lists sharing one next[] array:
# `_idle` (it holds an object ready to hand out) or `_empty` (no object:
# acquire calls the factory).  acquire prefers _idle, so the factory runs
# only when no idle object exists.
#
# release(obj) finds obj's slot through the C address map (O(1), no dict),
# then wins the slot's HELD -> RELEASING transition: a second release of the
# same hand-out loses it and raises PoolError, the pool unchanged.  Hooks
# (reset, validate, destroy) run while the slot is RELEASING, owned by the
# releaser alone; whatever they raise, the slot goes back to a list.
#
# The hot path (acquire with no argument, try_acquire, release without
# hooks) is a few inline functions over the C core, with everything that
# raises or calls Python moved to separate, out-of-line methods (_cold_*),
# so the compiler keeps the hot ones small.  acquire() itself is a C entry
# point (_entries.pxi): with no argument it skips argument parsing.
#
# Health and tracking stay off that path: two flags computed once,
# _plain_take (nothing to do at hand-out: no check, no time limit, no
# tracking) and _plain_release (nothing to do at release: no reset,
# validate, time limit or tracking), each tested once on its path; anything
# else goes out of line (_take, _release_hooks; the decisions themselves are
# in _health.pxi).  The per-slot time stamps and hand-out records are
# allocated only when an option needs them.


# How many discarded objects a pool remembers, to tell a second release of
# one ("not in use") from a foreign object ("did not hand out").  Arbitrary:
# enough for the release that follows a discard; a dict of this many ints.
cdef Py_ssize_t _GONE_MEMORY = 256


cdef inline PyObject *_item(ObjectPool pool, uint32_t i) noexcept:
    # relaxed: a releaser reads another owner's slot to compare identities
    # (free-threaded); the owner publishes its writes through the free-list
    return <PyObject *>pool_loadptr(<uintptr_t *>&pool._items[i], POOL_RELAXED)


cdef inline PyObject *_idle_now(ObjectPool pool) noexcept:
    """The hot path of every acquire: an idle object of a pool with nothing
    to do at hand-out, popped, borrowed (the pool holds it while it is
    out); NULL if there is none, the pool is closed, others wait, or the
    pool has work to do at hand-out (then the caller's slow path)."""
    cdef uint32_t i, gen
    if pool._plain_take and pool_waitq_gate(&pool._waitq) == 0:   # open, nobody waits
        i = pool._pop_idle(&gen)
        if i != POOL_NIL:
            return pool._items[i]
    return NULL


cdef class ObjectPool(_PoolBase):
    """ObjectPool(factory, capacity, *, reset=None, validate=None, destroy=None, prefill=0, pass_slot=False, check=None, max_lifetime=None, max_idle=None, min_idle=0, track=False, leak_timeout=None, name=None)
--

    ObjectPool(factory, capacity, *, reset=None, validate=None, destroy=None, prefill=0, pass_slot=False, check=None, max_lifetime=None, max_idle=None, min_idle=0, track=False, leak_timeout=None, name=None)

    A bounded, thread-safe pool of reusable objects.

    acquire() hands out an idle object, else creates one with ``factory()``
    (``factory(slot)``, the slot number 0 to capacity - 1, with
    pass_slot=True) while fewer than `capacity` exist, else waits for a
    release.  release() gives it back: ``reset(obj)`` runs if given; if
    ``validate(obj)`` returns false the object is dropped (``destroy(obj)``
    if given) and its slot is refilled by the factory on a later acquire.

    Health: ``check(obj)`` runs on an idle object just before it is handed
    out; false or an exception, and the object is destroyed and acquire
    tries the next one (or the factory), all within the caller's timeout.
    Objects older than `max_lifetime` seconds, or idle longer than
    `max_idle`, are destroyed instead of handed out, at release when too
    old, and by evict(); start_evictor(interval) runs evict() in a thread
    and keeps `min_idle` objects ready.  discard(obj) gives back a broken
    object; drain() closes the pool once everything is back.

    Who holds what: track=True (or POOL_EXT_TRACK=1) records each hand-out's
    thread, time and stack: holders(), and PoolExhausted names the longest
    holder; leak_timeout=s warns PoolLeakWarning for a hand-out held longer.
    `name` labels the pool in messages, warnings and repr().

    >>> pool = ObjectPool(list, capacity=2, reset=list.clear)
    >>> with pool.lease() as scratch:
    ...     scratch.append(1)
    >>> pool.acquire()       # the same list, reset
    []

    Thread-safety: every method may be called from any thread.  acquire and
    release are lock-free (a compare-and-swap free-list in C); only a caller
    that must wait sleeps, with the GIL released.  Hooks run in the calling
    thread, outside any lock; check() runs while its object is owned by the
    acquiring thread alone (a release of it from inside check() fails).
    Objects are released by identity, so a pooled object must not be
    released twice by different owners: the pool catches a second release
    only while the object is not handed out again.
    """

    def __cinit__(self):
        # Everything __dealloc__ frees starts empty, so a failed __init__ is
        # safe (and the pool stays closed: see _PoolBase.__cinit__).
        self._slots.next = NULL
        self._slots.state = NULL
        self._items = NULL
        self._expires_ns = NULL
        self._idle_ns = NULL
        self._leased_gen = NULL
        self._hook_thread = NULL
        self._lifetime_ns = POOL_CLOCK_NEVER
        self._max_idle_ns = POOL_CLOCK_NEVER
        pool_addrmap_init_empty(&self._map)

    def __init__(self, factory, capacity, *, reset=None, validate=None,
                 destroy=None, prefill=0, pass_slot=False, check=None,
                 max_lifetime=None, max_idle=None, min_idle=0, track=False,
                 leak_timeout=None, name=None):
        _objectpool_init(self, factory, capacity, reset, validate, destroy, prefill,
                         pass_slot, check, max_lifetime, max_idle, min_idle, track,
                         leak_timeout, name)   # (_objectpool_items.pxi)

    def __dealloc__(self):
        # Our references go; destroy() is for close(), not garbage collection.
        # (A running evictor holds us weakly: it stops at its next round.)
        _objectpool_drop_items(self)
        _objectpool_free_arrays(self)

    # -- the hot path ------------------------------------------------------
    cdef inline uint32_t _pop_idle(self, uint32_t *gen) noexcept:
        """An idle object's slot, held for the caller (*gen: the hand-out's
        generation), or POOL_NIL: this thread's cached one first (free-
        threaded builds; the caller saw the gate open), else the list's."""
        cdef pool_cache_shard_t *sh
        cdef uint32_t i
        if POOL_THREAD_CACHE and self._cache.shards != NULL:
            sh = pool_cache_mine(&self._cache)
            i = pool_cache_take(sh)
            if i != POOL_NIL:
                gen[0] = pool_slots_hold(&self._slots, i)
                _count(&sh.acquires)
                return i
        i = pool_slots_pop_hold(&self._slots, &self._idle, gen)
        if POOL_THREAD_CACHE and i == POOL_NIL:
            i = pool_cache_steal(&self._cache)     # another thread's cached one
            if i != POOL_NIL:
                gen[0] = pool_slots_hold(&self._slots, i)
        if i != POOL_NIL:
            _count(&self._acquires)
        return i

    cdef inline int _release(self, object obj, bint in_lease) except -1:
        """release(obj); in_lease: a lease's exit (whose object may have been
        discard()ed inside the `with` block: then there is nothing to do)."""
        cdef uint32_t i = pool_addrmap_find(&self._map, <uintptr_t><PyObject *>obj)
        cdef uint64_t w
        if i == POOL_NIL:
            return self._cold_unknown(obj, _LEASE_EXIT if in_lease else _RELEASE)
        # Win the slot only for the hand-out that holds obj: check that the
        # slot still holds obj under the generation we read, then CAS that
        # generation.  Free-threaded, a stale release may have looked obj up
        # just before its slot was emptied and refilled; it then fails here
        # without ever touching the new holder's slot.  (The HELD word is
        # published by pool_slots_hold after the slot's contents changed.)
        # Under the GIL the map and the slot cannot disagree, so the
        # identity check compiles away (POOL_RACY_LOOKUP is 0).
        w = pool_slots_load(&self._slots, i)
        if (POOL_SLOT_STATE(w) != POOL_SLOT_HELD
                or (POOL_RACY_LOOKUP and _item(self, i) != <PyObject *>obj)):
            return self._cold_not_in_use(obj, _RELEASE)
        if self._plain_release:
            # No hook runs: HELD -> FREE in one transition, then the push.
            if pool_slots_release_handle(&self._slots, i, POOL_SLOT_GEN(w)) != POOL_FREED:
                return self._cold_not_in_use(obj, _RELEASE)
            return self._return_idle(i)
        if self._async_release:
            return self._cold_async_release()
        if pool_slots_release_begin(&self._slots, i, POOL_SLOT_GEN(w)) != POOL_OK:
            return self._cold_not_in_use(obj, _RELEASE)
        # From here on the slot goes back to a list whatever happens.
        return _release_hooks(self, obj, i)

    cdef inline int _release_slot(self, uint32_t i, uint32_t gen) except -1:
        """Ends the hand-out (i, gen), as a lease does: by its slot, with no
        lookup; the generation says whether it is still that hand-out."""
        if self._plain_release:
            if pool_slots_release_handle(&self._slots, i, gen) != POOL_FREED:
                return self._cold_slot_not_in_use(i, gen)
            return self._return_idle(i)
        if self._async_release:
            return self._cold_async_release()
        if pool_slots_release_begin(&self._slots, i, gen) != POOL_OK:
            return self._cold_slot_not_in_use(i, gen)
        if self._items[i] == NULL:
            # the collector cleared the pool (tp_clear dropped its objects):
            # a lease of the same garbage cycle gives back an empty slot
            _hold_end(self, i)
            _count(&self._releases)
            self._unhold_empty(i)
            return 0
        return _release_hooks(self, <object>self._items[i], i)

    cdef inline int _return_idle(self, uint32_t i) except -1:
        """Slot i, just made FREE by a plain release, goes back, counted:
        into this thread's cache (free-threaded builds, src/pool_cache.h),
        else onto the idle list."""
        cdef pool_cache_shard_t *sh
        if POOL_THREAD_CACHE and self._cache.shards != NULL:
            sh = pool_cache_mine(&self._cache)
            _count(&sh.releases)
            if pool_cache_put(sh, i):
                if pool_waitq_notify(&self._waitq):   # someone waits, or closed
                    return self._cold_uncache(sh, i)
                return 0
        else:
            _count(&self._releases)
        pool_slots_push(&self._slots, &self._idle, i)
        return self._after_idle_push()

    cdef int _cold_uncache(self, pool_cache_shard_t *sh, uint32_t i) except -1:
        """A slot just cached met a shut gate: onto the list, where the
        oldest waiter is granted it (or close's drain finds it); unless a
        waiter already stole it from the cache."""
        if pool_cache_reclaim(sh, i):
            pool_slots_push(&self._slots, &self._idle, i)
        return self._cold_after_push()

    cdef inline int _after_idle_push(self) except -1:
        """A slot holding its object was pushed on the idle list."""
        if pool_waitq_notify(&self._waitq):   # someone waits, or closed
            return self._cold_after_push()
        return 0

    cdef int _cold_after_push(self) except -1:
        if _is_closed(self):
            # Closed: the object must not stay idle.  close() drains once; a
            # release that pushed after it (or a free-threaded race with its
            # drain) drains again; destroy() errors reach this caller.  The
            # waiter (drain()) is woken after: it must not return while
            # destroy() still runs.
            try:
                return self._cold_drain()
            finally:
                self._released()   # a hint to drain(): look again
        self._released()   # granted to the oldest waiter
        return 0

    cdef inline int _unhold_idle(self, uint32_t i) except -1:
        """Slot i (owned), holding its object, goes back on the idle list."""
        pool_slots_free_push(&self._slots, &self._idle, i)
        return self._after_idle_push()

    # -- out of line: what raises, calls Python or waits ---------------------
    cdef int _cold_async_release(self) except -1:
        _async_only(self, "release()", "await pool.release_async(obj)")

    cdef object _cold_closed_try(self):
        raise PoolClosed(f"try_acquire() on a closed {self._label()}")

    cdef object _cold_closed(self):
        raise PoolClosed(f"acquire() on a closed {self._label()}")

    cdef int _cold_unknown(self, object obj, int how) except -1:
        """obj is not in the pool: never handed out, or discarded already."""
        if self._slots.state == NULL:
            raise PoolClosed(f"{_VERB[how]}() on a pool that was never initialised")
        gone = self._gone.get(id(obj))
        if gone is not None and gone[0] is type(obj):
            if how == _LEASE_EXIT and gone[1]:
                return 0   # discard()ed inside its `with` block: nothing to give back
            raise PoolError(f"{_VERB[how]} of an object that is not in use in this "
                            f"{self._label()} (already released, and discarded): "
                            f"{type(obj).__name__} at "
                            f"{id(obj):#x}")
        raise PoolError(f"{_VERB[how]} of an object that was not handed out by this "
                        f"{self._label()}: {type(obj).__name__} at {id(obj):#x}")

    cdef int _cold_not_in_use(self, object obj, int how) except -1:
        raise PoolError(f"{_VERB[how]} of an object that is not in use in this "
                        f"{self._label()} (already released?): {type(obj).__name__} at "
                        f"{id(obj):#x}")

    cdef int _cold_slot_not_in_use(self, uint32_t i, uint32_t gen) except -1:
        """A lease's hand-out (i, gen) ended before its exit: fine if the
        object was discard()ed inside the `with` block, an error if it was
        released.  (Told by the hand-out, not the object's address, which a
        new object may have taken since.)"""
        if self._take_lease_discard(i, gen):
            return 0   # discard()ed inside its `with` block: nothing to give back
        raise PoolError("lease exit of an object that is not in use (already "
                        "released?): the lease's object was released before the "
                        "lease ended")

    cdef int _cold_drain(self) except -1:
        return _destroy_all(self, _drain_idle(self))

    cdef object _try_take(self):
        """A hand-out, or _NOTHING if no slot is free (the slow paths)."""
        return self._take(-1.0)

    cdef object _take(self, double deadline):
        """A newcomer's hand-out, or _NOTHING if no slot is free or others
        wait (it queues behind them): an idle object that passes the health
        rules, else a new one from the factory.  deadline (time.monotonic();
        < 0: none) ends a series of failed checks."""
        cdef uint32_t i, gen
        cdef uint64_t gate = pool_waitq_gate(&self._waitq)
        if gate & POOL_GATE_CLOSED:
            return self._cold_closed()
        if gate and not self._async_hooks:
            return _NOTHING    # others wait: no barging
        if self._plain_take:
            i = self._pop_idle(&gen)
            if i != POOL_NIL:
                return <object>self._items[i]
        elif self._async_hooks:
            return _async_only(self, "acquire() (or try_acquire(), lease())",
                               "await pool.acquire_async() or async with pool.lease_async()")
        else:
            while True:
                obj = _take_idle_vetted(self)
                if obj is _NOTHING:
                    break          # no idle object: the factory, or a wait
                if obj is not _REJECTED:
                    return obj
                if deadline >= 0 and _monotonic() >= deadline:
                    _count(&self._timeouts)
                    raise PoolExhausted(self._exhausted_message(
                        "no idle object passed check() or the time limits before "
                        "the acquire's timeout ran out"))
        i = pool_slots_pop_own(&self._slots, &self._empty)
        if i == POOL_NIL:
            return _NOTHING
        _count(&self._acquires)   # from now: drain() waits for this one
        return self._hand_out(i, 1, deadline)

    cdef object _cold_acquire(self, object timeout):
        """acquire() when no idle object was handed out on the hot path: the
        health rules, the factory, or a wait, all within one timeout."""
        cdef double t = _parse_timeout(timeout)
        cdef double start = -1.0
        cdef double deadline = -1.0
        if t > 0 and not self._plain_take:
            start = _monotonic()          # checks may take time: one deadline
            deadline = start + t
        item = self._take(deadline)
        if item is _NOTHING:
            return _wait_sync(self, timeout, start)
        return item

    cdef object _acquire(self, object timeout):
        return self._cold_acquire(timeout)

    cdef object _hand_out(self, uint32_t i, uint32_t k, double deadline):
        """A granted slot (owned, counted; k: 0 idle, 1 empty) handed out:
        its idle object, vetted as any (check(), time limits), or a new one
        from the factory.  _REJECTED if the idle object failed (destroyed,
        its slot gone on: the waiter queues again)."""
        if _is_closed(self):
            self._give_up(i, k)
            return self._cold_closed()
        if k == 0:
            if self._plain_take:
                pool_slots_hold(&self._slots, i)   # RELEASING -> HELD
                return <object>self._items[i]
            obj = _vet(self, i, <object>self._items[i], True)
            if obj is not _REFILL:
                return obj
            # it failed, and its slot is still ours: the factory fills it
            # (the waiter keeps its place: FIFO)
        try:
            obj = _call_factory(self, i)
            _adopt(self, i, obj)
        except BaseException:
            _uncount(&self._acquires)   # before the push wakes a drain()
            self._unhold_empty(i)
            raise
        if _is_closed(self):
            # closed while the factory ran (by the factory itself, say): not
            # handed out, as the async path and check() do
            _reject(self, i, obj, NULL)
            return self._cold_closed()
        _hold_begin(self, i, None)
        pool_slots_hold(&self._slots, i)
        return obj

    cdef int _give_up(self, uint32_t i, uint32_t k) except -1:
        _uncount(&self._acquires)   # before the push wakes a drain()
        if k == 0:
            return self._unhold_idle(i)
        self._unhold_empty(i)
        return 0

    cdef int _lease_exit(self, object obj) except -1:
        return self._release(obj, True)

    cdef uint32_t _discard_begin(self, object obj) except? 0xffffffff:
        """discard(obj): obj's slot, won from its hand-out (HELD -> RELEASING),
        or PoolError if obj is not handed out."""
        cdef uint32_t i = pool_addrmap_find(&self._map, <uintptr_t><PyObject *>obj)
        cdef uint64_t w
        if i == POOL_NIL:
            self._cold_unknown(obj, _DISCARD)
        cdef bint leased
        w = pool_slots_load(&self._slots, i)
        if POOL_SLOT_STATE(w) != POOL_SLOT_HELD or _item(self, i) != <PyObject *>obj:
            self._cold_not_in_use(obj, _DISCARD)
        # A leased hand-out: its exit will ask.  Recorded before the slot
        # changes, so that an exit in another thread that sees the hand-out
        # ended also finds the record.  (relaxed: written by the lease's
        # entry, in this thread or one that passed the object on, which
        # ordered it)
        leased = pool_load64(&self._leased_gen[i], POOL_RELAXED) == \
            (<uint64_t>1 << 32) | POOL_SLOT_GEN(w)
        if leased:
            self._lease_discards.add((i, POOL_SLOT_GEN(w)))
        if pool_slots_release_begin(&self._slots, i, POOL_SLOT_GEN(w)) != POOL_OK:
            if leased:
                self._lease_discards.discard((i, POOL_SLOT_GEN(w)))
            self._cold_not_in_use(obj, _DISCARD)
        return i

    cdef inline void _mark_leased(self, uint32_t i, uint32_t gen) noexcept:
        """A lease took the hand-out (i, gen): a discard() of it is recorded
        for the lease's exit (by hand-out: the object's address may be a new
        object's by then, and a record per lease, not per slot, survives the
        slot's next hand-outs)."""
        # relaxed: read by a discard() of this hand-out (see _discard_begin)
        pool_store64(&self._leased_gen[i], (<uint64_t>1 << 32) | gen, POOL_RELAXED)

    cdef bint _take_lease_discard(self, uint32_t i, uint32_t gen) noexcept:
        """Whether the leased hand-out (i, gen) was discard()ed; forgets it."""
        try:
            if self._lease_discards is not None and (i, gen) in self._lease_discards:
                self._lease_discards.discard((i, gen))
                return True
        except BaseException:    # (MemoryError)
            pass
        return False

    # -- slot bookkeeping (the caller owns slot i) -----------------------------
    cdef void _unhold_empty(self, uint32_t i) noexcept:
        """Slot i, now holding nothing, goes back on the empty list."""
        pool_slots_free_push(&self._slots, &self._empty, i)
        _notify(self)

    cdef int _push_idle(self, uint32_t i) except -1:
        """Slot i (owned), holding its object, goes idle: stamped for
        max_idle, then back on the idle list."""
        if self._idle_ns != NULL:
            self._idle_ns[i] = pool_clock_ns()   # published by the push
        return self._unhold_idle(i)

    cdef void _put(self, uint32_t i, object obj) noexcept:
        # Only slot i's owner writes item i; the free-list publishes it.
        cdef PyObject *old = self._items[i]
        cdef PyObject *new = NULL
        if obj is not None:
            new = <PyObject *>obj
            Py_INCREF(obj)
        # relaxed: see _item(); ordered for the next owner by the free-list
        pool_storeptr(<uintptr_t *>&self._items[i], <uintptr_t>new, POOL_RELAXED)
        Py_XDECREF(old)

    # -- public API (acquire() and lease() are C entry points: _entries.pxi) --
    @classmethod
    def __class_getitem__(cls, item):
        """ObjectPool[Conn] in an annotation: a pool of Conn objects."""
        return _types.GenericAlias(cls, item)

    @cython.always_allow_keywords(False)   # METH_NOARGS
    def try_acquire(self):
        """Hands out an object, or returns None at once if none is free.
        (It never sleeps; it does run check() and the factory.)"""
        cdef PyObject *idle = _idle_now(self)
        if idle != NULL:
            return <object>idle
        if _is_closed(self):
            return self._cold_closed_try()
        item = self._take(-1.0)   # (_NOTHING while others wait: no barging)
        return None if item is _NOTHING else item

    @cython.always_allow_keywords(False)   # METH_O
    @cython.embedsignature(False)          # positional-only, said below
    def release(self, obj):
        """release($self, obj, /)
--

        Gives obj back.  PoolError if this pool did not hand it out, or
        if it was already released (the pool is then unchanged)."""
        self._release(obj, False)

    @cython.always_allow_keywords(False)   # METH_O
    @cython.embedsignature(False)          # positional-only, said below
    def discard(self, obj):
        """discard($self, obj, /)
--

        Gives back a held object as broken: it is destroyed (``destroy(obj)``
        if given, no reset or validate) and its slot is free for a new one.

        PoolError if obj is not handed out by this pool (never was, or
        already released or discarded).  Inside ``with pool.lease() as obj``
        the lease's exit then has nothing to give back, and does nothing.

        >>> pool = ObjectPool(dict, 1)
        >>> d = pool.acquire()
        >>> pool.discard(d)
        >>> pool.acquire() is d
        False

        Thread-safety: as release(); of two threads releasing or discarding
        one hand-out, exactly one wins, the other gets PoolError."""
        cdef uint32_t i = self._discard_begin(obj)
        _hold_end(self, i)
        _count(&self._releases)
        _count(&self._discarded)
        _discard(self, i, obj, True)

    def close(self):
        """Destroys the idle objects; later acquires raise PoolClosed and
        later releases destroy the object.  Idempotent.  Sleeping acquirers
        wake and raise PoolClosed; a running evictor stops."""
        if self._close_begin():
            _stop_evictor(self)   # (not joined: close() returns at once)
            _destroy_all(self, _drain_idle(self))

    def drain(self, timeout=None):
        """Closes the pool once every held object is back, destroying all.

        It stops handing out at once (acquires raise PoolClosed, and callers
        already waiting get PoolClosed), destroys the idle objects, waits up
        to `timeout` seconds (None: forever) until every held object has
        been released, each then destroyed, and stops the evictor.  On
        timeout it raises PoolExhausted (naming the longest holder if the
        pool tracks); the pool stays closed, and objects released later are
        destroyed.  On a closed pool it returns at once.

        >>> pool = ObjectPool(dict, 2)
        >>> pool.release(pool.acquire())
        >>> pool.drain(timeout=5)
        >>> pool.closed, pool.size
        (True, 0)

        From inside a reset, validate or check hook of this pool it raises
        RuntimeError at once (it would wait for that hook's own object);
        close() does not wait.

        Thread-safety: any thread may call it; releases from other threads
        are what it waits for.  Ctrl-C ends the wait (the pool stays closed).
        An exception from destroy() reaches the caller (every object is
        still destroyed)."""
        return _drain(self, timeout)

    # -- asyncio: the hooks awaited (_async_hooks.pxi) ---------------------
    async def release_async(self, obj, /):
        """release() for asyncio, awaiting coroutine hooks: ``await
        pool.release_async(obj)``.  reset() and validate() are awaited, and
        destroy() when the object leaves.  On a pool without coroutine hooks
        it is release().  A cancellation while a hook runs never loses the
        slot: the object is destroyed (in a task) and the slot is free."""
        await _release_async(self, obj, False)

    async def discard_async(self, obj, /):
        """discard() for asyncio: destroy(obj) awaited, then the slot is free."""
        await _discard_hooks(self, obj)

    async def close_async(self):
        """close() for asyncio: the idle objects' destroy() awaited.
        Idempotent.  (close() itself runs a coroutine destroy() as tasks on
        the running loop, and warns if none runs.)"""
        if self._close_begin():
            _stop_evictor(self)
            await _destroy_all_async(self, _drain_idle(self))

    async def drain_async(self, timeout=None):
        """drain() for asyncio: closes the pool (waiting tasks and threads
        get PoolClosed), destroys the idle objects, then waits, without
        blocking the loop, until every held object is back (each destroyed),
        up to `timeout` seconds: PoolExhausted then, the pool stays closed.
        destroy() is awaited.  RuntimeError if no event loop is running."""
        _check_timeout(timeout)
        _refuse_in_factory(self, "drain_async()")
        return await _drain_async(self, timeout)

    def evict(self):
        """Destroys the idle objects past max_lifetime or max_idle now;
        returns how many.  (Acquire and release apply the same limits as they
        meet objects; evict() finds the ones nobody meets.)

        >>> import time
        >>> pool = ObjectPool(dict, 2, max_idle=0.01)
        >>> pool.release(pool.acquire()); time.sleep(0.02)
        >>> pool.evict(), pool.size
        (1, 0)

        Thread-safety: any thread, at any time; acquirers meanwhile see the
        idle objects for the few microseconds it takes to test them all."""
        return _evict(self)

    def start_evictor(self, interval):
        """Starts a daemon thread that calls evict() every `interval` seconds
        (the first time at once) and creates objects while fewer than
        min_idle are idle (and slots are free).  interval: seconds, from
        0.001 (1 ms: shorter would be a busy loop) to threading.TIMEOUT_MAX
        (ValueError otherwise).  RuntimeError if it already runs; PoolClosed
        on a closed pool.  An exception from the factory or destroy() in
        that thread is logged (logger "pool_ext") and the thread goes on; a
        leak past leak_timeout is reported there too.

        >>> pool = ObjectPool(dict, 4, min_idle=2)
        >>> pool.start_evictor(60.0)
        >>> pool.stop_evictor(); pool.idle
        2

        Thread-safety: start and stop may be called from any thread.  The
        thread holds the pool weakly: a pool dropped without stop_evictor()
        or close() is collected, and the thread ends at its next round.  It
        does not survive fork(): call start_evictor() again in the child."""
        _start_evictor(self, interval)   # (_health.pxi)

    def stop_evictor(self):
        """Stops the evictor thread and waits for it to finish its round
        (not if called from that thread).  Does nothing if none runs."""
        _join_evictor(_stop_evictor(self), -1.0)

    @property
    def size(self):
        """Objects created and alive (idle or handed out)."""
        cdef uint64_t c = _read(&self._creations)
        cdef uint64_t d = _read(&self._destructions)
        return c - d if c > d else 0

    @property
    def idle(self):
        """Objects ready to hand out without calling the factory."""
        s = self.size
        u = self._in_use()
        return s - u if s > u else 0

    @property
    def factory(self):
        return self._factory

    @property
    def max_lifetime(self):
        """Seconds an object may live (None: no limit)."""
        return _limit_seconds(self._lifetime_ns)

    @property
    def max_idle(self):
        """Seconds an object may stay idle (None: no limit)."""
        return _limit_seconds(self._max_idle_ns)

    @property
    def min_idle(self):
        """Idle objects the evictor keeps ready."""
        return self._min_idle

    def __repr__(self):
        return _pool_repr(self, f"size={self.size} factory={self._factory!r}")


cdef object _limit_seconds(uint64_t ns):
    return None if ns == POOL_CLOCK_NEVER else ns / 1e9


# What a release-like call was, for its error messages (_cold_unknown).
cdef enum:
    _RELEASE = 0
    _LEASE_EXIT = 1
    _DISCARD = 2

cdef tuple _VERB = ("release", "release", "discard")
