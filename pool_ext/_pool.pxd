# The declarations of pool_ext._pool's classes: their fields and cdef
# methods.  The code is in the .pxi named after each class (see _pool.pyx).
cimport cython
from cpython.object cimport PyObject
from libc.stdint cimport uint32_t, uint64_t, uintptr_t

# First: it includes pool_mode.h, which picks the core's atomics variant
# before any core header is read (plain operations on GIL builds).
from pool_ext.includes.pool_atomic cimport *
from pool_ext.includes.pool_addrmap cimport pool_addrmap_t
from pool_ext.includes.pool_freelist cimport pool_freelist_t
from pool_ext.includes.pool_mem cimport pool_arena_t
from pool_ext.includes.pool_slots cimport pool_slots_t
from pool_ext.includes.pool_waitq cimport pool_waitq_t, pool_waiter_t
from pool_ext.includes.pool_cache cimport pool_cache_t, pool_cache_shard_t


# How many counters stats() reports (stats(reset=True) keeps a mark for
# each: src/pool_stats.h); _poolbase.pxi lists them.
cdef enum:
    _N_COUNTERS = 13


@cython.final
cdef class _Hold:
    """One tracked hand-out: who, since when, from where (_holders.pxi)."""
    cdef uint64_t since_ns
    cdef str thread_name           # None: the thread was not made by threading
    cdef unsigned long ident       # its thread id
    cdef object handle             # BufferPool: a weak reference to the PooledBuffer (or array)
    cdef bint warned               # PoolLeakWarning emitted for this hand-out
    # the acquiring stack, innermost first: code objects (owned) and the byte
    # offset of each frame's instruction (pool_frames.h)
    cdef int nframes
    cdef PyObject *codes[16]       # (16: _STACK_LIMIT in _holders.pxi)
    cdef int lastis[16]


@cython.final
cdef class _Holders:
    cdef uint32_t _capacity
    cdef PyObject **_records       # slot -> _Hold while tracked, else NULL
    cdef uint64_t _leak_ns         # POOL_CLOCK_NEVER: no leak warnings

    cdef void begin(self, uint32_t i, object handle) noexcept
    cdef _Hold end(self, uint32_t i)
    cdef _Hold get(self, uint32_t i)
    cdef list snapshot(self, _PoolBase pool)


cdef class _PoolBase:
    cdef uint32_t _capacity
    cdef pool_waitq_t _waitq       # waiters, `closed`, fork handling
    cdef pool_cache_t _cache       # the threads' cached slots (free-threaded builds)
    # statistics: atomic adds (plain under the GIL), read with no ordering.
    # Counters, never zeroed (src/pool_stats.h):
    cdef uint64_t _acquires
    cdef uint64_t _releases
    cdef uint64_t _creations
    cdef uint64_t _destructions
    cdef uint64_t _waits
    cdef uint64_t _timeouts
    cdef uint64_t _wait_ns         # time asleep in acquire() (the slow path only)
    cdef uint64_t _holds           # tracked hand-outs that ended
    cdef uint64_t _hold_ns         # and how long they were held
    cdef uint64_t _leaks           # PoolLeakWarnings emitted
    cdef uint64_t _checks_failed   # ObjectPool: check() false or raised
    cdef uint64_t _expired         # ObjectPool: past max_lifetime or max_idle
    cdef uint64_t _discarded       # ObjectPool: discard()
    cdef uint64_t _marks[_N_COUNTERS]
    # maxima, reset by stats(reset=True)
    cdef uint64_t _wait_ns_max
    cdef uint64_t _hold_ns_max
    # observing: set once by _observe_init, read-only after
    cdef str _name                 # None: unnamed
    cdef _Holders _holders         # None unless tracking (_holders.pxi)

    # each pool's own (_poolbase.pxi calls them on the slow path)
    cdef object _try_take(self)
    cdef int _lease_exit(self, object item) except -1
    cdef object _hand_out(self, uint32_t i, uint32_t k, double deadline)
    cdef int _give_up(self, uint32_t i, uint32_t k) except -1
    # shared
    cdef int _observe_init(self, object name, object track, object leak_timeout) except -1
    cdef int _cache_init(self) except -1
    cdef object _acquire(self, object timeout)
    cdef void _wake(self, uint32_t n) noexcept
    cdef void _released(self) noexcept
    cdef int _leave(self, pool_waiter_t *w, uint32_t *slot, uint32_t *k) noexcept
    cdef int _pass_grant(self, uint32_t slot, uint32_t k) except -1
    cdef bint _close_begin(self) noexcept
    cdef object _new_lease(self, object timeout)
    cdef uint64_t _in_use(self) noexcept
    cdef str _label(self)
    cdef str _exhausted_message(self, str what)
    cdef int _check_leaks(self) except -1


