# ArrayPool: a thread-safe cache of aligned memory blocks in power-of-two
# size classes, handed out as numpy arrays or PooledBuffers (included by
# _pool.pyx).  The classes, the byte budget and the blocks are C:
# src/pool_classes.h.  The arrays are made in _ndarray.pxi.
#
# Objects:
#   _ArrayCache  owns the size classes (pool_classes_t).  The pool and every
#                block taken from it reference it, so arrays may outlive
#                their pool: when the pool goes, its cache keeps nothing more
#                (budget 0) and blocks coming back later are freed.
#   _Block       one block out of the cache: the base of an array (its
#                __dealloc__ gives the block back), or the _Store of a
#                PooledBuffer (a one-slot state table, so the handle's
#                release, export and deferred-release rules are BufferPool's;
#                the slot's FREE transition gives the block back).
#   ArrayPool    the public class; `arrays`, a process-wide default.
#   _ArrayLease  lease(nbytes) and borrow(shape): a context manager.

cdef dict _CLEAR_MODES = {"never": POOL_CLEAR_NEVER, "on_release": POOL_CLEAR_ON_RELEASE,
                          "poison": POOL_CLEAR_POISON}


@cython.no_gc   # holds no Python object
cdef class _ArrayCache:
    def __cinit__(self):
        self.pc.classes = NULL

    def __dealloc__(self):
        if self.pc.classes != NULL:
            pool_classes_destroy(&self.pc)


@cython.no_gc   # references only its cache, which references nothing
@cython.freelist(64)
cdef class _Block(_Store):
    """Pooled memory behind an ArrayPool array: it goes back to the pool
    when this object dies, that is when the array and all its views have."""

    def __dealloc__(self):
        if self.block.ptr != NULL:
            self._give_back()

    cdef void _give_back(self) noexcept:
        """The block goes back to the cache (or is freed); exactly once."""
        pool_classes_give_mpmc(&self._cache.pc, &self.block)
        self.block.ptr = NULL

    def __repr__(self):
        if self.block.ptr == NULL:
            return "<pool_ext block, given back>"
        return f"<pool_ext block of {self.block.size} bytes at {<uintptr_t>self.block.ptr:#x}>"


cdef object _default_max_bytes = 256 << 20
cdef object _MAX_BUDGET = 0x7fffffffffffffff   # max_bytes fits a signed 64-bit count


