# Mirrors src/pool_cache.h.
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "pool_cache.h" nogil:
    ctypedef struct pool_cache_shard_t:
        uint64_t acquires
        uint64_t releases
    ctypedef struct pool_cache_t:
        pool_cache_shard_t *shards
    void pool_cache_none(pool_cache_t *c)
    int pool_cache_init(pool_cache_t *c)
    void pool_cache_free(pool_cache_t *c)
    pool_cache_shard_t *pool_cache_mine(pool_cache_t *c)
    uint32_t pool_cache_take(pool_cache_shard_t *s)
    bint pool_cache_put(pool_cache_shard_t *s, uint32_t i)
    bint pool_cache_reclaim(pool_cache_shard_t *s, uint32_t i)
    uint32_t pool_cache_steal(pool_cache_t *c)
    uint64_t pool_cache_sum(pool_cache_t *c, int releases)
