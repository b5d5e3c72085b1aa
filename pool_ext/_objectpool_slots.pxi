# ObjectPool's slots and the objects in them, outside the hot path
# (included by _pool.pyx): what the owner of a slot does with its object.
# Each sync function sits beside its asynchronous twin (the one that awaits
# a coroutine hook's result; _async_hooks.pxi says when those run):
#
#   filling        _fill, _adopt: a new object from the factory into an empty slot
#   giving back    _release_hooks(_async): reset and validate at release
#   detaching      _detach, _remember_gone: the object leaves, the slot stays owned
#   destroying     _discard(_async), _call_destroy, _destroy_all(_async)
#   draining       _drain_idle: every idle object out of a closing pool
#
# Every function takes an owned slot (won from HELD, or popped) and leaves
# it on a list, or raises with it back on a list: no path loses a slot.


# -- filling ---------------------------------------------------------------------------------

cdef object _fill(ObjectPool pool, uint32_t i, uint32_t *mark=NULL):
    """Fills empty slot i (popped and owned) from the factory; on an
    exception the slot is back on the empty list (and *mark, a round's
    record of the slot it holds, is cleared first: _health.pxi)."""
    try:
        obj = _call_factory(pool, i)
        _adopt(pool, i, obj)
    except BaseException:
        if mark != NULL:
            mark[0] = POOL_NIL
        pool._unhold_empty(i)
        raise
    return obj


# The pools whose factory the caller's context is running (a tuple of ids): a
# context variable, so that it is per thread and per asyncio task alike
cdef object _in_factory = _contextvars.ContextVar("pool_ext_in_factory", default=())


cdef object _call_factory(ObjectPool pool, uint32_t i):
    """The factory's new object for slot i, with the caller marked as running
    pool's factory meanwhile (drain() refuses to wait there for the slot the
    factory is filling: _refuse_in_hook)."""
    token = _in_factory.set(_in_factory.get() + (id(pool),))
    try:
        return pool._factory(i) if pool._pass_slot else pool._factory()
    finally:
        _in_factory.reset(token)


cdef bint _running_factory(ObjectPool pool) except -1:
    return id(pool) in _in_factory.get()


cdef int _adopt(ObjectPool pool, uint32_t i, object obj) except -1:
    """Puts the factory's new obj in empty slot i (owned), or raises
    and leaves the slot as it is."""
    if obj is None:
        raise PoolError("factory returned None: a pool hands out objects, and "
                        "try_acquire() returns None to mean 'none free'")
    if _awaitable(obj):
        _not_awaited(obj, "factory")
    if pool_addrmap_insert(&pool._map, <uintptr_t><PyObject *>obj, i) != 0:
        raise PoolError(f"factory returned an object that is already in this pool "
                        f"({type(obj).__name__} at {id(obj):#x}); a pool releases "
                        f"by identity, so each pooled object must be distinct")
    # The slot's item and the counters change together, with no Python
    # call between (a fork() child reads them: _after_fork_in_child).
    pool._put(i, obj)
    _count(&pool._creations)
    if pool._expires_ns != NULL:
        pool._expires_ns[i] = _expiry(pool, i)
    if pool._gone:
        pool._gone.pop(id(obj), None)   # the address is a pooled object's again
    return 0


# -- giving back ----------------------------------------------------------------------------

cdef int _release_hooks(ObjectPool pool, object obj, uint32_t i) except -1:
    """The release of obj (slot i, RELEASING) when there is work to do."""
    keep = True
    _hold_end(pool, i)
    if _too_old(pool, i):
        # No reset for an object that leaves anyway.
        _count(&pool._releases)
        _count(&pool._expired)
        return _discard(pool, i, obj, False)
    try:
        if pool._reset is not None:
            r = _call_hook(pool, i, pool._reset, obj)
            if _awaitable(r):
                _not_awaited(r, "reset")
        if pool._validate is not None:
            r = _call_hook(pool, i, pool._validate, obj)
            if _awaitable(r):
                _not_awaited(r, "validate")
            keep = bool(r)
    except BaseException:
        # A hook failed: the object's state is unknown, so it leaves the
        # pool; the slot does not.  The hook's exception propagates.
        _count(&pool._releases)
        _discard(pool, i, obj, False)
        raise
    _count(&pool._releases)
    if keep and not _is_closed(pool):
        return pool._push_idle(i)
    return _discard(pool, i, obj, False)


