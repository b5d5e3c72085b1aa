# Waiting for a slot (included by _pool.pyx): the one wait path, threads
# and asyncio tasks side by side, each sync function next to its async twin.
# The protocol is C (src/pool_waitq.h): a release that finds waiters grants
# its slot to the oldest record, which owns it until its waiter takes it
# out (pool_waitq_leave) or passes it on; this file only sleeps (a thread,
# on a lock of its own) or awaits (a task, on a future of its own) until
# then, and hands the granted slot out through the pool's _hand_out.
#
#   threads                        tasks
#   _wait_sync                     _wait_async        acquire()'s slow path
#   _wait_for_grant, _park          (in _wait_async)   queue up, sleep / await
#   _Sleeper, _wake_thread         _AsyncWaiter, _wake_deferred   the records
#   _wait_all_back                 _wait_all_back_async           drain()
#
# A thread's record is woken under the queue's lock (its lock released);
# a task's record is "deferred": whoever grants it a slot (a release in any
# thread, close()) gets it back and wakes it after the lock: set_result on
# the task's future when it runs on that task's loop,
# loop.call_soon_threadsafe otherwise.  One loop callback per hand-off.  The
# queue holds a reference to a task's record while it is linked; whoever
# unlinks it (the waker, or the task leaving) drops that reference.
#
# A waiter that leaves for any reason (timeout, Ctrl-C, a cancelled task,
# its pool closed) takes its grant out as it leaves and passes it on to the
# next waiter, or gives it back as a release would (_PoolBase._pass_grant).
# A task that can never run again (its loop was closed while it waited)
# cannot be woken: its grant comes back out of the record
# (pool_waitq_pass_on) and goes on the same way.  So no slot is ever owned
# by a record that nobody will run.

cdef object _TIMED_OUT = object()


# -- the records ------------------------------------------------------------------

cdef void _wake_thread(pool_waiter_t *w) noexcept nogil:
    # Called under the wait queue's lock: a thread waiter sleeps on its own
    # lock (held while it sleeps); releasing it never blocks.
    PyThread_release_lock(<PyThread_type_lock>w.ctx)


cdef struct _Sleeper:
    # A thread waiting on a pool's wait queue: its record, and the lock it
    # sleeps on (_PoolBase._park), fresh for each wait (pool_waitq.h).
    pool_waiter_t w
    PyThread_type_lock lock


cdef int _sleeper_init(_Sleeper *s) except -1:
    s.lock = PyThread_allocate_lock()
    if s.lock == NULL:
        raise MemoryError()
    PyThread_acquire_lock(s.lock, 1)     # held: our next acquire sleeps
    s.w.wake = _wake_thread
    s.w.ctx = s.lock
    s.w.queued = s.w.signaled = False
    s.w.grant = POOL_NIL
    return 0


cdef int _sleeper_done(_PoolBase pool, _Sleeper *s) except -1:
    # Unlinked (after which no waker touches the record or its lock); a
    # slot granted to it and not used goes on to the next waiter, a hint to
    # the next record (after a timeout, Ctrl-C, or a retry that succeeded).
    cdef uint32_t slot, k
    pool._leave(&s.w, &slot, &k)
    PyThread_free_lock(s.lock)
    if slot != POOL_NIL:
        pool._pass_grant(slot, k)
    return 0


# A function in Python bytecode (not Cython's): calling it runs the eval
# loop's check for pending work (_park, free-threaded builds).
cdef object _run_pending = eval("lambda: None")


# Tasks woken (a grant or a hint in their record) that have not run since:
# if their loop is closed before they do, nothing ever will, and the waits
# take the grant back out on their slow path (_reap_dead_grants).
# id(waiter) -> (pool, waiter); the task drops its entry as it leaves.
cdef dict _woken_tasks = {}


