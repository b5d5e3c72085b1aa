# ObjectPool's coroutine hooks (included by _pool.pyx): the asynchronous
# twins of _take (_objectpool.pxi), _take_idle_vetted and _run_check
# (_health.pxi), which await what the hooks return.  (The twins of
# _release_hooks, _discard and _destroy_all sit beside them in
# _objectpool_slots.pxi.)
#
# Which pools.  ObjectPool's async methods take these paths whatever its
# hooks, and await every hook's result that is awaitable, so sync and async
# hooks mix (and a lambda that returns a coroutine works).  A pool whose
# factory, reset, validate, destroy or check is a coroutine function
# (_is_coroutine_hook) has _async_hooks set, and its _plain_take cleared, so
# the sync hot paths fall through to _take, which refuses with TypeError
# before it touches a slot; a sync path that meets an awaitable anyway
# closes it and raises TypeError (_not_awaited).  acquire_async's own fast
# path reads _plain_take_async, which the hooks' kind does not clear.
#
# Slots across an await.  The task owns a slot while it awaits a hook: an
# empty one (HELD, no object yet: nothing can find it) while the factory
# runs, an idle one (RELEASING: nothing can release it) while check() runs,
# a released one (RELEASING) while reset() and validate() run.  Any
# exception, CancelledError included, gives the slot back before it
# propagates; on that path destroy() is not awaited (a second cancellation
# or a closing coroutine could not wait for it): it runs as a task on the
# loop (_destroy_soon), and that task gives the slot back when it ends, so
# the factory never refills a slot whose old object still exists.  An acquire is counted while the factory runs, so
# drain_async() waits for it.
#
# Sync methods that meet a coroutine destroy() (discard, close, evict, a
# release on a closed pool) run it the same way, as a task on the running
# loop (the slot back when it ends); with no loop running in that thread it
# cannot run, and they warn (the slot back at once).  A task whose loop is
# closed before it ends gives its slot back at the next wait
# (_reap_orphaned_destroys).

cdef object _iscoroutinefunction = _inspect.iscoroutinefunction
# destroy() tasks until done (the loop holds them weakly) -> the slot each
# gives back when it ends (_SlotAfterDestroy), or None
cdef dict _destroy_tasks = {}


cdef bint _is_coroutine_hook(object hook) except -1:
    """A coroutine function, or an object whose __call__ is one."""
    if hook is None:
        return False
    if _iscoroutinefunction(hook):
        return True
    call = getattr(type(hook), "__call__", None)
    return call is not None and bool(_iscoroutinefunction(call))


cdef inline bint _awaitable(object r) except -1:
    """r is something to await (a hook's result); None and bools, the usual
    results of sync hooks, are told at once."""
    if r is None or r is True or r is False:
        return False
    return getattr(type(r), "__await__", None) is not None


cdef object _not_awaited(object r, str hook):
    """A sync call got an awaitable from `hook`: closed (no 'never awaited'
    warning), and TypeError."""
    close = getattr(r, "close", None)
    if close is not None:
        try:
            close()
        except BaseException:
            pass
    raise TypeError(f"{hook}() returned an awaitable ({type(r).__name__}), which a sync "
                    f"call cannot await: use the pool's async methods "
                    f"(acquire_async, lease_async, release_async)")


cdef object _async_only(ObjectPool pool, str method, str instead):
    hooks = [name for name, hook in (("factory", pool._factory), ("check", pool._check),
                                     ("reset", pool._reset), ("validate", pool._validate),
                                     ("destroy", pool._destroy))
             if _is_coroutine_hook(hook)]
    raise TypeError(f"{method} cannot await the coroutine hooks of this "
                    f"{pool._label()} ({', '.join(hooks)}): use {instead}")


# -- destroy() ----------------------------------------------------------------------

def _destroy_done(task):
    _destroy_tasks.pop(task, None)
    if not task.cancelled() and task.exception() is not None:
        _log.warning("destroy() failed in its task", exc_info=task.exception())


