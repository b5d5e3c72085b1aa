/* pool_waitq.c - the wait queue's slow paths: everything that takes its lock
 * (see pool_waitq.h for the protocol: the hand-off, closing, fork()). */
#include "pool_waitq.h"

/* ---- fork() ---------------------------------------------------------------
 * Bumped in the child of every fork(), by the only thread the child has. */
static uint64_t pool_fork_epoch_;

#if defined(_WIN32)
static void pool_waitq_register_atfork_(void) {}
#else
#include <pthread.h>
static void pool_waitq_atfork_child_(void)
{
    /* relaxed: the child is single-threaded here */
    pool_store64(&pool_fork_epoch_, pool_load64(&pool_fork_epoch_, POOL_RELAXED) + 1,
                 POOL_RELAXED);
}
static pthread_once_t pool_waitq_atfork_once_ = PTHREAD_ONCE_INIT;
static void pool_waitq_atfork_register_once_(void)
{
    /* Fails only with ENOMEM; the queues then keep the parent's records in
     * a child, as they did before this existed: accepted. */
    (void)pthread_atfork(NULL, NULL, pool_waitq_atfork_child_);
}
static void pool_waitq_register_atfork_(void)
{
    (void)pthread_once(&pool_waitq_atfork_once_, pool_waitq_atfork_register_once_);
}
#endif

static uint64_t pool_waitq_epoch_(void)
{
    /* relaxed: it changes only in a fork child, before any other thread */
    return pool_load64(&pool_fork_epoch_, POOL_RELAXED);
}

/* ---- the lock ------------------------------------------------------------ */

static void pool_waitq_lock_(pool_waitq_t *q)
{
    uint64_t epoch = pool_waitq_epoch_();
    pool_spin_lock(&q->lock);
    if (q->epoch != epoch) {
        /* A forked child: the records are the parent's threads'.  Forget them
         * (a caller's own record, if linked, counts as not queued now). */
        q->head = q->tail = NULL;
        /* relaxed: the child is single-threaded until it starts threads,
         * which the lock then orders */
        pool_store64(&q->gate, pool_load64(&q->gate, POOL_RELAXED) & POOL_GATE_CLOSED,
                     POOL_RELAXED);
        q->epoch = epoch;
    }
}

static void pool_waitq_unlock_(pool_waitq_t *q)
{
    pool_spin_unlock(&q->lock);
}

/* ---- under the lock -------------------------------------------------------- */

static void pool_waitq_link_(pool_waitq_t *q, pool_waiter_t *w)
{
    w->signaled = 0;
    w->queued = 1;
    w->epoch = q->epoch;
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail != NULL)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
}

static void pool_waitq_unlink_(pool_waitq_t *q, pool_waiter_t *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->next = w->prev = NULL;
    w->queued = 0;
    /* relaxed RMW: the count changes only under the lock, but close() sets
     * the closed bit outside it; readers are ordered by the fences */
    pool_fetch_add64(&q->gate, (uint64_t)0 - POOL_GATE_WAITER, POOL_RELAXED);
}

static int pool_waitq_closed_(pool_waitq_t *q)
{
    /* relaxed: under the lock, after close's CAS (which takes the lock to
     * wake, so a holder after it sees the bit) */
    return (pool_load64(&q->gate, POOL_RELAXED) & POOL_GATE_CLOSED) != 0;
}

/* Wakes record w, just unlinked: its callback now, or onto `deferred`. */
static void pool_waitq_deliver_(pool_waiter_t *w, pool_waiter_t **deferred)
{
    if (w->wake != NULL) {
        w->wake(w);
    } else if (deferred != NULL) {
        w->next = *deferred;   /* the caller completes it after unlock */
        *deferred = w;
    }
}

static uint32_t pool_waitq_hint_locked_(pool_waitq_t *q, uint32_t n,
                                        pool_waiter_t **deferred)
{
    uint32_t woken = 0;
    while (woken < n && q->head != NULL) {
        pool_waiter_t *w = q->head;
        pool_waitq_unlink_(q, w);
        w->signaled = 1;
        pool_waitq_deliver_(w, deferred);
        woken++;
    }
    return woken;
}

