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
    ctypedef struct pool_slots_t:
        uint32_t capacity
        uint32_t *next
        uint64_t *state
    uint32_t POOL_SLOT_STATE(uint64_t w)
    uint32_t POOL_SLOT_GEN(uint64_t w)
    uint32_t pool_slot_hold(uint64_t *state, uint32_t i)
    uint64_t pool_slot_load(uint64_t *state, uint32_t i)
    int pool_slot_release_begin(uint64_t *state, uint32_t i, uint32_t gen)
    void pool_slot_own(uint64_t *state, uint32_t i)
    void pool_slot_set_free(uint64_t *state, uint32_t i)
    int pool_slot_release_handle(uint64_t *state, uint32_t i, uint32_t gen)
    int pool_slot_export_begin(uint64_t *state, uint32_t i, uint32_t gen)
    int pool_slot_export_end(uint64_t *state, uint32_t i, uint32_t gen)
    bint pool_slot_is_held(uint64_t *state, uint32_t i, uint32_t gen)
    int pool_slots_init(pool_slots_t *slots, uint32_t capacity, pool_freelist_t *fl)
    void pool_slots_free(pool_slots_t *slots)
    size_t pool_slots_bytes_per_slot()
