/*
 * pool_waitq.h - the callers waiting for a free slot, and the fair hand-off
 * that gives each released slot to the oldest of them; closing; fork().
 *
 * Layout
 * ------
 *   head/tail  a FIFO, doubly linked, of waiter records, threads and asyncio
 *              tasks alike.  A record belongs to its waiter (a thread keeps
 *              it on its stack); the queue only links it.
 *   lock       a spinlock (pool_spinlock.h) guarding the links and every
 *              record's fields.  Critical sections are a few stores and
 *              free-list pops, plus the wake callbacks, which never block.
 *   gate       bit 0: closed (once set, never cleared); bits 1..63: queued
 *              records.  Read without the lock by every acquire and release:
 *              0 means "open, nobody waits", the only case the hot paths
 *              handle inline.
 *   slots, lists, acquires
 *              where grants come from (pool_waitq_bind): the pool's slot
 *              table, its free-lists in order of preference (ObjectPool:
 *              idle, then empty; BufferPool: one), its `acquires` counter.
 *
 * The hand-off
 * ------------
 * A release that finds waiters grants a slot to the oldest one: under the
 * lock it pops a free slot, owns it (RELEASING: nobody can release it),
 * counts the acquire, unlinks the head record, stores the slot in the
 * record (grant, grant_list) and wakes it.  The record owns the slot from
 * then on, and its waiter takes it out with pool_waitq_leave.  A waiter
 * that will not use its grant (timed out at the moment of grant, Ctrl-C,
 * a cancelled task, its pool closed) passes it on: pool_waitq_pass_grant
 * gives it to the next record, or tells the caller to put it back as a
 * release would (uncount the acquire, push, notify).  A grant that cannot
 * be delivered at all (an asyncio task whose loop is closed) comes back out
 * of the record with pool_waitq_pass_on and is passed on the same way.
 * So no slot is ever owned by a record that nobody will run.
 *
 * Fairness: while anyone is queued, gate != 0 and a newcomer does not pop
 * (acquire and try_acquire test the gate first); it joins the tail
 * (pool_waitq_join), which pops for it only if nobody is queued.  So slots
 * go in FIFO order.  A caller that tested the gate just before a waiter
 * queued can still take the slot being released: it arrived first.
 *
 * The lost wake-up (a Dekker pair of seq_cst fences)
 * -------------------------------------------------
 *   joiner:    gate + 2 (under the lock) ; fence ; pop (if nobody is queued)
 *   releaser:  push onto a free-list ; fence ; if gate: lock, pop, grant
 * Either the joiner's pop sees the pushed slot, or the releaser sees the
 * joiner counted and grants (the lock orders it after the joiner's link).
 * The fast path costs a fence and one load; a fence is free in the
 * POOL_ATOMIC_PLAIN (GIL) build.
 *
 * Closing and hints
 * -----------------
 * pool_waitq_close sets the closed bit and wakes every record without a
 * grant (`signaled`); waiters see `closed` and leave.  A closed pool grants
 * nothing: a release then wakes one record (a hint, for drain(), which
 * waits on the queue until everything is back and looks again at each
 * wake).  A hint a record was given and did not use goes to the next one
 * when it leaves.  The releaser's fence in pool_waitq_notify also orders
 * its push before its later read of `closed` (ObjectPool drains again if a
 * close raced its push).
 *
 * Deferred records (wake == NULL) cannot be woken under the lock, e.g. an
 * asyncio task whose wake-up is a call into Python.  Waking one unlinks it,
 * stores its grant or hint, and appends it to the caller's `deferred` list
 * (linked through `next`); the caller completes those after the lock is
 * dropped, and must keep the record alive until then.
 *
 * fork()
 * ------
 * A child process inherits the queue, whose records belong to threads that
 * do not exist in it.  A child handler (pthread_atfork, registered by the
 * first pool_waitq_init) bumps a process-wide epoch; the first lock holder
 * in the child sees the queue's epoch is old and forgets every record (and
 * a slot granted to one stays taken in the child, as a slot held by one of
 * the parent's other threads does).  The lock itself cannot be held across
 * fork(): its holders never block inside it, and fork() runs with the GIL
 * held (or, free-threaded, after stopping the world, which waits for code
 * that has no safe point, such as these sections).
 *
 * Concurrency contract: every function may be called from any thread (in
 * the POOL_ATOMIC_PLAIN build, only under the GIL).
 */
