# Mirrors src/pool_atomic.h.  pool_mode.h comes first: it picks the variant.
from cpython.object cimport PyObject
from libc.stdint cimport uint32_t, uint64_t, uintptr_t

cdef extern from "pool_mode.h":
    bint POOL_CACHE_HANDLES
    bint POOL_THREAD_CACHE
    bint POOL_RACY_LOOKUP
    Py_ssize_t pool_refcnt(PyObject *o)
    bint pool_weakly_referenced(PyObject *o)
    long long POOL_PARK_SLICE_US
    bint POOL_FREE_THREADED

cdef extern from "pool_atomic.h" nogil:
    const char *POOL_ATOMIC_VARIANT
    int POOL_RELAXED, POOL_ACQUIRE, POOL_RELEASE, POOL_ACQ_REL, POOL_SEQ_CST
    uint64_t pool_load64(const uint64_t *p, int mo)
    void pool_store64(uint64_t *p, uint64_t v, int mo)
    uint32_t pool_load32(const uint32_t *p, int mo)
    uintptr_t pool_loadptr(const uintptr_t *p, int mo)
    void pool_storeptr(uintptr_t *p, uintptr_t v, int mo)
    void pool_store32(uint32_t *p, uint32_t v, int mo)
    bint pool_cas64(uint64_t *p, uint64_t *expected, uint64_t desired,
                    int success_mo, int failure_mo)
    uint64_t pool_fetch_add64(uint64_t *p, uint64_t v, int mo)
    void pool_fence(int mo)