@cython.no_gc   # references only its cache
cdef class ArrayPool:
    """ArrayPool(*, max_bytes=268435456, max_size=None, alignment=64, clear='never')
--

    A thread-safe cache of aligned memory blocks in power-of-two size
    classes, handed out as numpy arrays or as PooledBuffers.

    It is a cache, not a bounded pool: a request it cannot serve from the
    cache gets a new block, never waits.  A block given back is kept if its
    class has room and the bytes kept stay within `max_bytes`, and freed
    otherwise.  Blocks of 64 KiB and more are mapped pages (huge pages where
    the OS allows), so trim() gives memory back to the OS.

    >>> import numpy as np
    >>> a = arrays.empty((1000, 3), np.float32)      # like np.empty
    >>> a[:] = 1.0
    >>> with arrays.borrow(4096, np.uint8) as scratch:
    ...     scratch[:] = 0
    >>> with arrays.lease(1 << 16) as buf:           # a PooledBuffer
    ...     len(buf)
    65536

    An array is an ordinary numpy.ndarray whose base is a private pool
    object: its block goes back when the array and every view of it have
    died.  Nothing to release, nothing to forget.

    max_bytes: the most bytes the cache keeps (default 256 MiB; blocks out
    do not count).
    max_size: the largest request in bytes (None: no limit; blocks above
    the largest class are allocated and freed, never cached).
    alignment: of every block, a power of two (at least a cache line).
    clear: "never" (old data, like np.empty), "on_release" (zeroed when
    given back), or "poison" (filled with 0xDB when given back, checked on
    the next hand-out: a write after release raises PoolError).

    Thread-safety: every method may be called from any thread; taking and
    giving back blocks is lock-free (src/pool_classes.h), and the byte
    budget holds at every instant, also under contention.  An array itself
    is an ordinary numpy array: share it between threads as you would any.
    """
    def __cinit__(self):
        self._cache = _ArrayCache.__new__(_ArrayCache)
        self._pc = &self._cache.pc

    def __init__(self, *, max_bytes=_default_max_bytes, max_size=None, alignment=64,
                 clear="never"):
        cdef uint64_t budget
        cdef size_t limit = 0, align
        cdef int mode
        if self._pc.classes != NULL:
            raise RuntimeError("ArrayPool.__init__ called twice")
        budget = _int_arg(max_bytes, "max_bytes", 0, _MAX_BUDGET)
        if max_size is not None:
            limit = _int_arg(max_size, "max_size", 1, PY_SSIZE_T_MAX)
        align = _int_arg(alignment, "alignment", 1, _MAX_ALIGNMENT)
        if (align & (align - 1)) != 0:
            raise ValueError(f"alignment must be a power of two, got {align}")
        if not isinstance(clear, str):
            raise TypeError(f"clear must be a str, not {type(clear).__name__}")
        clear = str(clear)          # (a str subclass, numpy.str_: the plain value)
        if clear not in _CLEAR_MODES:
            raise ValueError(f"clear must be 'never', 'on_release' or 'poison', got {clear!r}")
        mode = _CLEAR_MODES[clear]
        if pool_classes_init(self._pc, budget, limit, align, mode) != 0:
            raise MemoryError("cannot allocate the ArrayPool's size classes")
        self._max_size = None if max_size is None else limit
        self._clear = clear

    def __dealloc__(self):
        # Arrays may outlive us: their blocks come back to the cache, which
        # from now on keeps nothing (budget 0) and frees them.
        if self._pc.classes != NULL:
            pool_store64(&self._pc.max_bytes, 0, POOL_RELAXED)   # relaxed: a number
            pool_classes_trim(self._pc, 0)

    # -- taking blocks -------------------------------------------------------
    cdef _Block _take(self, size_t nbytes):
        cdef _Block blk
        cdef int rc
        if self._pc.classes == NULL:
            raise RuntimeError("ArrayPool.__init__ was not called")
        if nbytes > self._pc.max_size:
            raise ValueError(f"{nbytes} bytes is more than this pool's max_size "
                             f"({self._max_size})")
        blk = _Block.__new__(_Block)
        blk._cache = self._cache
        rc = pool_classes_take_mpmc(self._pc, nbytes, &blk.block)
        if rc < 0:
            if rc == POOL_TAKE_EPOISON:
                raise PoolError(
                    f"a block of the {blk.block.size}-byte size class was written after "
                    f"it was given back (byte {blk.block.bad_offset} is not 0xDB): a use "
                    f"after release; the block was freed")
            raise MemoryError(f"cannot allocate a block for {nbytes} bytes")
        return blk

    cdef object _array(self, object shape, object dtype, object order, bint zero):
        cdef _ArrayShape req
        cdef _Block blk
        descr = _array_request(shape, dtype, order, &req)
        blk = self._take(req.nbytes)
        if (zero or req.needs_init) and not (blk.block.flags & POOL_BLOCK_ZEROED):
            memset(blk.block.ptr, 0, req.nbytes)
        return _array_make(&req, descr, blk.block.ptr, blk)

    cdef object _array_like(self, object a, object dtype, object order, bint zero):
        cdef _ArrayShape req
        cdef _Block blk
        descr = _like_request(a, dtype, order, &req)
        blk = self._take(req.nbytes)
        if (zero or req.needs_init) and not (blk.block.flags & POOL_BLOCK_ZEROED):
            memset(blk.block.ptr, 0, req.nbytes)
        return _array_make(&req, descr, blk.block.ptr, blk)

    # -- public API ------------------------------------------------------------
    def empty(self, shape, dtype=None, order="C"):
        """A numpy.ndarray of shape and dtype (None: float64, as numpy's)
        over a pooled block, like numpy.empty: its contents are whatever the
        block held.  The block
        goes back when the array and all its views have died."""
        return self._array(shape, dtype, order, False)

    def zeros(self, shape, dtype=None, order="C"):
        """Like empty(), filled with zeros (like numpy.zeros)."""
        return self._array(shape, dtype, order, True)

    def empty_like(self, a, dtype=None, order="K"):
        """empty() with a's shape, dtype (unless given) and layout (order
        "K": F-ordered if a is, else C)."""
        return self._array_like(a, dtype, order, False)

    def zeros_like(self, a, dtype=None, order="K"):
        """zeros() with a's shape, dtype (unless given) and layout."""
        return self._array_like(a, dtype, order, True)

    def borrow(self, shape, dtype=None, order="C"):
        """A context manager: ``with arrays.borrow(shape, dtype) as a:`` gives
        an empty() array, and gives its block back at exit if nothing else
        can reach its memory (then `a` becomes an empty array: its shape is
        all zeros).  If a view of it, another reference to it, or an export
        of it through the buffer protocol (a memoryview, bytes(a), a file's
        write(a)) ever existed and may still be alive, the block returns when
        the last of them dies, as for empty()."""
        cdef _ArrayLease lease = _ArrayLease.__new__(_ArrayLease)
        lease._pool = self
        lease._shape = shape
        lease._dtype = dtype
        lease._order = order
        lease._array = True
        return lease

    def acquire(self, nbytes):
        """A PooledBuffer of exactly nbytes over a pooled block, with
        BufferPool's rules: release it (or use ``with``); released while a
        memoryview or array exports it, the block returns when the last
        export ends; dropped unreleased, it warns ResourceWarning."""
        cdef size_t n = _int_arg(nbytes, "nbytes", 0, PY_SSIZE_T_MAX)
        cdef _Block blk = self._take(n)
        cdef PooledBuffer buf
        blk._table1.capacity = 1
        blk._table1.shift = 0
        blk._table1.next = &blk._next1
        blk._table1.state = &blk._state1
        blk.slots = &blk._table1
        buf = PooledBuffer.__new__(PooledBuffer)
        buf._store = blk
        buf._index = 0
        buf._ptr = blk.block.ptr
        buf._len = <Py_ssize_t>n
        _bind(buf, self, pool_slots_hold(blk.slots, 0))   # FREE -> HELD, generation 0
        return buf

    def lease(self, nbytes):
        """A context manager: acquire(nbytes) on entry, release at exit."""
        cdef _ArrayLease lease = _ArrayLease.__new__(_ArrayLease)
        lease._shape = _int_arg(nbytes, "nbytes", 0, PY_SSIZE_T_MAX)   # refused now
        lease._pool = self
        return lease

    def trim(self, max_bytes=0):
        """Frees cached blocks, largest first, until at most max_bytes stay
        cached; returns the bytes freed.  Freed blocks of 64 KiB and more go
        back to the OS at once."""
        cdef uint64_t target = _int_arg(max_bytes, "max_bytes", 0, _MAX_BUDGET)
        return pool_classes_trim(self._pc, target)

    @property
    def retained_bytes(self):
        """Bytes in cached blocks now (never above max_bytes)."""
        return pool_load64(&self._pc.retained, POOL_RELAXED)   # relaxed: a gauge

    @property
    def max_bytes(self):
        return pool_load64(&self._pc.max_bytes, POOL_RELAXED)  # relaxed: a number

    @property
    def max_size(self):
        return self._max_size

    @property
    def alignment(self):
        return self._pc.alignment

    @property
    def clear(self):
        return self._clear

    def stats(self):
        """A dict: hits and misses (hand-outs served from the cache, and new
        blocks), retained_bytes, peak_bytes (the most retained_bytes has
        been), max_bytes, blocks (allocated now, cached or out), and
        classes: block size -> {"cached": n, "out": n}.  Counters are read
        one by one, not as one snapshot."""
        cdef uint32_t c
        cdef pool_class_t *k
        if self._pc.classes == NULL:
            raise RuntimeError("ArrayPool.__init__ was not called")
        hits = misses = 0
        classes = {}
        for c in range(self._pc.nclasses + 1):
            k = &self._pc.classes[c]
            hits += _read(&k.hits)
            misses += _read(&k.misses)
            if c < self._pc.nclasses:
                classes[pool_classes_size(self._pc, c)] = {
                    "cached": _read(&k.n_cached), "out": _read(&k.out)}
        return {
            "hits": hits,
            "misses": misses,
            "retained_bytes": _read(&self._pc.retained),
            "peak_bytes": _read(&self._pc.peak),
            "max_bytes": _read(&self._pc.max_bytes),
            "blocks": _read(&self._pc.live),
            "oversize_out": _read(&self._pc.classes[self._pc.nclasses].out),
            "classes": classes,
        }

    def __repr__(self):
        return (f"<ArrayPool retained_bytes={self.retained_bytes} "
                f"max_bytes={self.max_bytes} clear={self._clear!r}>")


