# asyncio (included by _pool.pyx): what the async methods share, and
# lease_async()'s context manager.  Tasks wait for a slot in _wait.pxi,
# beside the threads; ObjectPool's coroutine hooks are in _async_hooks.pxi.

cdef object _peek_running_loop = _asyncio._get_running_loop   # None, never raises


cdef int _no_running_loop() except -1:
    raise RuntimeError("acquire_async() and the pool's other async methods need a "
                       "running event loop: await them in a coroutine (asyncio.run, a "
                       "task), not outside one")


cdef inline object _take_now(_PoolBase pool):
    """acquire_async()'s fast path: a free slot's item, taken without
    suspending, or _NOTHING."""
    if isinstance(pool, ObjectPool):
        return _take_idle_plain(<ObjectPool>pool)   # (no hooks to await)
    return pool._try_take()


cdef inline object _acquire_slow(_PoolBase pool, timeout):
    """acquire_async() past its fast path: the coroutine to await (one
    level, so that a wake-up resumes the task through as few frames as it
    can)."""
    return _wait_async(pool, timeout)


cdef void _async_lease_took(_AsyncLease lease, object item) noexcept:
    """An async lease's entry holds item: for an ObjectPool, its hand-out's
    slot and generation, marked leased (a discard() of it is recorded for
    the exit, as for a sync lease: ObjectPool._mark_leased)."""
    cdef ObjectPool pool
    lease._index = POOL_NIL
    if type(lease._pool) is not ObjectPool:
        return
    pool = <ObjectPool>lease._pool
    lease._index = pool_addrmap_find(&pool._map, <uintptr_t><PyObject *>item)
    if lease._index != POOL_NIL:
        lease._gen = POOL_SLOT_GEN(pool_slots_load(&pool._slots, lease._index))
        pool._mark_leased(lease._index, lease._gen)


cdef bint _async_lease_discarded(_AsyncLease lease) noexcept:
    """At the exit: the lease's ObjectPool hand-out was discard()ed inside
    its block (then there is nothing to give back)."""
    cdef ObjectPool pool
    if type(lease._pool) is not ObjectPool or lease._index == POOL_NIL:
        return False
    pool = <ObjectPool>lease._pool
    return (not pool_slots_is_held(&pool._slots, lease._index, lease._gen)
            and pool._take_lease_discard(lease._index, lease._gen))


cdef object _async_lease_give_back(_AsyncLease lease, object item):
    """An async lease's exit (its state already idle): what it holds goes
    back, or None is returned if the release must be awaited (an ObjectPool
    with coroutine hooks): then the coroutine to await.  An ObjectPool
    hand-out goes back by its slot and generation, as a sync lease's does:
    if the block released the object and someone else holds it now, the
    exit raises PoolError and leaves that holder's hand-out alone."""
    cdef ObjectPool pool
    if _async_lease_discarded(lease):
        return None      # discard()ed inside its block: nothing to give back
    if type(lease._pool) is ObjectPool and lease._index != POOL_NIL:
        pool = <ObjectPool>lease._pool
        if pool._plain_release:
            pool._release_slot(lease._index, lease._gen)
            return None
        return _release_slot_async(pool, lease._index, lease._gen)
    if type(lease._pool) is ObjectPool and not (<ObjectPool>lease._pool)._plain_release:
        return _release_async(<ObjectPool>lease._pool, item, True)
    lease._pool._lease_exit(item)
    return None


@cython.final
cdef class _AsyncLease:
    """``async with pool.lease_async() as item``: acquire_async() on entry,
    the item given back on exit."""

    async def __aenter__(self):
        if self._state != _LEASE_IDLE:
            raise RuntimeError("this lease is already active; call pool.lease_async() again")
        self._state = _LEASE_ENTERING
        try:
            if _peek_running_loop() is None:
                _no_running_loop()
            item = _take_now(self._pool)
            if item is _NOTHING:
                item = await _acquire_slow(self._pool, self._timeout)
        except BaseException:
            self._state = _LEASE_IDLE
            raise
        self._item = item
        _async_lease_took(self, item)
        self._state = _LEASE_ACTIVE
        return item

    async def __aexit__(self, exc_type, exc, tb):
        if self._state == _LEASE_IDLE:
            return False
        item = self._item
        self._item = None
        self._state = _LEASE_IDLE
        release = _async_lease_give_back(self, item)
        if release is not None:
            await release
        return False


