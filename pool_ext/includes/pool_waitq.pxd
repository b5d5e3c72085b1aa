# Mirrors src/pool_waitq.h.
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "pool_waitq.h" nogil:
    ctypedef struct pool_waiter_t:
        pool_waiter_t *next
        bint queued
        bint signaled
        void (*wake)(pool_waiter_t *w) noexcept nogil
        void *ctx
    ctypedef struct pool_waitq_t:
        uint64_t closed
    void pool_waitq_init(pool_waitq_t *q)
    void pool_waitq_open(pool_waitq_t *q)
    void pool_waitq_enqueue(pool_waitq_t *q, pool_waiter_t *w)
    enum:
        POOL_LEFT_UNLINKED
        POOL_LEFT_SIGNALED
    int pool_waitq_leave(pool_waitq_t *q, pool_waiter_t *w, pool_waiter_t **deferred)
    int pool_waitq_pass_on(pool_waitq_t *q, pool_waiter_t *w, pool_waiter_t **deferred)
    uint32_t pool_waitq_wake(pool_waitq_t *q, uint32_t n, pool_waiter_t **deferred)
    bint pool_waitq_close(pool_waitq_t *q, pool_waiter_t **deferred)
    uint64_t pool_waitq_waiting(pool_waitq_t *q)
    bint pool_waitq_notify(pool_waitq_t *q)
    bint pool_waitq_is_closed(pool_waitq_t *q)