cdef bint _named_in_caller(object a) except -1:
    """borrow()'s exit: is `a` the value of a name in the frame that runs the
    `with` (its locals, or a module's globals)?  The one reference that
    pool_borrow_unreachable(a, 2) allows besides the lease's is then that
    name, not an object that may keep a raw pointer into the block (a
    flatiter, an nditer, a DLPack or __array_struct__ capsule, a.ctypes, an
    array made from a.__array_interface__ by as_strided): those hold the
    array itself, so its count alone cannot tell them from the name.  Runs
    no Python code.  The exit's count checks come first: up to 3.12, a
    function frame's f_locals is a dict snapshot of its names, kept on the
    frame until the next locals() or the frame's end, which references the
    values it holds (so a block that stays out because a name was rebound
    to a view comes back at the frame's end, not at the view's death, on
    those versions; from 3.13 on f_locals is a proxy and keeps nothing)."""
    cdef PyFrameObject *f = PyEval_GetFrame()
    if f == NULL:
        return False
    ns = (<object>f).f_locals
    if type(ns) is not dict and type(ns).__name__ != "FrameLocalsProxy":
        return False        # a class body's __prepare__ mapping: its code is not ours
    if POOL_FREE_THREADED:
        # Threads run at once: another one can read a global or a closure
        # cell between this check and the give-back, and keep a view of a
        # block given back.  Only a function's own plain local will do.
        if type(ns) is dict:
            return False    # a module's (or class's) namespace
        code = (<object>f).f_code
        for k, v in ns.items():
            if v is a and k in code.co_varnames and k not in code.co_cellvars \
                    and k not in code.co_freevars:
                return True
        return False
    for v in ns.values():
        if v is a:
            return True
    return False


