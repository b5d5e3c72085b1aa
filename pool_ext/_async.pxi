# asyncio: tasks that wait for a free slot (included by _pool.pyx).
#
# A waiting task queues an _AsyncWaiter on the pool's one wait queue
# (src/pool_waitq.h), in the same FIFO as waiting threads.  It is a
# "deferred" record: the queue cannot wake it under its lock (that takes
# Python), so whoever pops it (a release in any thread, close()) gets it
# back and wakes it after the lock: set_result on the task's future when it
# runs on that task's loop, loop.call_soon_threadsafe otherwise.  The queue
# holds a reference to the record while it is linked; whoever unlinks it
# (the waker, or the task leaving) drops that reference.
#
# A wake-up is a hint, never a hand-over: the woken task queues again and
# retries the free-list.  So a task cancelled at any point (before or after
# its wake-up, inside or outside asyncio.timeout / wait_for / a TaskGroup)
# owns no slot to lose, and one that leaves with a wake-up it did not use
# passes it to the next waiter (pool_waitq_leave).  A task that can never
# run again (its loop was closed while it waited) cannot be woken: its
# wake-up goes on to the next waiter (pool_waitq_pass_on), and the waker
# drops the queue's reference to it as usual.

cdef object _peek_running_loop = _asyncio._get_running_loop   # None, never raises
cdef object _TIMED_OUT = object()


cdef int _no_running_loop() except -1:
    raise RuntimeError("acquire_async() and the pool's other async methods need a "
                       "running event loop: await them in a coroutine (asyncio.run, a "
                       "task), not outside one")


cdef void _wake_deferred(_PoolBase pool, pool_waiter_t *w) noexcept:
    """Wakes the deferred records a wake or leave handed back to us; each
    carries the queue's reference to its _AsyncWaiter, dropped here.  A
    wake-up that cannot be delivered (the task's loop is closed) goes on to
    the next waiter, and the dead record stays off the queue."""
    cdef pool_waiter_t *next_
    cdef pool_waiter_t *more
    while w != NULL:
        next_ = w.next
        if not (<_AsyncWaiter>w.ctx)._wake():
            more = NULL
            pool_waitq_pass_on(&pool._waitq, w, &more)
            if more != NULL:           # (one record: a wake wakes one)
                more.next = next_
                next_ = more
        Py_DECREF(<object>w.ctx)
        w = next_


cdef inline object _take_now(_PoolBase pool):
    """acquire_async()'s fast path: a free slot's item, taken without
    suspending, or _NOTHING."""
    if isinstance(pool, ObjectPool):
        return _take_idle_plain(<ObjectPool>pool)   # (no hooks to await)
    return pool._try_take()


async def _acquire_slow(_PoolBase pool, timeout):
    """acquire_async() past its fast path: the hooks awaited, or a wait."""
    if isinstance(pool, ObjectPool):
        return await _acquire_objects_async(<ObjectPool>pool, timeout)
    return await _wait_async(pool, timeout)


def _set_pending(fut, result):
    if not fut.done():
        fut.set_result(result)


@cython.final
cdef class _AsyncWaiter:
    """One waiting task's record on the wait queue."""

    def __cinit__(self, loop):
        self.loop = loop
        self.thread = PyThread_get_thread_ident()   # the loop's: it runs here
        self.rec.wake = NULL           # deferred: woken by _wake_deferred
        self.rec.ctx = <void *>self
        self.rec.queued = self.rec.signaled = False

    cdef bint _wake(self) noexcept:
        """Wakes the task; False if it cannot be woken (its loop is closed:
        nothing there will ever run)."""
        fut = self.fut
        try:
            if fut is None:
                return True
            if PyThread_get_thread_ident() != self.thread:
                # Another thread: the future is read on its loop only
                # (_set_pending), since an asyncio future is not safe to
                # read while its loop writes it (free-threaded builds).  A
                # task that was cancelled meanwhile leaves and passes the
                # wake on (pool_waitq_leave); a closed loop raises here.
                self.loop.call_soon_threadsafe(_set_pending, fut, None)
                return True
            # On the loop's own thread (whose running loop it is): directly,
            # without asyncio._get_running_loop(), which costs a getpid()
            # system call up to 3.11.
            if fut.done():
                # cancelled or timed out: the task leaves, and passes the
                # wake on (pool_waitq_leave), unless its loop is closed
                return not self.loop.is_closed()
            fut.set_result(None)
            return True
        except BaseException:
            return False   # RuntimeError: its loop is closed, the task never runs again


