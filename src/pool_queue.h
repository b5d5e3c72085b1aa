/*
 * pool_queue.h - the core of the drop-in queues (pool_ext.Queue, LifoQueue):
 * a ring of item pointers and two FIFO lists of waiters, behind one spinlock.
 *
 * Layout
 * ------
 *   ring, cap, head, count
 *              the items, oldest at ring[head], newest at
 *              ring[(head + count - 1) & (cap - 1)]; cap is 0 or a power of
 *              two.  The ring owns one reference per item (the caller's
 *              Python layer counts them; this header only moves pointers).
 *   maxsize    0: unbounded; else put refuses (or queues) at count >= maxsize.
 *   getters, putters
 *              waiter records, oldest first.  A record belongs to its waiter
 *              (a thread keeps it on its stack); the lists only link it.
 *   lock       a spinlock (pool_spinlock.h) guarding all of the above.  Its
 *              sections are a few stores and a wake callback that never
 *              blocks (a thread lock's release); no Python code, no decref,
 *              no allocation runs inside (growth: pool_queue_swap_ring).
 *
 * The hand-off (fairness)
 * -----------------------
 * A put that finds a getter queued gives its item to the oldest getter
 * (stored in the record, state GRANTED, woken).  A get that frees room while
 * putters are queued moves the oldest putter's item into the ring for it.
 * So nobody barges: while a getter waits the ring is empty, and while a
 * putter waits the ring is full, and a newcomer queues behind the waiters
 * (or, for a get of a full ring, takes an item, which is no barging).
 *
 * Leaving
 * -------
 * A waiter that wakes, times out or is interrupted calls pool_queue_leave:
 * still queued, it is unlinked (nothing happened); granted, the grant is its
 * own (a getter holds the item; a putter's item is in the ring).  A getter
 * that will not return its item (Ctrl-C) puts it back with
 * pool_queue_give_back, which hands it to the next getter or to the front of
 * the ring, past maxsize if need be: no item is ever lost.
 *
 * fork()
 * ------
 * The child inherits records of threads it does not have.  A child handler
 * bumps an epoch; the first lock holder in the child forgets both lists (an
 * item held by a queued putter of the parent is leaked in the child, not
 * freed: it may be referenced twice).  The lock is never held across fork():
 * its holders never block inside it.
 *
 * Invariants (under the lock)
 *   getters != empty  =>  count == 0
 *   putters != empty  =>  maxsize && count >= maxsize
 *   a record is QUEUED iff it is linked on exactly one list.
 */
#ifndef POOL_QUEUE_H
#define POOL_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "pool_atomic.h"
#include "pool_spinlock.h"

enum { POOL_QW_OUT = 0,
       POOL_QW_QUEUED = 1,
       POOL_QW_GRANTED = 2 };
enum { POOL_Q_DONE = 0,
       POOL_Q_EMPTY,
       POOL_Q_FULL,
       POOL_Q_QUEUED,
       POOL_Q_GROW };

typedef struct pool_qwaiter {
    struct pool_qwaiter *prev, *next;
    void *item;      /* putter: its item until moved in; getter: the item handed to it */
    void (*wake)(struct pool_qwaiter *w);   /* under the lock; must not block */
    void *ctx;       /* the waker's (a thread lock) */
    int state;       /* POOL_QW_* */
    int putter;      /* which list it is on while QUEUED */
} pool_qwaiter_t;

typedef struct pool_qlist {
    pool_qwaiter_t *head, *tail;
} pool_qlist_t;

typedef struct pool_queue {
    pool_spinlock_t lock;
    void **ring;
    size_t cap, head;
    uint64_t count;     /* written under the lock; read without it by qsize() */
    uint64_t maxsize;   /* 0: unbounded */
    int lifo;
    uint64_t epoch;
    pool_qlist_t getters, putters;
} pool_queue_t;

/* ---- fork(): one translation unit (the _pool extension) includes this ---- */
static uint64_t pool_queue_fork_epoch_;
#if defined(_WIN32)
static void pool_queue_register_atfork_(void) {}
#else
#include <pthread.h>
static void pool_queue_atfork_child_(void)
{
    /* relaxed: the child has one thread now */
    pool_store64(&pool_queue_fork_epoch_,
                 pool_load64(&pool_queue_fork_epoch_, POOL_RELAXED) + 1, POOL_RELAXED);
}
static pthread_once_t pool_queue_atfork_once_ = PTHREAD_ONCE_INIT;
static void pool_queue_atfork_register_(void)
{
    (void)pthread_atfork(NULL, NULL, pool_queue_atfork_child_);
}
static void pool_queue_register_atfork_(void)
{
    (void)pthread_once(&pool_queue_atfork_once_, pool_queue_atfork_register_);
}
#endif

