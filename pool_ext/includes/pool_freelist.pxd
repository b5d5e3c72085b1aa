# Mirrors src/pool_freelist.h.
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "pool_freelist.h" nogil:
    uint32_t POOL_NIL
    uint32_t POOL_MAX_CAPACITY
    ctypedef struct pool_freelist_t:
        uint64_t head
    void pool_freelist_init(pool_freelist_t *fl)
    uint32_t pool_freelist_pop_mpmc(pool_freelist_t *fl, uint32_t *next)
    void pool_freelist_push_mpmc(pool_freelist_t *fl, uint32_t *next, uint32_t index)
