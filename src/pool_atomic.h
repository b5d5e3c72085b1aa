/*
 * pool_atomic.h - the only file that knows about compilers and memory orders.
 *
 * Design
 * ------
 * Every shared word of the core (free-list heads, next[] links, slot state
 * words, counters, the address map) is an ordinary integer field accessed
 * only through the functions below, so that one struct layout serves two
 * builds of the same algorithm:
 *
 *   - POOL_ATOMIC_PLAIN undefined (C tests, free-threaded CPython): real
 *     atomics.  GCC/Clang use the __atomic builtins with the memory order
 *     each call site names; MSVC uses the Interlocked intrinsics, which are
 *     full barriers, so every order is honoured (stronger than asked).
 *
 *   - POOL_ATOMIC_PLAIN defined (CPython with the GIL): plain loads and
 *     stores.  This is correct only because every caller holds the GIL, which
 *     serialises all access to the core and whose hand-off between threads is
 *     itself a full barrier.  Measured here, one uncontended atomic
 *     read-modify-write costs 7-14 ns, close to the whole cost of a Python
 *     call pair, which is why the GIL build does not pay for them.
 *
 * Invariant for callers: in the PLAIN build, never touch the core without the
 * GIL (no `nogil` section may call into it).
 */
#ifndef POOL_ATOMIC_H
#define POOL_ATOMIC_H

#include <stdint.h>

#if defined(POOL_ATOMIC_PLAIN)
#define POOL_ATOMIC_VARIANT "plain (serialised by the GIL)"
#elif defined(_MSC_VER) && !defined(__clang__)
#define POOL_ATOMIC_VARIANT "atomic (MSVC Interlocked)"
#else
#define POOL_ATOMIC_VARIANT "atomic (GCC/Clang __atomic)"
#endif

/* Memory orders, spelled once.  MSVC ignores them: Interlocked is seq_cst. */
#if !defined(POOL_ATOMIC_PLAIN) && !(defined(_MSC_VER) && !defined(__clang__))
#define POOL_RELAXED __ATOMIC_RELAXED
#define POOL_ACQUIRE __ATOMIC_ACQUIRE
#define POOL_RELEASE __ATOMIC_RELEASE
#define POOL_ACQ_REL __ATOMIC_ACQ_REL
#define POOL_SEQ_CST __ATOMIC_SEQ_CST
#else
#define POOL_RELAXED 0
#define POOL_ACQUIRE 2
#define POOL_RELEASE 3
#define POOL_ACQ_REL 4
#define POOL_SEQ_CST 5
#endif

#if defined(POOL_ATOMIC_PLAIN)
/* ---- GIL build: plain operations; the GIL orders everything. ---------- */

/* one line each, like the __atomic variants below */
/* clang-format off */
static inline uint64_t pool_load64(const uint64_t *p, int mo) { (void)mo; return *p; }
static inline void pool_store64(uint64_t *p, uint64_t v, int mo) { (void)mo; *p = v; }
static inline uint32_t pool_load32(const uint32_t *p, int mo) { (void)mo; return *p; }
static inline void pool_store32(uint32_t *p, uint32_t v, int mo) { (void)mo; *p = v; }
static inline uintptr_t pool_loadptr(const uintptr_t *p, int mo) { (void)mo; return *p; }
static inline void pool_storeptr(uintptr_t *p, uintptr_t v, int mo) { (void)mo; *p = v; }

/* Returns 1 and stores `desired` if *p == *expected; else 0 and *expected = *p. */
static inline int pool_cas64(uint64_t *p, uint64_t *expected, uint64_t desired,
                             int success_mo, int failure_mo)
{
    (void)success_mo; (void)failure_mo;
    if (*p == *expected) { *p = desired; return 1; }
    *expected = *p;
    return 0;
}
/* clang-format on */

static inline uint64_t pool_fetch_add64(uint64_t *p, uint64_t v, int mo)
{
    uint64_t old = *p;
    (void)mo;
    *p = old + v;
    return old;
}

static inline void pool_fence(int mo) { (void)mo; }

#elif defined(_MSC_VER) && !defined(__clang__)
/* ---- MSVC: Interlocked intrinsics (full barriers) on x64 and ARM64. ----
 * One function per width and operation, alike on purpose: each names the
 * intrinsic of its own width. */