@cython.final
cdef class _SlotAfterDestroy:
    """The empty slot of an object whose destroy() runs in a task: it goes
    back on the empty list once destroy() has finished, failed or been
    cancelled (even before it started), not before, so that the factory
    cannot refill it while the old object still exists."""

    cdef void give_back(self) noexcept:
        pool = self.pool
        if pool is not None:   # (once: the task's end and its callback both try)
            self.pool = None
            pool._unhold_empty(self.i)

    def _task_done(self, task):
        self.give_back()
        _destroy_done(task)


cdef _SlotAfterDestroy _slot_after_destroy(ObjectPool pool, uint32_t i):
    # (made only here: Python code cannot make one, _pool.pyx)
    cdef _SlotAfterDestroy slot = _SlotAfterDestroy.__new__(_SlotAfterDestroy)
    slot.pool = pool
    slot.i = i
    return slot


async def _await_it(aw, _SlotAfterDestroy slot):
    try:
        return await aw
    finally:
        if slot is not None:
            slot.give_back()


cdef object _destroy_soon(object aw, _SlotAfterDestroy slot):
    """Runs destroy()'s awaitable as a task on this thread's running loop;
    the task gives `slot` back (if not None) when it ends.  Returns the
    task (None if no loop runs)."""
    loop = _peek_running_loop()
    if loop is None:
        if slot is not None:
            slot.give_back()   # destroy() cannot run: nothing to wait for
        try:
            aw.close()
        except BaseException:
            pass
        _warnings.warn("destroy() returned an awaitable and no event loop runs in this "
                       "thread to await it: the object was dropped without it; give "
                       "objects back with release_async() and close the pool with "
                       "close_async() or drain_async() from the event loop",
                       RuntimeWarning, stacklevel=3)
        return None
    try:
        task = loop.create_task(_await_it(aw, slot))
    except BaseException:
        if slot is not None:
            slot.give_back()
        raise
    _destroy_tasks[task] = slot
    task.add_done_callback(_destroy_done if slot is None else slot._task_done)
    return task


cdef int _reap_orphaned_destroys() except -1:
    """Gives back the slots kept by destroy() tasks whose event loop was
    closed before they ran to their end (closed without running its
    leftover tasks, as asyncio.run() would): they never will.  Called by
    the waits, on their slow path, when such tasks exist."""
    for task, slot in _destroy_tasks.copy().items():   # (copy(): atomic, free-threaded too)
        if slot is not None and not task.done() and task.get_loop().is_closed():
            _destroy_tasks.pop(task, None)   # (then collectable, as asyncio's own)
            (<_SlotAfterDestroy>slot).give_back()
    return 0


# -- the acquire's deadline ------------------------------------------------------------
# acquire_async(timeout=t) and lease_async(timeout=t) end by their deadline
# whatever the hooks do: a hook's await still running there is cancelled
# (asyncio.wait_for: portable to 3.9, where asyncio.timeout does not exist),
# the slot is given back as a cancellation would give it back (a checked
# object destroyed in a task, its slot back after), and _Deadline, caught
# where the timeout is known, becomes PoolExhausted.  No deadline (timeout
# None, or 0: do not wait for a slot) and the hooks are awaited as they are.

class _Deadline(BaseException):
    """A hook was still running at the acquire's deadline (internal: a
    BaseException, so that the hooks' `except Exception` paths let it by).
    args: what was cut short, and what became of it (for PoolExhausted)."""


async def _outcome(aw):
    """aw's result or Exception as a pair, so that a TimeoutError raised by
    the hook itself is not taken for wait_for's."""
    try:
        return (await aw), None
    except Exception as e:
        return None, e


cdef int _close_quietly(object aw) except -1:
    close = getattr(aw, "close", None)
    if close is not None:
        try:
            close()
        except BaseException:
            pass
    return 0


cdef object _asyncio_timeout = getattr(_asyncio, "timeout", None)


async def _await_hook(aw, double deadline, str what, str outcome):
    """A hook's awaitable awaited; past deadline (time.monotonic(); < 0:
    none) its await is cancelled and _Deadline(what, outcome) raised."""
    if deadline < 0:
        return await aw
    remaining = deadline - _monotonic()
    if remaining > 0:
        try:
            if _asyncio_timeout is not None:
                # (3.11+) in this task: a cancel of the task always propagates.
                # 3.11's wait_for returned the result instead when the cancel
                # came as the hook finished (fixed in 3.12, where wait_for is
                # this); 3.9 and 3.10 have only wait_for
                async with _asyncio_timeout(remaining):
                    r, err = await _outcome(aw)
            else:
                r, err = await _asyncio.wait_for(_outcome(aw), remaining)
        except (_asyncio.TimeoutError, TimeoutError):
            pass
        else:
            if err is not None:
                raise err
            return r
    _close_quietly(aw)   # (a coroutine that never started: no "never awaited" warning)
    raise _Deadline(what, outcome)


