# BufferPool: a bounded pool of equal-sized, aligned buffers (included by
# _pool.pyx); the handles it hands out are in _pooledbuffer.pxi.
#
# One arena (src/pool_mem.h) is carved into `capacity` slots when the pool is
# built; one lock-free free-list holds the free ones.  Each acquire hands out
# a fresh PooledBuffer handle carrying (slot, generation).  The slot's state
# word counts buffer-protocol exports, so:
#   - release with no export: the slot is FREE at once;
#   - release while a memoryview/ndarray is alive: RETIRING, and the last
#     __releasebuffer__ frees it (deferred release): memory another acquirer
#     owns is never visible through an old view;
#   - any use of a released handle raises ValueError (its generation is old,
#     and it keeps a local released flag that survives generation wrap);
#   - a handle dropped unreleased warns ResourceWarning and frees its slot.
# The arena and the slot states live in a _BufferStore, which the pool and
# every handle it ever made reference: memory is freed only when nothing
# can reach it, not even a released handle that an np.ndarray(buffer=buf)
# keeps as its base.  Handles also hold the pool while they hold a slot
# (to give it back and wake waiters).
#
# Handle reuse (GIL builds, POOL_CACHE_HANDLES): when a handle's slot goes
# back to the pool, the pool keeps the handle in _handles[slot] and the
# handle drops its pool reference (so no cycle).  The next acquire of that
# slot reuses the handle if the pool holds the only reference to it (the
# user dropped it), taking it out of the cache: no allocation and no
# deallocation per pair.  A handle the user still holds is never reused.

cdef size_t _MAX_ALIGNMENT = 1 << 30   # a 1 GiB huge page; more is surely a mistake