/* Gives owned slot i (from list k) to the head record. */
static void pool_waitq_grant_head_(pool_waitq_t *q, uint32_t i, uint32_t k,
                                   pool_waiter_t **deferred)
{
    pool_waiter_t *w = q->head;
    pool_waitq_unlink_(q, w);
    w->grant = i;
    w->grant_list = k;
    pool_waitq_deliver_(w, deferred);
}

/* Pops a free slot, preferred list first, then from the threads' caches
 * (their slots belong to the first list), and owns it; POOL_NIL if none. */
static uint32_t pool_waitq_pop_(pool_waitq_t *q, uint32_t *list)
{
    uint32_t k, i = POOL_NIL;
    for (k = 0; k < 2 && q->lists[k] != NULL && i == POOL_NIL; k++) {
        i = pool_slots_pop_own(q->slots, q->lists[k]);
        *list = k;
    }
    if (i == POOL_NIL) {
        i = pool_cache_steal(q->cache);
        if (i == POOL_NIL)
            return POOL_NIL;
        pool_slots_own(q->slots, i);
        *list = 0;
    }
    /* relaxed: a statistic (drain() reads it after the fences of the wait
     * protocol) */
    pool_fetch_add64(q->acquires, 1, POOL_RELAXED);
    return i;
}

/* ---- the API ----------------------------------------------------------------- */

void pool_waitq_init(pool_waitq_t *q)
{
    pool_waitq_register_atfork_();
    q->lock.word = 0;
    q->head = q->tail = NULL;
    q->gate = POOL_GATE_CLOSED;   /* pool_waitq_open once the pool is built */
    q->epoch = pool_waitq_epoch_();
    q->slots = NULL;
    q->lists[0] = q->lists[1] = NULL;
    q->acquires = NULL;
    q->cache = NULL;
}

void pool_waitq_bind(pool_waitq_t *q, pool_slots_t *slots, pool_freelist_t *first,
                     pool_freelist_t *second, uint64_t *acquires, pool_cache_t *cache)
{
    q->slots = slots;
    q->lists[0] = first;
    q->lists[1] = second;
    q->acquires = acquires;
    q->cache = cache;
}

int pool_waitq_join(pool_waitq_t *q, pool_waiter_t *w, uint32_t *slot, uint32_t *list)
{
    int result = POOL_JOIN_QUEUED;
    POOL_ASSERT(w->grant == POOL_NIL, "join: the record holds a grant");
    pool_waitq_lock_(q);
    if (pool_waitq_closed_(q)) {
        result = POOL_JOIN_CLOSED;
    } else if (q->head != NULL || q->lists[0] == NULL) {
        /* others wait: behind them (the slots now free are theirs, and their
         * releasers are on the way to grant them) */
        pool_fetch_add64(&q->gate, POOL_GATE_WAITER, POOL_RELAXED);  /* relaxed: the lock */
        pool_waitq_link_(q, w);
    } else {
        /* relaxed RMW: see pool_waitq_unlink_ */
        pool_fetch_add64(&q->gate, POOL_GATE_WAITER, POOL_RELAXED);
        /* seq_cst fence: our count before our pop; pairs with the fence in
         * pool_waitq_notify (see "lost wake-up") */
        pool_fence(POOL_SEQ_CST);
        *slot = pool_waitq_pop_(q, list);
        if (*slot != POOL_NIL) {
            pool_fetch_add64(&q->gate, (uint64_t)0 - POOL_GATE_WAITER, POOL_RELAXED);
            result = POOL_JOIN_TOOK;
        } else {
            pool_waitq_link_(q, w);
        }
    }
    pool_waitq_unlock_(q);
    return result;
}

void pool_waitq_enqueue(pool_waitq_t *q, pool_waiter_t *w)
{
    POOL_ASSERT(w->grant == POOL_NIL, "enqueue: the record holds a grant");
    pool_waitq_lock_(q);
    pool_fetch_add64(&q->gate, POOL_GATE_WAITER, POOL_RELAXED);   /* relaxed: the lock */
    pool_waitq_link_(q, w);
    pool_waitq_unlock_(q);
    /* seq_cst fence: our enqueue before our look at what we wait for;
     * pairs with the fence in pool_waitq_notify */
    pool_fence(POOL_SEQ_CST);
}

