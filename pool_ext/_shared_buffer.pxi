# SharedBufferPool, part 3 of 3: the SharedBuffer handle (the buffer protocol
# over one block), sending a held block by pickle (its slot goes IN TRANSIT,
# and the one unpickling that presents the ticket holds it), and numpy
# arrays over blocks (SharedArray, _SharedArrayBase).  Included by _pool.pyx
# after _shared.pxi.

# ---- the handle ---------------------------------------------------------------

cdef enum:
    _SB_RELEASED = 1     # released here (maybe waiting for its exports to end)
    _SB_SENT = 2         # pickled: the block is in transit, or someone else's
    _SB_EXPORT = 4       # one buffer export (the count is state >> 2)


@cython.final
@cython.no_gc   # references only its pool, which references no handle
@cython.freelist(16)
cdef class SharedBuffer:
    """One block of a SharedBufferPool, held by this process: writable,
    aligned, the buffer protocol (memoryview(buf), numpy.frombuffer(buf),
    f.readinto(buf)).  Release it with buf.release(), pool.release(buf) or
    ``with``.  Pickling it sends the block to whoever unpickles it (once):
    this handle is then released.  Used after release or sending, it raises
    ValueError."""
    cdef SharedBufferPool _pool
    cdef char *_ptr
    cdef Py_ssize_t _len
    cdef uint64_t _state       # _SB_* bits; atomic on free-threaded builds
    cdef uint32_t _index
    cdef uint64_t _ticket      # the ticket it was sent under (recall() presents it)
    cdef uint64_t _sender      # the holder word of the process that sent it

    def __cinit__(self):
        self._state = _SB_RELEASED     # a handle no pool made is dead

    def __dealloc__(self):
        if self._pool is not None and pool_load64(&self._state, POOL_ACQUIRE) == 0:
            # dropped while held (no export can be alive: exports reference us)
            if _give_quietly(self._pool, self._index) == 0 and _warnings is not None:
                _warnings.warn(f"SharedBuffer (block {self._index} of {self._pool!r}) was "
                               f"never released; it was returned when garbage collected",
                               ResourceWarning, stacklevel=1)

    cdef int _mark(self, uint64_t bit) except -1:
        """Sets RELEASED or SENT; returns the exports alive then.  PoolError
        if already released or sent."""
        cdef uint64_t s = pool_load64(&self._state, POOL_ACQUIRE)
        while True:
            if s & (_SB_RELEASED | _SB_SENT):
                raise PoolError("release of a SharedBuffer that was already released"
                                if s & _SB_RELEASED else
                                "this SharedBuffer's block was sent to another process")
            if pool_cas64(&self._state, &s, s | bit, POOL_ACQ_REL, POOL_ACQUIRE):
                return <int>(s >> 2)

    cdef int _give_back(self) except -1:
        cdef SharedBufferPool pool = self._pool
        cdef PyObject *old
        if pool_shm_give(pool._l, self._index, _shm_identity()) < 0:
            self._not_ours()
        if POOL_CACHE_HANDLES:
            # kept for the slot's next hand-out; it lets go of the pool (the
            # cache must not keep its pool alive)
            old = pool._handles[self._index]
            if old != <PyObject *>self:
                Py_INCREF(self)
                pool._handles[self._index] = <PyObject *>self
                Py_XDECREF(old)
            self._pool = None
        return 0

    cdef int _release(self) except -1:
        cdef uint64_t s = pool_load64(&self._state, POOL_ACQUIRE)
        if s >> 2 and s & (_SB_RELEASED | _SB_SENT) == 0 and \
                pool_shm_load(self._pool._l, self._index) != _shm_identity():
            # exports alive, and the block not ours (a fork child's copy, a
            # block reclaimed or written over): the export's end must not
            # give back what may be another handle's block by then.  (Read
            # before the mark: after it, the last export could end and give
            # the block back first.)
            self._disown()
            self._not_ours()
        if self._mark(_SB_RELEASED) == 0:
            self._give_back()    # PoolError if the block is not ours
        return 0

    cdef void _disown(self) noexcept:
        cdef uint64_t s = pool_load64(&self._state, POOL_ACQUIRE)
        while not pool_cas64(&self._state, &s, s | _SB_RELEASED | _SB_SENT, POOL_ACQ_REL,
                             POOL_ACQUIRE):
            pass

    cdef int _not_ours(self) except -1:
        raise PoolError(
            f"block {self._index} of {self._pool!r} is no longer held by this process, "
            f"or never was (a handle inherited through fork() is the parent's; or the "
            f"block was reclaimed, or the segment written over)")

    cdef int _release_if_live(self) except -1:
        if pool_load64(&self._state, POOL_ACQUIRE) & (_SB_RELEASED | _SB_SENT) == 0:
            try:
                self._release()
            except PoolError:
                pass       # another thread released it first
        return 0

    cdef int _check_live(self) except -1:
        if pool_load64(&self._state, POOL_ACQUIRE) & (_SB_RELEASED | _SB_SENT):
            raise ValueError(_SHM_DEAD)
        return 0

    def release(self):
        """Gives the block back; PoolError if already released or sent.  If a
        memoryview still exports it, it goes back when the last one ends."""
        self._release()

    @property
    def released(self):
        """True once released or sent."""
        return pool_load64(&self._state, POOL_ACQUIRE) & (_SB_RELEASED | _SB_SENT) != 0

    @property
    def pool(self):
        """The SharedBufferPool it came from; None once released or sent."""
        if pool_load64(&self._state, POOL_ACQUIRE) & (_SB_RELEASED | _SB_SENT):
            return None
        return self._pool

    @property
    def index(self):
        """The block's slot in the pool (the same in every process)."""
        return self._index

    def __len__(self):
        self._check_live()
        return self._len

    def __enter__(self):
        self._check_live()
        return self

    def __exit__(self, *exc):
        self._release_if_live()
        return False

    def __getbuffer__(self, Py_buffer *view, int flags):
        cdef uint64_t s = pool_load64(&self._state, POOL_ACQUIRE)
        while True:
            if s & (_SB_RELEASED | _SB_SENT):
                raise ValueError(_SHM_DEAD)
            if pool_cas64(&self._state, &s, s + _SB_EXPORT, POOL_ACQ_REL, POOL_ACQUIRE):
                break
        if pool_shm_load(self._pool._l, self._index) != _shm_identity():
            # a handle a fork child inherited (the block is its parent's),
            # or a block reclaimed: no new view of memory another holder uses
            pool_fetch_add64(&self._state, <uint64_t>0 - _SB_EXPORT, POOL_ACQ_REL)
            self._not_ours()     # PoolError (a ValueError)
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
        # the last export of a released handle gives the block back
        if pool_fetch_add64(&self._state, <uint64_t>0 - _SB_EXPORT, POOL_ACQ_REL) == \
                _SB_EXPORT | _SB_RELEASED:
            _give_quietly(self._pool, self._index)

    def __reduce__(self):
        return self._send(None)

    cdef tuple _send(self, object array_spec):
        """Puts the block in transit: (the unpickling call, its arguments)."""
        cdef uint64_t ticket, s
        if self._pool is None:
            raise ValueError(_SHM_DEAD)
        s = pool_load64(&self._state, POOL_ACQUIRE)
        while True:     # live and not exported -> SENT, in one step
            if s & (_SB_RELEASED | _SB_SENT):
                raise ValueError(_SHM_DEAD)
            if s >> 2:
                raise BufferError("cannot send a SharedBuffer while a memoryview of it "
                                  "is alive here")
            if pool_cas64(&self._state, &s, _SB_SENT, POOL_ACQ_REL, POOL_ACQUIRE):
                break
        # relaxed: the count only has to differ from every other send's
        ticket = pool_shm_ticket(pool_load64(&_shm_ticket_key, POOL_RELAXED),
                                 pool_fetch_add64(&_shm_tickets, 1, POOL_RELAXED))
        self._ticket = ticket
        self._sender = _shm_identity()
        if not pool_shm_swap(self._pool._l, self._index, _shm_identity(),
                             pool_shm_transit_word(ticket)):
            raise PoolError(f"block {self._index} of {self._pool!r} is no longer held by "
                            f"this process; nothing was sent")
        pool = self._pool
        # one flat call: the pickle names one global (each costs the loader
        # an import lookup), and the pool travels as its id and locators
        return (_shm_take_sent, (pool._seg.id, pool._name, pool._where(), self._index,
                                 ticket, array_spec))

    def __repr__(self):
        if pool_load64(&self._state, POOL_ACQUIRE) & (_SB_RELEASED | _SB_SENT):
            return "<SharedBuffer released>"
        return f"<SharedBuffer block={self._index} size={self._len}>"


