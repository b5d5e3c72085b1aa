# Mirrors src/pool_classes.h.
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "pool_classes.h" nogil:
    enum:
        POOL_CLEAR_NEVER
        POOL_CLEAR_ON_RELEASE
        POOL_CLEAR_POISON
    enum:
        POOL_TAKE_HIT
        POOL_TAKE_MISS
        POOL_TAKE_ENOMEM
        POOL_TAKE_EPOISON
    uint32_t POOL_BLOCK_ZEROED
    uint32_t POOL_CLASSES_SLOTS
    ctypedef struct pool_block_t:
        unsigned char *ptr
        size_t size
        uint32_t cls
        uint32_t flags
        size_t bad_offset
    ctypedef struct pool_class_t:
        uint64_t out
        uint64_t n_cached
        uint64_t hits
        uint64_t misses
    ctypedef struct pool_classes_t:
        pool_class_t *classes     # NULL until pool_classes_init succeeds
        uint64_t max_bytes
        uint64_t retained
        uint64_t peak
        uint64_t live
        size_t max_size
        size_t alignment
        uint32_t nclasses
        uint32_t capacity
        int clear
    int pool_classes_init(pool_classes_t *pc, uint64_t max_bytes, size_t max_size,
                          size_t alignment, int clear)
    void pool_classes_destroy(pool_classes_t *pc)
    uint64_t pool_classes_trim(pool_classes_t *pc, uint64_t target)
    size_t pool_classes_size(const pool_classes_t *pc, uint32_t c)
    int pool_classes_take_mpmc(pool_classes_t *pc, size_t nbytes, pool_block_t *b)
    int pool_classes_give_mpmc(pool_classes_t *pc, const pool_block_t *b)
