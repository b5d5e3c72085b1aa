# ObjectPool's C array of objects (included by _pool.pyx after
# _objectpool.pxi): allocating the per-slot arrays, what they cost, letting
# go of the objects, and what the garbage collector sees of them (the
# functions _entries.pxi installs as the type's tp_traverse and tp_clear).

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
