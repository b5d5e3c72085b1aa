# ObjectPool's health rules (included by _pool.pyx): what happens to an idle
# object before it is handed out (time limits, check), evict(), the evictor
# thread, drain().  The ObjectPool methods in _objectpool.pxi call these.
#
# Decisions and actions are apart, so that an asynchronous twin (asyncio
# waiters, coroutine hooks) can reuse the decisions and await the actions:
#   decisions (pure C, no Python): _expiry, _too_old, _expired
#   actions (call user code):      _run_check -> check(obj);
#                                  ObjectPool._discard -> destroy(obj);
#                                  ObjectPool._fill -> factory()
#
# Vetting.  An idle object is taken for vetting with pool_slots_pop_own: its
# slot is RELEASING, owned by the acquirer but not handed out, so nothing
# can release it while check() runs (not even check() itself).  It is
# counted in `acquires` from that moment (drain() waits for it); a rejected
# object is uncounted before it is destroyed, so every acquire it led to is
# exactly one hand-out.  Only objects that were idle are vetted: an object
# fresh from the factory is handed out as it is (HikariCP and psycopg_pool
# do the same), so a factory that keeps failing checks cannot spin acquire.

import logging as _logging

_log = _logging.getLogger("pool_ext")

# -- decisions -------------------------------------------------------------------

