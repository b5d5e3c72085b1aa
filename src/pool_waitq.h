/*
 * pool_waitq.h - the callers waiting for a free slot, and the protocol that
 * wakes them without losing a wake-up; closing a pool; fork().
 *
 * Layout
 * ------
 *   head/tail  a FIFO, doubly linked, of waiter records.  A record belongs
 *              to its waiter (a thread keeps it on its stack while it
 *              waits); the queue only links it.
 *   lock       a spinlock (pool_spinlock.h) guarding the links and every
 *              record's queued/signaled flags.  Critical sections are a few
 *              stores, plus the wake callbacks (below), which never block.
 *   nwaiters   queued records; written under the lock, read without it by
 *              every release (pool_waitq_notify).
 *   closed     0 or 1; once 1, never 0 again.
 *
 * The lost wake-up (a Dekker pair of seq_cst fences)
 * -------------------------------------------------
 *   waiter:    enqueue (nwaiters + 1) ; fence ; retry the free-list
 *   releaser:  push onto the free-list ; fence ; if nwaiters: wake one
 * Either the waiter's retry sees the pushed slot, or the releaser sees the
 * waiter queued and wakes it.  The fast path (nobody waiting) costs a fence
 * and one load; a fence is free in the POOL_ATOMIC_PLAIN (GIL) build.
 *
 * Waking
 * ------
 * A wake unlinks the first record, marks it signaled and calls its `wake`
 * callback under the lock (a thread waiter: release its lock or semaphore;
 * it must not block, call into Python, or free anything).  A wake is a hint,
 * not a hand-over: the woken waiter queues again and retries, so a slot is
 * never owned by a record, and a waiter that leaves (timeout, Ctrl-C,
 * cancellation) can never take one with it.  A waiter that leaves after it
 * was signaled but without using the wake passes it on to the next record
 * (pool_waitq_leave), so no sleeper misses a free slot.  Spurious wakes are
 * harmless.  Wakes go in FIFO order, but a caller that was not waiting
 * may take the slot first, and the woken waiter that lost it queues again
 * at the tail: no fairness (documented).
 *
 * Deferred records (wake == NULL) cannot be woken under the lock, e.g. an
 * asyncio task whose wake-up is a call into Python.  Waking one only
 * unlinks and signals it and appends it to the caller's `deferred` list
 * (linked through `next`); the caller completes those after the lock is
 * dropped.  Whoever owns such a record must keep it alive until then.  A
 * wake-up the caller cannot deliver (the record's owner is gone) goes on
 * to the next record with pool_waitq_pass_on, so it is never swallowed.
 *
 * Closing: pool_waitq_close sets `closed` and wakes everyone; waiters see
 * `closed` when they retry.  The releaser's fence in pool_waitq_notify
 * also orders its push before its later read of `closed` (ObjectPool
 * drains again if a close raced its push).
 *
 * fork()
 * ------
 * A child process inherits the queue, whose records belong to threads that
 * do not exist in it (their stacks get reused by the child's threads).  A
 * child handler (pthread_atfork, registered by the first pool_waitq_init)
 * bumps a process-wide epoch; the first lock holder in the child sees the
 * queue's epoch is old and forgets every record.  The lock itself cannot
 * be held across fork(): its holders never block inside it, and fork()
 * runs with the GIL held (or, free-threaded, after stopping the world,
 * which waits for code that has no safe point, such as these sections).
 *
 * Concurrency contract: every function may be called from any thread (in
 * the POOL_ATOMIC_PLAIN build, only under the GIL).
 */
#ifndef POOL_WAITQ_H
#define POOL_WAITQ_H

#include <stdint.h>
#include "pool_atomic.h"
#include "pool_spinlock.h"