cdef int _give_quietly(SharedBufferPool pool, uint32_t i) noexcept:
    """Gives slot i back where no exception can be raised (dealloc, the end
    of an export): 0, or -1 if this process did not hold it (a handle
    inherited through fork(), say)."""
    cdef uint64_t me = pool_load64(&_shm_me, POOL_RELAXED)
    if me == 0 or pool._l == NULL:
        return -1
    return pool_shm_give(pool._l, i, me)


def _shm_take_sent(bytes id, str name, tuple locators, index, ticket, array_spec):
    """What a pickled block unpickles with: its pool (this process's, or
    attached now), then _shm_receive."""
    pool = _shm_pools.get(id)   # (no lock: a miss attaches under it, and looks again)
    if pool is None or (<SharedBufferPool>pool)._closed:
        pool = _shm_unpickle_pool(id, name, locators)
    return _shm_receive(pool, index, ticket, array_spec)


cpdef object _shm_receive(SharedBufferPool pool, object index, object ticket,
                          object array_spec):
    """The unpickling of a sent block: this process holds it now.  Once: a
    second load of the same pickle raises PoolError.  Everything in the
    pickle is checked before the block is taken."""
    cdef uint32_t i
    cdef _ArrayShape req
    if pool is None:
        raise TypeError("a pickled SharedBuffer names no pool")
    pool._check_attached()
    if type(index) is not int or not 0 <= index < pool._l.capacity:
        raise PoolError(f"a pickled SharedBuffer names block {index!r}, which {pool!r} "
                        f"does not have")
    if type(ticket) is not int or not 0 <= ticket < (1 << 62):
        raise PoolError("a pickled SharedBuffer with a malformed ticket")
    i = index
    if array_spec is not None:
        try:
            if type(array_spec) is not tuple or len(<tuple>array_spec) != 3:
                raise PoolError("a pickled shared array with a malformed description")
            dtype, shape, order = array_spec
            if type(dtype) is str:
                descr = _shm_descrs.get(dtype)
                if descr is not None:
                    dtype = descr
            descr = _array_request(shape, dtype, order, &req)
            if type(dtype) is str and len(<str>dtype) <= 16:
                if len(_shm_descrs) >= 64:
                    _shm_descrs.clear()
                _shm_descrs[dtype] = descr
            if req.nbytes > pool._l.block_size:
                raise PoolError("a pickled shared array larger than its block")
        except BaseException:
            # nobody else can load this block (the ticket is in this pickle
            # only): it goes back to the pool, not into transit for ever
            if pool_shm_swap(pool._l, i, pool_shm_transit_word(ticket), 0):
                # freed by nobody who held it: counted as reclaimed
                pool_fetch_add64(&pool._l.header.reclaimed, 1, POOL_RELAXED)
                pool_shm_freed(pool._l, i)
            raise
    if not pool_shm_swap(pool._l, i, pool_shm_transit_word(ticket), _shm_identity()):
        raise PoolError(f"block {index} of {pool!r} was already received (a pickled block "
                        f"can be loaded once), or reclaimed")
    buf = pool._hand_out(i)
    if array_spec is None:
        return buf
    try:
        return _shared_array(buf, &req, descr)
    except BaseException:     # the block goes back, quietly (numpy's error stays)
        (<SharedBuffer>buf)._release_if_live()
        raise


