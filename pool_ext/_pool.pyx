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

import operator as _operator
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
    ctypedef struct PyTypeObject:
        unsigned long tp_flags
    unsigned long Py_TPFLAGS_BASETYPE
    void PyType_Modified(PyTypeObject *t)

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


cdef inline bint _is_bool(object value):
    """bool, or a bool-like scalar such as numpy.bool_ (not a bool subclass,
    but a number to PyFloat_AsDouble): a flag passed where a number belongs."""
    return isinstance(value, bool) or (type(value).__name__ in ("bool_", "bool")
                                       and type(value).__module__ == "numpy")


cdef double _parse_timeout(object timeout) except -2.0:
    """None -> -1.0 (wait forever); else seconds >= 0.  inf waits forever."""
    cdef double t
    if timeout is None:
        return -1.0
    if _is_bool(timeout):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
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


cdef object _int_arg(object value, str name, object low, object high):
    """An integer argument as a plain int in [low, high], converted once.

    operator.index accepts what Python accepts as an index (int, numpy
    integers, any __index__), never a float or a bool.  An int subclass
    is reduced to its plain value, so none of its methods (comparisons,
    __index__, __int__) runs after this: a lying subclass cannot make the
    checks below and the value used disagree."""
    if _is_bool(value):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    try:
        value = _operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None
    if type(value) is not int:
        value = int.__index__(value)   # the plain int inside the subclass
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


cdef uint32_t _parse_capacity(object capacity) except 0:
    return <uint32_t>_int_arg(capacity, "capacity", 1, POOL_MAX_CAPACITY)


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
        # Only ObjectPool and BufferPool (final classes) are pools; this base
        # is not a type of its own (it cannot be subclassed either: see the
        # end of this module).
        if type(self) is not ObjectPool and type(self) is not BufferPool:
            raise TypeError("_PoolBase is not a pool: use ObjectPool or BufferPool")
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

    cdef int _give_back(self, object item) except -1:
        """Subclasses: return a hand-out nobody has seen yet (no hooks)."""
        raise NotImplementedError

    cdef int _lease_exit(self, object item) except -1:
        """Subclasses: give back what a lease handed out, at its exit."""
        raise NotImplementedError

    cdef object _acquire(self, object timeout):
        item = self._try_take()
        if item is _NOTHING:
            return self._acquire_wait(timeout)
        return item

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
                    break
                if self._park(&w, deadline) == 0:
                    self._dequeue(&w)
                    item = self._try_take()  # a slot may have come at the wire
                    if item is not _NOTHING:
                        break
                    self._count(&self._timeouts)
                    raise PoolExhausted(
                        f"no free slot among {self._capacity} within {t:g} s")
                # Woken.  A signal (Ctrl-C) that arrived with the wake-up ends
                # the wait here, before we take a slot; then queue again and
                # retry (a barging acquirer may have won the slot).
                PyErr_CheckSignals()
        finally:
            if self._dequeue(&w):
                # A waker chose us but we leave without using its wake-up
                # (success by another route, timeout, Ctrl-C): pass it on so
                # no sleeper misses a free slot.  Spurious wakes are harmless.
                self._wake(1)
            PyThread_free_lock(w.lock)
        # A signal that came while we took the slot: raise it here, with the
        # slot given back, rather than in our caller, who would never see
        # the hand-out (a KeyboardInterrupt would lose the slot for good).
        try:
            PyErr_CheckSignals()
        except BaseException:
            self._give_back(item)
            raise
        return item

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

    cdef uint64_t _waiting(self) noexcept:
        """Waiters asleep now.  A forked child has none: its queue still
        counts the parent's until its first queue operation forgets them."""
        if pool_getpid() != self._queue_pid:   # a syscall: stats() only
            return 0
        return self._read(&self._nwaiters)

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
            "waiting": self._waiting(),
            "capacity": self._capacity,
            "size": self.size,
            "in_use": self.in_use,
            "available": self.available,
        }

    cdef object _new_lease(self, object timeout):
        """lease() of both pools.  (Each pool defines lease() itself: CPython
        calls a method of the object's own type faster than an inherited one,
        about 65 instructions per call on 3.11, measured.)"""
        cdef _Lease lease
        _check_timeout(timeout)
        if self._is_closed():
            raise PoolClosed("lease() on a closed pool")
        lease = _Lease.__new__(_Lease)
        lease._pool = self
        lease._timeout = timeout
        return lease

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


cdef enum:
    _LEASE_IDLE = 0
    _LEASE_ENTERING = 1   # __enter__ is acquiring
    _LEASE_ACTIVE = 2     # entered: _item is out


@cython.final
@cython.freelist(16)
@cython.no_gc_clear   # __dealloc__ needs _pool and _item to give the item back
cdef class _Lease:
    """``with pool.lease() as item``: the item goes back to the pool on exit.

    One class for both pools: the pool decides what "give back" means
    (ObjectPool.release, or releasing a PooledBuffer unless its holder did).
    Its state changes under a critical section (free-threaded builds), so
    two threads entering one lease cannot both acquire."""
    cdef _PoolBase _pool
    cdef object _timeout
    cdef object _item
    cdef int _state

    @cython.always_allow_keywords(False)
    def __enter__(self):
        cdef bint busy
        if self._pool is None:
            raise TypeError("leases come from pool.lease()")
        with cython.critical_section(self):
            busy = self._state != _LEASE_IDLE
            if not busy:
                self._state = _LEASE_ENTERING
        if busy:
            raise RuntimeError("this lease is already active; call pool.lease() again")
        try:
            item = self._pool._acquire(self._timeout)
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
        if item is not _NOTHING:
            self._pool._lease_exit(item)
        return False

    def __dealloc__(self):
        # Entered and dropped without __exit__: give the item back and say
        # so, as a dropped PooledBuffer does.
        if self._state != _LEASE_ACTIVE or self._pool is None:
            return
        self._state = _LEASE_IDLE
        self._pool._lease_exit(self._item)
        _warnings.warn(f"a lease of {self._pool!r} was entered and never exited; what "
                       f"it held was given back when it was garbage collected",
                       ResourceWarning, stacklevel=1)


include "_objectpool.pxi"
include "_bufferpool.pxi"

# _PoolBase is an implementation detail of the two final pool classes: no
# Python class may derive from it (it has no pool behaviour of its own).
# Its subclasses exist by now, so the flag no longer matters to them.
(<PyTypeObject *>_PoolBase).tp_flags &= ~Py_TPFLAGS_BASETYPE
PyType_Modified(<PyTypeObject *>_PoolBase)