@cython.final
cdef class _AsyncWaiter:
    cdef pool_waiter_t rec        # a deferred record: woken from Python
    cdef object loop
    cdef object fut
    cdef unsigned long thread     # PyThread_get_thread_ident() of the loop's thread

    cdef bint _wake(self) noexcept


@cython.final
cdef class _AsyncLease:
    cdef _PoolBase _pool
    cdef object _timeout
    cdef object _item
    cdef uint32_t _index          # an ObjectPool's: the hand-out's slot (POOL_NIL: none)
    cdef uint32_t _gen            # ...and generation
    cdef int _state               # _LEASE_IDLE, _ENTERING or _ACTIVE (_lease.pxi)


@cython.final
cdef class _Lease:
    cdef _PoolBase _pool
    cdef PyObject *_timeout       # owned; NULL: None (wait forever)
    cdef PyObject *_item          # owned; what an active lease holds, unless
    cdef uint32_t _index          # ...it took an ObjectPool's hand-out: then
    cdef uint32_t _gen            # ...that hand-out's slot and generation
    cdef int _state

    cdef object _cold_enter(self)
    cdef int _give_back(self, PyObject *item) except -1


@cython.final
cdef class ObjectPool(_PoolBase):
    cdef object __weakref__       # the evictor thread holds the pool weakly
    cdef object _factory
    cdef object _reset
    cdef object _validate
    cdef object _destroy
    cdef object _check
    cdef PyObject **_items         # slot -> owned object, NULL while empty
    cdef pool_slots_t _slots
    cdef pool_freelist_t _idle    # FREE slots holding an object
    cdef pool_freelist_t _empty   # FREE slots holding nothing
    cdef pool_addrmap_t _map      # object address -> slot
    cdef bint _plain_release      # nothing to do at release: the short path
    cdef bint _plain_take         # nothing to do at hand-out: the short path
    cdef bint _pass_slot          # factory(slot) rather than factory()
    cdef bint _async_hooks        # a hook is a coroutine function (_async_hooks.pxi)
    cdef bint _async_release      # reset or validate is one
    cdef bint _plain_take_async   # _plain_take, whatever the hooks: acquire_async's
    cdef dict _gone               # id -> (type, discarded) of recent discards
    # health (_health.pxi); the side arrays exist only if their limit is set
    cdef uint64_t _lifetime_ns    # max_lifetime; POOL_CLOCK_NEVER: none
    cdef uint64_t _max_idle_ns    # max_idle; POOL_CLOCK_NEVER: none
    cdef uint64_t *_expires_ns    # slot -> when its object's lifetime ends
    cdef uint64_t *_idle_ns       # slot -> when its object last went idle
    cdef uint64_t *_leased_gen    # slot -> 1 << 32 | gen of its hand-out a lease took
    cdef set _lease_discards      # (slot, gen) of leased hand-outs discard()ed, until exit
    cdef uint64_t *_hook_thread   # slot -> the thread running its reset, validate or
                                  # check (0: none); NULL without such hooks
    cdef uint32_t _min_idle
    cdef object _lock             # a threading.Lock: start/stop_evictor
    cdef object _evictor          # the evictor's threading.Thread, or None
    cdef object _evictor_stop     # and the threading.Event that stops it
    cdef list _rounds             # the evict() and min_idle rounds running (_Round)
    cdef uint64_t _destroying     # objects _drain_idle took whose destroy() has not ended

    # the hot path
    cdef inline uint32_t _pop_idle(self, uint32_t *gen) noexcept
    cdef inline void _mark_leased(self, uint32_t i, uint32_t gen) noexcept
    cdef bint _take_lease_discard(self, uint32_t i, uint32_t gen) noexcept
    cdef inline int _release(self, object obj, bint in_lease) except -1
    cdef inline int _release_slot(self, uint32_t i, uint32_t gen) except -1
    cdef inline int _unhold_idle(self, uint32_t i) except -1
    cdef inline int _after_idle_push(self) except -1
    cdef inline int _return_idle(self, uint32_t i) except -1
    cdef int _cold_uncache(self, pool_cache_shard_t *sh, uint32_t i) except -1
    cdef int _cold_after_push(self) except -1
    # out of line
    cdef object _cold_closed_try(self)
    cdef object _cold_closed(self)
    cdef int _cold_unknown(self, object obj, int how) except -1
    cdef int _cold_not_in_use(self, object obj, int how) except -1
    cdef int _cold_slot_not_in_use(self, uint32_t i, uint32_t gen) except -1
    cdef int _cold_drain(self) except -1
    cdef object _cold_acquire(self, object timeout)
    cdef object _take(self, double deadline)
    cdef uint32_t _discard_begin(self, object obj) except? 0xffffffff
    cdef void _unhold_empty(self, uint32_t i) noexcept
    cdef int _push_idle(self, uint32_t i) except -1
    cdef int _cold_async_release(self) except -1
    cdef void _put(self, uint32_t i, object obj) noexcept