static inline void pool_queue_init(pool_queue_t *q, int lifo)
{
    memset(q, 0, sizeof *q);
    q->lifo = lifo;
    pool_queue_register_atfork_();
    q->epoch = pool_load64(&pool_queue_fork_epoch_, POOL_RELAXED);
}

static inline void pool_queue_lock_(pool_queue_t *q)
{
    uint64_t epoch;
    pool_spin_lock(&q->lock);
    /* relaxed: bumped by the child's only thread before any lock here */
    epoch = pool_load64(&pool_queue_fork_epoch_, POOL_RELAXED);
    if (q->epoch != epoch) {          /* a forked child: the waiters are gone */
        q->getters.head = q->getters.tail = NULL;
        q->putters.head = q->putters.tail = NULL;
        q->epoch = epoch;
    }
}

static inline void pool_queue_unlock_(pool_queue_t *q) { pool_spin_unlock(&q->lock); }

static inline void pool_qlist_push_(pool_qlist_t *l, pool_qwaiter_t *w)
{
    w->next = NULL;
    w->prev = l->tail;
    if (l->tail)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
}

static inline void pool_qlist_unlink_(pool_qlist_t *l, pool_qwaiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        l->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        l->tail = w->prev;
    w->prev = w->next = NULL;
}

static inline void pool_queue_set_count_(pool_queue_t *q, uint64_t n)
{
    /* relaxed: qsize() is a snapshot; the lock orders everything else */
    pool_store64(&q->count, n, POOL_RELAXED);
}

/* Room checked by the caller (count < cap). */
static inline void pool_queue_store_(pool_queue_t *q, void *item)
{
    q->ring[(q->head + q->count) & (q->cap - 1)] = item;
    pool_queue_set_count_(q, q->count + 1);
}

static inline void *pool_queue_take_(pool_queue_t *q)
{
    void *item;
    if (q->lifo) {
        item = q->ring[(q->head + q->count - 1) & (q->cap - 1)];
    } else {
        item = q->ring[q->head];
        q->head = (q->head + 1) & (q->cap - 1);
    }
    pool_queue_set_count_(q, q->count - 1);
    return item;
}

static inline void pool_queue_grant_(pool_qlist_t *l, void *item)
{
    pool_qwaiter_t *w = l->head;
    pool_qlist_unlink_(l, w);
    w->item = item;
    w->state = POOL_QW_GRANTED;
    w->wake(w);
}

/* Puts `item` (a reference the queue takes over on DONE and QUEUED).
 * DONE: stored, or handed to the oldest getter.  FULL: refused (w NULL; the
 * item stays the caller's).  QUEUED: w holds the item and waits on the
 * putters' list.  GROW: the ring needs room (pool_queue_swap_ring), retry. */
static inline int pool_queue_put(pool_queue_t *q, void *item, pool_qwaiter_t *w)
{
    pool_queue_lock_(q);
    if (q->getters.head) {
        pool_queue_grant_(&q->getters, item);
    } else if (q->putters.head || (q->maxsize && q->count >= q->maxsize)) {
        if (!w) {
            pool_queue_unlock_(q);
            return POOL_Q_FULL;
        }
        w->item = item;
        w->state = POOL_QW_QUEUED;
        w->putter = 1;
        pool_qlist_push_(&q->putters, w);
        pool_queue_unlock_(q);
        return POOL_Q_QUEUED;
    } else if (q->count == q->cap) {
        pool_queue_unlock_(q);
        return POOL_Q_GROW;
    } else {
        pool_queue_store_(q, item);
    }
    pool_queue_unlock_(q);
    return POOL_Q_DONE;
}

/* Takes an item: DONE (*out: the caller's reference now), EMPTY (w NULL),
 * or QUEUED (w waits on the getters' list).  Room it frees goes to the
 * oldest putter, whose item moves in. */
static inline int pool_queue_get(pool_queue_t *q, void **out, pool_qwaiter_t *w)
{
    pool_queue_lock_(q);
    if (q->count) {
        *out = pool_queue_take_(q);
        if (q->putters.head && (!q->maxsize || q->count < q->maxsize)) {
            pool_qwaiter_t *p = q->putters.head;
            pool_queue_store_(q, p->item);     /* room: one was just taken */
            pool_queue_grant_(&q->putters, NULL);
        }
        pool_queue_unlock_(q);
        return POOL_Q_DONE;
    }
    if (!w) {
        pool_queue_unlock_(q);
        return POOL_Q_EMPTY;
    }
    w->item = NULL;
    w->state = POOL_QW_QUEUED;
    w->putter = 0;
    pool_qlist_push_(&q->getters, w);
    pool_queue_unlock_(q);
    return POOL_Q_QUEUED;
}

