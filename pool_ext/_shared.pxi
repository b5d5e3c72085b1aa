# SharedBufferPool, part 2 of 3: the pool (included by _pool.pyx after
# _shared_segment.pxi).  Lending is one CAS of a slot word in the segment
# (src/pool_shm.h); waiting is a futex in the segment, with no barging while
# others wait (_others_wait); the dead's blocks come back through reclaim().
# Within a process, a handle's own state word (released / sent / exports,
# _shared_buffer.pxi) decides which thread's release counts, so a slot word
# only ever changes by one CAS in one place per transition.


cdef bint _others_wait(pool_shm_layout_t *l) noexcept:
    """A waiter's claim is live: newcomers let it go first.  A claim that
    has passed, or reaches further than any waiter writes (scribbled), is
    cleared and ignored."""
    cdef uint64_t until = pool_shm_hungry_until(l), now
    if until == 0:
        return False
    now = _shm_clock_ns()
    if now < until <= now + _SHM_HUNGRY_NS:
        return True
    pool_shm_clear_hungry(l, until)
    return False


@cython.final
@cython.no_gc   # references no object that could reference it back; and the GC
                # must never clear _seg (unmapping it) under a handle still alive
cdef class SharedBufferPool:
    """Fixed-size blocks in one shared-memory segment, lent to any process
    that has the pool: passed to a child (multiprocessing, an executor's
    initializer or task, a multiprocessing.Queue: pickling attaches), or
    attached by name with SharedBufferPool.attach(name).

    acquire(), try_acquire(), lease(), release() work as BufferPool's, across
    processes: a release in one process wakes a waiter in another.  Pickling
    a held SharedBuffer (or an array from empty()/zeros()) sends its block
    itself, not a copy.  A process that dies holding blocks loses them for
    nobody: reclaim() (which a waiting acquire() calls) gives them back.

    Linux only (a sealed memfd, futexes, /proc).
    """
    cdef _Segment _seg
    cdef pool_shm_layout_t *_l
    cdef bint _closed
    cdef str _name
    cdef int _name_fd          # the socket that owns the name; -1: not ours
    cdef int _loc_fd           # the socket that says where the segment is; -1: none
    cdef long _owner_pid       # the process that created it (owns the name)
    cdef tuple _locators       # (pid, fd) pairs through which others can open it
    cdef tuple _where_cache    # _where() for process _where_pid (set with no other thread)
    cdef long _where_pid
    cdef PyObject **_handles   # GIL builds: each slot's last released handle, for reuse
    cdef object __weakref__

    def __cinit__(self):
        self._name_fd = -1
        self._loc_fd = -1

    def __init__(self, block_size, capacity, *, alignment=64, name=None):
        cdef uint64_t size, align
        cdef uint32_t n
        cdef int fd
        if not POOL_SHM_SUPPORTED or not _sys.platform.startswith("linux"):
            raise NotImplementedError(
                f"SharedBufferPool needs Linux (a sealed memfd, futexes, /proc); "
                f"this is {_sys.platform} (docs/shared.md: the plan for macOS and Windows)")
        if self._seg is not None or self._closed:
            raise PoolError("SharedBufferPool.__init__ called twice (or after close())")
        size = _int_arg(block_size, "block_size", 1, (1 << 64) - 1)
        n = _int_arg(capacity, "capacity", 1, POOL_SHM_MAX_CAPACITY)
        align = _int_arg(alignment, "alignment", 1, 1 << 30)
        if align & (align - 1):
            raise ValueError(f"alignment must be a power of two, got {alignment}")
        name = f"{_os.getpid()}-{_os.urandom(4).hex()}" if name is None else _check_name(name)
        key = _name_key(name)
        self._owner_pid = pool_shm_os_getpid()
        with _shm_lock:
            # bound and known to the fork hook in one step (no fork() comes
            # between: the hook takes this lock), so that a fork child drops
            # the name it inherits however early the fork comes
            fd = pool_shm_os_name_bind(key.encode())
            if fd < 0:
                if -fd == _errno.EADDRINUSE:
                    raise FileExistsError(_errno.EEXIST,
                                          f"a SharedBufferPool named {name!r} exists already")
                raise _name_error(fd, "cannot claim the pool's name")
            self._name_fd = fd
            _shm_sockets[fd] = id(self)
            _shm_named.add(self)
        try:
            _shm_identity()          # fails here (no /proc), not in the first acquire
            seg = _segment_create(name, size, n, align)
            with _shm_lock:
                fd = pool_shm_os_name_bind(f"{key}/{self._owner_pid}.{seg.fd}".encode())
                if fd < 0:
                    raise _name_error(fd, "cannot publish the pool's segment")
                self._loc_fd = fd
                _shm_sockets[fd] = id(self)
            self._adopt(seg, name, ())
        except BaseException:
            self._drop_name()
            raise
        pool_store32(&self._l.header.named, 1, POOL_RELEASE)
        with _shm_lock:
            _shm_pools[seg.id] = self

    cdef int _adopt(self, _Segment seg, str name, tuple locators) except -1:
        if POOL_CACHE_HANDLES:
            self._handles = <PyObject **>calloc(seg.l.capacity, sizeof(PyObject *))
            if self._handles == NULL:
                raise MemoryError("cannot allocate a SharedBufferPool's handle cache")
        self._seg = seg
        self._l = &seg.l
        self._name = name
        self._locators = locators
        self._locate()
        return 0

    cdef void _locate(self) noexcept:
        """Computes _where() for this process, where no other thread can see
        the pool: its making, or a fork child's hook."""
        try:
            pid = _os.getpid()
            self._where_cache = self._where_from(pid)
            self._where_pid = pid
        except BaseException:   # (MemoryError) _where() computes it each time
            self._where_pid = -1

    @staticmethod
    def attach(name):
        """The pool of that name, created by a live process of this user (the
        same object if this process has it).  FileNotFoundError if there is
        none; ValueError if it is not a pool of this layout."""
        return _attach(name)

    cdef void _drop_name(self) noexcept:
        """Gives the name up (close, dealloc, or in a fork child, where the
        inherited socket is not ours)."""
        cdef int fd = self._name_fd, loc = self._loc_fd
        self._loc_fd = -1
        if loc >= 0:
            _close_socket(self, loc)
        if fd >= 0:
            self._name_fd = -1
            if self._l != NULL and pool_shm_os_getpid() == self._owner_pid:
                # release: attach() that sees 0 sees the name given up
                pool_store32(&self._l.header.named, 0, POOL_RELEASE)
            _close_socket(self, fd)

    def __dealloc__(self):
        cdef uint32_t i
        self._drop_name()
        if self._handles != NULL:
            for i in range(self._l.capacity):
                Py_XDECREF(self._handles[i])
            free(self._handles)

    def __reduce__(self):
        self._check_attached()
        return (_shm_unpickle_pool, (self._seg.id, self._name, self._where()))

    cdef tuple _where(self):
        """Where another process can open the segment: here, then the
        (pid, fd) pairs this process was given (the creator's first)."""
        cdef long pid = <long>pool_shm_word_pid(_shm_identity())
        if pid == self._where_pid:
            return self._where_cache
        return self._where_from(pid)

    cdef tuple _where_from(self, long pid):
        here = ((pid, self._seg.fd),)
        return here + tuple(x for x in self._locators if x not in here)[:3]

    cdef int _check_attached(self) except -1:
        if self._seg is None:
            raise PoolError("this SharedBufferPool was never initialised")
        return 0

    # ---- lending ----------------------------------------------------------

    cdef inline SharedBuffer _bind(self, SharedBuffer buf, uint32_t i):
        """buf (new, dead) is now the handle of slot i, which we hold."""
        buf._pool = self
        buf._index = i
        buf._ptr = self._l.blocks + <uint64_t>i * self._l.stride
        buf._len = <Py_ssize_t>self._l.block_size
        buf._state = 0
        return buf

    cdef object _take(self, object timeout):
        cdef int64_t i
        if self._l == NULL:
            self._check_attached()
        if self._closed:
            raise PoolClosed(f"{self!r} is closed")
        if pool_shm_hungry(self._l):
            return self._wait(timeout)       # others wait: no barging
        i = pool_shm_take(self._l, _shm_identity())
        if i >= 0:
            return self._hand_out(<uint32_t>i)
        return self._wait(timeout)

    cdef inline object _hand_out(self, uint32_t i):
        """Slot i is ours (HELD by this process): its handle."""
        cdef PyObject *cached
        cdef SharedBuffer buf
        if POOL_CACHE_HANDLES:
            cached = self._handles[i]
            # only the cache holds it (exact with the GIL): nobody can see it
            # come back to life
            if cached != NULL and pool_refcnt(cached) == 1:
                self._handles[i] = NULL
                buf = <SharedBuffer>cached
                Py_DECREF(buf)               # the cache's reference: buf's now
                return self._bind(buf, i)
        return self._new_handle(i)

    cdef object _new_handle(self, uint32_t i):
        """A new handle for slot i, or the slot back if even that fails
        (MemoryError)."""
        try:
            return self._bind(SharedBuffer.__new__(SharedBuffer), i)
        except BaseException:
            pool_shm_give(self._l, i, _shm_identity())
            raise

    cdef object _wait(self, object timeout):
        """acquire()'s slow path: no free block, or waiters to let go first."""
        cdef double t = _parse_timeout(timeout)
        cdef double deadline = _monotonic() + t if t >= 0 else -1.0
        cdef double now, last_reclaim, left
        cdef int64_t i
        cdef uint32_t seq
        cdef int rc
        cdef int64_t slice_ns
        cdef uint64_t until, claim = 0
        # others wait: give them the next release before we look (pool_shm.h)
        cdef bint polite = _others_wait(self._l)
        if not polite:
            i = pool_shm_take(self._l, _shm_identity())
            if i >= 0:
                return self._hand_out(<uint32_t>i)
            # an acquire that would wait reclaims the dead's blocks first
            if self._reclaim_quietly():
                i = pool_shm_take(self._l, _shm_identity())
                if i >= 0:
                    return self._hand_out(<uint32_t>i)
        last_reclaim = _monotonic()
        pool_shm_waiters_add(self._l, 1)
        try:
            while True:
                pool_shm_will_sleep(self._l)
                seq = pool_shm_wake_seq(self._l)
                if not polite:
                    i = pool_shm_take(self._l, _shm_identity())
                    if i >= 0:
                        return self._hand_out(<uint32_t>i)
                if self._closed:
                    raise PoolClosed(f"{self!r} is closed")
                now = _monotonic()
                if deadline >= 0 and now >= deadline:
                    raise PoolExhausted(
                        f"no free block in {self!r} after {t:g} s "
                        f"(held by: {self._holders_text()})")
                left = _SHM_SLICE_MS / 1000.0
                if POOL_PARK_SLICE_US:
                    left = POOL_PARK_SLICE_US / 1e6     # free-threaded: pool_mode.h
                if polite:
                    until = pool_shm_hungry_until(self._l)
                    if not _others_wait(self._l):
                        polite = False
                        continue
                    if (until - _shm_clock_ns()) / 1e9 < left:
                        left = (until - _shm_clock_ns()) / 1e9
                else:
                    claim = _shm_clock_ns() + _SHM_HUNGRY_NS
                    pool_shm_set_hungry(self._l, claim)
                if deadline >= 0 and deadline - now < left:
                    left = deadline - now
                slice_ns = <int64_t>(left * 1e9)
                with nogil:
                    rc = pool_shm_sleep(self._l, seq, slice_ns)
                polite = False
                PyErr_CheckSignals()      # Ctrl-C ends the wait
                if POOL_PARK_SLICE_US:
                    # frees what other threads dropped and queued to us: it
                    # may be the very array or handle that holds our block
                    _run_pending()
                if _monotonic() - last_reclaim >= 1.0:
                    self._reclaim_quietly()  # a holder may have died meanwhile
                    last_reclaim = _monotonic()
        finally:
            pool_shm_waiters_add(self._l, -1)
            if claim:
                pool_shm_clear_hungry(self._l, claim)   # ours, unless renewed since

    @cython.always_allow_keywords(True)
    def acquire(self, timeout=None):
        """A free block (a SharedBuffer), waiting up to timeout seconds (None:
        for ever) for one to be released by any process.  PoolExhausted (a
        TimeoutError) when time runs out; PoolClosed once closed here."""
        if not _timeout_fast(timeout):
            _parse_timeout(timeout)
        return self._take(timeout)

    def try_acquire(self):
        """A free block, or None at once (also while other threads or
        processes wait: their turn comes first)."""
        cdef int64_t i
        cdef SharedBuffer buf
        if self._l == NULL:
            self._check_attached()
        if self._closed:
            raise PoolClosed(f"{self!r} is closed")
        if pool_shm_hungry(self._l) and _others_wait(self._l):
            return None                      # others wait: their turn first
        buf = SharedBuffer.__new__(SharedBuffer)
        i = pool_shm_take(self._l, _shm_identity())
        if i < 0:
            return None
        return self._bind(buf, <uint32_t>i)

    @cython.always_allow_keywords(False)   # METH_O
    def release(self, buf):
        """Gives buf back (as buf.release()).  PoolError if buf is not a held
        block of this pool."""
        if type(buf) is not SharedBuffer:
            raise TypeError(f"release() takes a SharedBuffer, not {type(buf).__name__}")
        if (<SharedBuffer>buf)._pool is not self:
            if pool_load64(&(<SharedBuffer>buf)._state, POOL_ACQUIRE) & _SB_RELEASED:
                (<SharedBuffer>buf)._release()   # (raises: released already)
            raise PoolError("release of a SharedBuffer from another pool")
        (<SharedBuffer>buf)._release()

    def lease(self, timeout=None):
        """A context manager: acquire(timeout) at entry, release at exit."""
        cdef _SharedLease lease = _SharedLease.__new__(_SharedLease)
        _check_timeout(timeout)
        lease._pool = self
        lease._timeout = timeout
        return lease

    def empty(self, shape, dtype=None, order="C", *, timeout=None):
        """A numpy array of shape and dtype over one block (like numpy.empty),
        which must fit in block_size.  It holds the block until it and all its
        views have died.  Pickling the array sends the block (no copy)."""
        return self._array(shape, dtype, order, timeout, False)

    def zeros(self, shape, dtype=None, order="C", *, timeout=None):
        """Like empty(), filled with zeros."""
        return self._array(shape, dtype, order, timeout, True)

    cdef object _array(self, object shape, object dtype, object order, object timeout,
                       bint zero):
        cdef _ArrayShape req
        self._check_attached()
        _check_timeout(timeout)
        descr = _array_request(shape, dtype, order, &req)    # before taking a block
        if req.nbytes > self._l.block_size:
            raise ValueError(f"an array of {req.nbytes} bytes does not fit in this "
                             f"pool's block_size ({self._l.block_size})")
        buf = <SharedBuffer>self._take(timeout)
        if zero or req.needs_init:
            memset(buf._ptr, 0, req.nbytes)
        try:
            return _shared_array(buf, &req, descr)
        except BaseException:     # the block goes back, quietly (numpy's error stays)
            buf._release_if_live()
            raise

    def recall(self, sent):
        """Takes back a block this process sent whose pickle nobody loaded:
        a pickling that failed after the block went into transit (an
        unpicklable neighbour in the same pickle, Ctrl-C), or a message never
        delivered.  sent: the SharedBuffer, or the array from empty()/zeros(),
        that was pickled.  Returns a new handle (or a new array of the same
        dtype, shape and order) holding the block.  PoolError if its pickle
        was loaded already (or the block reclaimed): then it is not ours."""
        cdef SharedBuffer buf
        cdef _ArrayShape req
        self._check_attached()
        array = None
        if type(sent) is SharedBuffer:
            buf = <SharedBuffer>sent
        else:
            # an ndarray whose base is a block's (not anything with a .base:
            # its shape and dtype make the new array)
            base = sent.base if _is_ndarray(sent) else None
            if type(base) is not _SharedArrayBase or (<_SharedArrayBase>base)._buf is None:
                raise TypeError(f"recall() takes a SharedBuffer or an array from a "
                                f"SharedBufferPool's empty()/zeros(), not "
                                f"{type(sent).__name__}")
            buf = (<_SharedArrayBase>base)._buf
            array = sent
        if pool_load64(&buf._state, POOL_ACQUIRE) & (_SB_SENT | _SB_RELEASED) != _SB_SENT:
            raise PoolError("recall() takes a block that was sent (pickled); this one was "
                            "not (or was released)")
        if buf._pool is not self:
            raise PoolError(f"{sent!r} is not a block of {self!r}")
        if buf._sender != _shm_identity():
            raise PoolError("recall() takes back a block this process sent; this one was "
                            "sent by another (a handle inherited through fork())")
        if array is not None:       # the new array's request, before the block is taken
            descr = _array_request(array.shape, array.dtype,
                                   "F" if pool_ndarray_is_fortran(array) else "C", &req)
            if req.nbytes > self._l.block_size:    # (an array resized in place, say)
                raise ValueError(f"an array of {req.nbytes} bytes does not fit in this "
                                 f"pool's block_size ({self._l.block_size})")
        if not pool_shm_swap(self._l, buf._index, pool_shm_transit_word(buf._ticket),
                             _shm_identity()):
            raise PoolError(f"block {buf._index} of {self!r} was received already (its "
                            f"pickle was loaded), or reclaimed: it is not this process's "
                            f"to recall")
        new = self._hand_out(buf._index)
        if array is None:
            return new
        try:
            return _shared_array(<SharedBuffer>new, &req, descr)
        except BaseException:
            (<SharedBuffer>new)._release_if_live()
            raise

    # ---- the dead's blocks, and what is where ------------------------------

    def reclaim(self, *, in_transit=False):
        """Gives back the blocks held by processes that no longer run (killed,
        crashed, exited without releasing): how many.  in_transit=True also
        frees blocks pickled but never unpickled: only when no such pickle can
        still be loaded.  PoolError if a slot word is corrupt (the segment was
        written by something else than pool_ext); the others are reclaimed
        first."""
        self._check_attached()
        return self._reclaim(bool(in_transit))

    cdef int _reclaim_quietly(self) except -1:
        """The reclaim of an acquire that would wait: a corrupt slot word
        (counted in stats()) or a process that /proc cannot tell about now
        (EMFILE) is left for an explicit reclaim() to report, and the wait
        goes on (1: look again, something may have come back first)."""
        try:
            return self._reclaim(False)
        except (PoolError, OSError):
            return 1

    cdef int _reclaim(self, bint in_transit) except -1:
        cdef uint64_t me = _shm_identity(), w
        cdef uint64_t live = 0     # the last holder word found running: its run of slots
        cdef uint32_t i, pid
        cdef unsigned kind
        cdef int n = 0
        alive = {}
        corrupt = []
        # a C loop but for one dict lookup per change of holder (2^24 slots
        # held by one process: milliseconds, not seconds under the GIL)
        for i in range(self._l.capacity):
            w = pool_shm_load(self._l, i)
            kind = pool_shm_kind(w)
            if kind == POOL_SHM_FREE or w == me or w == live:
                continue
            if kind == POOL_SHM_TRANSIT:
                if not in_transit:
                    continue
            elif kind == POOL_SHM_HELD:
                pid = pool_shm_word_pid(w)
                tag = alive.get(pid, -1)
                if tag == -1:
                    start = _proc_start(pid) if pid != 0 else None
                    tag = None if start is None else start & 0xFFFFFFFF
                    alive[pid] = tag
                # its holder runs: the same start time, to a tick (a time
                # namespace's offset, subtracted in ticks, may round the
                # other way than the kernel's shifted figure did; a pid
                # reused within 10 ms of its last start is not a concern)
                if tag is not None and ((pool_shm_word_tag(w) - <uint32_t>tag) & 0xFFFFFFFF
                                        in (0, 1, 0xFFFFFFFF)):
                    live = w
                    continue
            else:
                corrupt.append(i)
                continue
            if pool_shm_swap(self._l, i, w, 0):
                pool_fetch_add64(&self._l.header.reclaimed, 1, POOL_RELAXED)
                pool_shm_freed(self._l, i)
                n += 1
        if corrupt:
            raise PoolError(f"slot words {corrupt[:8]} of {self!r} are corrupt (the "
                            f"segment was written by something else than pool_ext)")
        return n

    def stats(self):
        """A dict: capacity, in_use (held), in_transit, free, corrupt,
        holders ({pid: blocks held}), hand-outs, releases, reclaimed, waiters
        (threads of any process waiting in acquire; a statistic: one killed
        while it waited stays counted)."""
        cdef uint32_t i
        cdef uint64_t w, run_word = 0
        cdef uint64_t counts[4]
        cdef uint64_t run = 0      # slots of one holder word in a row (one dict update a run)
        cdef unsigned kind
        self._check_attached()
        holders = {}
        memset(counts, 0, sizeof(counts))
        for i in range(self._l.capacity):
            w = pool_shm_load(self._l, i)
            kind = pool_shm_kind(w)
            counts[kind] += 1
            if kind == POOL_SHM_HELD:
                if w != run_word:
                    if run:
                        pid = pool_shm_word_pid(run_word)
                        holders[pid] = holders.get(pid, 0) + run
                    run_word, run = w, 0
                run += 1
        if run:
            pid = pool_shm_word_pid(run_word)
            holders[pid] = holders.get(pid, 0) + run
        h = self._l.header
        return {"capacity": self._l.capacity, "in_use": counts[POOL_SHM_HELD],
                "in_transit": counts[POOL_SHM_TRANSIT], "free": counts[POOL_SHM_FREE],
                "corrupt": counts[3], "holders": holders,
                "handouts": pool_load64(&h.handouts, POOL_RELAXED),
                "releases": pool_load64(&h.releases, POOL_RELAXED),
                "reclaimed": pool_load64(&h.reclaimed, POOL_RELAXED),
                "waiters": pool_load32(&h.waiters, POOL_RELAXED)}

    cdef str _holders_text(self):
        s = self.stats()
        return (", ".join(f"pid {p}: {n}" for p, n in sorted(s["holders"].items()))
                or "nobody") + (f"; {s['in_transit']} in transit" if s["in_transit"] else "")

    def close(self):
        """This process's pool hands out nothing more (PoolClosed), and gives
        up the name if it owns it.  Blocks held stay valid until released;
        other processes' pools are unaffected.  Idempotent."""
        with cython.critical_section(self):   # one thread closes the name's socket
            if self._closed:
                return
            self._closed = True
            if self._l != NULL:
                self._drop_name()
        if self._l != NULL:
            pool_shm_freed(self._l, pool_load32(&self._l.header.hint, POOL_RELAXED)
                           % self._l.capacity)   # wake our own sleepers to see it

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def name(self):
        """The name attach() finds it by (while its creator owns it)."""
        return self._name

    @property
    def block_size(self):
        return self._l.block_size if self._l != NULL else 0

    @property
    def capacity(self):
        return self._l.capacity if self._l != NULL else 0

    @property
    def alignment(self):
        return self._l.alignment if self._l != NULL else 0

    @property
    def closed(self):
        return self._closed

    @property
    def in_use(self):
        """Blocks held or in transit, by any process."""
        s = self.stats()
        return s["in_use"] + s["in_transit"]

    @property
    def available(self):
        """Free blocks."""
        return self.stats()["free"]

    def __repr__(self):
        if self._l == NULL:
            return "<SharedBufferPool uninitialised>"
        return (f"<SharedBufferPool {self._name!r} {self._l.capacity} x "
                f"{self._l.block_size} bytes{' closed' if self._closed else ''}>")


@cython.final
cdef class _SharedLease:
    cdef SharedBufferPool _pool
    cdef object _timeout
    cdef SharedBuffer _buf

    def __enter__(self):
        if self._buf is not None:
            raise PoolError("this lease is already entered")
        self._buf = <SharedBuffer>self._pool._take(self._timeout)
        return self._buf

    def __exit__(self, *exc):
        buf, self._buf = self._buf, None
        if buf is not None:
            (<SharedBuffer>buf)._release_if_live()
        return False