async def _release_async(ObjectPool pool, obj, bint in_lease):
    """release_async(obj); in_lease: a lease's exit (see _release)."""
    cdef uint32_t i
    cdef uint64_t w
    if pool._plain_release:
        pool._release(obj, in_lease)
        return
    i = pool_addrmap_find(&pool._map, <uintptr_t><PyObject *>obj)
    if i == POOL_NIL:
        pool._cold_unknown(obj, _LEASE_EXIT if in_lease else _RELEASE)
        return
    w = pool_slots_load(&pool._slots, i)
    if (POOL_SLOT_STATE(w) != POOL_SLOT_HELD or _item(pool, i) != <PyObject *>obj
            or pool_slots_release_begin(&pool._slots, i, POOL_SLOT_GEN(w)) != POOL_OK):
        pool._cold_not_in_use(obj, _RELEASE)
    await _release_hooks_async(pool, obj, i)


async def _release_slot_async(ObjectPool pool, uint32_t i, uint32_t gen):
    """_release_slot() with coroutine hooks awaited: the hand-out (i, gen)
    ends (an async lease's exit), PoolError if it already has."""
    if pool_slots_release_begin(&pool._slots, i, gen) != POOL_OK:
        pool._cold_slot_not_in_use(i, gen)
    if pool._items[i] == NULL:
        # the collector cleared the pool (as _release_slot)
        _hold_end(pool, i)
        _count(&pool._releases)
        pool._unhold_empty(i)
        return
    await _release_hooks_async(pool, <object>pool._items[i], i)


async def _release_hooks_async(ObjectPool pool, obj, uint32_t i):
    """_release_hooks() with reset(), validate() and destroy() awaited."""
    keep = True
    _hold_end(pool, i)
    if _too_old(pool, i):
        _count(&pool._releases)
        _count(&pool._expired)
        await _discard_async(pool, i, obj, False)
        return
    try:
        if pool._reset is not None:
            r = _call_hook(pool, i, pool._reset, obj)
            if _awaitable(r):
                await r
        if pool._validate is not None:
            r = _call_hook(pool, i, pool._validate, obj)
            if _awaitable(r):
                r = await r
            keep = bool(r)
    except BaseException:
        # As _release_hooks: the object leaves, the slot does not; destroy()
        # runs as a task (this may be a cancellation).
        _count(&pool._releases)
        _discard(pool, i, obj, False)
        raise
    _count(&pool._releases)
    if keep and not _is_closed(pool):
        pool._push_idle(i)
    else:
        await _discard_async(pool, i, obj, False)


async def _discard_hooks(ObjectPool pool, obj):
    """discard_async(obj)."""
    cdef uint32_t i = pool._discard_begin(obj)
    _hold_end(pool, i)
    _count(&pool._releases)
    _count(&pool._discarded)
    await _discard_async(pool, i, obj, True)


# -- detaching and destroying ---------------------------------------------------------------

cdef void _detach(ObjectPool pool, uint32_t i, object obj, bint discarded) noexcept:
    """Takes obj out of slot i (owned); the caller returns the slot.
    discarded: by discard() (a lease's exit then has nothing to give back)."""
    pool_addrmap_remove(&pool._map, <uintptr_t><PyObject *>obj)
    pool._put(i, None)
    _count(&pool._destructions)   # with the item (see _adopt)
    _remember_gone(pool, obj, discarded)


cdef void _remember_gone(ObjectPool pool, object obj, bint discarded) noexcept:
    """Keeps the last _GONE_MEMORY discarded objects' ids (and types), so
    that releasing one again says "not in use", not "did not hand out".
    An id is an address, so a foreign object of the same type born at a
    discarded object's address would get the first message: a hint only."""
    gone = pool._gone
    if len(gone) >= _GONE_MEMORY:
        try:
            gone.pop(next(iter(gone)), None)   # the oldest
        except BaseException:   # another thread changed it meanwhile
            pass
    # Always recorded, even when another thread evicted the same oldest
    # entry first: a lease's exit after discard() reads it.
    gone[id(obj)] = (type(obj), discarded)


cdef int _discard(ObjectPool pool, uint32_t i, object obj, bint by_user,
                  uint32_t *mark=NULL) except -1:
    """Detaches and destroys obj, then returns its (now empty) slot.
    destroy() runs first, so the factory cannot refill the slot while the
    old object (an open connection, say) still exists: never more than
    `capacity` objects alive.  Whatever destroy() raises, the slot is back.
    A coroutine destroy() runs as a task on the running loop, which
    returns the slot when it has finished (_destroy_soon).
    by_user: discard() (see _detach).  mark: a round's record of the
    slot it holds (_health.pxi), cleared as the slot leaves its hands."""
    _detach(pool, i, obj, by_user)
    try:
        r = None if pool._destroy is None else pool._destroy(obj)
    except BaseException:
        if mark != NULL:
            mark[0] = POOL_NIL
        pool._unhold_empty(i)
        raise
    if mark != NULL:
        mark[0] = POOL_NIL
    if _awaitable(r):
        _destroy_soon(r, _slot_after_destroy(pool, i))
        return 0
    pool._unhold_empty(i)
    return 0