@cython.final
cdef class _SlotAfterDestroy:
    cdef ObjectPool pool          # None once the slot is back
    cdef uint32_t i

    cdef void give_back(self) noexcept


cdef class _Store:
    cdef pool_slots_t *slots       # the slot states a PooledBuffer is checked against


@cython.final
cdef class _BufferStore(_Store):
    cdef pool_arena_t arena
    cdef pool_slots_t table        # slots == &table


@cython.final
cdef class BufferPool(_PoolBase):
    cdef _BufferStore _store       # the arena and the slot states
    cdef pool_arena_t *_arena      # &_store.arena
    cdef pool_slots_t *_slots      # &_store.slots
    cdef PyObject **_handles       # 2 per slot: released handles kept for reuse, or NULL
    cdef pool_freelist_t _free
    cdef bint _zero_on_release
    cdef size_t _requested_alignment

    cdef inline object _take(self)
    cdef inline object _handle(self, uint32_t i, uint32_t gen)
    cdef object _cold_gate(self)
    cdef object _cold_closed_try(self)
    cdef object _cold_closed(self)
    cdef object _cold_new_handle(self, uint32_t i, uint32_t gen)
    cdef inline void _keep_handle(self, PooledBuffer buf) noexcept
    cdef inline void _return_slot(self, uint32_t i) noexcept
    cdef void _cold_uncache(self, pool_cache_shard_t *sh, uint32_t i) noexcept
    cdef object _array(self, object shape, object dtype, object order, object timeout,
                       bint zero)


@cython.final
cdef class PooledBuffer:
    cdef object __weakref__       # a tracking pool's holders() reaches it weakly
    cdef PyObject *_pool          # owned: BufferPool or ArrayPool while it holds a slot
    cdef _Store _store            # the memory and slot states; always
    cdef unsigned char *_ptr
    cdef Py_ssize_t _len          # also the export's shape[0]
    cdef uint32_t _index
    cdef uint32_t _gen
    cdef uint32_t _released       # 1 once released (or never bound)

    cdef void _dropped(self) noexcept
    cdef void _retire(self) noexcept
    cdef int _check_live(self) except -1
    cdef int _release_if_live(self) except -1
    cdef inline int _release(self) except -1
    cdef inline int _end(self, int rc) noexcept


# ArrayPool (_arraypool.pxi) and the arrays of both pools (_ndarray.pxi).
from pool_ext.includes.pool_classes cimport pool_classes_t, pool_block_t


@cython.final
cdef class _ArrayCache:
    cdef pool_classes_t pc         # the size classes; freed with the last block


@cython.final
cdef class _Block(_Store):
    cdef _ArrayCache _cache        # set before the block is taken
    cdef pool_block_t block        # block.ptr: NULL once given back
    cdef pool_slots_t _table1      # a one-slot table, for a PooledBuffer hand-out
    cdef uint32_t _next1
    cdef uint64_t _state1

    cdef void _give_back(self) noexcept


@cython.final
cdef class _BufferArrayBase:
    cdef PooledBuffer _buf         # holds a BufferPool slot for an array
    cdef bint _exported            # and exports it (a tracking pool: _array_hold)


@cython.final
cdef class ArrayPool:
    cdef _ArrayCache _cache
    cdef pool_classes_t *_pc       # &_cache.pc
    cdef object _max_size          # None or an int
    cdef str _clear

    cdef _Block _take(self, size_t nbytes)
    cdef object _array(self, object shape, object dtype, object order, bint zero)
    cdef object _array_like(self, object a, object dtype, object order, bint zero)


@cython.final
cdef class _ArrayLease:
    cdef ArrayPool _pool
    cdef object _shape             # nbytes (lease) or a shape (borrow)
    cdef object _dtype
    cdef object _order
    cdef bint _array               # borrow(): an ndarray, else a PooledBuffer
    cdef object _item
    cdef int _state
