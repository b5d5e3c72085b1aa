# Mirrors src/pool_waitq.h.
from libc.stdint cimport uint32_t, uint64_t
from pool_ext.includes.pool_slots cimport pool_slots_t
from pool_ext.includes.pool_freelist cimport pool_freelist_t
from pool_ext.includes.pool_cache cimport pool_cache_t

cdef extern from "pool_waitq.h" nogil:
    ctypedef struct pool_waiter_t:
        pool_waiter_t *next
        bint queued
        bint signaled
        uint32_t grant
        void (*wake)(pool_waiter_t *w) noexcept nogil
        void *ctx
    ctypedef struct pool_waitq_t:
        pass
    enum:
        POOL_GATE_CLOSED
        POOL_JOIN_QUEUED
        POOL_JOIN_TOOK
        POOL_JOIN_CLOSED
        POOL_LEFT_UNLINKED
        POOL_LEFT_SIGNALED
    void pool_waitq_init(pool_waitq_t *q)
    void pool_waitq_bind(pool_waitq_t *q, pool_slots_t *slots, pool_freelist_t *first,
                         pool_freelist_t *second, uint64_t *acquires, pool_cache_t *cache)
    void pool_waitq_open(pool_waitq_t *q)
    int pool_waitq_join(pool_waitq_t *q, pool_waiter_t *w, uint32_t *slot, uint32_t *list)
    void pool_waitq_enqueue(pool_waitq_t *q, pool_waiter_t *w)
    int pool_waitq_leave(pool_waitq_t *q, pool_waiter_t *w, uint32_t *slot, uint32_t *list,
                         pool_waiter_t **deferred)
    uint32_t pool_waitq_released(pool_waitq_t *q, pool_waiter_t **deferred)
    bint pool_waitq_pass_grant(pool_waitq_t *q, uint32_t slot, uint32_t list,
                               pool_waiter_t **deferred)
    void pool_waitq_pass_on(pool_waitq_t *q, pool_waiter_t *w, uint32_t *slot,
                            uint32_t *list, pool_waiter_t **deferred)
    uint32_t pool_waitq_wake(pool_waitq_t *q, uint32_t n, pool_waiter_t **deferred)
    bint pool_waitq_close(pool_waitq_t *q, pool_waiter_t **deferred)
    uint64_t pool_waitq_waiting(pool_waitq_t *q)
    uint64_t pool_waitq_gate(pool_waitq_t *q)
    uint64_t pool_waitq_notify(pool_waitq_t *q)
    bint pool_waitq_is_closed(pool_waitq_t *q)
