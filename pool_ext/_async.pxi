# asyncio: tasks that wait for a free slot (included by _pool.pyx).  The
# twin of _PoolBase._acquire_wait_from / _wait_for_grant (_poolbase.pxi):
# the same protocol, awaited instead of slept.
#
# A waiting task queues an _AsyncWaiter on the pool's one wait queue
# (src/pool_waitq.h), in the same FIFO as waiting threads.  It is a
# "deferred" record: the queue cannot wake it under its lock (that takes
# Python), so whoever grants it a slot (a release in any thread) gets it
# back and wakes it after the lock: set_result on the task's future when it
# runs on that task's loop, loop.call_soon_threadsafe otherwise.  One loop
# callback per hand-off: the task wakes owning its slot.  The queue holds a
# reference to the record while it is linked; whoever unlinks it (the
# waker, or the task leaving) drops that reference.
#
# The record owns a granted slot until its task takes it out
# (pool_waitq_leave).  A task cancelled at any point (before or after its
# grant, inside or outside asyncio.timeout / wait_for / a TaskGroup) takes
# it out as it leaves and passes it on to the next waiter, or gives it back
# (_PoolBase._pass_grant).  A task that can never run again (its loop was
# closed while it waited) cannot be woken: its grant comes back out of the
# record (pool_waitq_pass_on) and goes on the same way.

cdef object _peek_running_loop = _asyncio._get_running_loop   # None, never raises
cdef object _TIMED_OUT = object()


cdef int _no_running_loop() except -1:
    raise RuntimeError("acquire_async() and the pool's other async methods need a "
                       "running event loop: await them in a coroutine (asyncio.run, a "
                       "task), not outside one")


cdef void _wake_deferred(_PoolBase pool, pool_waiter_t *w) noexcept:
    """Wakes the deferred records a grant, wake or leave handed back to us;
    each carries the queue's reference to its _AsyncWaiter, dropped here.
    A wake-up that cannot be delivered (the task's loop is closed) passes
    its grant (or hint) on, and the dead record stays off the queue."""
    cdef pool_waiter_t *next_
    cdef pool_waiter_t *more
    cdef uint32_t slot, k
    while w != NULL:
        next_ = w.next
        if not (<_AsyncWaiter>w.ctx)._wake():
            more = NULL
            pool_waitq_pass_on(&pool._waitq, w, &slot, &k, &more)
            if more != NULL:           # (one record: a hint wakes one)
                more.next = next_
                next_ = more
            if slot != POOL_NIL:
                try:
                    pool._pass_grant(slot, k)
                except BaseException:   # destroy() failed, the pool closed: logged
                    _log.warning("giving back the slot of a task whose loop is closed "
                                 "failed", exc_info=True)
        Py_DECREF(<object>w.ctx)
        w = next_


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


def _set_pending(fut, result):
    if not fut.done():
        fut.set_result(result)


@cython.final
cdef class _AsyncWaiter:
    """One waiting task's record on the wait queue."""

    def __cinit__(self):
        self.rec.wake = NULL           # deferred: woken by _wake_deferred
        self.rec.ctx = <void *>self
        self.rec.queued = self.rec.signaled = False
        self.rec.grant = POOL_NIL

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


cdef object _wait_timeout(_PoolBase pool, double t):
    _count(&pool._timeouts)
    within = f" within {t:g} s" if t > 0.0 else ""
    raise PoolExhausted(pool._exhausted_message(
        f"no free slot among {pool._capacity}{within}"))


cdef inline object _hand_out_plain(_PoolBase pool, uint32_t i, uint32_t k):
    """A granted slot handed out without awaiting anything: a BufferPool's,
    or an ObjectPool's idle object with nothing to vet; else _NOTHING (an
    ObjectPool's hooks to await: _hand_out_async)."""
    if not isinstance(pool, ObjectPool):
        return pool._hand_out(i, k, -1.0)
    if k == 0 and (<ObjectPool>pool)._plain_take_async and not _is_closed(pool):
        pool_slots_hold(&(<ObjectPool>pool)._slots, i)   # RELEASING -> HELD
        return <object>(<ObjectPool>pool)._items[i]
    return _NOTHING


cdef _AsyncWaiter _async_waiter(object loop):
    # (made only here: Python code cannot make one, _pool.pyx)
    cdef _AsyncWaiter waiter = _AsyncWaiter.__new__(_AsyncWaiter)
    waiter.loop = loop
    waiter.thread = PyThread_get_thread_ident()   # the loop's: it runs here
    return waiter