cdef uint64_t _expiry(ObjectPool pool, uint32_t i) noexcept:
    """When slot i's new object reaches max_lifetime: now + max_lifetime,
    less up to 5 % at random, so that objects made together (prefill, a
    burst) do not all expire together (psycopg_pool does the same; HikariCP
    up to 2.5 %).  An object is never kept past max_lifetime."""
    cdef uint64_t now = pool_clock_ns()
    cdef uint64_t jitter = (pool._lifetime_ns // 20 // 0x10000) * (pool_mix64(now + i) & 0xffff)
    if pool._lifetime_ns > POOL_CLOCK_NEVER - now:
        return POOL_CLOCK_NEVER
    return now + pool._lifetime_ns - jitter


cdef inline bint _too_old(ObjectPool pool, uint32_t i) noexcept:
    """Past max_lifetime (the owner of slot i asks at release)."""
    return pool._expires_ns != NULL and pool_clock_ns() >= pool._expires_ns[i]


cdef inline bint _expired(ObjectPool pool, uint32_t i, uint64_t now) noexcept:
    """Past max_lifetime, or idle for max_idle or longer (slot i is idle and owned)."""
    cdef uint64_t since
    if pool._expires_ns != NULL and now >= pool._expires_ns[i]:
        return True
    if pool._idle_ns == NULL:
        return False
    since = pool._idle_ns[i]
    return now >= since and now - since >= pool._max_idle_ns


# -- acquiring ----------------------------------------------------------------------

cdef object _take_idle_vetted(ObjectPool pool):
    """An idle object that passes the time limits and check(), handed out to
    the caller; _NOTHING if none is idle; _REJECTED if the one it took did
    not pass (it was destroyed, its slot is empty: try again)."""
    cdef uint32_t i = pool_slots_pop_own(&pool._slots, &pool._idle)
    if i == POOL_NIL:
        return _NOTHING
    _count(&pool._acquires)
    return _vet(pool, i, <object>pool._items[i])


cdef object _vet(ObjectPool pool, uint32_t i, object obj, bint granted=False):
    """Idle object obj (slot i, owned for vetting, counted) handed out if it
    passes the time limits and check(); else _REJECTED (destroyed, the slot
    back on the empty list, uncounted).  granted: the slot was granted to a
    waiter, who keeps its place in the queue: a failed object is destroyed
    and _REFILL returned, the slot still owned (empty) and counted, for the
    factory (unless destroy() is a coroutine: then _REJECTED, the slot back
    when it has run)."""
    cdef int c
    if _expired(pool, i, pool_clock_ns()):
        return _REFILL if _reject(pool, i, obj, &pool._expired, granted) else _REJECTED
    if pool._check is not None:
        c = _run_check(pool, i, obj, granted)
        if c != 1:
            return _REFILL if c == 2 else _REJECTED
    if _is_closed(pool):
        # closed (close(), drain()) while check() ran: not handed out
        _reject(pool, i, obj, NULL)
        return pool._cold_closed()
    _hold_begin(pool, i, None)              # before anyone can release it
    pool_slots_hold(&pool._slots, i)        # RELEASING -> HELD: handed out
    return obj


cdef bint _reject(ObjectPool pool, uint32_t i, object obj, uint64_t *why,
                  bint keep=False) except -1:
    """obj (slot i, owned for vetting) is not handed out: uncounted, destroyed.
    An Exception from destroy() is logged (WARNING), not raised: the acquire
    goes on to the next object or the factory (a broken connection's close
    often fails too).  keep: the slot stays ours, empty and counted, once a
    plain destroy() has returned (True); a coroutine destroy() runs as a
    task and the slot goes back when it ends (False), as without keep."""
    if why != NULL:
        _count(why)
    if keep:
        _detach(pool, i, obj, False)
        try:
            r = None if pool._destroy is None else pool._destroy(obj)
        except Exception:
            _log.warning("destroy() failed on %r from %r, which was not handed out",
                         obj, pool, exc_info=True)
            return True
        except BaseException:
            _uncount(&pool._acquires)
            pool._unhold_empty(i)
            raise
        if not _awaitable(r):
            return True
        _uncount(&pool._acquires)
        _destroy_soon(r, _slot_after_destroy(pool, i))
        return False
    _uncount(&pool._acquires)   # before the slot's push wakes a drain()
    try:
        _discard(pool, i, obj, False)
    except Exception:
        _log.warning("destroy() failed on %r from %r, which was not handed out",
                     obj, pool, exc_info=True)
    return False


cdef int _run_check(ObjectPool pool, uint32_t i, object obj, bint keep=False) except -1:
    """check(obj): 1 if it passes, else 0, or 2 if it failed and its slot
    is kept (keep: _reject's).  A false result or an Exception fails it:
    counted, destroyed, and the exception is dropped (logged at INFO, as
    psycopg_pool does).  A BaseException that is not an Exception (Ctrl-C,
    SystemExit) also destroys the object, whose state is then unknown, and
    propagates."""
    r = None
    try:
        r = _call_hook(pool, i, pool._check, obj)
        if not _awaitable(r) and r:
            return 1
    except Exception as e:
        _log.info("check() failed on %r from %r: %r", obj, pool, e)
    except BaseException:
        _reject(pool, i, obj, &pool._checks_failed)
        raise
    kept = _reject(pool, i, obj, &pool._checks_failed, keep)
    if _awaitable(r):
        _not_awaited(r, "check")   # (a sync acquire: no await possible)
    return 2 if kept else 0


# -- evict(), min_idle, the evictor thread -----------------------------------------------

@cython.final
cdef class _Round:
    """What one evict() or min_idle round owns at this moment, for the child
    of a fork() made while it runs: there its thread (the evictor, or any
    thread that called evict()) does not exist, and _after_fork_in_child
    gives the slots back.  Only the round's thread writes it.  Each field
    changes together with the slots it names, with no Python call between,
    and fork() stops the other threads only inside Python calls (the GIL, or
    a free-threaded build's stop-the-world), so the child reads a record that
    agrees with the slots."""
    cdef pool_freelist_t keep     # idle slots popped to test, going back
    cdef pool_freelist_t old      # expired ones, to destroy one by one
    cdef uint32_t slot            # the slot being destroyed or filled; POOL_NIL
    cdef unsigned long thread     # PyThread_get_thread_ident() of its thread


cdef _Round _round_begin(ObjectPool pool):
    cdef _Round r = _Round.__new__(_Round)
    pool_freelist_init(&r.keep)
    pool_freelist_init(&r.old)
    r.slot = POOL_NIL
    r.thread = PyThread_get_thread_ident()
    pool._rounds.append(r)
    return r


cdef Py_ssize_t _evict(ObjectPool pool) except -1:
    """evict(): destroys the idle objects past a time limit; how many."""
    if pool._expires_ns == NULL and pool._idle_ns == NULL:
        return 0
    r = _round_begin(pool)
    try:
        return _evict_round(pool, r)
    finally:
        pool._rounds.remove(r)


cdef Py_ssize_t _evict_round(ObjectPool pool, _Round r) except -1:
    """Every idle slot is popped (owned, RELEASING) and sorted onto one of
    the round's two lists, threaded through the slots' own next[] links (no
    allocation, no Python: acquirers miss the idle objects only for that
    long); the keepers go back in their order, most recently used on top,
    then the expired ones are destroyed one by one."""
    cdef uint32_t i
    cdef uint64_t now = pool_clock_ns()
    cdef Py_ssize_t n = 0
    while True:   # (the threads' cached idle objects are met here too)
        i = pool_cache_steal(&pool._cache)
        if i == POOL_NIL:
            break
        pool_slots_push(&pool._slots, &pool._idle, i)
    while True:
        i = pool_slots_pop_own(&pool._slots, &pool._idle)
        if i == POOL_NIL:
            break
        pool_freelist_push_mpmc(&r.old if _expired(pool, i, now) else &r.keep,
                                pool._slots.next, i)
    # keep holds them bottom-up: pushing back restores the idle list's order
    _all_idle(pool, &r.keep)
    first_error = None
    while True:
        i = pool_freelist_pop_mpmc(&r.old, pool._slots.next)
        if i == POOL_NIL:
            break
        r.slot = i
        n += 1
        _count(&pool._expired)
        try:
            _discard(pool, i, <object>pool._items[i], False, &r.slot)
        except BaseException as e:   # every one is destroyed; the first error is raised
            if first_error is None:
                first_error = e
    if _is_closed(pool):
        pool._cold_drain()   # closed meanwhile: the keepers must not stay idle
    if first_error is not None:
        raise first_error
    return n


cdef int _top_up(ObjectPool pool) except -1:
    """Creates objects into empty slots while fewer than min_idle are idle."""
    cdef uint32_t i
    if pool._min_idle == 0:
        return 0
    r = _round_begin(pool)
    try:
        while not _is_closed(pool) and pool.idle < pool._min_idle:
            i = pool_slots_pop_own(&pool._slots, &pool._empty)
            if i == POOL_NIL:
                return 0          # every slot has an object (idle or held)
            r.slot = i
            _fill(pool, i, &r.slot)   # an exception: the slot is back, and goes up
            r.slot = POOL_NIL
            pool._push_idle(i)
    finally:
        pool._rounds.remove(r)
    return 0


# -- fork() while a round runs in another thread -------------------------------------------

cdef set _fork_pools = set()   # weak references to the pools that can run rounds


cdef int _watch_fork(ObjectPool pool) except -1:
    _fork_pools.add(_weakref.ref(pool, _fork_pools.discard))
    return 0


def _after_fork_in_child():
    """os.register_at_fork(after_in_child=...): the rounds of threads that
    the child does not have give their slots back, so the child's pools
    keep their capacity.  (The forking thread's own round, a fork() from a
    factory or destroy() it called, goes on in the child.)"""
    cdef unsigned long me = PyThread_get_thread_ident()
    for ref in list(_fork_pools):
        pool = ref()
        if pool is not None:
            try:
                _give_back_rounds(<ObjectPool>pool, me)
            except BaseException:   # (destroy() of a closed pool's objects)
                _log.warning("fork(): a round of %r could not be given back", pool,
                             exc_info=True)
    return None


cdef int _give_back_rounds(ObjectPool pool, unsigned long me) except -1:
    cdef _Round r
    cdef uint32_t i
    for r in list(pool._rounds):
        if r.thread == me:
            continue
        pool._rounds.remove(r)
        _all_idle(pool, &r.keep)   # tested or expired: idle again (the child's rounds decide)
        _all_idle(pool, &r.old)
        i = r.slot
        r.slot = POOL_NIL
        if i == POOL_NIL:
            continue
        if pool._items[i] != NULL:   # filled: the new object goes idle
            pool._push_idle(i)
        else:                        # being destroyed, or not filled yet: empty
            pool._unhold_empty(i)
    return 0


cdef void _all_idle(ObjectPool pool, pool_freelist_t *lst) noexcept:
    """Every slot on a round's private list (owned, holding its object) back
    on the idle list."""
    cdef uint32_t i
    while True:
        i = pool_freelist_pop_mpmc(lst, pool._slots.next)
        if i == POOL_NIL:
            return
        pool_slots_free_push(&pool._slots, &pool._idle, i)
        _notify(pool)   # one sleeper per object, as a release would


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)


