# Mirrors src/pool_addrmap.h.
from libc.stdint cimport uint32_t, uintptr_t

cdef extern from "pool_addrmap.h" nogil:
    enum:
        POOL_MAP_EDUPLICATE
        POOL_MAP_ENOTFOUND
    ctypedef struct pool_addrmap_t:
        pass
    void pool_addrmap_init_empty(pool_addrmap_t *map)
    int pool_addrmap_init(pool_addrmap_t *map, uint32_t capacity)
    void pool_addrmap_free(pool_addrmap_t *map)
    uint32_t pool_addrmap_find(pool_addrmap_t *map, uintptr_t key)
    int pool_addrmap_insert(pool_addrmap_t *map, uintptr_t key, uint32_t index)
    int pool_addrmap_remove(pool_addrmap_t *map, uintptr_t key)