# ---- arrays -------------------------------------------------------------------

@cython.final
@cython.no_gc
cdef class _SharedArrayBase:
    """The base of an array made by SharedBufferPool.empty()/zeros(): holds
    its block, gives it back when the last view dies; exposes nothing."""
    cdef SharedBuffer _buf

    def __dealloc__(self):
        if self._buf is not None:
            self._buf._release_if_live()

    def __repr__(self):
        return "<pool_ext shared array base>"


def _make_shared_array_type():
    import numpy

    class SharedArray(numpy.ndarray):
        """A numpy.ndarray over a SharedBufferPool block.  Pickling the array
        that empty()/zeros() returned sends its block (no copy): the array
        here becomes read-only, and its block is the receiver's.  Views and
        results of arithmetic pickle as ordinary arrays (a copy)."""

        # Cython functions, which bind as methods: no Python frame per send
        __reduce__ = _shared_array_reduce
        __reduce_ex__ = _shared_array_reduce_ex

        def __setstate__(self, state):
            # numpy's would drop the base: the block would go back while
            # views made before still point into it (and are the next
            # holder's, in any process).  Pickling never needs it here.
            raise TypeError("a SharedArray's state cannot be replaced (its block "
                            "would go back under its views); copy it first")

    SharedArray.__module__ = "pool_ext"
    SharedArray.__qualname__ = "SharedArray"
    return SharedArray


