# Mirrors src/pool_spinlock.h.
from libc.stdint cimport uint64_t
from pool_ext.includes.pool_atomic cimport *

cdef extern from "pool_spinlock.h" nogil:
    ctypedef struct pool_spinlock_t:
        uint64_t word
    void pool_spin_lock(pool_spinlock_t *l)
    void pool_spin_unlock(pool_spinlock_t *l)
