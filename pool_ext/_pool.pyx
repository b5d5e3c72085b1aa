# cython: language_level=3, freethreading_compatible=True, binding=False, auto_pickle=False, autotestdict=False
# cython: boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
"""pool_ext._pool: the compiled pools.  Import them from ``pool_ext``.

Layout of this module (one extension, several include files):
  _pool.pyx          exceptions, timeouts, _PoolBase: counters, waiting, closing
  _objectpool.pxi    ObjectPool and its lease
  _bufferpool.pxi    BufferPool, PooledBuffer and its lease

Thread-safety model.  The C core (src/) holds every piece of shared mutable
state: free-lists, slot states, the address map, the counters.  On GIL builds
its operations compile to plain loads and stores (the GIL serialises every
caller; nothing here calls the core inside a ``nogil`` block).  On
free-threaded builds they are real atomics.  The only lock is the wait queue's
spinlock (src/pool_spinlock.h), taken only when a caller must sleep or a
release finds sleepers.

fork().  Holders of the wait-queue spinlock run a few C stores with no safe
point and never release the GIL inside it, so neither a GIL handoff nor a
free-threaded stop-the-world (which os.fork() performs) can leave it locked.  The
child keeps every slot's state: objects idle at fork are idle in the child;
slots held by threads that do not exist in the child stay in use (whoever in
the child holds those objects may still release them).  Waiters the parent
had queued are dropped by the child's first queue operation (see
_forget_forked_waiters).
"""

cimport cython
from cpython.object cimport PyObject
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES
from cpython.float cimport PyFloat_AsDouble
from cpython.list cimport PyList_New, PyList_GET_ITEM, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF, Py_DECREF, Py_XDECREF
from libc.stdlib cimport calloc, free
from libc.math cimport isnan, isinf
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from libc.string cimport memset

from pool_ext.includes.pool_atomic cimport *
from pool_ext.includes.pool_freelist cimport *
from pool_ext.includes.pool_slots cimport *
from pool_ext.includes.pool_addrmap cimport *
from pool_ext.includes.pool_mem cimport *
from pool_ext.includes.pool_spinlock cimport *

import time as _time
import warnings as _warnings

cdef extern from "pythread.h":
    ctypedef void *PyThread_type_lock
    ctypedef enum PyLockStatus:
        PY_LOCK_FAILURE
        PY_LOCK_ACQUIRED
        PY_LOCK_INTR
    PyThread_type_lock PyThread_allocate_lock()
    void PyThread_free_lock(PyThread_type_lock)
    int PyThread_acquire_lock(PyThread_type_lock, int waitflag) nogil
    PyLockStatus PyThread_acquire_lock_timed(PyThread_type_lock, long long microseconds,
                                             int intr_flag) nogil
    void PyThread_release_lock(PyThread_type_lock) nogil
    long long PY_TIMEOUT_MAX

cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1

cdef extern from *:
    """
    /* The process id, to tell waiters queued before a fork() (threads that
     * do not exist in the child) from the child's own.  No fork on Windows. */
    #if defined(_WIN32)
    static long pool_getpid(void) { return 0; }
    #else
    #include <unistd.h>
    static long pool_getpid(void) { return (long)getpid(); }
    #endif
    """
    long pool_getpid() nogil

#: Which variant of the C core's atomics this build uses (see README).
ATOMICS = (<bytes>POOL_ATOMIC_VARIANT).decode()
#: The largest capacity a pool accepts (slot indices are 31-bit).
MAX_CAPACITY = POOL_MAX_CAPACITY


class PoolError(ValueError):
    """Misuse of a pool: releasing what it did not hand out, or twice."""


class PoolClosed(PoolError):
    """The pool is closed: it hands out nothing more."""


class PoolExhausted(TimeoutError):
    """acquire() found no free slot before its timeout ran out."""


for _cls in (PoolError, PoolClosed, PoolExhausted):
    _cls.__module__ = "pool_ext"
del _cls

cdef object _monotonic = _time.monotonic
cdef object _NOTHING = object()   # "no slot free"; None may be a pooled object


cdef double _parse_timeout(object timeout) except -2.0:
    """None -> -1.0 (wait forever); else seconds >= 0.  inf waits forever."""
    cdef double t
    if timeout is None:
        return -1.0
    if isinstance(timeout, bool):
        raise TypeError("timeout must be a number or None, not bool")
    t = PyFloat_AsDouble(timeout)   # TypeError for non-numbers
    if isnan(t):
        raise ValueError("timeout must not be NaN")
    if t < 0:
        raise ValueError("timeout must be non-negative or None")
    if isinf(t):
        return -1.0
    return t


cdef inline int _check_timeout(object timeout) except -1:
    """acquire() validates its timeout even when it need not wait."""
    if timeout is not None:
        _parse_timeout(timeout)
    return 0


cdef uint32_t _parse_capacity(object capacity) except 0:
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"capacity must be an int, not {type(capacity).__name__}")
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    if capacity > POOL_MAX_CAPACITY:
        raise ValueError(f"capacity must be at most {POOL_MAX_CAPACITY}, got {capacity}")
    return <uint32_t>capacity


