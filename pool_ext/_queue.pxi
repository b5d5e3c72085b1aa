# The drop-in queues (included by _pool.pyx): Queue (FIFO) and LifoQueue,
# with the queue.Queue / queue.LifoQueue API that connection pools use
# (urllib3, redis-py, SQLAlchemy: docs/queues.md), in C.
#
# The items and the waiters live in src/pool_queue.h, behind its spinlock
# (no GIL assumed: free-threaded builds too).  This file only sleeps (a
# thread on a lock of its own, _park from _wait.pxi), grows the ring
# (allocated outside the lock) and raises.  Fair: a put that finds a getter
# waiting hands it the item, a get that frees room hands it to the oldest
# putter, and nobody barges past a waiter.
#
# A waiter that leaves (timeout, Ctrl-C) asks the core what it was given
# meanwhile: a getter granted an item at its timeout returns it (the get
# succeeded); one interrupted by Ctrl-C gives it back (the next getter, or
# the front of the queue).  A putter granted room has its item in the queue
# either way (Ctrl-C still raises).  So no item is lost or duplicated.
#
# Not here: task_done()/join()/unfinished_tasks (no pool uses them), the
# _put/_get/_qsize hooks of queue.Queue (subclasses may add methods and
# attributes; the storage is not theirs to override), pickling.

from libc.stdlib cimport malloc
from pool_ext.includes.pool_queue cimport *
import queue as _stdqueue

cdef extern from *:
    """
    /* The queue's reference to an item becomes the caller's: no incref. */
    static inline PyObject *pool_queue_steal_(void *p) { return (PyObject *)p; }
    /* Called under the queue's spinlock (queue): an incref runs no code. */
    static void pool_queue_keep_(void *p) { Py_INCREF((PyObject *)p); }
    """
    object _steal "pool_queue_steal_" (void *p)
    void _queue_keep "pool_queue_keep_" (void *p) noexcept nogil


cdef void _queue_wake(pool_qwaiter_t *w) noexcept nogil:
    # Under the queue's spinlock: releasing a thread lock never blocks.
    PyThread_release_lock(<PyThread_type_lock>w.ctx)


