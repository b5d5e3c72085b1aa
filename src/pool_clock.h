/*
 * pool_clock.h - a monotonic clock in nanoseconds, for the per-slot time
 * stamps of ObjectPool's health limits and the pools' wait and hold times.
 *
 * Why not Python's time.monotonic(): the stamps are taken on paths where a
 * Python call would be most of the cost (a tracked hand-out, a release that
 * stamps an idle time).  clock_gettime(CLOCK_MONOTONIC) is a vDSO call on
 * Linux (about 20 ns); QueryPerformanceCounter on Windows.  Only differences
 * between two readings of this clock are ever used; they are never compared
 * with time.monotonic().
 *
 * Concurrency contract: every function may be called from any thread.
 */
#ifndef POOL_CLOCK_H
#define POOL_CLOCK_H

#include <stdint.h>

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

static inline uint64_t pool_clock_ns(void)
{
    /* The frequency is fixed at boot; reading it each time keeps this
     * header free of state (it is cheap: a read of shared user data). */
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    /* split, so that c * 1e9 cannot overflow for uptimes of years */
    return (uint64_t)(c.QuadPart / f.QuadPart) * 1000000000u
        + (uint64_t)(c.QuadPart % f.QuadPart) * 1000000000u / (uint64_t)f.QuadPart;
}
#else
#include <time.h>

static inline uint64_t pool_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);   /* cannot fail with this clock id */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#endif

/* Seconds (a double >= 0, from the Python side) to nanoseconds; anything that
 * would not fit (inf, 1e300) becomes POOL_CLOCK_NEVER: "no limit". */
#define POOL_CLOCK_NEVER UINT64_MAX

static inline uint64_t pool_clock_from_seconds(double s)
{
    if (!(s < 9.2e9))          /* ~292 years in ns is where uint64 ends; NaN too */
        return POOL_CLOCK_NEVER;
    return (uint64_t)(s * 1e9);
}

/* A well-mixed 64-bit value from x (splitmix64's finaliser): the jitter of
 * max_lifetime, from the clock and a slot number.  Not for cryptography. */
static inline uint64_t pool_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

#endif /* POOL_CLOCK_H */
