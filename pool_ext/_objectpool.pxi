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
        self._hook_thread = NULL
        self._lifetime_ns = POOL_CLOCK_NEVER
        self._max_idle_ns = POOL_CLOCK_NEVER
        pool_addrmap_init_empty(&self._map)

    def __init__(self, factory, capacity, *, reset=None, validate=None,
                 destroy=None, prefill=0, pass_slot=False, check=None,
                 max_lifetime=None, max_idle=None, min_idle=0, track=False,
                 leak_timeout=None, name=None):
        cdef uint32_t n, i, gen
        cdef bint hooks
        if self._slots.state != NULL:
            raise RuntimeError("ObjectPool.__init__ called twice")
        if not callable(factory):
            raise TypeError(f"factory must be callable, not {type(factory).__name__}")
        self._reset = _check_hook(reset, "reset")
        self._validate = _check_hook(validate, "validate")
        self._destroy = _check_hook(destroy, "destroy")
        self._check = _check_hook(check, "check")
        n = _parse_capacity(capacity)
        prefill = _int_arg(prefill, "prefill", 0, n)
        self._min_idle = _int_arg(min_idle, "min_idle", 0, n)
        self._lifetime_ns = _parse_limit(max_lifetime, "max_lifetime")
        self._max_idle_ns = _parse_limit(max_idle, "max_idle")
        self._factory = factory
        self._pass_slot = bool(pass_slot)
        self._capacity = n
        self._observe_init(name, track, leak_timeout)
        timed = (self._lifetime_ns != POOL_CLOCK_NEVER
                 or self._max_idle_ns != POOL_CLOCK_NEVER or self._holders is not None)
        self._plain_take = check is None and not timed
        self._plain_take_async = self._plain_take   # (not cleared for coroutine hooks)
        self._plain_release = reset is None and validate is None and not timed
        # Coroutine hooks (_async_hooks.pxi): only the async methods can run them.
        self._async_release = _is_coroutine_hook(reset) or _is_coroutine_hook(validate)
        self._async_hooks = (self._async_release or _is_coroutine_hook(factory)
                             or _is_coroutine_hook(check) or _is_coroutine_hook(destroy))
        if self._async_hooks:
            self._plain_take = False     # the sync acquires must refuse (_take)
            if prefill:
                raise TypeError(f"prefill={prefill} cannot await a coroutine hook; "
                                f"acquire_async() and release the objects instead")
        self._gone = {}
        self._lock = _threading.Lock()
        self._rounds = []
        if (self._min_idle or self._lifetime_ns != POOL_CLOCK_NEVER
                or self._max_idle_ns != POOL_CLOCK_NEVER):
            _watch_fork(self)   # its evict() and min_idle rounds (_health.pxi)
        # All or nothing: a capacity whose memory cannot be had leaves no
        # array behind (nor one a second __init__ would leak).
        hooks = reset is not None or validate is not None or check is not None
        if _objectpool_alloc(self, n, hooks) != 0:
            _objectpool_free_arrays(self)
            raise _capacity_error("ObjectPool", n, _objectpool_bytes(
                n, (self._lifetime_ns != POOL_CLOCK_NEVER) + (self._max_idle_ns != POOL_CLOCK_NEVER)
                + hooks))
        if self._plain_take and self._plain_release and not self._async_hooks:
            self._cache_init()   # (free-threaded builds: src/pool_cache.h)
        # grants come from the idle list first, then the empty one (the factory)
        pool_waitq_bind(&self._waitq, &self._slots, &self._idle, &self._empty,
                        &self._acquires, &self._cache)
        pool_waitq_open(&self._waitq)   # open for business
        for _ in range(<uint32_t>prefill):
            i = pool_slots_pop_hold(&self._slots, &self._empty, &gen)
            if i == POOL_NIL:
                # Only a factory that acquires from this very pool (built with
                # __new__, then __init__) can take the empty slots from under us.
                raise PoolError(f"prefill={prefill} found no empty slot left: the "
                                f"factory acquired from the pool being built")
            self._fill(i)
            self._push_idle(i)

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
        return self._release_hooks(obj, i)

    cdef inline int _release_slot(self, uint32_t i, uint32_t gen, uintptr_t addr) except -1:
        """Ends the hand-out (i, gen), as a lease does: by its slot, with no
        lookup; the generation says whether it is still that hand-out.  addr:
        its object's address, only to recognise a discard() (never read)."""
        if self._plain_release:
            if pool_slots_release_handle(&self._slots, i, gen) != POOL_FREED:
                return self._cold_slot_not_in_use(addr)
            return self._return_idle(i)
        if self._async_release:
            return self._cold_async_release()
        if pool_slots_release_begin(&self._slots, i, gen) != POOL_OK:
            return self._cold_slot_not_in_use(addr)
        return self._release_hooks(<object>self._items[i], i)

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
        self._released()   # granted to the oldest waiter
        if _is_closed(self):
            # Closed: the object must not stay idle.  close() drains once; a
            # release that pushed after it (or a free-threaded race with its
            # drain) drains again; destroy() errors reach this caller.
            return self._cold_drain()
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

    cdef int _cold_slot_not_in_use(self, uintptr_t addr) except -1:
        """A lease's hand-out ended before its exit: fine if the object was
        discard()ed inside the `with` block, an error if it was released."""
        gone = self._gone.get(addr)
        if gone is not None and gone[1]:
            return 0   # discard()ed inside its `with` block: nothing to give back
        raise PoolError("lease exit of an object that is not in use (already "
                        "released?): the lease's object was released before the "
                        "lease ended")

    cdef int _cold_drain(self) except -1:
        return self._destroy_all(self._drain_idle())

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
            return _vet(self, i, <object>self._items[i])
        try:
            obj = self._factory(i) if self._pass_slot else self._factory()
            self._adopt(i, obj)
        except BaseException:
            _uncount(&self._acquires)   # before the push wakes a drain()
            self._unhold_empty(i)
            raise
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

    cdef uint32_t _win(self, object obj) except? 0xffffffff:
        """discard(obj): obj's slot, won from its hand-out (HELD -> RELEASING),
        or PoolError if obj is not handed out."""
        cdef uint32_t i = pool_addrmap_find(&self._map, <uintptr_t><PyObject *>obj)
        cdef uint64_t w
        if i == POOL_NIL:
            self._cold_unknown(obj, _DISCARD)
        w = pool_slots_load(&self._slots, i)
        if (POOL_SLOT_STATE(w) != POOL_SLOT_HELD or _item(self, i) != <PyObject *>obj
                or pool_slots_release_begin(&self._slots, i, POOL_SLOT_GEN(w)) != POOL_OK):
            self._cold_not_in_use(obj, _DISCARD)
        return i

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

    cdef object _fill(self, uint32_t i, uint32_t *mark=NULL):
        """Fills empty slot i (popped and owned) from the factory; on an
        exception the slot is back on the empty list (and *mark, a round's
        record of the slot it holds, is cleared first: _health.pxi)."""
        try:
            obj = self._factory(i) if self._pass_slot else self._factory()
            self._adopt(i, obj)
        except BaseException:
            if mark != NULL:
                mark[0] = POOL_NIL
            self._unhold_empty(i)
            raise
        return obj

    cdef int _adopt(self, uint32_t i, object obj) except -1:
        """Puts the factory's new obj in empty slot i (owned), or raises
        and leaves the slot as it is."""
        if obj is None:
            raise PoolError("factory returned None: a pool hands out objects, and "
                            "try_acquire() returns None to mean 'none free'")
        if _awaitable(obj):
            _not_awaited(obj, "factory")
        if pool_addrmap_insert(&self._map, <uintptr_t><PyObject *>obj, i) != 0:
            raise PoolError(f"factory returned an object that is already in this pool "
                            f"({type(obj).__name__} at {id(obj):#x}); a pool releases "
                            f"by identity, so each pooled object must be distinct")
        # The slot's item and the counters change together, with no Python
        # call between (a fork() child reads them: _after_fork_in_child).
        self._put(i, obj)
        _count(&self._creations)
        if self._expires_ns != NULL:
            self._expires_ns[i] = _expiry(self, i)
        if self._gone:
            self._gone.pop(id(obj), None)   # the address is a pooled object's again
        return 0

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

    cdef void _detach(self, uint32_t i, object obj, bint discarded) noexcept:
        """Takes obj out of slot i (owned); the caller returns the slot.
        discarded: by discard() (a lease's exit then has nothing to give back)."""
        pool_addrmap_remove(&self._map, <uintptr_t><PyObject *>obj)
        self._put(i, None)
        _count(&self._destructions)   # with the item (see _adopt)
        self._remember_gone(obj, discarded)

    cdef void _remember_gone(self, object obj, bint discarded) noexcept:
        """Keeps the last _GONE_MEMORY discarded objects' ids (and types), so
        that releasing one again says "not in use", not "did not hand out".
        An id is an address, so a foreign object of the same type born at a
        discarded object's address would get the first message: a hint only."""
        gone = self._gone
        if len(gone) >= _GONE_MEMORY:
            try:
                gone.pop(next(iter(gone)), None)   # the oldest
            except BaseException:   # another thread changed it meanwhile
                pass
        # Always recorded, even when another thread evicted the same oldest
        # entry first: a lease's exit after discard() reads it.
        gone[id(obj)] = (type(obj), discarded)

    cdef int _discard(self, uint32_t i, object obj, bint by_user, uint32_t *mark=NULL) except -1:
        """Detaches and destroys obj, then returns its (now empty) slot.
        destroy() runs first, so the factory cannot refill the slot while the
        old object (an open connection, say) still exists: never more than
        `capacity` objects alive.  Whatever destroy() raises, the slot is back.
        A coroutine destroy() runs as a task on the running loop, which
        returns the slot when it has finished (_destroy_soon).
        by_user: discard() (see _detach).  mark: a round's record of the
        slot it holds (_health.pxi), cleared as the slot leaves its hands."""
        self._detach(i, obj, by_user)
        try:
            r = None if self._destroy is None else self._destroy(obj)
        except BaseException:
            if mark != NULL:
                mark[0] = POOL_NIL
            self._unhold_empty(i)
            raise
        if mark != NULL:
            mark[0] = POOL_NIL
        if _awaitable(r):
            _destroy_soon(r, _slot_after_destroy(self, i))
            return 0
        self._unhold_empty(i)
        return 0

    cdef int _release_hooks(self, object obj, uint32_t i) except -1:
        """The release of obj (slot i, RELEASING) when there is work to do."""
        keep = True
        _hold_end(self, i)
        if _too_old(self, i):
            # No reset for an object that leaves anyway.
            _count(&self._releases)
            _count(&self._expired)
            return self._discard(i, obj, False)
        try:
            if self._reset is not None:
                r = _call_hook(self, i, self._reset, obj)
                if _awaitable(r):
                    _not_awaited(r, "reset")
            if self._validate is not None:
                r = _call_hook(self, i, self._validate, obj)
                if _awaitable(r):
                    _not_awaited(r, "validate")
                keep = bool(r)
        except BaseException:
            # A hook failed: the object's state is unknown, so it leaves the
            # pool; the slot does not.  The hook's exception propagates.
            _count(&self._releases)
            self._discard(i, obj, False)
            raise
        _count(&self._releases)
        if keep and not _is_closed(self):
            return self._push_idle(i)
        return self._discard(i, obj, False)

    cdef int _call_destroy(self, object obj) except -1:
        if self._destroy is not None:
            r = self._destroy(obj)
            if _awaitable(r):
                _destroy_soon(r, None)   # a coroutine destroy(): a task on the running loop
        return 0

    cdef list _drain_idle(self):
        """Takes every idle object out of the pool; returns them."""
        cdef uint32_t i
        cdef list drained = []
        while True:
            i = pool_cache_steal(&self._cache)                 # the threads' cached ones
            if i != POOL_NIL:
                pool_slots_own(&self._slots, i)
            else:
                i = pool_slots_pop_own(&self._slots, &self._idle)   # not a hand-out
            if i == POOL_NIL:
                return drained
            obj = <object>self._items[i]
            # The pool is closed, so nothing refills the slot: return it
            # now and destroy the objects after (the caller does).
            self._detach(i, obj, False)
            self._unhold_empty(i)
            drained.append(obj)

    cdef int _destroy_all(self, list objs) except -1:
        """destroy() each; every one is tried, the first error is raised."""
        first_error = None
        for obj in objs:
            try:
                self._call_destroy(obj)
            except BaseException as e:
                if first_error is None:
                    first_error = e
        if first_error is not None:
            raise first_error
        return 0

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
        cdef uint32_t i = self._win(obj)
        _hold_end(self, i)
        _count(&self._releases)
        _count(&self._discarded)
        self._discard(i, obj, True)

    def close(self):
        """Destroys the idle objects; later acquires raise PoolClosed and
        later releases destroy the object.  Idempotent.  Sleeping acquirers
        wake and raise PoolClosed; a running evictor stops."""
        if self._close_begin():
            self._stop_evictor()   # (not joined: close() returns at once)
            self._destroy_all(self._drain_idle())

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
            self._stop_evictor()
            await _destroy_all_async(self, self._drain_idle())

    async def drain_async(self, timeout=None):
        """drain() for asyncio: closes the pool (waiting tasks and threads
        get PoolClosed), destroys the idle objects, then waits, without
        blocking the loop, until every held object is back (each destroyed),
        up to `timeout` seconds: PoolExhausted then, the pool stays closed.
        destroy() is awaited.  RuntimeError if no event loop is running."""
        _check_timeout(timeout)
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
        cdef double t = _parse_interval(interval)
        if self._async_hooks:
            _async_only(self, "start_evictor()'s thread",
                        "a task that calls evict() (its destroy() calls then run as tasks)")
        if self._lock is None or _is_closed(self):   # (None: never initialised)
            raise PoolClosed(f"start_evictor() on a closed {self._label()}")
        with self._lock:
            if _is_closed(self):
                raise PoolClosed(f"start_evictor() on a closed {self._label()}")
            if self._evictor is not None and self._evictor.is_alive():
                raise RuntimeError("the evictor is already running; stop_evictor() first")
            stop = _threading.Event()
            thread = _threading.Thread(
                target=_evictor_main, args=(_weakref.ref(self), stop, t), daemon=True,
                name=f"pool_ext evictor of {self._label()}")
            thread.start()
            self._evictor = thread
            self._evictor_stop = stop

    def stop_evictor(self):
        """Stops the evictor thread and waits for it to finish its round
        (not if called from that thread).  Does nothing if none runs."""
        _join_evictor(self._stop_evictor(), -1.0)

    cdef object _stop_evictor(self):
        """Tells the evictor to stop; returns its thread (None if none ran)."""
        if self._lock is None:   # never initialised
            return None
        with self._lock:
            thread, stop = self._evictor, self._evictor_stop
            self._evictor = self._evictor_stop = None
        if stop is not None:
            stop.set()
        return thread

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


cdef int _join_evictor(object thread, double timeout) except -1:
    """Waits for a stopped evictor thread (timeout < 0: for ever), unless it
    is this thread (a hook that stops its own evictor)."""
    if thread is not None and thread is not _threading.current_thread():
        thread.join(None if timeout < 0 else timeout)
    return 0


cdef object _limit_seconds(uint64_t ns):
    return None if ns == POOL_CLOCK_NEVER else ns / 1e9


# What a release-like call was, for its error messages (_cold_unknown).
cdef enum:
    _RELEASE = 0
    _LEASE_EXIT = 1
    _DISCARD = 2

cdef tuple _VERB = ("release", "release", "discard")
