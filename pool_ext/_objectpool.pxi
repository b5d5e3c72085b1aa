# ObjectPool: a bounded pool of arbitrary Python objects (included by _pool.pyx).
#
# Slots and lists.  Slot i holds _items[i] (NULL while it holds nothing), a
# C array of owned references that the garbage collector sees through the
# type's tp_traverse (installed at the end of this file).  Every FREE slot
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


# How many discarded objects a pool remembers, to tell a second release of
# one ("not in use") from a foreign object ("did not hand out").  Arbitrary:
# enough for the release that follows a discard; a dict of this many ints.
cdef Py_ssize_t _GONE_MEMORY = 256


cdef inline PyObject *_item(ObjectPool pool, uint32_t i) noexcept:
    # relaxed: a releaser reads another owner's slot to compare identities
    # (free-threaded); the owner publishes its writes through the free-list
    return <PyObject *>pool_loadptr(<uintptr_t *>&pool._items[i], POOL_RELAXED)


cdef class ObjectPool(_PoolBase):
    """ObjectPool(factory, capacity, *, reset=None, validate=None, destroy=None, prefill=0)
--

    ObjectPool(factory, capacity, *, reset=None, validate=None, destroy=None, prefill=0)

    A bounded, thread-safe pool of reusable objects.

    acquire() hands out an idle object, else creates one with ``factory()``
    while fewer than `capacity` exist, else waits for a release.  A factory
    that cannot be called without an argument (one required positional
    parameter, like a ``Connection(id)`` class) is called as
    ``factory(slot)`` with the slot number, 0 to capacity - 1.  release()
    gives it back: ``reset(obj)`` runs if given; if ``validate(obj)`` returns
    false the object is dropped (``destroy(obj)`` if given) and its slot is
    refilled by the factory on a later acquire.

    >>> pool = ObjectPool(list, capacity=2, reset=list.clear)
    >>> with pool.lease() as scratch:
    ...     scratch.append(1)
    >>> pool.acquire()       # the same list, reset
    []

    Thread-safety: every method may be called from any thread.  acquire and
    release are lock-free (a compare-and-swap free-list in C); only a caller
    that must wait sleeps, with the GIL released.  Hooks run in the calling
    thread, outside any lock.  Objects are released by identity, so a pooled
    object must not be released twice by different owners: the pool catches
    a second release only while the object is not handed out again.
    """

    def __cinit__(self):
        # Everything __dealloc__ frees starts empty, so a failed __init__ is
        # safe (and the pool stays closed: see _PoolBase.__cinit__).
        self._slots.next = NULL
        self._slots.state = NULL
        self._items = NULL
        pool_addrmap_init_empty(&self._map)

    def __init__(self, factory, capacity, *, reset=None, validate=None,
                 destroy=None, prefill=0):
        cdef uint32_t n, i, gen
        if self._slots.state != NULL:
            raise RuntimeError("ObjectPool.__init__ called twice")
        if not callable(factory):
            raise TypeError(f"factory must be callable, not {type(factory).__name__}")
        self._reset = _check_hook(reset, "reset")
        self._validate = _check_hook(validate, "validate")
        self._destroy = _check_hook(destroy, "destroy")
        n = _parse_capacity(capacity)
        prefill = _int_arg(prefill, "prefill", 0, n)
        self._factory = factory
        self._plain_release = reset is None and validate is None
        self._factory_takes_slot = _needs_one_argument(factory)
        self._capacity = n
        self._gone = {}
        self._items = <PyObject **>calloc(n, sizeof(PyObject *))
        if self._items == NULL:
            raise MemoryError(f"cannot allocate {n} pool slots")
        pool_freelist_init(&self._idle)
        if pool_slots_init(&self._slots, n, &self._empty) != 0:
            raise MemoryError(f"cannot allocate {n} pool slots")
        if pool_addrmap_init(&self._map, n) != 0:
            raise MemoryError(f"cannot allocate the address map for {n} slots")
        pool_waitq_open(&self._waitq)   # open for business
        for _ in range(<uint32_t>prefill):
            i = pool_slots_pop_hold(&self._slots, &self._empty, &gen)
            if i == POOL_NIL:
                # Only a factory that acquires from this very pool (built with
                # __new__, then __init__) can take the empty slots from under us.
                raise PoolError(f"prefill={prefill} found no empty slot left: the "
                                f"factory acquired from the pool being built")
            self._fill(i)
            self._unhold_idle(i)

    def __dealloc__(self):
        # Our references go; destroy() is for close(), not garbage collection.
        _objectpool_drop_items(self)
        free(self._items)
        pool_slots_free(&self._slots)
        pool_addrmap_free(&self._map)

    # -- the hot path ------------------------------------------------------
    cdef inline uint32_t _pop_idle(self, uint32_t *gen) noexcept:
        """An idle object's slot, held for the caller (*gen: the hand-out's
        generation), or POOL_NIL."""
        cdef uint32_t i = pool_slots_pop_hold(&self._slots, &self._idle, gen)
        if i != POOL_NIL:
            _count(&self._acquires)
        return i

    cdef inline int _release(self, object obj) except -1:
        cdef uint32_t i = pool_addrmap_find(&self._map, <uintptr_t><PyObject *>obj)
        cdef uint64_t w
        if i == POOL_NIL:
            return self._cold_unknown(obj)
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
            return self._cold_not_in_use(obj)
        if self._plain_release:
            # No hook runs: HELD -> FREE in one transition, then the push.
            if pool_slots_release_handle(&self._slots, i, POOL_SLOT_GEN(w)) != POOL_FREED:
                return self._cold_not_in_use(obj)
            _count(&self._releases)
            pool_slots_push(&self._slots, &self._idle, i)
            return self._after_idle_push()
        if pool_slots_release_begin(&self._slots, i, POOL_SLOT_GEN(w)) != POOL_OK:
            return self._cold_not_in_use(obj)
        # From here on the slot goes back to a list whatever happens.
        return self._release_hooks(obj, i)

    cdef inline int _release_slot(self, uint32_t i, uint32_t gen) except -1:
        """Ends the hand-out (i, gen), as a lease does: by its slot, with no
        lookup; the generation says whether it is still that hand-out."""
        if self._plain_release:
            if pool_slots_release_handle(&self._slots, i, gen) != POOL_FREED:
                return self._cold_slot_not_in_use()
            _count(&self._releases)
            pool_slots_push(&self._slots, &self._idle, i)
            return self._after_idle_push()
        if pool_slots_release_begin(&self._slots, i, gen) != POOL_OK:
            return self._cold_slot_not_in_use()
        return self._release_hooks(<object>self._items[i], i)

    cdef inline int _after_idle_push(self) except -1:
        """A slot holding its object was pushed on the idle list."""
        _notify(self)
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
    cdef object _cold_closed(self):
        raise PoolClosed("acquire() on a closed pool")

    cdef int _cold_unknown(self, object obj) except -1:
        """obj is not in the pool: never handed out, or discarded already."""
        if self._slots.state == NULL:
            raise PoolClosed("release() on a pool that was never initialised")
        if self._gone.get(id(obj)) is type(obj):
            raise PoolError(f"release of an object that is not in use (already "
                            f"released, and discarded): {type(obj).__name__} at "
                            f"{id(obj):#x}")
        raise PoolError(f"release of an object this pool did not hand out: "
                        f"{type(obj).__name__} at {id(obj):#x}")

    cdef int _cold_not_in_use(self, object obj) except -1:
        raise PoolError(f"release of an object that is not in use (already "
                        f"released?): {type(obj).__name__} at {id(obj):#x}")

    cdef int _cold_slot_not_in_use(self) except -1:
        raise PoolError("release of an object that is not in use (already released?): "
                        "the lease's object was released before the lease ended")

    cdef int _cold_drain(self) except -1:
        return self._destroy_all(self._drain_idle())

    cdef object _try_take(self):
        """A hand-out, or _NOTHING if no slot is free (the slow paths)."""
        cdef uint32_t i, gen
        if _is_closed(self):
            return self._cold_closed()
        i = self._pop_idle(&gen)
        if i != POOL_NIL:
            return <object>self._items[i]
        i = pool_slots_pop_hold(&self._slots, &self._empty, &gen)
        if i == POOL_NIL:
            return _NOTHING
        obj = self._fill(i)
        _count(&self._acquires)
        return obj

    cdef object _cold_acquire(self, object timeout):
        """acquire() when no object was idle: the factory, or a wait."""
        item = self._try_take()
        if item is _NOTHING:
            return self._acquire_wait(timeout)
        return item

    cdef int _lease_exit(self, object obj) except -1:
        return self._release(obj)

    cdef int _give_back(self, object obj) except -1:
        """obj was just taken (HELD) and nobody saw it: idle again, no hooks."""
        cdef uint32_t i = pool_addrmap_find(&self._map, <uintptr_t><PyObject *>obj)
        pool_slots_release_begin(&self._slots, i,
                                 POOL_SLOT_GEN(pool_slots_load(&self._slots, i)))
        _count(&self._releases)
        return self._unhold_idle(i)

    # -- slot bookkeeping (the caller owns slot i) -----------------------------
    cdef void _unhold_empty(self, uint32_t i) noexcept:
        """Slot i, now holding nothing, goes back on the empty list."""
        pool_slots_free_push(&self._slots, &self._empty, i)
        _notify(self)

    cdef object _fill(self, uint32_t i):
        """Fills empty slot i (popped and held) from the factory."""
        cdef int rc
        try:
            obj = self._factory(i) if self._factory_takes_slot else self._factory()
        except BaseException:
            self._unhold_empty(i)
            raise
        if obj is None:
            self._unhold_empty(i)
            raise PoolError("factory returned None: a pool hands out objects, and "
                            "try_acquire() returns None to mean 'none free'")
        rc = pool_addrmap_insert(&self._map, <uintptr_t><PyObject *>obj, i)
        if rc != 0:
            self._unhold_empty(i)
            raise PoolError(f"factory returned an object that is already in this pool "
                            f"({type(obj).__name__} at {id(obj):#x}); a pool releases "
                            f"by identity, so each pooled object must be distinct")
        self._put(i, obj)
        if self._gone:
            self._gone.pop(id(obj), None)   # the address is a pooled object's again
        _count(&self._creations)
        return obj

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

    cdef void _detach(self, uint32_t i, object obj) noexcept:
        """Takes obj out of slot i (owned); the caller returns the slot."""
        pool_addrmap_remove(&self._map, <uintptr_t><PyObject *>obj)
        self._put(i, None)
        self._remember_gone(obj)
        _count(&self._destructions)

    cdef void _remember_gone(self, object obj) noexcept:
        """Keeps the last _GONE_MEMORY discarded objects' ids (and types), so
        that releasing one again says "not in use", not "did not hand out".
        An id is an address, so a foreign object of the same type born at a
        discarded object's address would get the first message: a hint only."""
        gone = self._gone
        try:
            if len(gone) >= _GONE_MEMORY:
                del gone[next(iter(gone))]   # the oldest
            gone[id(obj)] = type(obj)
        except BaseException:   # another thread emptied it: a hint only
            pass

    cdef int _discard(self, uint32_t i, object obj) except -1:
        """Detaches and destroys obj, then returns its (now empty) slot.
        destroy() runs first, so the factory cannot refill the slot while the
        old object (an open connection, say) still exists: never more than
        `capacity` objects alive.  Whatever destroy() raises, the slot is back."""
        self._detach(i, obj)
        try:
            self._call_destroy(obj)
        finally:
            self._unhold_empty(i)
        return 0

    cdef int _release_hooks(self, object obj, uint32_t i) except -1:
        keep = True
        try:
            if self._reset is not None:
                self._reset(obj)
            if self._validate is not None:
                keep = bool(self._validate(obj))
        except BaseException:
            # A hook failed: the object's state is unknown, so it leaves the
            # pool; the slot does not.  The hook's exception propagates.
            _count(&self._releases)
            self._discard(i, obj)
            raise
        _count(&self._releases)
        if keep and not _is_closed(self):
            return self._unhold_idle(i)
        return self._discard(i, obj)

    cdef int _call_destroy(self, object obj) except -1:
        if self._destroy is not None:
            self._destroy(obj)
        return 0

    cdef list _drain_idle(self):
        """Takes every idle object out of the pool; returns them."""
        cdef uint32_t i
        cdef list drained = []
        while True:
            i = pool_slots_pop_own(&self._slots, &self._idle)   # not a hand-out
            if i == POOL_NIL:
                return drained
            obj = <object>self._items[i]
            # The pool is closed, so nothing refills the slot: return it
            # now and destroy the objects after (the caller does).
            self._detach(i, obj)
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
        """Hands out an object, or returns None at once if none is free."""
        cdef uint32_t i, gen
        if _is_closed(self):
            return self._cold_closed()
        i = self._pop_idle(&gen)
        if i != POOL_NIL:
            return <object>self._items[i]
        item = self._try_take()
        return None if item is _NOTHING else item

    @cython.always_allow_keywords(False)   # METH_O
    @cython.embedsignature(False)          # positional-only, said below
    def release(self, obj):
        """release($self, obj, /)
--

        Gives obj back.  PoolError if this pool did not hand it out, or
        if it was already released (the pool is then unchanged)."""
        self._release(obj)

    def close(self):
        """Destroys the idle objects; later acquires raise PoolClosed and
        later releases destroy the object.  Idempotent.  Sleeping acquirers
        wake and raise PoolClosed."""
        if self._close_begin():
            self._destroy_all(self._drain_idle())

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

    def __repr__(self):
        state = "closed" if _is_closed(self) else "open"
        return (f"<ObjectPool {state} capacity={self._capacity} size={self.size} "
                f"in_use={self._in_use()} factory={self._factory!r}>")