cdef class Queue:
    """Queue(maxsize=0): a FIFO queue with queue.Queue's API, in C.

    ``put``/``get`` (``block``, ``timeout``), ``put_nowait``/``get_nowait``,
    ``qsize()``, ``empty()``, ``full()``, ``maxsize``; raises the stdlib's
    ``queue.Full`` and ``queue.Empty``.  ``maxsize <= 0``: unbounded.

    >>> import queue, pool_ext
    >>> q = pool_ext.Queue(2)
    >>> q.put(None); q.put_nowait(1)
    >>> q.full(), q.get(), q.get_nowait()
    (True, None, 1)
    >>> try:
    ...     q.get(timeout=0.01)
    ... except queue.Empty:
    ...     print("empty")
    empty

    Fairness: blocked getters are served oldest first, each put handing its
    item straight to the oldest; blocked putters likewise get the room a
    get frees; nobody barges past a waiter.

    Subclassing: allowed (e.g. to add attributes).  The class attributes
    ``Empty`` and ``Full`` name the exceptions raised (read once per
    instance, at construction): a subclass may set its own, as SQLAlchemy's
    queue needs.  ``queue.Queue``'s ``_put``/``_get`` hooks are not called,
    and ``task_done()``/``join()`` are not provided.

    Thread-safety: every method may be called from any thread at once,
    free-threaded builds included.  ``qsize()``, ``empty()`` and ``full()``
    are snapshots, as in queue.Queue.
    """

    Empty = _stdqueue.Empty
    Full = _stdqueue.Full
    __class_getitem__ = classmethod(_types.GenericAlias)

    cdef pool_queue_t _q
    cdef object _empty
    cdef object _full
    cdef object _maxsize
    cdef bint _inited

    def __cinit__(self, *args, **kwargs):
        pool_queue_init(&self._q, isinstance(self, LifoQueue))
        cls = type(self)
        self._empty = cls.Empty
        self._full = cls.Full
        self._maxsize = 0              # (unbounded until __init__, if it is skipped)

    def __init__(self, maxsize=0):
        n = _operator.index(maxsize)   # TypeError for a non-integer
        if self._inited:
            # a new bound under waiting putters would not wake them
            raise RuntimeError(f"{type(self).__name__}.__init__ called twice")
        self._inited = True
        self._maxsize = n
        pool_queue_set_maxsize(&self._q, <uint64_t>min(n, 1 << 62) if n > 0 else 0)

    def __dealloc__(self):
        _queue_drop_items(&self._q)

    @property
    def maxsize(self):
        """The bound given at construction (<= 0: unbounded)."""
        return self._maxsize

    def qsize(self):
        """The number of items, a snapshot."""
        return pool_queue_count(&self._q)

    def empty(self):
        """True if the queue holds no item (a snapshot)."""
        return pool_queue_count(&self._q) == 0

    def full(self):
        """True if bounded and holding maxsize items or more (a snapshot)."""
        return self._q.maxsize != 0 and pool_queue_count(&self._q) >= self._q.maxsize

    @property
    def queue(self):
        """A list of the items, oldest first: a snapshot, not the storage
        (queue.Queue's is its deque).  For code that only reads it, e.g.
        redis-py's pool counting its idle connections."""
        cdef uint64_t n = pool_queue_count(&self._q)
        cdef uint64_t i, got
        cdef void **buf
        while True:
            buf = <void **>malloc((n + 1) * sizeof(void *))
            if buf == NULL:
                raise MemoryError()
            got = pool_queue_snapshot(&self._q, buf, n, _queue_keep)
            if got == n:
                break
            free(buf)
            n = got
        try:
            items = [_steal(buf[i]) for i in range(n)]
        finally:
            free(buf)
        return items

    def _waiting(self):
        """(getters, putters) blocked right now, a snapshot (for tests)."""
        cdef size_t g, p
        pool_queue_waiting(&self._q, &g, &p)
        return g, p

    def put(self, item, block=True, timeout=None):
        """Puts item; if the queue is full, waits (block, up to timeout
        seconds; None: forever) for room, else raises queue.Full."""
        cdef bint blocking = block           # (asked once: a __bool__ may lie or raise)
        if blocking and not _timeout_fast(timeout):
            _parse_timeout(timeout)          # (raises for a bad timeout)
        Py_INCREF(item)                      # the queue's reference, if it takes it
        if pool_queue_put(&self._q, <void *>item, NULL) != POOL_Q_DONE:
            self._put_slow(item, blocking, timeout)

    def put_nowait(self, item):
        """put(item, block=False)."""
        Py_INCREF(item)
        if pool_queue_put(&self._q, <void *>item, NULL) != POOL_Q_DONE:
            self._put_slow(item, False, None)

    def get(self, block=True, timeout=None):
        """Removes and returns an item; if there is none, waits (block, up
        to timeout seconds; None: forever), else raises queue.Empty."""
        cdef void *p
        cdef bint blocking = block           # (asked once, as put() does)
        if blocking and not _timeout_fast(timeout):
            _parse_timeout(timeout)
        if pool_queue_get(&self._q, &p, NULL) == POOL_Q_DONE:
            return _steal(p)
        return self._get_slow(blocking, timeout)

    def get_nowait(self):
        """get(block=False)."""
        cdef void *p
        if pool_queue_get(&self._q, &p, NULL) == POOL_Q_DONE:
            return _steal(p)
        raise self._empty

    # -- the slow paths -----------------------------------------------------

    cdef int _put_slow(self, object item, bint block, object timeout) except -1:
        """The queue did not take item (full, or its ring needs room); the
        reference put() added is still ours, and dropped unless it goes in."""
        cdef pool_qwaiter_t w
        cdef PyThread_type_lock lock = NULL
        cdef double t, deadline = -1.0
        cdef int r
        cdef int woken = 0
        cdef bint moved = False     # put()'s reference went into the ring
        try:
            while True:
                r = pool_queue_put(&self._q, <void *>item, NULL)
                if r == POOL_Q_DONE:
                    return 0
                if r == POOL_Q_GROW:
                    _queue_grow(&self._q)
                    continue
                break                          # full
            if not block:
                raise self._full
            t = _parse_timeout(timeout)
            if t == 0.0:
                raise self._full
            if t > 0.0:
                deadline = _monotonic() + t
            lock = _queue_lock_new(&w)
            while True:
                r = pool_queue_put(&self._q, <void *>item, &w)
                if r == POOL_Q_DONE:
                    return 0
                if r == POOL_Q_GROW:
                    _queue_grow(&self._q)
                    continue
                # queued: the record holds our reference to item
                try:
                    woken = _park(lock, deadline)
                finally:
                    if pool_queue_leave(&self._q, &w):
                        moved = True           # (a flag: the item itself may be None)
                if moved:
                    return 0                   # granted room (at the wire, too)
                if not woken:
                    raise self._full           # timed out
        except BaseException:
            if not moved:
                Py_DECREF(item)                # put()'s reference: it never went in
            raise
        finally:
            if lock != NULL:
                PyThread_free_lock(lock)

    cdef object _get_slow(self, bint block, object timeout):
        cdef pool_qwaiter_t w
        cdef PyThread_type_lock lock
        cdef double t, deadline = -1.0
        cdef void *p
        cdef int woken = 0
        if not block:
            raise self._empty
        t = _parse_timeout(timeout)
        if t == 0.0:
            raise self._empty
        if t > 0.0:
            deadline = _monotonic() + t
        lock = _queue_lock_new(&w)
        try:
            while True:
                if pool_queue_get(&self._q, &p, &w) == POOL_Q_DONE:
                    return _steal(p)
                try:
                    woken = _park(lock, deadline)
                except BaseException:          # Ctrl-C: a grant goes back
                    if pool_queue_leave(&self._q, &w):
                        _queue_give_back(&self._q, w.item)
                    raise
                if pool_queue_leave(&self._q, &w):
                    item = _steal(w.item)      # granted (at the timeout, too)
                    # A signal that came with the item: raise it here, with the
                    # item given back, not in our caller, who would lose it.
                    try:
                        PyErr_CheckSignals()
                    except BaseException:
                        Py_INCREF(item)
                        _queue_give_back(&self._q, <void *>item)
                        raise
                    return item
                if not woken:
                    raise self._empty
        finally:
            PyThread_free_lock(lock)