int pool_waitq_leave(pool_waitq_t *q, pool_waiter_t *w, uint32_t *slot, uint32_t *list,
                     pool_waiter_t **deferred)
{
    int result = 0;
    pool_waitq_lock_(q);
    /* Queued in an older epoch: a fork (from inside this waiter's wait,
     * say) forgot the record; its links point into the parent's queue. */
    if (w->queued && w->epoch == q->epoch) {
        pool_waitq_unlink_(q, w);
        result = POOL_LEFT_UNLINKED;
    }
    w->queued = 0;
    *slot = w->grant;
    *list = w->grant_list;
    if (w->grant != POOL_NIL) {
        w->grant = POOL_NIL;
        result = POOL_LEFT_SIGNALED;
    }
    if (w->signaled) {
        w->signaled = 0;
        result = POOL_LEFT_SIGNALED;
        pool_waitq_hint_locked_(q, 1, deferred);   /* pass the hint on */
    }
    pool_waitq_unlock_(q);
    return result;
}

uint32_t pool_waitq_released(pool_waitq_t *q, pool_waiter_t **deferred)
{
    uint32_t woken = 0;
    pool_waitq_lock_(q);
    if (pool_waitq_closed_(q)) {
        woken = pool_waitq_hint_locked_(q, 1, deferred);
    } else if (q->lists[0] != NULL) {
        while (q->head != NULL) {
            uint32_t k;
            uint32_t i = pool_waitq_pop_(q, &k);
            if (i == POOL_NIL)
                break;   /* taken by a caller that came before the waiters */
            pool_waitq_grant_head_(q, i, k, deferred);
            woken++;
        }
    }
    pool_waitq_unlock_(q);
    return woken;
}

int pool_waitq_pass_grant(pool_waitq_t *q, uint32_t slot, uint32_t list,
                          pool_waiter_t **deferred)
{
    int passed = 0;
    pool_waitq_lock_(q);
    if (q->head != NULL && !pool_waitq_closed_(q)) {
        pool_waitq_grant_head_(q, slot, list, deferred);
        passed = 1;
    }
    pool_waitq_unlock_(q);
    return passed;
}

void pool_waitq_pass_on(pool_waitq_t *q, pool_waiter_t *w, uint32_t *slot, uint32_t *list,
                        pool_waiter_t **deferred)
{
    pool_waitq_lock_(q);
    *slot = POOL_NIL;
    if (w->grant != POOL_NIL) {
        *slot = w->grant;
        *list = w->grant_list;
        w->grant = POOL_NIL;
    } else if (w->signaled && !w->queued) {
        /* queued again: its owner ran after the wake and used it */
        w->signaled = 0;
        pool_waitq_hint_locked_(q, 1, deferred);
    }
    pool_waitq_unlock_(q);
}

uint32_t pool_waitq_wake(pool_waitq_t *q, uint32_t n, pool_waiter_t **deferred)
{
    uint32_t woken;
    pool_waitq_lock_(q);
    woken = pool_waitq_hint_locked_(q, n, deferred);
    pool_waitq_unlock_(q);
    return woken;
}

int pool_waitq_close(pool_waitq_t *q, pool_waiter_t **deferred)
{
    /* relaxed: the CAS decides */
    uint64_t g = pool_load64(&q->gate, POOL_RELAXED);
    do {
        if (g & POOL_GATE_CLOSED)
            return 0;
        /* seq_cst CAS + fence: whatever the closer does next (drain the idle
         * objects, wake) is ordered after `closed` is set; pairs with the
         * fence a releaser runs in pool_waitq_notify between its push and
         * its read of the gate, so either the releaser sees `closed` or the
         * drain sees the pushed slot */
    } while (!pool_cas64(&q->gate, &g, g | POOL_GATE_CLOSED, POOL_SEQ_CST, POOL_RELAXED));
    pool_fence(POOL_SEQ_CST);
    pool_waitq_wake(q, UINT32_MAX, deferred);   /* each meets `closed` */
    return 1;
}

uint64_t pool_waitq_waiting(pool_waitq_t *q)
{
    uint64_t n;
    pool_waitq_lock_(q);   /* forgets a parent's records in a fork child */
    /* relaxed: under the lock */
    n = pool_load64(&q->gate, POOL_RELAXED) / POOL_GATE_WAITER;
    pool_waitq_unlock_(q);
    return n;
}