#ifndef POOL_WAITQ_H
#define POOL_WAITQ_H

#include <stdint.h>
#include "pool_atomic.h"
#include "pool_cache.h"
#include "pool_freelist.h"
#include "pool_slots.h"
#include "pool_spinlock.h"

typedef struct pool_waiter {
    struct pool_waiter *next;
    struct pool_waiter *prev;
    int queued;                              /* linked (the lock) */
    int signaled;                            /* woken without a grant (the lock) */
    uint32_t grant;                          /* a granted slot it owns, or POOL_NIL */
    uint32_t grant_list;                     /* the list it came from: 0 or 1 */
    uint64_t epoch;                          /* the fork epoch it was queued in */
    void (*wake)(struct pool_waiter *w);     /* under the lock; NULL: deferred */
    void *ctx;                               /* the callback's */
} pool_waiter_t;

typedef struct pool_waitq {
    pool_spinlock_t lock;
    pool_waiter_t *head;
    pool_waiter_t *tail;
    uint64_t gate;       /* closed | queued << 1 */
    uint64_t epoch;      /* the fork epoch of the records linked (the lock) */
    pool_slots_t *slots;
    pool_freelist_t *lists[2];
    uint64_t *acquires;
    pool_cache_t *cache; /* the threads' cached slots of lists[0], or NULL */
} pool_waitq_t;

#define POOL_GATE_CLOSED 1u
#define POOL_GATE_WAITER 2u

/* Starts empty and closed (pool_waitq_open once the pool is built), with no
 * lists bound. */
void pool_waitq_init(pool_waitq_t *q);

/* Where grants come from: the slot table, up to two free-lists in order of
 * preference (second may be NULL), the counter a grant adds 1 to, and the
 * threads' caches of the first list's slots (pool_cache.h; NULL: none),
 * which a waiter that finds the lists empty steals from.  Single-threaded,
 * before pool_waitq_open. */
void pool_waitq_bind(pool_waitq_t *q, pool_slots_t *slots, pool_freelist_t *first,
                     pool_freelist_t *second, uint64_t *acquires, pool_cache_t *cache);

/* A caller that must wait joins the tail.  If nobody is queued and a slot
 * is free (on a list, or in a thread's cache) it takes it instead (owned,
 * RELEASING, the acquire counted): POOL_JOIN_TOOK with *slot and *list set,
 * the record not linked.  On a
 * closed queue: POOL_JOIN_CLOSED, not linked.  Else POOL_JOIN_QUEUED.  The
 * record must not be queued already nor hold a grant. */
enum {
    POOL_JOIN_QUEUED = 0,
    POOL_JOIN_TOOK = 1,
    POOL_JOIN_CLOSED = 2
};
int pool_waitq_join(pool_waitq_t *q, pool_waiter_t *w, uint32_t *slot, uint32_t *list);

/* A waiter for something else than a slot (drain(): everything back) joins
 * the tail, and must look again after this call (whose fence orders the
 * two).  Records linked this way are granted slots like any other on an
 * open queue: use it on a closed queue only. */
void pool_waitq_enqueue(pool_waitq_t *q, pool_waiter_t *w);