cdef int _call_destroy(ObjectPool pool, object obj) except -1:
    if pool._destroy is not None:
        r = pool._destroy(obj)
        if _awaitable(r):
            _destroy_soon(r, None)   # a coroutine destroy(): a task on the running loop
    return 0


cdef int _destroy_all(ObjectPool pool, list objs) except -1:
    """destroy() each of what _drain_idle took; every one is tried, the
    first error is raised.  Each is uncounted from _destroying as its
    destroy() ends."""
    first_error = None
    for obj in objs:
        try:
            _call_destroy(pool, obj)
        except BaseException as e:
            if first_error is None:
                first_error = e
        finally:
            _destroying_end(pool)
    if first_error is not None:
        raise first_error
    return 0


async def _destroy_async(ObjectPool pool, obj):
    if pool._destroy is not None:
        r = pool._destroy(obj)
        if _awaitable(r):
            await r


async def _discard_async(ObjectPool pool, uint32_t i, obj, bint by_user):
    """_discard() with destroy() awaited; the slot comes back whatever happens."""
    _detach(pool, i, obj, by_user)
    try:
        await _destroy_async(pool, obj)
    finally:
        pool._unhold_empty(i)


async def _destroy_all_async(ObjectPool pool, list objs):
    """destroy() each of what _drain_idle took, awaited; every one is
    tried, the first error is raised.  Each is uncounted from _destroying
    as its destroy() ends; a cancellation uncounts the rest (they are not
    destroyed: nothing would wait for them)."""
    cdef Py_ssize_t k, done = 0
    first_error = None
    try:
        for obj in objs:
            try:
                await _destroy_async(pool, obj)
            except Exception as e:
                if first_error is None:
                    first_error = e
            finally:
                done += 1
                _destroying_end(pool)
    finally:
        for k in range(done, len(objs)):
            _destroying_end(pool)
    if first_error is not None:
        raise first_error


# -- draining --------------------------------------------------------------------------------

cdef list _drain_idle(ObjectPool pool):
    """Takes every idle object out of the pool; returns them."""
    cdef uint32_t i
    cdef list drained = []
    while True:
        i = pool_cache_steal(&pool._cache)                 # the threads' cached ones
        if i != POOL_NIL:
            pool_slots_own(&pool._slots, i)
        else:
            i = pool_slots_pop_own(&pool._slots, &pool._idle)   # not a hand-out
        if i == POOL_NIL:
            return drained
        if pool._items[i] == NULL:
            # the collector cleared the pool (tp_clear dropped its objects)
            # and a lease of the same garbage cycle gave its slot back
            pool._unhold_empty(i)
            continue
        obj = <object>pool._items[i]
        # The pool is closed, so nothing refills the slot: return it
        # now and destroy the objects after (the caller does, and
        # uncounts each as its destroy() ends).  Counted before the
        # object leaves `size`: drain() reads size, then this.
        _destroying_begin(pool)
        _detach(pool, i, obj, False)
        pool._unhold_empty(i)
        try:
            drained.append(obj)
        except BaseException:   # (MemoryError): not destroyed, not waited for
            _destroying_end(pool)
            raise


cdef inline void _destroying_begin(ObjectPool pool) noexcept:
    # seq_cst: before the object leaves `size` (_detach), as drain()'s
    # _all_destroyed reads size first, then this
    pool_fetch_add64(&pool._destroying, 1, POOL_SEQ_CST)


cdef inline void _destroying_end(ObjectPool pool) noexcept:
    # seq_cst: after destroy() returned, seen by _all_destroyed
    pool_fetch_add64(&pool._destroying, <uint64_t>-1, POOL_SEQ_CST)


cdef bint _all_destroyed(ObjectPool pool) noexcept:
    """drain()'s end: nothing held, no object alive, no destroy() of one
    running (a release into the closed pool destroys its object itself,
    and drain() must not return before that ends)."""
    cdef uint64_t c, d
    if pool._in_use() != 0:
        return False
    # seq_cst: size first, then _destroying (see _destroying_begin)
    d = pool_load64(&pool._destructions, POOL_SEQ_CST)
    c = pool_load64(&pool._creations, POOL_SEQ_CST)
    if c > d:
        return False
    return pool_load64(&pool._destroying, POOL_SEQ_CST) == 0