/* The waiter w leaves: 1 if it was granted (a getter's item is in w->item,
 * a putter's is in the ring), 0 if it was still queued (now unlinked; a
 * putter's item is back in w->item, the caller's again). */
static inline int pool_queue_leave(pool_queue_t *q, pool_qwaiter_t *w)
{
    int granted;
    pool_queue_lock_(q);
    if (w->state == POOL_QW_QUEUED)
        pool_qlist_unlink_(w->putter ? &q->putters : &q->getters, w);
    granted = w->state == POOL_QW_GRANTED;
    w->state = POOL_QW_OUT;
    pool_queue_unlock_(q);
    return granted;
}

/* An item a getter took and will not return (Ctrl-C): to the oldest getter,
 * or back where it came from (FIFO: the front; LIFO: the top), past maxsize
 * if need be.  DONE, or GROW (retry after pool_queue_swap_ring). */
static inline int pool_queue_give_back(pool_queue_t *q, void *item)
{
    pool_queue_lock_(q);
    if (q->getters.head) {
        pool_queue_grant_(&q->getters, item);
    } else if (q->count == q->cap) {
        pool_queue_unlock_(q);
        return POOL_Q_GROW;
    } else if (q->lifo) {
        pool_queue_store_(q, item);
    } else {
        q->head = (q->head - 1) & (q->cap - 1);
        q->ring[q->head] = item;
        pool_queue_set_count_(q, q->count + 1);
    }
    pool_queue_unlock_(q);
    return POOL_Q_DONE;
}

/* The ring size a GROW asks for (0 if it cannot be had). */
static inline size_t pool_queue_next_cap(pool_queue_t *q)
{
    size_t cap;
    pool_queue_lock_(q);
    cap = q->cap;
    pool_queue_unlock_(q);
    if (cap > (SIZE_MAX / sizeof(void *)) / 2)
        return 0;
    return cap ? cap * 2 : 8;   /* 8: arbitrary; a pool's queue is small */
}

/* Installs `ring` (cap slots, allocated by the caller outside the lock) if
 * it is larger than the current one, copying the items; returns the buffer
 * the caller must free (the old ring, or `ring` if it was not needed). */
static inline void **pool_queue_swap_ring(pool_queue_t *q, void **ring, size_t cap)
{
    void **old;
    size_t i;
    pool_queue_lock_(q);
    if (cap <= q->cap) {
        pool_queue_unlock_(q);
        return ring;
    }
    for (i = 0; i < q->count; i++)
        ring[i] = q->ring[(q->head + i) & (q->cap - 1)];
    old = q->ring;
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
    pool_queue_unlock_(q);
    return old;
}

/* Empties the ring (tp_clear): the items come out in *ring (*n of them, from
 * index *head, mask *cap - 1) for the caller to release after the lock. */
static inline void pool_queue_detach(pool_queue_t *q, void ***ring, size_t *cap,
                                     size_t *head, uint64_t *n)
{
    pool_queue_lock_(q);
    *ring = q->ring;
    *cap = q->cap;
    *head = q->head;
    *n = q->count;
    q->ring = NULL;
    q->cap = q->head = 0;
    pool_queue_set_count_(q, 0);
    pool_queue_unlock_(q);
}

static inline uint64_t pool_queue_count(pool_queue_t *q)
{
    return pool_load64(&q->count, POOL_RELAXED);   /* a snapshot, as qsize() is */
}

/* Copies the items, oldest first, into out (room for n) if there are
 * exactly n, calling keep() on each under the lock (an incref: an item taken
 * meanwhile by another thread must not be freed under the copy); returns the
 * count (the caller retries with more room if it is not n). */
static inline uint64_t pool_queue_snapshot(pool_queue_t *q, void **out, uint64_t n,
                                           void (*keep)(void *))
{
    uint64_t i, count;
    pool_queue_lock_(q);
    count = q->count;
    if (count == n) {
        for (i = 0; i < n; i++) {
            out[i] = q->ring[(q->head + i) & (q->cap - 1)];
            keep(out[i]);
        }
    }
    pool_queue_unlock_(q);
    return count;
}

/* How many getters and putters are queued (tests wait on it). */
static inline void pool_queue_waiting(pool_queue_t *q, size_t *getters, size_t *putters)
{
    pool_qwaiter_t *w;
    size_t g = 0, p = 0;
    pool_queue_lock_(q);
    for (w = q->getters.head; w; w = w->next)
        g++;
    for (w = q->putters.head; w; w = w->next)
        p++;
    pool_queue_unlock_(q);
    *getters = g;
    *putters = p;
}

static inline void pool_queue_set_maxsize(pool_queue_t *q, uint64_t maxsize)
{
    pool_queue_lock_(q);
    q->maxsize = maxsize;
    pool_queue_unlock_(q);
}

#endif /* POOL_QUEUE_H */
