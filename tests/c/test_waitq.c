/*
 * test_waitq.c - validate program for the wait queue (src/pool_waitq.h),
 * with real threads and real atomics (run under ThreadSanitizer by
 * run_sanitizers.sh).  No Python.
 *
 * A pool of CAP slots (the free-list and slot states of the core) and
 * THREADS threads that acquire and release as the extension does: pop, else
 * queue, retry, sleep until woken; a release pushes and wakes one waiter.
 *
 * 1. churn: every thread acquires and releases ITERS times.  A waiter that
 *    sleeps SLEEP_LIMIT_S without a wake-up while slots keep coming back has
 *    lost one: counted as a failure.  An owner flag per slot catches a
 *    double hand-out.  At the end every slot is back and nobody is queued.
 * 2. close: THREADS - 1 threads wait on an empty pool; a concurrent close
 *    wakes every one of them (each sees `closed` and leaves), in time.
 * 3. leave: a waiter signaled but leaving without using its wake passes it
 *    on to the next waiter.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "pool_freelist.h"
#include "pool_slots.h"
#include "pool_waitq.h"
#include "validate.h"

#define THREADS 8
#define CAP 2
#ifndef ITERS
#define ITERS 200000
#endif
#define SLEEP_LIMIT_S 10

/* pool_backoff()'s test hook (POOL_BACKOFF_TEST_HOOK, set by CMakeLists.txt) */
void test_backoff_hook(void);
void test_backoff_hook(void) {}

/* ---- a thread waiter: a record plus a condition variable ----------------- */

typedef struct thread_waiter {
    pool_waiter_t rec;
    pthread_mutex_t m;
    pthread_cond_t c;
    int woken;
} thread_waiter_t;

static void thread_wake(pool_waiter_t *w)   /* under the queue's lock */
{
    thread_waiter_t *t = (thread_waiter_t *)w->ctx;
    pthread_mutex_lock(&t->m);
    t->woken = 1;
    pthread_cond_signal(&t->c);
    pthread_mutex_unlock(&t->m);
}

static void waiter_init(thread_waiter_t *t)
{
    pthread_mutex_init(&t->m, NULL);
    pthread_cond_init(&t->c, NULL);
    t->rec.wake = thread_wake;
    t->rec.ctx = t;
    t->rec.queued = t->rec.signaled = 0;
    t->woken = 0;
}

static void waiter_destroy(thread_waiter_t *t)
{
    pthread_mutex_destroy(&t->m);
    pthread_cond_destroy(&t->c);
}

/* Sleeps until woken: 1, or 0 after SLEEP_LIMIT_S (a lost wake-up). */
static int waiter_sleep(thread_waiter_t *t)
{
    struct timespec deadline;
    int rc = 0, woken;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += SLEEP_LIMIT_S;
    pthread_mutex_lock(&t->m);
    while (!t->woken && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&t->c, &t->m, &deadline);
    woken = t->woken;
    t->woken = 0;
    pthread_mutex_unlock(&t->m);
    return woken;
}

/* ---- the pool under test --------------------------------------------------- */

static pool_slots_t slots;
static pool_freelist_t fl;
static pool_waitq_t q;
static uint64_t owner[CAP];
static uint64_t double_handouts, lost_wakeups, closed_exits, sleeps;

/* The extension's acquire: a slot index, or POOL_NIL once closed. */
static uint32_t acquire(thread_waiter_t *t)
{
    uint32_t gen, i;
    if (pool_waitq_is_closed(&q)) {
        pool_fetch_add64(&closed_exits, 1, POOL_RELAXED);
        return POOL_NIL;
    }
    if ((i = pool_slots_pop_hold(&slots, &fl, &gen)) != POOL_NIL)
        return i;
    /* A wake-up that reached us in an earlier call, after our last retry
     * had already succeeded, was passed on by leave: forget it (a record is
     * never woken while it is not queued).  The extension's waiters use a
     * fresh lock per wait for the same reason. */
    t->woken = 0;
    for (;;) {
        pool_waitq_enqueue(&q, &t->rec);
        if ((i = pool_slots_pop_hold(&slots, &fl, &gen)) != POOL_NIL ||
            pool_waitq_is_closed(&q))
            break;
        pool_fetch_add64(&sleeps, 1, POOL_RELAXED);
        if (!waiter_sleep(t)) {
            pool_fetch_add64(&lost_wakeups, 1, POOL_RELAXED);
            break;
        }
        /* woken: queue again and retry (another thread may have won) */
    }
    pool_waitq_leave(&q, &t->rec, NULL);
    if (i == POOL_NIL)
        pool_fetch_add64(&closed_exits, 1, POOL_RELAXED);
    return i;
}