cdef int _reap_dead_grants() except -1:
    """Passes on the grants of woken tasks whose loop was closed before
    they ran (loop.close() with tasks pending): they never will."""
    cdef uint32_t slot, k
    for key, entry in _woken_tasks.copy().items():   # (copy(): atomic, free-threaded too)
        pool, waiter = entry
        if (<_AsyncWaiter>waiter).loop.is_closed():
            _woken_tasks.pop(key, None)
            _leave_async(<_PoolBase>pool, <_AsyncWaiter>waiter, &slot, &k)
            if slot != POOL_NIL:
                (<_PoolBase>pool)._pass_grant(slot, k)
    return 0


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
        # listed before the wake-up, which may let the task run (and leave,
        # dropping its entry) before this thread goes on
        try:
            _woken_tasks[id(<object>w.ctx)] = (pool, <object>w.ctx)
        except BaseException:   # (MemoryError: only the reaping is lost)
            pass
        if not (<_AsyncWaiter>w.ctx)._wake():
            _woken_tasks.pop(id(<object>w.ctx), None)
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
    if _woken_tasks:     # or granted to a task whose loop closed before it ran?
        _reap_dead_grants()
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
    if _woken_tasks:
        try:
            _woken_tasks.pop(id(waiter), None)
        except BaseException:
            pass
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
        while not _all_destroyed(pool):
            if deadline >= 0 and _monotonic() >= deadline:
                raise PoolExhausted(pool._exhausted_message(
                    f"drain_async(): {_not_done(pool)} after {t:g} s; "
                    f"the pool stays closed"))
            waiter.fut = loop.create_future()
            Py_INCREF(waiter)
            pool_waitq_enqueue(&pool._waitq, &waiter.rec)
            if _all_destroyed(pool):
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


# -- acquire()'s slow path: threads, then tasks ------------------------------------

cdef object _wait_sync(_PoolBase pool, object timeout, double start):
    """The slow path of acquire(): queue up (FIFO, behind every waiting
    thread and task) until a release grants us a slot, or time is up.
    The deadline counts from `start` (time.monotonic() when the acquire
    began: an ObjectPool's failed checks use up the same timeout), or
    from now if start < 0.  The twin of _wait_async (below)."""
    cdef double t = _parse_timeout(timeout)
    cdef double deadline = -1.0
    cdef uint32_t slot, k
    if t == 0.0:
        if _is_closed(pool):
            return _closed_error(pool)
        _count(&pool._timeouts)
        raise PoolExhausted(pool._exhausted_message(f"no free slot among {pool._capacity}"))
    pool._check_leaks()   # a caller has to wait: hand-outs held too long?
    if _asyncio._get_running_loop() is not None:   # this wait stops the loop
        _warnings.warn(f"acquire() waits for a free slot of this {pool._label()} on the "
                       f"thread of a running event loop, which stops the loop until it "
                       f"returns: in a coroutine, await pool.acquire_async() (or use "
                       f"async with pool.lease_async())", RuntimeWarning, stacklevel=1)
    if _destroy_tasks:    # or a slot kept by a destroy() whose loop is gone?
        _reap_orphaned_destroys()
    if _woken_tasks:      # or granted to a task whose loop closed before it ran?
        _reap_dead_grants()
    if t > 0.0:
        deadline = (start if start >= 0 else _monotonic()) + t
    while True:
        slot = _wait_for_grant(pool, deadline, t, &k)
        # A signal that came with the grant: raise it here, with the slot
        # passed on, rather than in our caller, who would never see the
        # hand-out (a KeyboardInterrupt would lose the slot for good).
        try:
            PyErr_CheckSignals()
        except BaseException:
            pool._pass_grant(slot, k)
            raise
        item = pool._hand_out(slot, k, deadline)
        if item is not _REJECTED:
            return item
        if deadline >= 0 and _monotonic() >= deadline:
            _count(&pool._timeouts)
            raise PoolExhausted(pool._exhausted_message(
                "no idle object passed check() or the time limits before "
                "the acquire's timeout ran out"))
        # An ObjectPool's granted object failed check() or its time
        # limits; its slot went on (to the next waiter, or the empty
        # list): queue again, or take that slot if nobody waits.

