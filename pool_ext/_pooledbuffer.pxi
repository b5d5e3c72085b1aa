# PooledBuffer, the handle BufferPool and ArrayPool hand out, and _Store, the
# memory it lives in (included by _pool.pyx; the design is in _bufferpool.pxi).
# Giving a FREE slot back is the one step that differs: BufferPool pushes the
# slot onto its free-list (_return_slot), ArrayPool caches the block
# (_Block._give_back).  _retire and __dealloc__ pick by the store's type.

cdef Py_ssize_t _ONE = 1   # strides of every export (bytes are contiguous)
cdef str _DEAD_MESSAGE = "operation on a released PooledBuffer (or one no pool handed out)"
cdef str _RELEASED_MESSAGE = "release of a PooledBuffer that was already released"


cdef int _cold_released() except -1:
    raise PoolError(_RELEASED_MESSAGE)


@cython.no_gc   # holds no Python object
cdef class _Store:
    """What a PooledBuffer's memory lives in: the slot states its handle is
    checked against.  _BufferStore for a BufferPool (one arena, many slots),
    _Block for an ArrayPool (one block, one slot: _arraypool.pxi)."""


@cython.no_gc   # holds no Python object
cdef class _BufferStore(_Store):
    """The memory of one BufferPool and its slot states, in an object of its
    own: freed when neither the pool nor any handle it made is left."""
    def __cinit__(self):
        self.arena.base = NULL
        self.arena.raw = NULL
        self.table.next = NULL
        self.table.state = NULL
        self.slots = &self.table

    def __dealloc__(self):
        pool_slots_free(&self.table)
        pool_arena_free(&self.arena)


cdef inline void _bind(PooledBuffer buf, object pool, uint32_t gen) noexcept:
    """buf is now the hand-out gen of its slot, held from pool."""
    Py_INCREF(pool)
    buf._pool = <PyObject *>pool
    buf._gen = gen
    buf._released = 0


cdef inline void _unbind(PooledBuffer buf) noexcept:
    """buf's slot is back: it lets go of its pool, if handles are reused
    (POOL_CACHE_HANDLES: a cached handle must not keep its pool alive).
    Otherwise (free-threaded builds) it keeps the reference until it dies:
    another thread may be reading buf.pool, and the reference it returns
    must not die under it (_let_go)."""
    if POOL_CACHE_HANDLES:
        _let_go(buf)


cdef inline void _let_go(PooledBuffer buf) noexcept:
    cdef PyObject *pool = buf._pool
    buf._pool = NULL
    Py_XDECREF(pool)


@cython.no_gc   # references its pool and store, which reference no handle it holds
@cython.freelist(32)
cdef class PooledBuffer:
    """One buffer handed out by a BufferPool or an ArrayPool: writable, aligned.

    It supports the buffer protocol: ``memoryview(buf)``, ``bytes(buf)``,
    ``np.frombuffer(buf, dtype)``, ``f.readinto(buf)``,
    ``sock.recv_into(buf)``; ``len(buf)`` is the BufferPool's buffer_size,
    or the nbytes asked of ArrayPool.acquire.  Release
    it with ``buf.release()``, ``pool.release(buf)`` or ``with`` (a handle
    from ``pool.acquire()`` is its own context manager).

    After release, every use raises ValueError.  Released while a memoryview
    or array still exports it, the memory returns to the pool only when the
    last export ends.  Dropped unreleased, it warns ResourceWarning and
    returns its memory.

    Thread-safety: a handle may be passed between threads; release races are
    decided by one compare-and-swap in C, exactly one wins.
    """
    def __cinit__(self):
        self._released = 1        # a handle not made by a pool is dead

    def __dealloc__(self):
        if pool_load32(&self._released, POOL_ACQUIRE) == 0 and self._pool != NULL:
            self._dropped()
        _let_go(self)

    cdef void _dropped(self) noexcept:
        """Dropped without release: give the slot back, then say so.  No
        export can be alive (exports reference us), so it is FREED now."""
        pool = <object>self._pool
        where = ""
        if type(self._store) is _BufferStore:
            try:
                where = _holder_stack_text(pool, self._index)   # before the slot goes
            except BaseException:   # (at interpreter exit, say): the slot goes back anyway
                pass
        if pool_slots_release_handle(self._store.slots, self._index,
                                     self._gen) == POOL_FREED:
            if type(self._store) is _BufferStore:
                (<BufferPool>pool)._return_slot(self._index)
            else:
                (<_Block>self._store)._give_back()
        if _warnings is None:
            return      # interpreter exit: the module's globals are gone
        _warnings.warn(
            f"PooledBuffer (slot {self._index} of {pool!r}) was never "
            f"released; its memory was returned when it was garbage collected{where}",
            ResourceWarning, stacklevel=1)

    cdef void _retire(self) noexcept:
        """Our slot is FREE (we won the transition): return it to the pool."""
        if type(self._store) is not _BufferStore:
            (<_Block>self._store)._give_back()   # an ArrayPool block
        else:
            if POOL_CACHE_HANDLES and not pool_weakly_referenced(<PyObject *>self):
                # into the cache before the push: nobody can see the slot
                # until it is on the list.  (Not one with a weak reference:
                # let it die, and its finalizers run, as the holder expects;
                # _handle() also checks, for a weak reference taken later.)
                (<BufferPool>self._pool)._keep_handle(self)
            (<BufferPool>self._pool)._return_slot(self._index)
        _unbind(self)   # last: this may drop the pool

    cdef int _check_live(self) except -1:
        if pool_load32(&self._released, POOL_ACQUIRE) != 0 or \
                not pool_slots_is_held(self._store.slots, self._index, self._gen):
            raise ValueError(_DEAD_MESSAGE)
        return 0

    cdef int _release_if_live(self) except -1:
        """For __exit__: release unless some route already did (no error)."""
        if pool_load32(&self._released, POOL_ACQUIRE) == 0:
            self._end(pool_slots_release_handle(self._store.slots, self._index,
                                                self._gen))
        return 0

    cdef inline int _release(self) except -1:
        if pool_load32(&self._released, POOL_ACQUIRE) != 0:
            return _cold_released()
        if self._end(pool_slots_release_handle(self._store.slots, self._index,
                                               self._gen)) < 0:
            return _cold_released()
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
        """The BufferPool or ArrayPool this buffer came from; None once
        released (even if a live view defers the memory's return)."""
        if pool_load32(&self._released, POOL_ACQUIRE) != 0 or self._pool == NULL:
            return None
        return <object>self._pool

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
        rc = pool_slots_export_begin(self._store.slots, self._index, self._gen)
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
        if pool_slots_export_end(self._store.slots, self._index,
                                 self._gen) == POOL_FREED:
            self._retire()

    def __repr__(self):
        if pool_load32(&self._released, POOL_ACQUIRE) != 0:
            return "<PooledBuffer released>"
        return f"<PooledBuffer slot={self._index} size={self._len} at {<uintptr_t>self._ptr:#x}>"