cdef struct _Waiter:
    # One sleeping acquirer, on its own C stack.  `lock` is held while it
    # sleeps; a waker releases it.  All fields but `lock` are guarded by
    # the pool's _wait_lock.
    PyThread_type_lock lock
    _Waiter *next
    _Waiter *prev
    bint queued
    bint signaled


cdef class _PoolBase:
    """What ObjectPool and BufferPool share: counters, waiting, closing.

    Counters are C words updated through the core's atomics (plain under the
    GIL, relaxed atomic adds when free-threaded): they are statistics, read
    with no ordering promise against each other.
    """
    cdef uint32_t _capacity
    cdef uint64_t _closed          # 0 or 1; seq_cst: pairs with waiters' checks
    cdef uint64_t _acquires
    cdef uint64_t _releases
    cdef uint64_t _creations
    cdef uint64_t _destructions
    cdef uint64_t _waits
    cdef uint64_t _timeouts
    cdef uint64_t _nwaiters        # queued waiters; read on every release
    cdef _Waiter *_wait_head
    cdef _Waiter *_wait_tail
    cdef long _queue_pid           # the process whose threads are queued
    cdef pool_spinlock_t _wait_lock  # guards the queue links and _queue_pid

    def __cinit__(self):
        self._queue_pid = pool_getpid()

    # -- counters --------------------------------------------------------
    cdef inline void _count(self, uint64_t *counter) noexcept:
        # relaxed: a statistic; nothing is ordered by it
        pool_fetch_add64(counter, 1, POOL_RELAXED)

    cdef inline uint64_t _read(self, uint64_t *counter) noexcept:
        return pool_load64(counter, POOL_RELAXED)  # relaxed: a statistic

    cdef inline bint _is_closed(self) noexcept:
        # acquire: a pool seen open was fully built (pairs with the release
        # store at the end of __init__); close races are settled by fences
        # (see _close_begin)
        return pool_load64(&self._closed, POOL_ACQUIRE) != 0

    cdef inline uint64_t _in_use(self) noexcept:
        cdef uint64_t a = self._read(&self._acquires)
        cdef uint64_t r = self._read(&self._releases)
        return a - r if a > r else 0

    # -- waking ----------------------------------------------------------
    cdef inline void _after_push(self) noexcept:
        """Called after every push onto a free-list: wake one sleeper, if any."""
        # seq_cst fence: orders our push before the read of _nwaiters; pairs
        # with the fence in _acquire_wait between queueing and retrying, so
        # either the waiter sees our slot or we see the waiter (no lost wake)
        pool_fence(POOL_SEQ_CST)
        if pool_load64(&self._nwaiters, POOL_RELAXED) != 0:  # relaxed: after the fence
            self._wake(1)

    cdef bint _forget_forked_waiters(self) noexcept:
        """Caller holds _wait_lock.  After fork(), the queue holds waiters of
        parent threads that do not exist here, on stacks that the child's new
        threads reuse: drop them all before touching the queue.  True if it
        did (the caller's own waiter, if queued, is then no longer)."""
        cdef long pid = pool_getpid()   # a syscall: slow path only
        if pid == self._queue_pid:
            return False
        self._queue_pid = pid
        self._wait_head = self._wait_tail = NULL
        pool_store64(&self._nwaiters, 0, POOL_RELAXED)
        return True

    cdef void _wake(self, bint one) noexcept:
        cdef _Waiter *w
        pool_spin_lock(&self._wait_lock)
        self._forget_forked_waiters()
        while self._wait_head != NULL:
            w = self._wait_head
            self._unlink(w)
            w.signaled = True
            PyThread_release_lock(w.lock)
            if one:
                break
        pool_spin_unlock(&self._wait_lock)

    cdef void _unlink(self, _Waiter *w) noexcept:
        # caller holds _wait_lock
        if w.prev != NULL:
            w.prev.next = w.next
        else:
            self._wait_head = w.next
        if w.next != NULL:
            w.next.prev = w.prev
        else:
            self._wait_tail = w.prev
        w.next = w.prev = NULL
        w.queued = False
        # relaxed: _nwaiters only changes under _wait_lock
        pool_store64(&self._nwaiters, pool_load64(&self._nwaiters, POOL_RELAXED) - 1,
                     POOL_RELAXED)

    cdef void _enqueue(self, _Waiter *w) noexcept:
        pool_spin_lock(&self._wait_lock)
        self._forget_forked_waiters()
        w.signaled = False
        w.queued = True
        w.next = NULL
        w.prev = self._wait_tail
        if self._wait_tail != NULL:
            self._wait_tail.next = w
        else:
            self._wait_head = w
        self._wait_tail = w
        pool_store64(&self._nwaiters, pool_load64(&self._nwaiters, POOL_RELAXED) + 1,
                     POOL_RELAXED)
        pool_spin_unlock(&self._wait_lock)
        # seq_cst fence: our enqueue before our retry; pairs with _after_push
        pool_fence(POOL_SEQ_CST)

    cdef bint _dequeue(self, _Waiter *w) noexcept:
        """Leaves the queue; True if a waker had signaled us meanwhile."""
        cdef bint signaled
        pool_spin_lock(&self._wait_lock)
        if self._forget_forked_waiters():
            w.queued = False    # we forked while queued: the queue is new
        if w.queued:
            self._unlink(w)
        signaled = w.signaled
        pool_spin_unlock(&self._wait_lock)
        return signaled

    cdef int _park(self, _Waiter *w, double deadline) except -1:
        """Sleeps without the GIL until woken (1) or the deadline passes (0)."""
        cdef long long us
        cdef double remaining
        cdef PyLockStatus r
        while True:
            if deadline < 0:
                us = -1
            else:
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    return 0
                if remaining * 1e6 >= <double>PY_TIMEOUT_MAX:
                    us = PY_TIMEOUT_MAX     # sleep in chunks; the loop recomputes
                else:
                    us = <long long>(remaining * 1e6) + 1
            with nogil:
                r = PyThread_acquire_lock_timed(w.lock, us, 1)
            if r == PY_LOCK_ACQUIRED:
                return 1
            if r == PY_LOCK_INTR:
                PyErr_CheckSignals()   # Ctrl-C: raises KeyboardInterrupt here

    cdef object _try_take(self):
        """Subclasses: a hand-out, or _NOTHING if no slot is free."""
        raise NotImplementedError

    cdef object _acquire_wait(self, object timeout):
        """The slow path of acquire(): sleep until a slot is free or time is up."""
        cdef double t = _parse_timeout(timeout)
        cdef double deadline = -1.0
        cdef _Waiter w
        cdef object item
        if t == 0.0:
            self._count(&self._timeouts)
            raise PoolExhausted(f"no free slot among {self._capacity}")
        if t > 0.0:
            deadline = _monotonic() + t
        w.lock = PyThread_allocate_lock()
        if w.lock == NULL:
            raise MemoryError()
        PyThread_acquire_lock(w.lock, 1)   # held: the next acquire sleeps
        w.queued = w.signaled = False
        w.next = w.prev = NULL
        self._count(&self._waits)
        try:
            while True:
                self._enqueue(&w)
                item = self._try_take()
                if item is not _NOTHING:
                    return item
                if self._park(&w, deadline) == 0:
                    self._dequeue(&w)
                    item = self._try_take()  # a slot may have come at the wire
                    if item is not _NOTHING:
                        return item
                    self._count(&self._timeouts)
                    raise PoolExhausted(
                        f"no free slot among {self._capacity} within {t:g} s")
                # woken: queue again and retry (a barging acquirer may have won)
        finally:
            if self._dequeue(&w):
                # A waker chose us but we leave without using its wake-up
                # (success by another route, timeout, Ctrl-C): pass it on so
                # no sleeper misses a free slot.  Spurious wakes are harmless.
                self._wake(1)
            PyThread_free_lock(w.lock)

    # -- closing ---------------------------------------------------------
    cdef bint _close_begin(self) noexcept:
        """Marks the pool closed; False if it already was."""
        cdef uint64_t expected = 0
        # seq_cst CAS + fence: the closer's later pops (drain) and wakes are
        # ordered after `closed` is set; pairs with the seq_cst fence a
        # releaser runs between its push and its `closed` check, so either
        # the releaser sees `closed` or the drain sees its pushed slot
        if not pool_cas64(&self._closed, &expected, 1, POOL_SEQ_CST, POOL_RELAXED):
            return False
        pool_fence(POOL_SEQ_CST)
        self._wake(0)   # every sleeper retries and meets PoolClosed
        return True

    # -- shared public surface -------------------------------------------
    @property
    def capacity(self):
        """The most hand-outs the pool makes at once."""
        return self._capacity

    @property
    def in_use(self):
        """Hand-outs not yet returned to the pool."""
        return self._in_use()

    @property
    def available(self):
        """How many acquires would succeed now without waiting (0 once closed)."""
        if self._is_closed():
            return 0
        return self._capacity - min(self._in_use(), self._capacity)

    @property
    def closed(self):
        """True once close() has been called."""
        return self._is_closed()

    def stats(self):
        """A dict of counters: a snapshot, each read on its own.

        acquires, releases, creations, destructions: successful operations;
        waits: acquires that had to sleep; timeouts: acquires that ran out
        of time (PoolExhausted); waiting: acquirers asleep now; and the
        gauges capacity, size, in_use, available.
        """
        return {
            "acquires": self._read(&self._acquires),
            "releases": self._read(&self._releases),
            "creations": self._read(&self._creations),
            "destructions": self._read(&self._destructions),
            "waits": self._read(&self._waits),
            "timeouts": self._read(&self._timeouts),
            "waiting": self._read(&self._nwaiters),
            "capacity": self._capacity,
            "size": self.size,
            "in_use": self.in_use,
            "available": self.available,
        }

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


include "_objectpool.pxi"
include "_bufferpool.pxi"