def _shared_array_type():
    """pool_ext.SharedArray: made once (under the lock: a type two threads
    made at once would leave one of them holding a freed one)."""
    global _SharedArray
    if _SharedArray is None:
        with _shm_lock:
            if _SharedArray is None:
                _SharedArray = _make_shared_array_type()
    return _SharedArray


cdef object _shared_array(SharedBuffer buf, _ArrayShape *req, object descr):
    cdef _SharedArrayBase base = _SharedArrayBase.__new__(_SharedArrayBase)
    base._buf = buf
    if _SharedArray is None:
        _shared_array_type()
    Py_INCREF(descr)    # pool_ndarray_new_as steals both, also when it fails
    Py_INCREF(base)
    return pool_ndarray_new_as(<void *>_SharedArray, <PyArray_Descr *><PyObject *>descr,
                               req.nd, req.dims, buf._ptr, req.fortran, <PyObject *>base)


cdef object _shm_specs = {}     # id(dtype) -> (dtype, what the pickle says of it)
cdef object _shm_descrs = {}    # a dtype's string -> the dtype (the loading side)


cdef object _dtype_spec(object descr):
    """How a dtype travels: a plain one as its string ('<f8'), which needs no
    global to load; a structured one as itself.  Cached: the dtype.str of a
    send costs more than the rest of it."""
    hit = _shm_specs.get(id(descr))
    if hit is not None and (<tuple>hit)[0] is descr:   # (the entry keeps descr alive)
        return (<tuple>hit)[1]
    spec = (descr.str if descr.fields is None and descr.subdtype is None and
            descr.metadata is None else descr)
    if len(_shm_specs) >= 64:
        _shm_specs.clear()
    _shm_specs[id(descr)] = (descr, spec)
    return spec


@cython.binding(True)     # a method of SharedArray
def _shared_array_reduce_ex(arr, protocol):
    return _shared_array_reduce(arr)


@cython.binding(True)
def _shared_array_reduce(arr):
    _numpy_ready()
    if pool_ndarray_check(arr):
        base = <object>pool_ndarray_base(arr) if pool_ndarray_base(arr) != NULL else None
        if type(base) is _SharedArrayBase and (<_SharedArrayBase>base)._buf is not None:
            buf = (<_SharedArrayBase>base)._buf
            layout = pool_ndarray_layout(arr)
            if pool_ndarray_data(arr) == <void *>(<SharedBuffer>buf)._ptr and layout != 0:
                spec = (_dtype_spec(<object>pool_ndarray_descr(arr)), arr.shape,
                        "C" if layout == 1 else "F")
                rv = (<SharedBuffer>buf)._send(spec)
                pool_ndarray_set_readonly(arr)     # its block is the receiver's now
                return rv
    # a view, or an array that owns its memory: an ordinary (copying) pickle
    import numpy
    return arr.view(numpy.ndarray).__reduce__()