cdef object _hook_timed_out(_PoolBase pool, object e, double t):
    """PoolExhausted for a _Deadline: the acquire's timeout ran out in a hook."""
    _count(&pool._timeouts)
    raise PoolExhausted(pool._exhausted_message(
        f"{e.args[0]} had not finished when the acquire's timeout ({t:g} s) ran "
        f"out: {e.args[1]}")) from None


# -- acquiring ------------------------------------------------------------------------

cdef inline object _take_idle_plain(ObjectPool pool):
    """acquire_async()'s fast path: an idle object of a pool with nothing to
    do at hand-out, or _NOTHING (then _wait_async)."""
    cdef uint32_t i, gen
    if pool._plain_take_async and pool_waitq_gate(&pool._waitq) == 0:   # open, nobody waits
        i = pool._pop_idle(&gen)
        if i != POOL_NIL:
            return <object>pool._items[i]
    return _NOTHING


async def _hand_out_async(ObjectPool pool, uint32_t i, uint32_t k, double deadline):
    """ObjectPool._hand_out() with the hooks awaited: slot i (owned,
    counted; k: 0 idle, 1 empty) handed out, its idle object vetted
    (_REJECTED if it fails: destroyed, the slot gone on) or a new one made
    by the factory; any exception gives the slot back."""
    if _is_closed(pool):
        pool._give_up(i, k)
        return pool._cold_closed()
    if k == 0:
        # A failed object is destroyed and, if its slot stays ours (the
        # waiter keeps its place: FIFO), the factory fills it below.
        obj = <object>pool._items[i]
        refill = False
        if _expired(pool, i, pool_clock_ns()):
            if not await _reject_async(pool, i, obj, _WHY_EXPIRED, deadline, True):
                return _REJECTED
            refill = True
        elif pool._check is not None:
            c = await _run_check_async(pool, i, obj, deadline, True)
            if c == 0:
                return _REJECTED
            refill = c == 2
        if not refill:
            if _is_closed(pool):
                await _reject_async(pool, i, obj, _WHY_CLOSED, deadline)
                return pool._cold_closed()
            _hold_begin(pool, i, None)
            pool_slots_hold(&pool._slots, i)   # RELEASING -> HELD: handed out
            return obj
    try:
        token = _in_factory.set(_in_factory.get() + (id(pool),))   # (_call_factory)
        try:
            obj = pool._factory(i) if pool._pass_slot else pool._factory()
            if _awaitable(obj):
                obj = await _await_hook(obj, deadline, "factory()",
                                        "its await was cancelled and the slot given back")
        finally:
            _in_factory.reset(token)
        _adopt(pool, i, obj)
    except BaseException:   # (_Deadline too: nothing was made)
        _uncount(&pool._acquires)   # before the push wakes a drain
        pool._unhold_empty(i)
        raise
    if _is_closed(pool):
        # closed while the factory ran: not handed out
        await _reject_async(pool, i, obj, _WHY_CLOSED, deadline)
        return pool._cold_closed()
    _hold_begin(pool, i, None)
    pool_slots_hold(&pool._slots, i)
    return obj


cdef enum:
    _WHY_CLOSED = 0
    _WHY_EXPIRED = 1
    _WHY_CHECK = 2