#include <intrin.h>

static inline uint64_t pool_load64(const uint64_t *p, int mo)
{
    (void)mo;  /* a CAS that never changes the value is a seq_cst load */
    return (uint64_t)_InterlockedCompareExchange64((volatile __int64 *)p, 0, 0);
}
static inline void pool_store64(uint64_t *p, uint64_t v, int mo)
{
    (void)mo;
    (void)_InterlockedExchange64((volatile __int64 *)p, (__int64)v);
}
static inline uint32_t pool_load32(const uint32_t *p, int mo)
{
    (void)mo;
    return (uint32_t)_InterlockedCompareExchange((volatile long *)p, 0, 0);
}
static inline void pool_store32(uint32_t *p, uint32_t v, int mo)
{
    (void)mo;
    (void)_InterlockedExchange((volatile long *)p, (long)v);
}
static inline uintptr_t pool_loadptr(const uintptr_t *p, int mo)
{
    (void)mo;
    return (uintptr_t)_InterlockedCompareExchangePointer((void *volatile *)p, 0, 0);
}
static inline void pool_storeptr(uintptr_t *p, uintptr_t v, int mo)
{
    (void)mo;
    (void)_InterlockedExchangePointer((void *volatile *)p, (void *)v);
}
static inline int pool_cas64(uint64_t *p, uint64_t *expected, uint64_t desired,
                             int success_mo, int failure_mo)
{
    __int64 seen;
    (void)success_mo;
    (void)failure_mo;
    seen = _InterlockedCompareExchange64((volatile __int64 *)p, (__int64)desired,
                                         (__int64)*expected);
    if ((uint64_t)seen == *expected) return 1;
    *expected = (uint64_t)seen;
    return 0;
}
static inline uint64_t pool_fetch_add64(uint64_t *p, uint64_t v, int mo)
{
    (void)mo;
    return (uint64_t)_InterlockedExchangeAdd64((volatile __int64 *)p, (__int64)v);
}
static inline void pool_fence(int mo)
{
    (void)mo;  /* always a full barrier */
#if defined(_M_ARM64) || defined(_M_ARM64EC)
    __dmb(_ARM64_BARRIER_ISH);
#elif defined(_M_X64)
    __faststorefence();
#else
    {
        volatile long dummy = 0;
        (void)_InterlockedOr(&dummy, 0);
    }
#endif
}

#else
/* ---- GCC / Clang: __atomic builtins with the caller's memory order. ---- */

static inline uint64_t pool_load64(const uint64_t *p, int mo) { return __atomic_load_n(p, mo); }
static inline void pool_store64(uint64_t *p, uint64_t v, int mo) { __atomic_store_n(p, v, mo); }
static inline uint32_t pool_load32(const uint32_t *p, int mo) { return __atomic_load_n(p, mo); }
static inline void pool_store32(uint32_t *p, uint32_t v, int mo) { __atomic_store_n(p, v, mo); }
static inline uintptr_t pool_loadptr(const uintptr_t *p, int mo) { return __atomic_load_n(p, mo); }
static inline void pool_storeptr(uintptr_t *p, uintptr_t v, int mo) { __atomic_store_n(p, v, mo); }

static inline int pool_cas64(uint64_t *p, uint64_t *expected, uint64_t desired,
                             int success_mo, int failure_mo)
{
    return __atomic_compare_exchange_n(p, expected, desired, 0, success_mo, failure_mo);
}
static inline uint64_t pool_fetch_add64(uint64_t *p, uint64_t v, int mo)
{
    return __atomic_fetch_add(p, v, mo);
}
#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer does not model fences (GCC refuses them under -Werror):
 * under TSan a fence becomes an RMW on one shared word, which TSan does
 * model, and which orders at least as strongly for the Dekker pairs we use. */
/* one word for the whole program (weak: defined in every file that includes
 * this, merged by the linker), so that fences in different files pair */
__attribute__((weak)) uint64_t pool_tsan_fence_word_;
static inline void pool_fence(int mo) { (void)__atomic_fetch_add(&pool_tsan_fence_word_, 0, mo); }
#else
static inline void pool_fence(int mo) { __atomic_thread_fence(mo); }
#endif

#endif

#endif /* POOL_ATOMIC_H */
