# cython: language_level=3, freethreading_compatible=True, binding=False, auto_pickle=False, autotestdict=False
# cython: boundscheck=False, wraparound=False, cdivision=True
# cython: embedsignature=True, embedsignature.format=clinic
"""pool_ext._pool: the compiled pools.  Import them from ``pool_ext``.

One extension module, one file per job (the uvloop layout):
  _pool.pxd           every class's declarations: fields and cdef methods
  _args.pxi           exceptions; timeouts, durations and integer arguments
  _poolbase.pxi       _PoolBase: counters, gauges, closing, the grant glue
  _wait.pxi           waiting for a slot (src/pool_waitq.h): threads and tasks
  _holders.pxi        who holds what: hand-out records, holders(), leak warnings
  _lease.pxi          the lease both pools' lease() returns
  _async.pxi          asyncio: lease_async(), the async fast path
  _objectpool.pxi     ObjectPool: the class, its hot path, its public methods
  _objectpool_items.pxi  its __init__, its C arrays, the GC's view of them
  _objectpool_slots.pxi  its slots off the hot path: fill, release hooks,
                      discard, destroy, drain (sync and async twins side by side)
  _health.pxi         ObjectPool's health rules: check, time limits, evict(),
                      the evictor thread, fork() during a round, drain()
  _async_hooks.pxi    ObjectPool's coroutine hooks: destroy() tasks, the
                      acquire's deadline, the async twins of take and check
  _bufferpool.pxi     BufferPool
  _pooledbuffer.pxi   PooledBuffer and the memory it lives in
  _ndarray.pxi        numpy arrays over pooled memory (numpy imported lazily)
  _arraypool.pxi      ArrayPool: size classes (src/pool_classes.h), arrays
  _queue.pxi          Queue, LifoQueue: drop-in queues (src/pool_queue.h)
  _entries.pxi        hot methods in CPython's calling convention; every type-slot patch (last)
  includes/*.pxd      one per C header of the core (src/)

Glossary (one word, one meaning, across the files):
  slot            an index into a pool's arrays; its state word (src/pool_slots.h)
                  is FREE, HELD (handed out), RELEASING (owned by one caller
                  that is not a holder: hooks run, a round tests it) or
                  RETIRING (a released buffer still exported)
  idle / empty    ObjectPool's two free-lists: slots holding an object ready to
                  hand out, and slots holding none (the factory fills them)
  own             to be the one caller that may change a slot (it won the
                  transition, or popped the index); "owned" is RELEASING
  hand-out        one acquire's result, from HELD until its release
  take            a newcomer's attempt at a hand-out without waiting:
                  _take (each pool's own), _take_now (the async fast path),
                  _take_idle_plain / _take_idle_vetted (an idle object, with
                  or without the health rules), ArrayPool._take (a block)
  grant           a released slot given by the wait queue straight to the
                  oldest waiter, which owns it (src/pool_waitq.h)
  _hand_out       a granted (or just popped) slot made into a hand-out;
                  _give_up: a granted slot its waiter cannot use, passed on
  release         the holder gives its hand-out back (_release, _release_slot);
                  _release_hooks runs reset and validate on the way
  unhold / push   an owned slot goes back on a list: _unhold_idle and
                  _unhold_empty (then a waiter may be granted it), _push_idle
                  (stamped for max_idle first), _return_idle (a plain release:
                  this thread's cache, else the list)
  give back       what a lease, a block or a round returns when it ends
                  (_Lease._give_back, _Block._give_back, _give_back_rounds)
  detach          an object leaves its slot (the slot stays owned);
                  discard: detach, then destroy(), then the slot goes empty;
                  _discard_begin: discard(obj)'s claim of obj's hand-out
  drain           every idle object out of a closing pool (_drain_idle), and
                  drain(): that, after every hand-out came back
  round           one evict() or min_idle pass (_health.pxi, _Round)
  _cold_*         the out-of-line part of a hot method (raises, calls Python)
  _plain_*        a pool flag: nothing to do at that step, the short path

Thread-safety model.  The C core (src/) holds every piece of shared mutable
state: free-lists, slot states, the address map, the wait queue, the
counters.  On GIL builds its hot operations compile to plain loads and stores
(the GIL serialises every caller; nothing here calls the core inside a
``nogil`` block).  On free-threaded builds they are real atomics.  The only
lock is the wait queue's spinlock, taken only when a caller must sleep or a
release finds sleepers.  fork() is handled by the wait queue
(src/pool_waitq.h): the child keeps every slot's state, and forgets the
waiters its parent had queued.
"""