static void release(uint32_t i)
{
    pool_slots_free_push(&slots, &fl, i);
    if (pool_waitq_notify(&q))
        pool_waitq_wake(&q, 1, NULL);
}

static void take(uint32_t i, uint64_t me)
{
    uint64_t expected = 0;
    /* acq_rel: the owner flag is a second, independent check of ownership */
    if (!pool_cas64(&owner[i], &expected, me, POOL_ACQ_REL, POOL_RELAXED))
        pool_fetch_add64(&double_handouts, 1, POOL_RELAXED);
}

static void give(uint32_t i)
{
    pool_store64(&owner[i], 0, POOL_RELEASE);  /* release: before the push */
}

static void pool_setup(void)
{
    pool_slots_init(&slots, CAP, &fl);
    pool_waitq_init(&q);
    pool_waitq_open(&q);
}

/* ---- 1. churn -------------------------------------------------------------- */

static void *churn_worker(void *arg)
{
    uint64_t me = (uint64_t)(uintptr_t)arg + 1;
    thread_waiter_t t;
    int n;
    waiter_init(&t);
    for (n = 0; n < ITERS / THREADS; n++) {
        uint32_t i = acquire(&t);
        volatile int use;
        if (i == POOL_NIL)
            continue;   /* a lost wake-up, counted */
        take(i, me);
        for (use = 0; use < 2000; use++)   /* hold it a while: others must wait */
            ;
        give(i);
        release(i);
    }
    waiter_destroy(&t);
    return NULL;
}

static int run(void *(*fn)(void *), int nthreads)
{
    pthread_t t[THREADS];
    int k;
    for (k = 0; k < nthreads; k++)
        if (pthread_create(&t[k], NULL, fn, (void *)(uintptr_t)k) != 0)
            return -1;
    for (k = 0; k < nthreads; k++)
        pthread_join(t[k], NULL);
    return 0;
}

static int test_churn(void)
{
    uint32_t gen, i, back = 0;
    pool_setup();
    CHECK(run(churn_worker, THREADS) == 0, "threads");
    CHECK(double_handouts == 0, "%llu double hand-outs", (unsigned long long)double_handouts);
    CHECK(lost_wakeups == 0, "%llu lost wake-ups", (unsigned long long)lost_wakeups);
    CHECK(pool_waitq_waiting(&q) == 0, "%llu still queued",
          (unsigned long long)pool_waitq_waiting(&q));
    while ((i = pool_slots_pop_hold(&slots, &fl, &gen)) != POOL_NIL)
        back++;
    CHECK(back == CAP, "%u of %d slots back", back, CAP);
    CHECK(sleeps > 0, "nobody ever waited: the test tested nothing");
    pool_slots_free(&slots);
    passes++;
    printf("churn: %d threads x %d acquire/release on %d slots, %llu sleeps, no lost "
           "wake-up, no double hand-out\n", THREADS, ITERS / THREADS, CAP,
           (unsigned long long)sleeps);
    return 0;
}

/* ---- 2. close ---------------------------------------------------------------- */

static void *close_waiter(void *arg)
{
    thread_waiter_t t;
    (void)arg;
    waiter_init(&t);
    if (acquire(&t) != POOL_NIL)
        pool_fetch_add64(&double_handouts, 1, POOL_RELAXED);  /* the pool is empty */
    waiter_destroy(&t);
    return NULL;
}

