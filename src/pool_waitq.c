/* pool_waitq.c - the wait queue's slow paths: everything that takes its lock
 * (see pool_waitq.h for the protocol). */
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
        pool_store64(&q->nwaiters, 0, POOL_RELAXED);  /* relaxed: see nwaiters */
        q->epoch = epoch;
    }
}

static void pool_waitq_unlock_(pool_waitq_t *q)
{
    pool_spin_unlock(&q->lock);
}

/* ---- under the lock -------------------------------------------------------- */

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
    /* relaxed: nwaiters changes only under the lock; readers outside it are
     * ordered by the fences of the lost wake-up protocol */
    pool_store64(&q->nwaiters, pool_load64(&q->nwaiters, POOL_RELAXED) - 1, POOL_RELAXED);
}

static uint32_t pool_waitq_wake_locked_(pool_waitq_t *q, uint32_t n,
                                        pool_waiter_t **deferred)
{
    uint32_t woken = 0;
    while (woken < n && q->head != NULL) {
        pool_waiter_t *w = q->head;
        pool_waitq_unlink_(q, w);
        w->signaled = 1;
        if (w->wake != NULL) {
            w->wake(w);
        } else if (deferred != NULL) {
            w->next = *deferred;   /* the caller completes it after unlock */
            *deferred = w;
        }
        woken++;
    }
    return woken;
}

/* ---- the API ----------------------------------------------------------------- */

void pool_waitq_init(pool_waitq_t *q)
{
    pool_waitq_register_atfork_();
    q->lock.word = 0;
    q->head = q->tail = NULL;
    q->nwaiters = 0;
    q->closed = 1;   /* pool_waitq_open once the pool is built */
    q->epoch = pool_waitq_epoch_();
}

void pool_waitq_enqueue(pool_waitq_t *q, pool_waiter_t *w)
{
    pool_waitq_lock_(q);
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
    /* relaxed: see pool_waitq_unlink_ */
    pool_store64(&q->nwaiters, pool_load64(&q->nwaiters, POOL_RELAXED) + 1, POOL_RELAXED);
    pool_waitq_unlock_(q);
    /* seq_cst fence: our enqueue before our retry of the free-list; pairs
     * with the fence in pool_waitq_notify */
    pool_fence(POOL_SEQ_CST);
}

int pool_waitq_leave(pool_waitq_t *q, pool_waiter_t *w, pool_waiter_t **deferred)
{
    int result = 0;
    pool_waitq_lock_(q);
    /* Queued in an older epoch: a fork (from inside this waiter's retry,
     * say) forgot the record; its links point into the parent's queue. */
    if (w->queued && w->epoch == q->epoch) {
        pool_waitq_unlink_(q, w);
        result = POOL_LEFT_UNLINKED;
    }
    w->queued = 0;
    if (w->signaled) {
        w->signaled = 0;
        result = POOL_LEFT_SIGNALED;
        pool_waitq_wake_locked_(q, 1, deferred);   /* pass the wake on */
    }
    pool_waitq_unlock_(q);
    return result;
}

int pool_waitq_pass_on(pool_waitq_t *q, pool_waiter_t *w, pool_waiter_t **deferred)
{
    int passed = 0;
    pool_waitq_lock_(q);
    /* Queued again: its owner ran after the wake and used it (a retry). */
    if (w->signaled && !w->queued) {
        w->signaled = 0;
        pool_waitq_wake_locked_(q, 1, deferred);
        passed = 1;
    }
    pool_waitq_unlock_(q);
    return passed;
}

uint32_t pool_waitq_wake(pool_waitq_t *q, uint32_t n, pool_waiter_t **deferred)
{
    uint32_t woken;
    pool_waitq_lock_(q);
    woken = pool_waitq_wake_locked_(q, n, deferred);
    pool_waitq_unlock_(q);
    return woken;
}

int pool_waitq_close(pool_waitq_t *q, pool_waiter_t **deferred)
{
    uint64_t expected = 0;
    /* seq_cst CAS + fence: whatever the closer does next (drain the idle
     * objects, wake) is ordered after `closed` is set; pairs with the fence a
     * releaser runs in pool_waitq_notify between its push and its read of
     * `closed`, so either the releaser sees `closed` or the drain sees the
     * pushed slot */
    if (!pool_cas64(&q->closed, &expected, 1, POOL_SEQ_CST, POOL_RELAXED))
        return 0;
    pool_fence(POOL_SEQ_CST);
    pool_waitq_wake(q, UINT32_MAX, deferred);   /* each retries, meets `closed` */
    return 1;
}

uint64_t pool_waitq_waiting(pool_waitq_t *q)
{
    uint64_t n;
    pool_waitq_lock_(q);   /* forgets a parent's records in a fork child */
    /* relaxed: under the lock */
    n = pool_load64(&q->nwaiters, POOL_RELAXED);
    pool_waitq_unlock_(q);
    return n;
}