typedef struct pool_waiter {
    struct pool_waiter *next;
    struct pool_waiter *prev;
    int queued;                              /* linked (guarded by the lock) */
    int signaled;                            /* a waker chose it (the lock) */
    uint64_t epoch;                          /* the fork epoch it was queued in */
    void (*wake)(struct pool_waiter *w);     /* under the lock; NULL: deferred */
    void *ctx;                               /* the callback's */
} pool_waiter_t;

typedef struct pool_waitq {
    pool_spinlock_t lock;
    pool_waiter_t *head;
    pool_waiter_t *tail;
    uint64_t nwaiters;
    uint64_t closed;
    uint64_t epoch;      /* the fork epoch of the records linked (the lock) */
} pool_waitq_t;

void pool_waitq_init(pool_waitq_t *q);

/* A waiter joins the tail; then it must retry the free-list before it
 * sleeps (the fence that ends this call orders the two).  The record must
 * not be queued already: a waiter queues again only after a wake-up, which
 * unlinked it.  So its sleep must not return for a wake-up meant for an
 * earlier wait (give each wait a fresh lock, or reset the flag it sleeps
 * on before the first enqueue). */
void pool_waitq_enqueue(pool_waitq_t *q, pool_waiter_t *w);

/* A waiter leaves: unlinked if still queued; a wake it was given and did
 * not use goes to the next record.  Returns POOL_LEFT_UNLINKED if this call
 * took the record off the queue (its owner may drop what it kept for the
 * queue), POOL_LEFT_SIGNALED if a waker had taken it off (the waker keeps it
 * until it has woken it), or 0 if it was not queued (a fork forgot it). */
enum {
    POOL_LEFT_UNLINKED = 1,
    POOL_LEFT_SIGNALED = 2
};
int pool_waitq_leave(pool_waitq_t *q, pool_waiter_t *w, pool_waiter_t **deferred);

/* A deferred record's wake-up could not be delivered (its owner is gone
 * for good: an asyncio task whose event loop was closed).  If a waker had
 * signaled it and it has not queued again since, the wake goes to the next
 * record, as if its owner had left (pool_waitq_leave); the record stays
 * unlinked.  Returns 1 if it passed a wake on. */
int pool_waitq_pass_on(pool_waitq_t *q, pool_waiter_t *w, pool_waiter_t **deferred);

/* Wakes up to n records (UINT32_MAX: all).  Returns how many. */
uint32_t pool_waitq_wake(pool_waitq_t *q, uint32_t n, pool_waiter_t **deferred);

/* Closes: 1 if this call closed it (and woke every record), 0 if it was
 * closed already. */
int pool_waitq_close(pool_waitq_t *q, pool_waiter_t **deferred);

/* Records queued now; 0 in a forked child until it queues its own. */
uint64_t pool_waitq_waiting(pool_waitq_t *q);

/* After a push onto a free-list: 1 if someone may be waiting, and the
 * caller should then call pool_waitq_wake(q, 1, ...).  The hot path. */
static inline int pool_waitq_notify(pool_waitq_t *q)
{
    /* seq_cst fence: orders our push before the read of nwaiters; pairs with
     * the fence at the end of pool_waitq_enqueue (see "lost wake-up") */
    pool_fence(POOL_SEQ_CST);
    /* relaxed: ordered by the fence above */
    return pool_load64(&q->nwaiters, POOL_RELAXED) != 0;
}

static inline int pool_waitq_is_closed(pool_waitq_t *q)
{
    /* acquire: a queue seen open belongs to a pool that was fully built
     * (pairs with the release store in pool_waitq_open); close races are
     * settled by the fences in pool_waitq_close and pool_waitq_notify */
    return pool_load64(&q->closed, POOL_ACQUIRE) != 0;
}

/* Marks a new queue open: its pool is built.  Starts closed from init, so
 * a pool that was never fully built refuses every call. */
static inline void pool_waitq_open(pool_waitq_t *q)
{
    /* release: publishes the pool's construction; pairs with is_closed */
    pool_store64(&q->closed, 0, POOL_RELEASE);
}

#endif /* POOL_WAITQ_H */
