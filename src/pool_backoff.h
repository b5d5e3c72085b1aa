/*
 * pool_backoff.h - how a thread waits for another one to finish a short
 * critical section: spin a little, then give the CPU away.
 *
 * Who uses it: the wait queue's spinlock and the address map's readers,
 * which wait for a writer holding its seqlock.  Both critical sections are
 * a few dozen stores with no call out, so spinning is right while the other
 * thread runs; but if it was preempted inside (more threads than cores), a
 * spinner that never yields burns its whole time slice and, on a single
 * core, keeps the holder off the CPU.  POOL_SPIN_LIMIT (arbitrary: critical
 * sections are tens of ns, a yield a few hundred) bounds the spin.
 *
 * POOL_BACKOFF_TEST_HOOK: tests/c defines it to count yields, so a test can
 * prove that a waiter does yield.
 */
#ifndef POOL_BACKOFF_H
#define POOL_BACKOFF_H

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#define pool_cpu_yield_() SwitchToThread()
#else
#include <sched.h>
#define pool_cpu_yield_() sched_yield()
#endif

#define POOL_SPIN_LIMIT 128

#ifdef POOL_BACKOFF_TEST_HOOK
void POOL_BACKOFF_TEST_HOOK(void);
#endif

/* One step of a wait: *spins counts this waiter's tries; every
 * POOL_SPIN_LIMIT of them, yield the CPU. */
static inline void pool_backoff(unsigned *spins)
{
    if (++*spins < POOL_SPIN_LIMIT)
        return;
    *spins = 0;
#ifdef POOL_BACKOFF_TEST_HOOK
    POOL_BACKOFF_TEST_HOOK();
#endif
    pool_cpu_yield_();
}

#endif /* POOL_BACKOFF_H */
