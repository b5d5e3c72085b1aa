# BufferPool and PooledBuffer: pooled, aligned memory (included by _pool.pyx).
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

cdef Py_ssize_t _ONE = 1   # strides of every export (bytes are contiguous)
cdef str _DEAD_MESSAGE = "operation on a released PooledBuffer (or one no pool handed out)"
cdef size_t _MAX_ALIGNMENT = 1 << 30   # a 1 GiB huge page; more is surely a mistake


@cython.final
@cython.no_gc   # holds no Python object
cdef class _BufferStore:
    """The memory of one BufferPool and its slot states, in an object of its
    own: freed when neither the pool nor any handle it made is left."""
    cdef pool_arena_t arena
    cdef pool_slots_t slots

    def __cinit__(self):
        self.arena.base = NULL
        self.arena.raw = NULL
        self.slots.next = NULL
        self.slots.state = NULL

    def __dealloc__(self):
        pool_slots_free(&self.slots)
        pool_arena_free(&self.arena)


@cython.final
@cython.no_gc   # holds no Python object: never part of a reference cycle
cdef class BufferPool(_PoolBase):
    """A bounded, thread-safe pool of equal-sized, aligned, writable buffers.

    BufferPool(buffer_size, capacity, *, zero_on_release=False, alignment=64)

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
    cdef _BufferStore _store       # the arena and the slot states
    cdef pool_arena_t *_arena      # &_store.arena
    cdef pool_slots_t *_slots      # &_store.slots
    cdef PyObject **_handles       # slot -> released handle kept for reuse, or NULL
    cdef pool_freelist_t _free
    cdef bint _zero_on_release
    cdef size_t _requested_alignment

    def __cinit__(self):
        self._store = _BufferStore.__new__(_BufferStore)
        self._arena = &self._store.arena
        self._slots = &self._store.slots
        self._handles = NULL
        self._closed = 1      # refuses everything until __init__ completes

    def __init__(self, buffer_size, capacity, *, zero_on_release=False, alignment=64):
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
        self._zero_on_release = bool(zero_on_release)
        self._requested_alignment = align
        pool_store64(&self._closed, 0, POOL_RELEASE)  # open for business

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
        cdef uint32_t i
        cdef PooledBuffer buf
        cdef PyObject *cached
        if self._is_closed():
            raise PoolClosed("acquire() on a closed pool")
        i = pool_freelist_pop_mpmc(&self._free, self._slots.next)
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
                pool_freelist_push_mpmc(&self._free, self._slots.next, i)
                self._after_push()
                raise
            buf._store = self._store          # a cached handle has it already
        buf._gen = pool_slot_hold(self._slots.state, i)
        buf._index = i
        buf._ptr = pool_arena_slot(self._arena, i)
        buf._len = <Py_ssize_t>self._arena.size
        buf._pool = self
        buf._released = 0
        self._count(&self._acquires)
        return buf

    cdef int _give_back(self, object buf) except -1:
        return (<PooledBuffer>buf)._release()

    cdef int _lease_exit(self, object buf) except -1:
        return (<PooledBuffer>buf)._release_if_live()

    cdef inline void _keep_handle(self, PooledBuffer buf) noexcept:
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
        if self._zero_on_release:
            memset(pool_arena_slot(self._arena, i), 0, self._arena.size)
        self._count(&self._releases)
        pool_freelist_push_mpmc(&self._free, self._slots.next, i)
        self._after_push()

    # -- public API --------------------------------------------------------
    def acquire(self, timeout=None):
        """Hands out a PooledBuffer; waits up to `timeout` seconds if none is
        free (None or inf: forever, 0: never).  PoolExhausted when time runs
        out, PoolClosed once closed."""
        _check_timeout(timeout)
        item = self._try_take()
        if item is _NOTHING:
            return self._acquire_wait(timeout)
        return item

    @cython.always_allow_keywords(False)   # METH_NOARGS / METH_O
    def try_acquire(self):
        """Hands out a PooledBuffer, or returns None at once if none is free."""
        item = self._try_take()
        return None if item is _NOTHING else item

    @cython.always_allow_keywords(False)   # METH_NOARGS / METH_O
    def release(self, buf):
        """Gives buf back; the same as ``buf.release()``."""
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
        state = "closed" if self._is_closed() else "open"
        return (f"<BufferPool {state} buffer_size={self._arena.size} "
                f"capacity={self._capacity} in_use={self._in_use()}>")


@cython.final
@cython.no_gc   # references only its pool, which references no handle
@cython.freelist(32)
cdef class PooledBuffer:
    """One buffer handed out by a BufferPool: writable, aligned, fixed size.

    It supports the buffer protocol: ``memoryview(buf)``, ``bytes(buf)``,
    ``np.frombuffer(buf, dtype)``, ``f.readinto(buf)``,
    ``sock.recv_into(buf)``; ``len(buf)`` is the pool's buffer_size.  Release
    it with ``buf.release()``, ``pool.release(buf)`` or ``with`` (a handle
    from ``pool.acquire()`` is its own context manager).

    After release, every use raises ValueError.  Released while a memoryview
    or array still exports it, the memory returns to the pool only when the
    last export ends.  Dropped unreleased, it warns ResourceWarning and
    returns its memory.

    Thread-safety: a handle may be passed between threads; release races are
    decided by one compare-and-swap in C, exactly one wins.
    """
    cdef BufferPool _pool         # while it holds a slot (GIL builds: None after)
    cdef _BufferStore _store      # the memory and slot states; always
    cdef unsigned char *_ptr
    cdef Py_ssize_t _len          # also the export's shape[0]
    cdef uint32_t _index
    cdef uint32_t _gen
    cdef uint32_t _released       # 1 once released (or never bound)

    def __cinit__(self):
        self._released = 1        # a handle not made by a pool is dead

    def __dealloc__(self):
        if pool_load32(&self._released, POOL_ACQUIRE) != 0 or self._pool is None:
            return
        # Dropped without release: give the slot back, then say so.  No
        # export can be alive (exports reference us), so it is FREED now.
        if pool_slot_release_handle(self._store.slots.state, self._index,
                                    self._gen) == POOL_FREED:
            self._pool._return_slot(self._index)
        _warnings.warn(
            f"PooledBuffer (slot {self._index} of {self._pool!r}) was never "
            f"released; its slot was returned when it was garbage collected",
            ResourceWarning, stacklevel=1)

    cdef void _retire(self) noexcept:
        """Our slot is FREE (we won the transition): return it to the pool."""
        cdef BufferPool pool = self._pool   # keeps the pool alive meanwhile
        if POOL_CACHE_HANDLES:
            pool._keep_handle(self)         # before the push: nobody can see
        pool._return_slot(self._index)      # the slot until it is on the list

    cdef int _check_live(self) except -1:
        if pool_load32(&self._released, POOL_ACQUIRE) != 0 or \
                not pool_slot_is_held(self._store.slots.state, self._index, self._gen):
            raise ValueError(_DEAD_MESSAGE)
        return 0

    cdef int _release_if_live(self) except -1:
        """For __exit__: release unless some route already did (no error)."""
        if pool_load32(&self._released, POOL_ACQUIRE) == 0:
            self._end(pool_slot_release_handle(self._store.slots.state, self._index,
                                               self._gen))
        return 0

    cdef int _release(self) except -1:
        if pool_load32(&self._released, POOL_ACQUIRE) != 0 or self._store is None:
            raise PoolError("release of a PooledBuffer that was already released")
        if self._end(pool_slot_release_handle(self._store.slots.state, self._index,
                                              self._gen)) < 0:
            raise PoolError("release of a PooledBuffer that was already released")
        return 0

    cdef inline int _end(self, int rc) noexcept:
        """After our release transition (rc): mark the handle released and, if
        the slot is FREE, give it back.  rc < 0: another thread released it
        first; nothing to do."""
        if rc >= 0:
            # release: a thread that sees the flag also sees the slot's new state
            pool_store32(&self._released, 1, POOL_RELEASE)
            if rc == POOL_FREED:
                self._retire()
        return rc

    @cython.always_allow_keywords(False)   # METH_NOARGS / METH_O
    def release(self):
        """Returns the buffer to its pool.  PoolError if already released.
        If a memoryview or array still exports it, the memory goes back when
        the last export ends."""
        self._release()

    @property
    def released(self):
        """True once released (through any route)."""
        return pool_load32(&self._released, POOL_ACQUIRE) != 0

    @property
    def pool(self):
        """The BufferPool this buffer came from; None once released (even if
        a live view defers the memory's return)."""
        if pool_load32(&self._released, POOL_ACQUIRE) != 0:
            return None
        return self._pool

    def __len__(self):
        self._check_live()
        return self._len

    @cython.always_allow_keywords(False)
    def __enter__(self):
        self._check_live()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._release_if_live()
        return False

    def __getbuffer__(self, Py_buffer *view, int flags):
        cdef int rc
        if pool_load32(&self._released, POOL_ACQUIRE) != 0:
            raise ValueError(_DEAD_MESSAGE)
        rc = pool_slot_export_begin(self._store.slots.state, self._index, self._gen)
        if rc == POOL_EEXPORTS:
            raise BufferError("too many simultaneous exports of one PooledBuffer")
        if rc != POOL_OK:
            raise ValueError(_DEAD_MESSAGE)
        view.buf = self._ptr
        view.obj = self
        view.len = self._len
        view.readonly = 0
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"B"
        view.ndim = 1
        view.shape = &self._len if (flags & PyBUF_ND) else NULL
        view.strides = &_ONE if (flags & PyBUF_STRIDES) == PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        if pool_slot_export_end(self._store.slots.state, self._index,
                                self._gen) == POOL_FREED:
            self._retire()

    def __repr__(self):
        if pool_load32(&self._released, POOL_ACQUIRE) != 0:
            return "<PooledBuffer released>"
        return f"<PooledBuffer slot={self._index} size={self._len} at {<uintptr_t>self._ptr:#x}>"