/* A waiter leaves: unlinked if still queued, and a grant it holds comes
 * out in *slot / *list (else *slot = POOL_NIL): the caller owns that slot
 * now, and uses it or passes it on (pool_waitq_pass_grant).  A hint it was
 * given (signaled) and did not use goes to the next record.  Returns
 * POOL_LEFT_UNLINKED if this call took the record off the queue (its owner
 * may drop what it kept for the queue), POOL_LEFT_SIGNALED if a waker had
 * (the waker keeps it until it has woken it), or 0 if it was not queued. */
enum {
    POOL_LEFT_UNLINKED = 1,
    POOL_LEFT_SIGNALED = 2
};
int pool_waitq_leave(pool_waitq_t *q, pool_waiter_t *w, uint32_t *slot, uint32_t *list,
                     pool_waiter_t **deferred);

/* After a push onto a free-list, when pool_waitq_notify said so: grants
 * free slots to the oldest records while both last (open), or wakes one
 * record (closed: a hint for drain()).  Returns how many it woke. */
uint32_t pool_waitq_released(pool_waitq_t *q, pool_waiter_t **deferred);

/* A slot a waiter owns and will not use (list: where it came from): 1 if
 * it went straight to the oldest record (it stays counted), 0 if nobody
 * waits or the queue is closed: the caller then gives it back as a release
 * would (uncount the acquire, push it, pool_waitq_notify). */
int pool_waitq_pass_grant(pool_waitq_t *q, uint32_t slot, uint32_t list,
                          pool_waiter_t **deferred);

/* A deferred record's wake-up could not be delivered (its owner is gone for
 * good: an asyncio task whose event loop was closed).  A grant it holds
 * comes out in *slot / *list, for the caller to pass on; a hint goes to
 * the next record.  A record queued again (its owner ran) is left alone. */
void pool_waitq_pass_on(pool_waitq_t *q, pool_waiter_t *w, uint32_t *slot, uint32_t *list,
                        pool_waiter_t **deferred);

/* Wakes up to n records with a hint (UINT32_MAX: all).  Returns how many. */
uint32_t pool_waitq_wake(pool_waitq_t *q, uint32_t n, pool_waiter_t **deferred);

/* Closes: 1 if this call closed it (and woke every record), 0 if it was
 * closed already. */
int pool_waitq_close(pool_waitq_t *q, pool_waiter_t **deferred);

/* Records queued now; 0 in a forked child until it queues its own. */
uint64_t pool_waitq_waiting(pool_waitq_t *q);

/* The gate, for an acquire's hot path: 0 if the queue is open and nobody
 * waits (the caller may pop), else the slow path (closed, or queue up). */
static inline uint64_t pool_waitq_gate(pool_waitq_t *q)
{
    /* acquire: a gate seen open belongs to a pool that was fully built
     * (pairs with the release store in pool_waitq_open) */
    return pool_load64(&q->gate, POOL_ACQUIRE);
}

/* After a push onto a free-list: nonzero if someone may wait or the queue
 * is closed; the caller then calls pool_waitq_released (and, closed,
 * drains what it pushed).  The hot path of every release. */
static inline uint64_t pool_waitq_notify(pool_waitq_t *q)
{
    /* seq_cst fence: orders our push before the read of the gate; pairs
     * with the fences in pool_waitq_join and pool_waitq_close */
    pool_fence(POOL_SEQ_CST);
    /* relaxed: ordered by the fence above */
    return pool_load64(&q->gate, POOL_RELAXED);
}

static inline int pool_waitq_is_closed(pool_waitq_t *q)
{
    return (pool_waitq_gate(q) & POOL_GATE_CLOSED) != 0;
}

/* Marks a new queue open: its pool is built.  Starts closed from init, so
 * a pool that was never fully built refuses every call. */
static inline void pool_waitq_open(pool_waitq_t *q)
{
    /* release: publishes the pool's construction; pairs with the gate's
     * acquire loads.  Nobody can be queued on a queue never opened. */
    pool_store64(&q->gate, 0, POOL_RELEASE);
}

#endif /* POOL_WAITQ_H */
