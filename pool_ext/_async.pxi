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


@cython.final
cdef class _AsyncLease:
    """``async with pool.lease_async() as item``: acquire_async() on entry,
    the item given back on exit."""

    async def __aenter__(self):
        if self._active:
            raise RuntimeError("this lease is already active; call pool.lease_async() again")
        self._active = True
        try:
            if _peek_running_loop() is None:
                _no_running_loop()
            item = _take_now(self._pool)
            if item is _NOTHING:
                item = await _acquire_slow(self._pool, self._timeout)
        except BaseException:
            self._active = False
            raise
        self._item = item
        return item

    async def __aexit__(self, exc_type, exc, tb):
        if not self._active:
            return False
        item = self._item
        self._item = None
        self._active = False
        if (isinstance(self._pool, ObjectPool)
                and not (<ObjectPool>self._pool)._plain_release):
            await _release_async(<ObjectPool>self._pool, item, True)
        else:
            self._pool._lease_exit(item)
        return False
