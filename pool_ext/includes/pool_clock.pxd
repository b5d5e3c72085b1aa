# Mirrors src/pool_clock.h.
from libc.stdint cimport uint64_t

cdef extern from "pool_clock.h" nogil:
    uint64_t POOL_CLOCK_NEVER
    uint64_t pool_clock_ns()
    uint64_t pool_clock_from_seconds(double s)
    uint64_t pool_mix64(uint64_t x)