async def _wait_async(_PoolBase pool, timeout):
    """The slow path of acquire_async(), the twin of _acquire_wait_from: join
    the queue (or take a free slot if nobody waits), await a grant without
    blocking the loop, and hand the slot out, an ObjectPool's hooks awaited
    (_hand_out_async).  PoolExhausted when the timeout runs out (the hooks
    end by the same deadline), PoolClosed once closed; a cancellation at
    any point passes a grant on.  One coroutine, for one frame to resume."""
    cdef double t = _parse_timeout(timeout)
    cdef double deadline = -1.0        # time.monotonic() of the wait's end; < 0: none
    cdef double hooks_deadline = -1.0  # the hooks' (timeout=0: none)
    cdef _AsyncWaiter waiter
    cdef uint32_t slot = POOL_NIL
    cdef uint32_t k = 0
    cdef uint32_t late, late_k
    cdef int joined
    cdef bint counted = False
    loop = _peek_running_loop()
    if loop is None:
        _no_running_loop()
    if _destroy_tasks:   # a slot kept by a destroy() whose loop is gone?
        _reap_orphaned_destroys()
    if t >= 0.0:
        deadline = _monotonic() + t
        if t > 0.0:
            hooks_deadline = deadline
    waiter = _async_waiter(loop)
    timer = None
    try:
        while True:
            waiter.fut = loop.create_future()
            Py_INCREF(waiter)                  # the queue's reference, while linked
            joined = pool_waitq_join(&pool._waitq, &waiter.rec, &slot, &k)
            if joined == POOL_JOIN_QUEUED:
                if not counted:
                    _count(&pool._waits)
                    counted = True
                if deadline >= 0:
                    remaining = deadline - _monotonic()
                    if remaining > 0:
                        timer = loop.call_later(remaining, _set_pending, waiter.fut,
                                                _TIMED_OUT)
                        woke = await waiter.fut
                        timer.cancel()
                        timer = None
                    else:
                        woke = _TIMED_OUT
                else:
                    woke = await waiter.fut
                _leave_async(pool, waiter, &slot, &k)
                if slot == POOL_NIL:
                    if _is_closed(pool):
                        return _closed_error(pool)
                    if woke is _TIMED_OUT:
                        return _wait_timeout(pool, t)
                    continue   # a hint without a grant (not sent on an open pool)
            else:
                Py_DECREF(waiter)              # not linked
                if joined == POOL_JOIN_CLOSED:
                    return _closed_error(pool)
            # We own the slot (granted, at the wire too, or free and nobody
            # waited): hand it out; from here on the hand-out owns it.
            late = slot
            slot = POOL_NIL
            item = _hand_out_plain(pool, late, k)
            if item is _NOTHING:   # (it did not take the slot)
                item = await _hand_out_async(<ObjectPool>pool, late, k, hooks_deadline)
            if item is not _REJECTED:
                return item
            # the granted object failed check() or its time limits: again
            if hooks_deadline >= 0 and _monotonic() >= hooks_deadline:
                _count(&pool._timeouts)
                raise PoolExhausted(pool._exhausted_message(
                    "no idle object passed check() or the time limits before the "
                    "acquire's timeout ran out"))
    except _Deadline as e:   # a hook still ran at the deadline (_await_hook)
        return _hook_timed_out(pool, e, t)
    finally:
        if timer is not None:
            timer.cancel()
        # On the way out for any reason: unlinked, and a grant that came
        # meanwhile (cancelled at the moment of grant) goes on.
        _leave_async(pool, waiter, &late, &late_k)
        if late != POOL_NIL:
            pool._pass_grant(late, late_k)
        if slot != POOL_NIL:   # taken out of the record, not handed out: on too
            pool._pass_grant(slot, k)


cdef bint _leave_async(_PoolBase pool, _AsyncWaiter waiter, uint32_t *slot,
                       uint32_t *k) noexcept:
    """The task's record leaves the queue (pool_waitq_leave), dropping the
    queue's reference if this unlinked it; its grant comes out in *slot."""
    cdef int left = pool._leave(&waiter.rec, slot, k)
    if left & POOL_LEFT_UNLINKED:
        Py_DECREF(waiter)
    return left != 0


async def _wait_all_back_async(ObjectPool pool, timeout):
    """drain_async()'s wait, on a closed pool (which grants nothing): until
    nothing is handed out.  Every release ends with a push and a notify,
    which wakes one waiter of a closed pool (a hint): look again."""
    cdef double t = _parse_timeout(timeout)
    cdef double deadline = -1.0 if t < 0 else _monotonic() + t
    cdef _AsyncWaiter waiter
    cdef uint32_t slot, k
    loop = _peek_running_loop()
    waiter = _async_waiter(loop)
    timer = None
    try:
        while pool._in_use() != 0:
            if deadline >= 0 and _monotonic() >= deadline:
                raise PoolExhausted(pool._exhausted_message(
                    f"drain_async(): {pool._in_use()} objects still held after {t:g} s; "
                    f"the pool stays closed"))
            waiter.fut = loop.create_future()
            Py_INCREF(waiter)
            pool_waitq_enqueue(&pool._waitq, &waiter.rec)
            if pool._in_use() == 0:
                break
            if deadline >= 0:
                timer = loop.call_later(deadline - _monotonic(), _set_pending,
                                        waiter.fut, _TIMED_OUT)
            woke = await waiter.fut
            if timer is not None:
                timer.cancel()
                timer = None
            if woke is _TIMED_OUT:    # still queued (a hint unlinks us)
                _leave_async(pool, waiter, &slot, &k)
    finally:
        if timer is not None:
            timer.cancel()
        _leave_async(pool, waiter, &slot, &k)   # (a closed pool grants nothing)


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