@cython.no_gc_clear   # __dealloc__ needs _item to give it back
cdef class _ArrayLease:
    """What ArrayPool.lease() and borrow() return: ``with`` hands out a
    PooledBuffer (lease) or an array (borrow) and gives it back at exit.
    Entered once at a time, like BufferPool's leases."""

    @cython.always_allow_keywords(False)
    def __enter__(self):
        cdef bint busy
        if self._pool is None:
            raise TypeError("leases come from ArrayPool.lease() or borrow()")
        with cython.critical_section(self):
            busy = self._state != _LEASE_IDLE
            if not busy:
                self._state = _LEASE_ENTERING
        if busy:
            raise RuntimeError("this lease is already active; call lease() again")
        try:
            if self._array:
                # a view of a private array: every view of it is a view of
                # that array (pool_borrow_unreachable says why)
                item = self._pool._array(self._shape, self._dtype, self._order, False).view()
            else:
                item = self._pool.acquire(self._shape)
        except BaseException:
            with cython.critical_section(self):
                self._state = _LEASE_IDLE
            raise
        with cython.critical_section(self):
            self._item = item
            self._state = _LEASE_ACTIVE
        return item

    def __exit__(self, exc_type, exc, tb):
        item = _NOTHING
        with cython.critical_section(self):
            if self._state == _LEASE_ACTIVE:
                item = self._item
                self._item = None
                self._state = _LEASE_IDLE
        if item is _NOTHING:
            return False
        if not self._array:
            (<PooledBuffer>item)._release_if_live()
        elif pool_borrow_unreachable(item, 1) or (pool_borrow_unreachable(item, 2)
                                                  and _named_in_caller(item)):
            # Nothing but `item` here and the `with ... as` name reaches the
            # memory (no view, no export, no other holder): empty both
            # arrays, then give the block back now.  Otherwise it goes back
            # when its base dies.
            inner = <object>pool_ndarray_base(item)
            blk = <_Block>(<object>pool_ndarray_base(inner))
            pool_ndarray_forget(item)
            pool_ndarray_forget(inner)
            blk._give_back()
        return False

    def __dealloc__(self):
        # A lease() entered and dropped without __exit__: give the buffer
        # back and say so.  (An array goes back when it dies anyway.)
        if self._state != _LEASE_ACTIVE or self._array or self._item is None:
            return
        self._state = _LEASE_IDLE
        (<PooledBuffer>self._item)._release_if_live()
        _warnings.warn(f"a lease of {self._pool!r} was entered and never exited; its "
                       f"buffer was given back when it was garbage collected",
                       ResourceWarning, stacklevel=1)


#: The process-wide ArrayPool (the defaults), for code that does not want
#: to pass a pool around: ``from pool_ext import arrays``.
arrays = ArrayPool()