cdef uint32_t _wait_for_grant(_PoolBase pool, double deadline, double t,
                              uint32_t *k) except? 0xffffffff:
    """Joins the wait queue and sleeps until a slot is granted: returns
    it (owned, counted in acquires; *k its list), or raises PoolExhausted
    at the deadline (< 0: none), PoolClosed, or what a signal handler
    raises (Ctrl-C), the record unlinked and any grant passed on."""
    cdef _Sleeper sleeper
    cdef uint32_t slot = POOL_NIL
    cdef int joined
    cdef bint woken
    cdef uint64_t t0, waited
    _sleeper_init(&sleeper)
    try:
        joined = pool_waitq_join(&pool._waitq, &sleeper.w, &slot, k)
        if joined == POOL_JOIN_TOOK:
            return slot
        if joined == POOL_JOIN_CLOSED:
            _closed_error(pool)       # (raises PoolClosed)
        _count(&pool._waits)
        t0 = pool_clock_ns()
        try:
            while True:
                woken = _park(sleeper.lock, deadline)
                pool._leave(&sleeper.w, &slot, k)
                if slot != POOL_NIL:
                    return slot         # granted (at the wire, too)
                if _is_closed(pool):
                    _closed_error(pool)
                if not woken:
                    _count(&pool._timeouts)
                    raise PoolExhausted(pool._exhausted_message(
                        f"no free slot among {pool._capacity} within {t:g} s"))
                # a hint without a grant (not sent on an open pool): again
                joined = pool_waitq_join(&pool._waitq, &sleeper.w, &slot, k)
                if joined == POOL_JOIN_TOOK:
                    return slot
                if joined == POOL_JOIN_CLOSED:
                    _closed_error(pool)
        finally:
            waited = pool_clock_ns() - t0
            pool_stat_add(&pool._wait_ns, waited)
            pool_stat_raise(&pool._wait_ns_max, waited)
    finally:
        _sleeper_done(pool, &sleeper)   # (a grant that came meanwhile goes on)

cdef int _park(void *lock, double deadline) except -1:
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
        if POOL_PARK_SLICE_US and (us < 0 or us > POOL_PARK_SLICE_US):
            us = POOL_PARK_SLICE_US     # free-threaded: see pool_mode.h
        with nogil:
            r = PyThread_acquire_lock_timed(<PyThread_type_lock>lock, us, 1)
        if r == PY_LOCK_ACQUIRED:
            return 1
        if r == PY_LOCK_INTR:
            PyErr_CheckSignals()   # Ctrl-C: raises KeyboardInterrupt here
        elif POOL_PARK_SLICE_US:
            # A Python function's first instruction runs the thread's
            # pending work, which frees the objects other threads
            # dropped and queued to us (their last reference).
            _run_pending()


# -- drain(): until everything is back (a closed pool grants nothing) ----------------

cdef str _not_done(ObjectPool pool):
    """What drain() still waits for, for its PoolExhausted."""
    cdef uint64_t n = pool._in_use()
    if n != 0:
        return f"{n} objects still held"
    return "an object released into the closed pool is still being destroyed"


cdef int _wait_all_back(ObjectPool pool, double deadline, double t) except -1:
    """Sleeps until every object is back and destroyed (_all_destroyed);
    PoolExhausted at the deadline.  Every release ends with a push and a
    notify (_notify) after its counter moved, and on a closed pool destroys
    its object before waking anyone, so the wait queue's protocol
    (src/pool_waitq.h) wakes us in time; a wake-up is only a hint: we look
    again."""
    cdef _Sleeper sleeper
    if _all_destroyed(pool):
        return 0
    if t == 0.0:
        raise PoolExhausted(pool._exhausted_message(
            f"drain(): {_not_done(pool)}"))
    _sleeper_init(&sleeper)
    try:
        while True:
            pool_waitq_enqueue(&pool._waitq, &sleeper.w)
            if _all_destroyed(pool):
                break
            if _park(sleeper.lock, deadline) == 0:
                if _all_destroyed(pool):
                    break
                raise PoolExhausted(pool._exhausted_message(
                    f"drain(): {_not_done(pool)} after {t:g} s; "
                    f"the pool stays closed"))
            PyErr_CheckSignals()   # Ctrl-C ends the wait
    finally:
        _sleeper_done(pool, &sleeper)
    pool._wake(0xffffffff)   # other drain() callers look again too
    return 0