async def _reject_async(ObjectPool pool, uint32_t i, obj, int why, double deadline,
                        bint keep=False):
    """_reject() with destroy() awaited; with a deadline (time.monotonic();
    < 0: none) a coroutine destroy() runs as a task (the slot back when it
    ends), awaited until the deadline only (then _Deadline).  keep: True if
    the slot stays ours, empty and counted, once destroy() has ended (a
    plain one, or a coroutine awaited here when there is no deadline)."""
    if why == _WHY_EXPIRED:
        _count(&pool._expired)
    elif why == _WHY_CHECK:
        _count(&pool._checks_failed)
    if keep:
        _detach(pool, i, obj, False)
        try:
            r = None if pool._destroy is None else pool._destroy(obj)
            if _awaitable(r) and deadline < 0:
                await r
                r = None
        except Exception:
            _log.warning("destroy() failed on %r from %r, which was not handed out",
                         obj, pool, exc_info=True)
            return True
        except BaseException:   # (a cancellation too): the slot goes back
            _uncount(&pool._acquires)
            pool._unhold_empty(i)
            raise
        if not _awaitable(r):
            return True
        _uncount(&pool._acquires)
        return await _destroy_until(pool, i, r, deadline)
    _uncount(&pool._acquires)
    if deadline < 0:
        try:
            await _discard_async(pool, i, obj, False)
        except Exception:   # as _reject: logged, the acquire goes on
            _log.warning("destroy() failed on %r from %r, which was not handed out",
                         obj, pool, exc_info=True)
        return False
    _detach(pool, i, obj, False)
    try:
        r = None if pool._destroy is None else pool._destroy(obj)
    except BaseException as e:
        pool._unhold_empty(i)
        if not isinstance(e, Exception):
            raise
        _log.warning("destroy() failed on %r from %r, which was not handed out",
                     obj, pool, exc_info=True)
        return False
    if not _awaitable(r):
        pool._unhold_empty(i)
        return False
    return await _destroy_until(pool, i, r, deadline)


async def _destroy_until(ObjectPool pool, uint32_t i, r, double deadline):
    """A coroutine destroy() (r) of slot i's object, as a task (which logs
    its failure) that gives the slot back when it ends; awaited until the
    deadline, never cancelled by it (then _Deadline).  False: the slot is
    not ours any more."""
    task = _destroy_soon(r, _slot_after_destroy(pool, i))
    remaining = deadline - _monotonic()
    if task is not None and remaining > 0:
        await _asyncio.wait((task,), timeout=remaining)
    if task is not None and not task.done():
        raise _Deadline("destroy() of an object that failed check() or expired",
                        "it goes on in a task, whose end frees the slot")
    return False


async def _run_check_async(ObjectPool pool, uint32_t i, obj, double deadline,
                           bint keep=False):
    """_run_check() with check() awaited: 1 if it passes, else 0 (2: the
    slot kept, _reject_async's keep).  A false result
    or an Exception fails it (destroyed, logged); anything else (a
    cancellation, the acquire's deadline) destroys it too, in a task, and
    propagates."""
    try:
        r = _call_hook(pool, i, pool._check, obj)   # (a sync check() may call drain())
        if _awaitable(r):
            r = await _await_hook(r, deadline, "check()",
                                  "its await was cancelled, the object is destroyed "
                                  "and its slot given back")
        if r:
            return 1
    except Exception as e:
        _log.info("check() failed on %r from %r: %r", obj, pool, e)
    except _Deadline:   # cut short, not failed: not counted in checks_failed
        _uncount(&pool._acquires)
        try:
            _discard(pool, i, obj, False)   # destroy() as a task, the slot back after it
        except Exception:   # (a sync destroy(): as _reject, logged)
            _log.warning("destroy() failed on %r from %r, which was not handed out",
                         obj, pool, exc_info=True)
        raise
    except BaseException:
        _count(&pool._checks_failed)
        _uncount(&pool._acquires)
        _discard(pool, i, obj, False)   # destroy() as a task
        raise
    return 2 if await _reject_async(pool, i, obj, _WHY_CHECK, deadline, keep) else 0


# -- closing ------------------------------------------------------------------------------

async def _drain_async(ObjectPool pool, timeout):
    """drain_async(timeout): drain() without blocking the loop."""
    if _peek_running_loop() is None:
        _no_running_loop()
    if not pool._close_begin():
        return None
    _stop_evictor(pool)   # (not joined: its round ends on its own)
    await _destroy_all_async(pool, _drain_idle(pool))
    if not _all_destroyed(pool):
        await _wait_all_back_async(pool, timeout)
        pool._wake(0xffffffff)   # other drain callers look again too
    await _destroy_all_async(pool, _drain_idle(pool))
    return None