# -- why the coroutines the caller awaits are CPython's, not Cython's ----------
# On CPython 3.12+ the interpreter's SEND (what `await` runs) resumes a
# coroutine that is not CPython's own through its tp_iternext, not its
# am_send: a Cython coroutine that returns a value must then raise
# StopIteration(value), which SEND catches (_PyGen_FetchStopIterationValue),
# and `await` of a Cython coroutine also allocates its "coroutine_wrapper".
# On 3.14 that made `release(await pool.acquire_async())` cost 2.6x an empty
# `await noop()` (3.11's SEND still used am_send: 1.29x).  A coroutine
# compiled by CPython is resumed in place (SEND_GEN) and returns without an
# exception: so on 3.12+ acquire_async() and the async lease's __aenter__ /
# __aexit__ are replaced at import (_entries.pxi) by small Python coroutines
# whose work is one call of a C function here; only their slow paths await
# a Cython coroutine.  Up to 3.11 the Cython ones above stay: there they
# cost fewer instructions than the Python ones (benchmarks/callgrind_async.py).

@cython.always_allow_keywords(False)
def _acquire_now(_PoolBase pool):
    """(acquire_async's fast path) a running loop required, a free slot's
    item taken, or _NOTHING."""
    if _peek_running_loop() is None:
        _no_running_loop()
    return _take_now(pool)


def _acquire_now_t(_PoolBase pool, timeout):
    """_acquire_now with a timeout, checked first."""
    _check_timeout(timeout)
    if _peek_running_loop() is None:
        _no_running_loop()
    return _take_now(pool)


@cython.always_allow_keywords(False)
def _lease_enter_now(_AsyncLease lease):
    """(an async lease's entry) a free slot's item, held by the lease, or
    _NOTHING (then _lease_enter_slow)."""
    if lease._state != _LEASE_IDLE:
        raise RuntimeError("this lease is already active; call pool.lease_async() again")
    if _peek_running_loop() is None:
        _no_running_loop()
    item = _take_now(lease._pool)
    if item is not _NOTHING:
        lease._item = item
        _async_lease_took(lease, item)
        lease._state = _LEASE_ACTIVE
    return item


async def _lease_enter_slow(_AsyncLease lease):
    """An async lease's entry when no slot is free: wait for one."""
    lease._state = _LEASE_ENTERING
    try:
        item = await _acquire_slow(lease._pool, lease._timeout)
    except BaseException:
        lease._state = _LEASE_IDLE
        raise
    lease._item = item
    _async_lease_took(lease, item)
    lease._state = _LEASE_ACTIVE
    return item


@cython.always_allow_keywords(False)
def _lease_exit_now(_AsyncLease lease):
    """An async lease's exit: its item given back, or None if the release
    must be awaited (an ObjectPool with coroutine hooks): then the
    coroutine to await."""
    if lease._state == _LEASE_IDLE:
        return None
    item = lease._item
    lease._item = None
    lease._state = _LEASE_IDLE
    return _async_lease_give_back(lease, item)


_ASYNC_SOURCE = '''
async def acquire_async(self, timeout=None):
    item = _acquire_now(self) if timeout is None else _acquire_now_t(self, timeout)
    if item is _NOTHING:
        return await _wait_async(self, timeout)
    return item

async def __aenter__(self):
    item = _lease_enter_now(self)
    if item is _NOTHING:
        return await _lease_enter_slow(self)
    return item

async def __aexit__(self, exc_type, exc, tb):
    release = _lease_exit_now(self)
    if release is not None:
        await release
    return False
'''

cdef dict _async_coroutines():
    """acquire_async, __aenter__ and __aexit__, compiled by CPython, their
    globals the C helpers above."""
    ns = {"_acquire_now": _acquire_now, "_acquire_now_t": _acquire_now_t, "_wait_async": _wait_async,
          "_lease_enter_now": _lease_enter_now, "_lease_enter_slow": _lease_enter_slow,
          "_lease_exit_now": _lease_exit_now, "_NOTHING": _NOTHING,
          "__name__": __name__}
    exec(compile(_ASYNC_SOURCE, "<pool_ext._pool: asyncio entry points>", "exec"), ns)
    for name, owner in (("acquire_async", "_PoolBase"), ("__aenter__", "_AsyncLease"),
                        ("__aexit__", "_AsyncLease")):
        ns[name].__qualname__ = owner + "." + name
    ns["acquire_async"].__doc__ = _PoolBase.acquire_async.__doc__
    return ns