cdef class LifoQueue(Queue):
    """LifoQueue(maxsize=0): a LIFO queue (the newest item first) with
    queue.LifoQueue's API, in C; see Queue (waiters are still served
    oldest first).

    >>> import pool_ext
    >>> q = pool_ext.LifoQueue()
    >>> for i in range(3): q.put(i)
    >>> [q.get() for _ in range(3)]
    [2, 1, 0]

    Thread-safety: as Queue's.
    """


# -- helpers ------------------------------------------------------------------

cdef PyThread_type_lock _queue_lock_new(pool_qwaiter_t *w) except NULL:
    # A waiter's record and the lock it sleeps on (held: our acquire sleeps
    # until a grant releases it).
    cdef PyThread_type_lock lock = PyThread_allocate_lock()
    if lock == NULL:
        raise MemoryError()
    PyThread_acquire_lock(lock, 1)
    w.wake = _queue_wake
    w.ctx = lock
    w.state = POOL_QW_OUT
    w.item = NULL
    return lock


cdef int _queue_grow(pool_queue_t *q) except -1:
    """Doubles the ring: allocated here, outside the lock, swapped in under it."""
    cdef size_t cap = pool_queue_next_cap(q)
    cdef void **ring
    if cap == 0:
        raise MemoryError("queue too long")
    ring = <void **>malloc(cap * sizeof(void *))
    if ring == NULL:
        raise MemoryError()
    free(pool_queue_swap_ring(q, ring, cap))
    return 0


cdef int _queue_give_back(pool_queue_t *q, void *item) noexcept:
    """An item a getter will not return goes back (pool_queue_give_back):
    never lost.  If the ring cannot grow (no memory at all), the reference
    is leaked rather than dropped (an item dropped might be a connection
    still counted as pooled); that is logged."""
    while pool_queue_give_back(q, item) == POOL_Q_GROW:
        try:
            _queue_grow(q)
        except BaseException:
            _log.error("an item given back to a queue was leaked: no memory", exc_info=True)
            return -1
    return 0


cdef void _queue_drop_items(pool_queue_t *q) noexcept:
    """Lets go of every item (dealloc, tp_clear): taken out of the ring under
    the lock, released after it (a release may run any Python code)."""
    cdef void **ring
    cdef size_t cap, head
    cdef uint64_t n, i
    pool_queue_detach(q, &ring, &cap, &head, &n)
    for i in range(n):
        Py_DECREF(<object>ring[(head + i) & (cap - 1)])
    free(ring)


# -- the garbage collector: Cython's tp_traverse sees Empty/Full; this adds the
# items (a pooled connection often refers back to its pool, and so to us).
# Typed arguments: the C calling convention is tp_traverse's, and Cython
# does not touch the reference count.  Items a waiter holds in its record
# are not visited (held by a running thread: reachable anyway).
cdef traverseproc _queue_cython_traverse = NULL


cdef int _queue_traverse(Queue self, visitproc visit, void *arg) noexcept:
    cdef uint64_t i
    cdef int rc = _queue_cython_traverse(<PyObject *>self, visit, arg)
    if rc != 0:
        return rc
    # (no lock: the collector runs with the GIL held, or the world stopped,
    # and no thread is ever inside the queue's lock at such a point)
    for i in range(self._q.count):
        rc = visit(<PyObject *>self._q.ring[(self._q.head + i) & (self._q.cap - 1)], arg)
        if rc != 0:
            return rc
    return 0


cdef int _queue_clear(Queue self) noexcept:
    # Empty and Full stay (a finalizer running in the cycle may still call
    # get_nowait, which must raise queue.Empty, not crash).
    _queue_drop_items(&self._q)
    return 0