static void *closer(void *arg)
{
    (void)arg;
    while (pool_waitq_waiting(&q) < (THREADS - 1) / 2)   /* close amid arrivals */
        sched_yield();
    pool_waitq_close(&q, NULL);
    return NULL;
}

static int test_close(void)
{
    pthread_t w[THREADS - 1], c;
    uint32_t gen, held[CAP];
    int k;
    double_handouts = lost_wakeups = closed_exits = 0;
    pool_setup();
    for (k = 0; k < CAP; k++)
        held[k] = pool_slots_pop_hold(&slots, &fl, &gen);
    for (k = 0; k < THREADS - 1; k++)
        CHECK(pthread_create(&w[k], NULL, close_waiter, NULL) == 0, "thread");
    CHECK(pthread_create(&c, NULL, closer, NULL) == 0, "thread");
    for (k = 0; k < THREADS - 1; k++)
        pthread_join(w[k], NULL);
    pthread_join(c, NULL);
    CHECK(lost_wakeups == 0, "%llu waiters slept through close",
          (unsigned long long)lost_wakeups);
    CHECK(closed_exits == THREADS - 1, "%llu of %d waiters saw the close",
          (unsigned long long)closed_exits, THREADS - 1);
    CHECK(double_handouts == 0, "a closed, empty pool handed out a slot");
    CHECK(pool_waitq_waiting(&q) == 0, "still queued after close");
    CHECK(pool_waitq_close(&q, NULL) == 0, "closed twice");
    for (k = 0; k < CAP; k++)
        release(held[k]);
    pool_slots_free(&slots);
    passes++;
    printf("close: %d waiters on an empty pool, a concurrent close wakes them all\n",
           THREADS - 1);
    return 0;
}

/* ---- 3. an unused wake is passed on -------------------------------------------- */

static int test_leave_passes_the_wake_on(void)
{
    thread_waiter_t a, b;
    pool_setup();
    waiter_init(&a);
    waiter_init(&b);
    pool_waitq_enqueue(&q, &a.rec);
    pool_waitq_enqueue(&q, &b.rec);
    CHECK(pool_waitq_wake(&q, 1, NULL) == 1 && a.woken && !b.woken, "FIFO: a first");
    /* a leaves without using the wake (say, it timed out at that moment) */
    CHECK(pool_waitq_leave(&q, &a.rec, NULL) == POOL_LEFT_SIGNALED, "a was signaled");
    CHECK(b.woken && !b.rec.queued, "the wake went to b");
    CHECK(pool_waitq_leave(&q, &b.rec, NULL) == POOL_LEFT_SIGNALED, "b signaled");
    /* leaving while still queued: this call unlinks it */
    pool_waitq_enqueue(&q, &a.rec);
    CHECK(pool_waitq_leave(&q, &a.rec, NULL) == POOL_LEFT_UNLINKED, "a unlinked itself");
    CHECK(pool_waitq_leave(&q, &a.rec, NULL) == 0, "a second leave finds nothing");
    CHECK(pool_waitq_waiting(&q) == 0, "empty");
    /* a deferred record is handed back to the waker, not called */
    a.rec.wake = NULL;
    {
        pool_waiter_t *deferred = NULL;
        pool_waitq_enqueue(&q, &a.rec);
        CHECK(pool_waitq_wake(&q, 1, &deferred) == 1 && deferred == &a.rec, "deferred");
        CHECK(pool_waitq_leave(&q, &a.rec, &deferred) == POOL_LEFT_SIGNALED,
              "deferred signaled");
    }
    waiter_destroy(&a);
    waiter_destroy(&b);
    pool_slots_free(&slots);
    passes++;
    printf("leave: an unused wake-up goes to the next waiter; deferred records\n");
    return 0;
}

int main(void)
{
    printf("wait queue, atomics variant: %s\n", POOL_ATOMIC_VARIANT);
    test_churn();
    test_close();
    test_leave_passes_the_wake_on();
    printf("%d passed, %d failed\n", passes, failures);
    return failures ? 1 : 0;
}
