/*
 * pool_spinlock.h - a tiny test-and-test-and-set lock for critical sections
 * of a few stores that never block (the wait queue's links).
 *
 * Why not a mutex: a PyMutex may be handed to a waiter that is parked
 * detached from the interpreter, so on a free-threaded build fork() could copy
 * it locked (the child would deadlock).  A holder of this lock runs plain C
 * with no safe point until it unlocks, so a stop-the-world (and fork) waits
 * for it.  In the POOL_ATOMIC_PLAIN build the lock is never contended: every
 * holder holds the GIL and never releases it inside.
 *
 * Contention policy: spin on a relaxed load, yield the CPU now and then
 * (pool_backoff.h).
 */
#ifndef POOL_SPINLOCK_H
#define POOL_SPINLOCK_H

#include <stdint.h>
#include "pool_atomic.h"
#include "pool_backoff.h"

typedef struct pool_spinlock {
    uint64_t word;   /* 0 unlocked, 1 locked */
} pool_spinlock_t;

static inline void pool_spin_lock(pool_spinlock_t *l)
{
    unsigned spins = 0;
    for (;;) {
        uint64_t expected = 0;
        /* acquire: the critical section's reads see the previous holder's
         * writes (pairs with the release store in pool_spin_unlock) */
        if (pool_cas64(&l->word, &expected, 1, POOL_ACQUIRE, POOL_RELAXED))
            return;
        /* relaxed: only a hint to retry the CAS */
        while (pool_load64(&l->word, POOL_RELAXED) != 0)
            pool_backoff(&spins);
    }
}

static inline void pool_spin_unlock(pool_spinlock_t *l)
{
    /* release: publishes the critical section's writes to the next holder */
    pool_store64(&l->word, 0, POOL_RELEASE);
}

#endif /* POOL_SPINLOCK_H */
