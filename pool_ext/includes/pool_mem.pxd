# Mirrors src/pool_mem.h.
from libc.stdint cimport uint32_t

cdef extern from "pool_mem.h" nogil:
    size_t POOL_CACHE_LINE
    int POOL_MEM_EINVAL, POOL_MEM_ENOMEM
    ctypedef struct pool_arena_t:
        unsigned char *base
        void *raw
        size_t stride
        size_t size
        size_t alignment
        uint32_t count
    int pool_arena_init(pool_arena_t *arena, size_t size, uint32_t count, size_t alignment)
    void pool_arena_free(pool_arena_t *arena)
    unsigned char *pool_arena_slot(const pool_arena_t *arena, uint32_t i)