cdef int _start_evictor(ObjectPool pool, object interval) except -1:
    """start_evictor(interval) (its docstring says what it does)."""
    cdef double t = _parse_interval(interval)
    if pool._async_hooks:
        _async_only(pool, "start_evictor()'s thread",
                    "a task that calls evict() (its destroy() calls then run as tasks)")
    if pool._lock is None or _is_closed(pool):   # (None: never initialised)
        raise PoolClosed(f"start_evictor() on a closed {pool._label()}")
    with pool._lock:
        if _is_closed(pool):
            raise PoolClosed(f"start_evictor() on a closed {pool._label()}")
        if pool._evictor is not None and pool._evictor.is_alive():
            raise RuntimeError("the evictor is already running; stop_evictor() first")
        stop = _threading.Event()
        thread = _threading.Thread(
            target=_evictor_main, args=(_weakref.ref(pool), stop, t), daemon=True,
            name=f"pool_ext evictor of {pool._label()}")
        thread.start()
        pool._evictor = thread
        pool._evictor_stop = stop
    return 0


cdef object _stop_evictor(ObjectPool pool):
    """Tells the evictor to stop; returns its thread (None if none ran)."""
    if pool._lock is None:   # never initialised
        return None
    with pool._lock:
        thread, stop = pool._evictor, pool._evictor_stop
        pool._evictor = pool._evictor_stop = None
    if stop is not None:
        stop.set()
    return thread