cdef bint _needs_one_argument(object factory) except -1:
    """True if factory has exactly one required positional parameter, so
    factory() would fail and factory(slot) is meant (a class like the
    Object Pool pattern article's Connection(id)).  Unknown signatures (some
    builtins) -> False."""
    import inspect
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return False
    required = [p for p in sig.parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                       p.POSITIONAL_OR_KEYWORD)]
    return len(required) == 1


# -- the garbage collector and the C array of objects -------------------------
# Cython's tp_traverse and tp_clear see the hooks and the factory; these add
# the pooled objects.  Clearing (only ever done to a pool in a reference
# cycle that is garbage) closes the pool first, so that anything still
# running in the cycle's deallocations meets a closed, empty pool, never a
# dangling pointer.

cdef traverseproc _objectpool_cython_traverse = NULL
cdef inquiry _objectpool_cython_clear = NULL


# (They take the pool typed, which the C calling convention makes the same
# as tp_traverse's and tp_clear's PyObject *, so that Cython does not touch
# its reference count.)
cdef int _objectpool_traverse(ObjectPool pool, visitproc visit, void *arg) noexcept:
    cdef uint32_t i
    cdef int rc = _objectpool_cython_traverse(<PyObject *>pool, visit, arg)
    if rc != 0 or pool._items == NULL:
        return rc
    for i in range(pool._capacity):
        if pool._items[i] != NULL:
            rc = visit(pool._items[i], arg)
            if rc != 0:
                return rc
    return 0


cdef int _objectpool_clear(ObjectPool pool) noexcept:
    pool._close_begin()
    _objectpool_drop_items(pool)
    return _objectpool_cython_clear(<PyObject *>pool)


cdef void _objectpool_drop_items(ObjectPool pool) noexcept:
    """Lets go of every pooled object; each slot's entry is NULL before its
    object's references go (whose deallocation may run Python code)."""
    cdef PyObject *obj
    cdef uint32_t i
    if pool._items == NULL:
        return
    for i in range(pool._capacity):
        obj = pool._items[i]
        if obj != NULL:
            pool._items[i] = NULL
            Py_XDECREF(obj)


_objectpool_cython_traverse = (<PyTypeObject *>ObjectPool).tp_traverse
_objectpool_cython_clear = (<PyTypeObject *>ObjectPool).tp_clear
(<PyTypeObject *>ObjectPool).tp_traverse = <traverseproc><void *>_objectpool_traverse
(<PyTypeObject *>ObjectPool).tp_clear = <inquiry><void *>_objectpool_clear
