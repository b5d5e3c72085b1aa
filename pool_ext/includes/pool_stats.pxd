# Mirrors src/pool_stats.h.
from libc.stdint cimport uint64_t

cdef extern from "pool_stats.h" nogil:
    void pool_stat_add(uint64_t *c, uint64_t v)
    uint64_t pool_stat_since_value(uint64_t v, uint64_t *mark, int reset)
    uint64_t pool_stat_since(const uint64_t *c, uint64_t *mark, bint reset)
    void pool_stat_raise(uint64_t *mx, uint64_t v)
    uint64_t pool_stat_max(uint64_t *mx, bint reset)