@cython.no_gc   # references no handle it handed out; cached ones hold no reference to it
cdef class BufferPool(_PoolBase):
    """BufferPool(buffer_size, capacity, *, zero_on_release=False, alignment=64, track=False, leak_timeout=None, name=None)
--

    BufferPool(buffer_size, capacity, *, zero_on_release=False, alignment=64, track=False, leak_timeout=None, name=None)

    A bounded, thread-safe pool of equal-sized, aligned, writable buffers.

    All buffers are carved from one aligned allocation made here.  acquire()
    hands out a PooledBuffer: use it through the buffer protocol
    (``memoryview(buf)``, ``np.frombuffer(buf, np.uint8)``,
    ``f.readinto(buf)``, ``sock.recv_into(buf)``), then release it.

    >>> bufs = BufferPool(4096, capacity=8)
    >>> with bufs.acquire() as buf:
    ...     view = memoryview(buf)
    ...     view[:5] = b"hello"
    ...     print(bytes(view[:5]), len(buf))
    ...     view.release()
    b'hello' 4096

    Thread-safety: every method may be called from any thread; acquire and
    release are lock-free.  A buffer's bytes belong to its holder: the pool
    never hands a slot out again while the holder or any export still has it.
    """
    def __cinit__(self):
        self._store = _BufferStore.__new__(_BufferStore)
        self._arena = &self._store.arena
        self._slots = &self._store.slots
        self._handles = NULL   # (closed until __init__ completes: _PoolBase)

    def __init__(self, buffer_size, capacity, *, zero_on_release=False, alignment=64,
                 track=False, leak_timeout=None, name=None):
        cdef uint32_t n
        cdef size_t size, align
        cdef int rc
        if self._slots.state != NULL or self._arena.base != NULL:
            raise RuntimeError("BufferPool.__init__ called twice")
        size_arg = _int_arg(buffer_size, "buffer_size", 1, None)
        align = _int_arg(alignment, "alignment", 1, _MAX_ALIGNMENT)
        if (align & (align - 1)) != 0:
            raise ValueError(f"alignment must be a power of two, got {align}")
        n = _parse_capacity(capacity)
        if size_arg > <size_t>-1 // 2:
            raise MemoryError(f"cannot allocate {n} buffers of {size_arg} bytes")
        size = size_arg
        rc = pool_arena_init(self._arena, size, n, align)
        if rc != 0:
            raise MemoryError(f"cannot allocate {n} buffers of {size} bytes "
                              f"aligned to {align}")
        if pool_slots_init(self._slots, n, &self._free) != 0:
            pool_arena_free(self._arena)
            raise MemoryError(f"cannot allocate {n} pool slots")
        if POOL_CACHE_HANDLES:
            self._handles = <PyObject **>calloc(n, sizeof(PyObject *))
            if self._handles == NULL:
                pool_slots_free(self._slots)
                pool_arena_free(self._arena)
                raise MemoryError(f"cannot allocate {n} pool slots")
        self._capacity = n
        self._observe_init(name, track, leak_timeout)   # (_poolbase.pxi)
        self._zero_on_release = bool(zero_on_release)
        self._requested_alignment = align
        pool_waitq_open(&self._waitq)   # open for business

    def __dealloc__(self):
        # Every handle holding a slot references us, so none is alive here;
        # the cached ones hold no slot and no reference to us.  The memory
        # goes with _store, when the last handle that reaches it goes.
        cdef uint32_t i
        if self._handles != NULL:
            for i in range(self._capacity):
                Py_XDECREF(self._handles[i])
            free(self._handles)

    # -- the hot path ------------------------------------------------------
    cdef object _try_take(self):
        cdef uint32_t i, gen
        cdef PooledBuffer buf
        cdef PyObject *cached
        if _is_closed(self):
            raise PoolClosed("acquire() on a closed pool")
        i = pool_slots_pop_hold(self._slots, &self._free, &gen)
        if i == POOL_NIL:
            return _NOTHING
        cached = self._handles[i] if POOL_CACHE_HANDLES else NULL
        if cached != NULL and pool_refcnt(cached) == 1:
            # Only the cache holds it: reuse it, and take it out of the cache
            # (the cache's reference becomes the caller's), so that if the
            # caller drops it unreleased it is deallocated, warns and frees
            # its slot as any handle does.
            buf = <PooledBuffer>cached
            self._handles[i] = NULL
            Py_DECREF(buf)
        else:
            try:
                buf = PooledBuffer.__new__(PooledBuffer)
            except BaseException:             # MemoryError: give the slot back
                pool_slots_free_push(self._slots, &self._free, i)
                _notify(self)
                raise
            buf._store = self._store          # a cached handle has it already
        buf._gen = gen
        buf._index = i
        buf._ptr = pool_arena_slot(self._arena, i)
        buf._len = <Py_ssize_t>self._arena.size
        buf._pool = self
        buf._released = 0
        _hold_begin(self, i, buf)   # track=True: who holds it (_holders.pxi)
        _count(&self._acquires)
        return buf

    cdef int _give_back(self, object buf) except -1:
        return (<PooledBuffer>buf)._release()

    cdef int _lease_exit(self, object buf) except -1:
        return (<PooledBuffer>buf)._release_if_live()

    cdef void _keep_handle(self, PooledBuffer buf) noexcept:
        """buf's slot is coming back: keep buf for reuse; it lets go of us.
        The caller holds its own reference to the pool across this call."""
        cdef PyObject *old = self._handles[buf._index]
        if old != <PyObject *>buf:
            Py_INCREF(buf)
            self._handles[buf._index] = <PyObject *>buf
            Py_XDECREF(old)
        buf._pool = None

    cdef void _return_slot(self, uint32_t i) noexcept:
        """Slot i is FREE (its owner won the transition): back on the list."""
        _hold_end(self, i)
        if self._zero_on_release:
            memset(pool_arena_slot(self._arena, i), 0, self._arena.size)
        _count(&self._releases)
        pool_slots_push(self._slots, &self._free, i)
        _notify(self)

    # -- public API --------------------------------------------------------
    def acquire(self, timeout=None):
        """Hands out a PooledBuffer; waits up to `timeout` seconds if none is
        free (None or inf: forever, 0: never).  PoolExhausted when time runs
        out, PoolClosed once closed."""
        _check_timeout(timeout)
        item = self._try_take()   # (not self._acquire(): see ObjectPool.acquire)
        if item is _NOTHING:
            return self._acquire_wait(timeout)
        return item

    @cython.always_allow_keywords(False)   # METH_NOARGS / METH_O
    def try_acquire(self):
        """Hands out a PooledBuffer, or returns None at once if none is free."""
        item = self._try_take()
        return None if item is _NOTHING else item

    @cython.always_allow_keywords(False)   # METH_NOARGS / METH_O
    @cython.embedsignature(False)          # positional-only, said below
    def release(self, buf):
        """release($self, buf, /)
--

        Gives buf back; the same as ``buf.release()``."""
        if not isinstance(buf, PooledBuffer):
            raise PoolError(f"release of an object this pool did not hand out: "
                            f"{type(buf).__name__} is not a PooledBuffer")
        if (<PooledBuffer>buf)._store is not self._store:
            if (<PooledBuffer>buf)._store is None:
                raise PoolError("release of a PooledBuffer that no pool handed out")
            raise PoolError("release of a PooledBuffer that belongs to another pool")
        (<PooledBuffer>buf)._release()

    def lease(self, timeout=None):
        """A context manager: acquires on entry, releases on exit (also on
        an exception).  ``with pool.lease(timeout=2.0) as buf: ...``

        The same timeout rules as acquire(); PoolClosed at once if the pool
        is closed.  A lease is entered once at a time (RuntimeError if it is
        already active); entered and dropped without exit, it gives its
        buffer back with a ResourceWarning."""
        return self._new_lease(timeout)

    def close(self):
        """Later acquires raise PoolClosed; sleeping acquirers wake and raise
        it.  Buffers still out stay valid until released.  Idempotent."""
        self._close_begin()

    @property
    def size(self):
        """Buffers that exist: all of them, from construction (= capacity)."""
        return self._capacity

    @property
    def buffer_size(self):
        """Bytes in each buffer (len(buf))."""
        return self._arena.size

    @property
    def alignment(self):
        """The requested alignment; buffers are aligned to at least this and
        to a 64-byte cache line, and no two buffers share a cache line."""
        return self._requested_alignment

    @property
    def stride(self):
        """Bytes from one buffer's start to the next's."""
        return self._arena.stride

    @property
    def zero_on_release(self):
        return self._zero_on_release

    def __repr__(self):
        return _pool_repr(self, f"buffer_size={self._arena.size}")