cdef int _join_evictor(object thread, double timeout) except -1:
    """Waits for a stopped evictor thread (timeout < 0: for ever), unless it
    is this thread (a hook that stops its own evictor)."""
    if thread is not None and thread is not _threading.current_thread():
        thread.join(None if timeout < 0 else timeout)
    return 0


def _evictor_main(pool_ref, stop, double interval):
    """The evictor thread (start_evictor): a round at once, then one every
    `interval` seconds, until stopped, closed or the pool is gone."""
    cdef ObjectPool pool
    while True:
        pool = pool_ref()
        if pool is None or _is_closed(pool):
            return
        try:
            pool._check_leaks()
            _evict(pool)
            _top_up(pool)
        except Exception:
            # The factory or destroy() failed (a database down, say): say so
            # and try again next round, as psycopg_pool's workers do.
            _log.warning("the evictor of %r failed; next round in %g s", pool,
                         interval, exc_info=True)
        pool = None
        if stop.wait(interval):
            return


# -- drain() ----------------------------------------------------------------------------------

cdef object _call_hook(ObjectPool pool, uint32_t i, object hook, object obj):
    """hook(obj): reset, validate or check on slot i's object (owned by this
    thread), with slot i marked as running a hook in this thread meanwhile,
    for drain().  (A store before and after: the hook is a Python call.)"""
    pool_store64(&pool._hook_thread[i], PyThread_get_thread_ident(), POOL_RELAXED)
    try:
        return hook(obj)
    finally:
        pool_store64(&pool._hook_thread[i], 0, POOL_RELEASE)


cdef int _refuse_in_factory(ObjectPool pool, str what) except -1:
    """drain() or drain_async() from inside the pool's factory, in the same
    thread or task, would wait for the slot the factory is filling."""
    if _running_factory(pool):
        raise RuntimeError(
            f"{what} from inside the factory of the same pool (in this thread or task) "
            f"would wait for the slot the factory is filling: call close() there (no "
            f"wait), or {what} from outside the factory")
    return 0


cdef int _refuse_in_hook(ObjectPool pool, str what) except -1:
    """drain() from inside a reset, validate or check of this pool, in this
    thread, would wait for that hook's own object (held until the hook
    returns): RuntimeError at once, before anything is closed.  Only this
    thread's marks can hold its id (another thread's hook has another id;
    an exited thread cleared its marks before its id could be reused)."""
    cdef uint64_t me = PyThread_get_thread_ident()
    cdef uint32_t i
    _refuse_in_factory(pool, what)
    if pool._hook_thread == NULL:
        return 0
    for i in range(pool._capacity):
        if pool_load64(&pool._hook_thread[i], POOL_ACQUIRE) == me:
            raise RuntimeError(
                f"{what} from inside a hook of the same pool (reset, validate or "
                f"check, running in this thread) would wait for that hook's own "
                f"object: call close() there (no wait), or {what} from outside "
                f"the hook")
    return 0


cdef object _drain(ObjectPool pool, object timeout):
    cdef double t = _parse_timeout(timeout)
    cdef double deadline = -1.0 if t < 0 else _monotonic() + t
    _refuse_in_hook(pool, "drain()")
    if not pool._close_begin():
        return None              # closed already: at once (close() or drain() did it)
    evictor = _stop_evictor(pool)
    _destroy_all(pool, _drain_idle(pool))
    _wait_all_back(pool, deadline, t)
    # The evictor may be creating an object for an empty slot (not counted
    # in in_use): wait for its round, whose object is destroyed as it goes idle.
    _join_evictor(evictor, -1.0 if deadline < 0 else max(0.0, deadline - _monotonic()))
    _destroy_all(pool, _drain_idle(pool))
    return None