cimport cython
from cpython.object cimport PyObject
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES
from cpython.float cimport PyFloat_AsDouble
from cpython.ref cimport Py_INCREF, Py_DECREF, Py_XDECREF
from cpython.pythread cimport PyThread_get_thread_ident
from libc.stdlib cimport calloc, free
from libc.math cimport isnan, isinf
from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from libc.string cimport memset

from pool_ext.includes.pool_atomic cimport *
from pool_ext.includes.pool_freelist cimport *
from pool_ext.includes.pool_slots cimport *
from pool_ext.includes.pool_addrmap cimport *
from pool_ext.includes.pool_mem cimport *
from pool_ext.includes.pool_waitq cimport *
from pool_ext.includes.pool_cache cimport *
from pool_ext.includes.pool_classes cimport *
from pool_ext.includes.pool_numpy cimport *
from pool_ext.includes.pool_clock cimport *
from pool_ext.includes.pool_stats cimport *

import asyncio as _asyncio
import contextvars as _contextvars
import inspect as _inspect
import operator as _operator
import os as _os
import threading as _threading
import time as _time
import types as _types
import warnings as _warnings
import weakref as _weakref

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
    void PyThread_release_lock(PyThread_type_lock) noexcept nogil
    long long PY_TIMEOUT_MAX

cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1
    ctypedef int (*visitproc)(PyObject *, void *) noexcept
    ctypedef int (*traverseproc)(PyObject *, visitproc, void *) noexcept
    ctypedef int (*inquiry)(PyObject *) noexcept
    ctypedef void (*destructor)(PyObject *) noexcept
    ctypedef struct PyTypeObject:
        unsigned long tp_flags
        destructor tp_dealloc
        traverseproc tp_traverse
        inquiry tp_clear
        PyObject *tp_dict
    unsigned long Py_TPFLAGS_BASETYPE
    void PyType_Modified(PyTypeObject *t)
    # A method written in C (its PyMethodDef filled at import): _entries.pxi
    ctypedef struct PyMethodDef:
        const char *ml_name
        void *ml_meth
        int ml_flags
        const char *ml_doc
    int METH_FASTCALL, METH_KEYWORDS
    object PyDescr_NewMethod(PyTypeObject *t, PyMethodDef *m)
    int PyDict_SetItemString(PyObject *d, const char *key, object value) except -1
    Py_ssize_t PyTuple_GET_SIZE(PyObject *t)
    PyObject *PyTuple_GET_ITEM(PyObject *t, Py_ssize_t i)

#: Which variant of the C core's atomics this build uses (docs: how it works).
ATOMICS = (<bytes>POOL_ATOMIC_VARIANT).decode()
#: The largest capacity a pool accepts: slot indices are 31-bit.  Memory
#: bounds a capacity sooner: slots are allocated when the pool is built,
#: 52 to 84 bytes each for ObjectPool (an address map of 16-byte entries, a
#: power of two >= 2 x capacity, is most of it), the buffer + 12 (+ 16 on
#: GIL builds) for BufferPool; MAX_CAPACITY objects need 104 GiB.  A
#: capacity whose memory cannot be had raises MemoryError saying so
#: (docs/guide.md: what a capacity costs).
MAX_CAPACITY = POOL_MAX_CAPACITY
# False if built without numpy's headers: ArrayPool then makes no arrays.
_NUMPY_HEADERS = bool(POOL_NUMPY_HEADERS)

cdef object _monotonic = _time.monotonic
cdef object _NOTHING = object()   # "no slot free"; a pooled object is never None
cdef object _REJECTED = object()  # an idle object failed check() or expired (destroyed)
cdef object _REFILL = object()    # and the waiter it was granted to keeps its (empty) slot

include "_args.pxi"
include "_poolbase.pxi"
include "_wait.pxi"
include "_holders.pxi"
include "_lease.pxi"
include "_async.pxi"
include "_objectpool.pxi"
include "_objectpool_items.pxi"
include "_objectpool_slots.pxi"
include "_health.pxi"
include "_async_hooks.pxi"
include "_bufferpool.pxi"
include "_pooledbuffer.pxi"
include "_ndarray.pxi"
include "_arraypool.pxi"
include "_queue.pxi"
include "_shared_segment.pxi"
include "_shared.pxi"
include "_shared_buffer.pxi"
include "_entries.pxi"
