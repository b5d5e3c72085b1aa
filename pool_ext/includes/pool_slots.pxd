# Mirrors src/pool_slots.h.
from libc.stdint cimport uint32_t, uint64_t
from pool_ext.includes.pool_freelist cimport pool_freelist_t

cdef extern from "pool_slots.h" nogil:
    enum:
        POOL_SLOT_FREE
        POOL_SLOT_HELD
        POOL_SLOT_RELEASING
        POOL_SLOT_RETIRING
    enum:
        POOL_OK
        POOL_FREED
        POOL_DEFERRED
        POOL_ENOTHELD
        POOL_ESTALE
        POOL_EEXPORTS
    uint32_t POOL_SLOT_STATE(uint64_t w)
    uint32_t POOL_SLOT_GEN(uint64_t w)
    ctypedef struct pool_slots_t:
        uint32_t capacity
        uint32_t shift
        uint32_t *next
        uint64_t *state     # NULL until pool_slots_init succeeds
    int pool_slots_init(pool_slots_t *s, uint32_t capacity, pool_freelist_t *fl)
    int pool_slots_init_padded(pool_slots_t *s, uint32_t capacity, pool_freelist_t *fl,
                               int pad)
    void pool_slots_free(pool_slots_t *s)
    uint32_t pool_slots_hold(pool_slots_t *s, uint32_t i)
    uint32_t pool_slots_pop_hold(pool_slots_t *s, pool_freelist_t *fl, uint32_t *gen)
    uint32_t pool_slots_pop_own(pool_slots_t *s, pool_freelist_t *fl)
    void pool_slots_own(pool_slots_t *s, uint32_t i)
    void pool_slots_free_push(pool_slots_t *s, pool_freelist_t *fl, uint32_t i)
    void pool_slots_push(pool_slots_t *s, pool_freelist_t *fl, uint32_t i)
    uint64_t pool_slots_load(pool_slots_t *s, uint32_t i)
    int pool_slots_release_begin(pool_slots_t *s, uint32_t i, uint32_t gen)
    int pool_slots_release_handle(pool_slots_t *s, uint32_t i, uint32_t gen)
    int pool_slots_export_begin(pool_slots_t *s, uint32_t i, uint32_t gen)
    int pool_slots_export_end(pool_slots_t *s, uint32_t i, uint32_t gen)
    bint pool_slots_is_held(pool_slots_t *s, uint32_t i, uint32_t gen)
