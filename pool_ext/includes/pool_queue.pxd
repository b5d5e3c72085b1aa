# Mirrors src/pool_queue.h.
from libc.stdint cimport uint64_t

cdef extern from "pool_queue.h" nogil:
    enum:
        POOL_QW_OUT
        POOL_QW_QUEUED
        POOL_QW_GRANTED
        POOL_Q_DONE
        POOL_Q_EMPTY
        POOL_Q_FULL
        POOL_Q_QUEUED
        POOL_Q_GROW
    ctypedef struct pool_qwaiter_t:
        void *item
        void (*wake)(pool_qwaiter_t *w) noexcept nogil
        void *ctx
        int state
    ctypedef struct pool_queue_t:
        void **ring
        size_t cap
        size_t head
        uint64_t count
        uint64_t maxsize
    void pool_queue_init(pool_queue_t *q, int lifo)
    int pool_queue_put(pool_queue_t *q, void *item, pool_qwaiter_t *w)
    int pool_queue_get(pool_queue_t *q, void **out, pool_qwaiter_t *w)
    int pool_queue_leave(pool_queue_t *q, pool_qwaiter_t *w)
    int pool_queue_give_back(pool_queue_t *q, void *item)
    size_t pool_queue_next_cap(pool_queue_t *q)
    void **pool_queue_swap_ring(pool_queue_t *q, void **ring, size_t cap)
    void pool_queue_detach(pool_queue_t *q, void ***ring, size_t *cap, size_t *head,
                           uint64_t *n)
    uint64_t pool_queue_count(pool_queue_t *q)
    uint64_t pool_queue_snapshot(pool_queue_t *q, void **out, uint64_t n,
                                 void (*keep)(void *) noexcept nogil)
    void pool_queue_waiting(pool_queue_t *q, size_t *getters, size_t *putters)
    void pool_queue_set_maxsize(pool_queue_t *q, uint64_t maxsize)