# What a waiting task waits for (_wait_async's `what`).
cdef enum:
    _FOR_SLOT = 0        # a hand-out: the pool's _try_take()
    _FOR_SLOT_HOOKS = 1  # a hand-out whose hooks are awaited: _take_async()
    _FOR_ALL_BACK = 2    # drain_async(): nothing handed out any more


cdef object _poll(_PoolBase pool, int what):
    """What _wait_async() waits for, if it is there now without awaiting,
    else _NOTHING."""
    if what == _FOR_SLOT:
        return pool._try_take()
    if what == _FOR_SLOT_HOOKS:   # an idle object with nothing to vet, else
        return _take_idle_plain(<ObjectPool>pool)   # _take_async's turn
    return None if pool._in_use() == 0 else _NOTHING


cdef object _wait_timeout(_PoolBase pool, int what, double t):
    if what == _FOR_ALL_BACK:
        raise PoolExhausted(pool._exhausted_message(
            f"drain_async(): {pool._in_use()} objects still held after {t:g} s; "
            f"the pool stays closed"))
    _count(&pool._timeouts)
    within = f" within {t:g} s" if t > 0.0 else ""
    raise PoolExhausted(pool._exhausted_message(
        f"no free slot among {pool._capacity}{within}"))


async def _wait_async(_PoolBase pool, timeout, int what=_FOR_SLOT, double until=-1.0):
    """The slow path of acquire_async() (and drain_async()): wait, without
    blocking the loop, until a slot is free (everything is back), the time
    is up, or the pool closes.  until: the acquire's deadline
    (time.monotonic()), if its hooks ran before this wait; else the timeout
    counts from now.  The hooks awaited here end by the same deadline."""
    cdef double t = _parse_timeout(timeout)
    cdef double take_deadline = -1.0   # time.monotonic(); < 0: none
    cdef _AsyncWaiter waiter
    cdef int left
    loop = _peek_running_loop()
    if loop is None:
        _no_running_loop()
    if _destroy_tasks:   # a slot kept by a destroy() whose loop is gone?
        _reap_orphaned_destroys()
    if t == 0.0:
        return _wait_timeout(pool, what, t)
    if t > 0.0:
        take_deadline = until if until >= 0 else _monotonic() + t
    waiter = _AsyncWaiter(loop)
    timer = None
    if what != _FOR_ALL_BACK:
        _count(&pool._waits)
    try:
        while True:
            waiter.fut = loop.create_future()
            Py_INCREF(waiter)                  # the queue's reference
            pool_waitq_enqueue(&pool._waitq, &waiter.rec)
            item = _poll(pool, what)
            if item is _NOTHING and what == _FOR_SLOT_HOOKS:
                item = await _take_async(<ObjectPool>pool, take_deadline)
            if item is not _NOTHING:
                return item
            if take_deadline >= 0:
                remaining = take_deadline - _monotonic()
                if remaining <= 0:
                    # something may have come at the wire
                    if what == _FOR_SLOT_HOOKS:
                        item = await _take_async(<ObjectPool>pool, take_deadline)
                    else:
                        item = _poll(pool, what)
                    if item is not _NOTHING:
                        return item
                    return _wait_timeout(pool, what, t)
                timer = loop.call_later(remaining, _set_pending, waiter.fut, _TIMED_OUT)
            woke = await waiter.fut
            if timer is not None:
                timer.cancel()
                timer = None
            if woke is _TIMED_OUT:
                left = pool._leave(&waiter.rec)
                if left & POOL_LEFT_UNLINKED:
                    Py_DECREF(waiter)          # it was still queued: ours
                if what == _FOR_SLOT_HOOKS:
                    item = await _take_async(<ObjectPool>pool, take_deadline)
                else:
                    item = _poll(pool, what)
                if item is not _NOTHING:
                    return item
                return _wait_timeout(pool, what, t)
            # woken: the waker unlinked us and keeps the queue's reference
    except _Deadline as e:   # a hook still ran at the deadline (_await_hook)
        return _hook_timed_out(pool, e, t)
    finally:
        if timer is not None:
            timer.cancel()
        # Unlinked; a wake-up we were given and did not use (cancelled, timed
        # out, took a slot by retrying) goes on to the next waiter.
        left = pool._leave(&waiter.rec)
        if left & POOL_LEFT_UNLINKED:
            Py_DECREF(waiter)


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
