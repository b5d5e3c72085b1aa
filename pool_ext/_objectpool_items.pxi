# ObjectPool's construction and its C array of objects (included by
# _pool.pyx after _objectpool.pxi): __init__'s checks and set-up,
# allocating the per-slot arrays, what they cost, letting go of the
# objects, and what the garbage collector sees of them (the functions
# _entries.pxi installs as the type's tp_traverse and tp_clear).


cdef int _objectpool_init(ObjectPool self, factory, capacity, reset, validate, destroy,
                          prefill, pass_slot, check, max_lifetime, max_idle, min_idle,
                          track, leak_timeout, name) except -1:
    """ObjectPool.__init__: checks every argument, then allocates, then
    opens the pool and prefills it."""
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
    self._lease_discards = set()
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
        _fill(self, i)
        self._push_idle(i)
    return 0


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


cdef int _objectpool_alloc(ObjectPool pool, uint32_t n, bint hooks) noexcept:
    """The per-slot arrays, the slot table and the address map: 0, or -1 if
    any cannot be allocated (the caller frees what was)."""
    pool._items = <PyObject **>calloc(n, sizeof(PyObject *))
    if pool._items == NULL:
        return -1
    pool._leased_gen = <uint64_t *>calloc(n, sizeof(uint64_t))
    if pool._leased_gen == NULL:
        return -1
    if pool._lifetime_ns != POOL_CLOCK_NEVER:
        pool._expires_ns = <uint64_t *>calloc(n, sizeof(uint64_t))
        if pool._expires_ns == NULL:
            return -1
    if pool._max_idle_ns != POOL_CLOCK_NEVER:
        pool._idle_ns = <uint64_t *>calloc(n, sizeof(uint64_t))
        if pool._idle_ns == NULL:
            return -1
    if hooks:
        pool._hook_thread = <uint64_t *>calloc(n, sizeof(uint64_t))   # (_health.pxi)
        if pool._hook_thread == NULL:
            return -1
    pool_freelist_init(&pool._idle)
    if pool_slots_init_padded(&pool._slots, n, &pool._empty, POOL_THREAD_CACHE) != 0:
        return -1
    return pool_addrmap_init(&pool._map, n)


cdef void _objectpool_free_arrays(ObjectPool pool) noexcept:
    """Frees what _objectpool_alloc made (any part of it); the pool's objects
    must be gone (_objectpool_drop_items)."""
    free(pool._items)
    free(pool._expires_ns)
    free(pool._idle_ns)
    free(pool._leased_gen)
    pool._leased_gen = NULL
    free(pool._hook_thread)
    pool._items = NULL
    pool._expires_ns = pool._idle_ns = pool._hook_thread = NULL
    pool_slots_free(&pool._slots)
    pool_addrmap_free(&pool._map)


cdef double _objectpool_bytes(uint32_t n, int extra_arrays):
    """What ObjectPool(capacity=n) allocates up front, in bytes: per slot an
    object pointer (8), a state word (8), a free-list link (4) and 8 per
    optional array (max_lifetime, max_idle, hooks), plus the address map: a
    power of two >= 2n of 16-byte entries (32 to 64 bytes per slot)."""
    cdef uint64_t size = 4
    while size < 2 * <uint64_t>n:
        size <<= 1
    return <double>n * (20 + 8 * extra_arrays) + <double>size * 16   # 16: sizeof(pool_addrmap_entry_t)


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
