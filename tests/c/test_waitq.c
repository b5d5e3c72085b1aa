/*
 * test_waitq.c - validate program for the wait queue's fair hand-off
 * (src/pool_waitq.h), with real threads and real atomics (run under
 * ThreadSanitizer and ASan/UBSan by run_sanitizers.sh).  No Python.
 *
 * The pool under test is ObjectPool's shape: a slot table of CAP slots, two
 * free-lists (`idle`, preferred, and `empty`, which pool_slots_init fills),
 * and a queue bound to them and to an `acquires` counter.  THREADS threads
 * acquire and release as the extension does:
 *   acquire  newcomer fast path: if the gate is 0, pop idle then empty
 *            (counting the acquire); else pool_waitq_join: TOOK (own it),
 *            CLOSED (fail) or QUEUED: sleep until woken (or a timeout), then
 *            pool_waitq_leave hands out the grant, if any.  A grant the
 *            waiter will not use is passed on (pool_waitq_pass_grant) or,
 *            when nobody waits, given back as a release would.
 *   release  push onto idle; if pool_waitq_notify, pool_waitq_released.
 *
 * 1. churn: THREADS threads share ITERS hand-outs on CAP slots.  A waiter
 *    that sleeps SLEEP_LIMIT_S without a wake-up has lost one (a failure);
 *    on an open queue every wake-up must carry a grant.  An owner flag per
 *    slot catches a double hand-out.  Fairness: each thread's share of the
 *    hand-outs is within a factor FAIR_RATIO of every other's (FIFO).
 * 2. timeouts: waiters time out after 0-50 us, racing the grants; a grant
 *    that arrives with the timeout is used or refused at random.  No slot
 *    is lost or handed out twice.
 * 3. close: THREADS - 1 waiters on a pool whose slots are held; a closer
 *    releases them and closes, interleaved at random, CLOSE_ROUNDS times.
 *    Every waiter ends (granted, or sees `closed`), in time; a grant on a
 *    closed pool is given back; every slot comes back.
 * 4. unit: single-threaded checks of each call of the protocol.
 * 5. the threads' caches (src/pool_cache.h), bound to the queue as
 *    ObjectPool binds them on free-threaded builds (see section 5):
 *    unit: join steals a cached slot; a release that caches and meets a
 *    waiter moves the slot to the list, granted to the head (or a thief
 *    took it first); close and drain leave nothing cached.  churn: THREADS
 *    threads through their own (or shared) shards: no double hand-out, no
 *    lost wake-up (nor a slot left in a shard while a waiter sleeps),
 *    counts balanced, every slot free exactly once at the end (lists plus
 *    shards).  close: a close and its drain race the cached releases; in
 *    the end every slot was drained, none left idle or cached.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>

#include "pool_freelist.h"
#include "pool_slots.h"
#include "pool_waitq.h"
#include "validate.h"

#define THREADS 8
#define CAP 2
#ifndef ITERS
#define ITERS 100000           /* churn: hand-outs in all; timeouts: attempts */
#endif
#ifndef CLOSE_ROUNDS
#define CLOSE_ROUNDS 200
#endif
#define SLEEP_LIMIT_S 10
/* per-thread hand-outs, most / fewest: FIFO keeps it near 1 on an idle
 * machine, but the scheduler moves it on a loaded one, the more under
 * ThreadSanitizer (24.7 seen on 2 busy cores: a thread that is not
 * running takes no ticket); the old wake-up hint and a grant to the tail
 * gave thousands (or a thread with none), so 100 still tells them apart */
#define FAIR_RATIO 100.0
#define NO_TIMEOUT (-1L)

/* pool_backoff()'s test hook (POOL_BACKOFF_TEST_HOOK, set by CMakeLists.txt) */
void test_backoff_hook(void);
void test_backoff_hook(void) {}

/* ---- a thread waiter: a record plus a condition variable ----------------- */

typedef struct thread_waiter {
    pool_waiter_t rec;
    pthread_mutex_t m;
    pthread_cond_t c;
    int woken;
    uint64_t order;            /* wake_seq at its last wake-up */
} thread_waiter_t;

static uint64_t wake_seq;      /* under the queue's lock */

static void thread_wake(pool_waiter_t *w)   /* under the queue's lock */
{
    thread_waiter_t *t = (thread_waiter_t *)w->ctx;
    pthread_mutex_lock(&t->m);
    t->woken = 1;
    t->order = ++wake_seq;
    pthread_cond_signal(&t->c);
    pthread_mutex_unlock(&t->m);
}

static void waiter_init(thread_waiter_t *t)
{
    pthread_mutex_init(&t->m, NULL);
    pthread_cond_init(&t->c, NULL);
    t->rec.next = t->rec.prev = NULL;
    t->rec.queued = t->rec.signaled = 0;
    t->rec.grant = POOL_NIL;
    t->rec.grant_list = 0;
    t->rec.epoch = 0;
    t->rec.wake = thread_wake;
    t->rec.ctx = t;
    t->woken = 0;
    t->order = 0;
}

static void waiter_destroy(thread_waiter_t *t)
{
    pthread_mutex_destroy(&t->m);
    pthread_cond_destroy(&t->c);
}

static void waiter_reset(thread_waiter_t *t)
{
    pthread_mutex_lock(&t->m);
    t->woken = 0;
    pthread_mutex_unlock(&t->m);
}

/* Sleeps until woken or timeout_ns (NO_TIMEOUT: SLEEP_LIMIT_S, after which a
 * sleeper still not woken has lost its wake-up).  Returns whether woken. */
static int waiter_sleep(thread_waiter_t *t, long timeout_ns)
{
    struct timespec deadline;
    int rc = 0, woken;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (timeout_ns < 0) {
        deadline.tv_sec += SLEEP_LIMIT_S;
    } else {
        deadline.tv_nsec += timeout_ns;
        while (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_nsec -= 1000000000L;
            deadline.tv_sec++;
        }
    }
    pthread_mutex_lock(&t->m);
    while (!t->woken && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&t->c, &t->m, &deadline);
    woken = t->woken;
    pthread_mutex_unlock(&t->m);
    return woken;
}

/* ---- the pool under test --------------------------------------------------- */

static pool_slots_t slots;
static pool_freelist_t idle, empty;
static pool_waitq_t q;
static uint64_t acquires, releases;
#define CAP_MAX 8             /* the largest pool under test (the cache tests') */
static uint64_t owner[CAP_MAX];
static uint64_t double_handouts, lost_wakeups, closed_exits, sleeps, bare_wakes,
    timeouts, late_grants, grants_used, grants_passed, grants_given_back, uses;

static void count(uint64_t *c)
{
    pool_fetch_add64(c, 1, POOL_RELAXED);   /* relaxed: statistics */
}

static uint64_t get(uint64_t *c)
{
    return pool_load64(c, POOL_RELAXED);    /* relaxed: read after the joins */
}

/* A lost wake-up or a wake-up without a grant: the threads stop. */
static int broken(void)
{
    return get(&lost_wakeups) != 0 || get(&bare_wakes) != 0;
}

static pool_freelist_t *list_of(uint32_t k)
{
    return k == 0 ? &idle : &empty;
}

/* A pool of cap slots; cache: the threads' caches bound to the queue, or NULL. */
static void pool_setup_with(uint32_t cap, pool_cache_t *cache)
{
    int k;
    pool_freelist_init(&idle);
    pool_slots_init(&slots, cap, &empty);   /* every slot onto `empty` */
    pool_waitq_init(&q);
    pool_waitq_bind(&q, &slots, &idle, &empty, &acquires, cache);
    acquires = releases = 0;
    double_handouts = lost_wakeups = closed_exits = sleeps = bare_wakes = 0;
    timeouts = late_grants = grants_used = grants_passed = grants_given_back = uses = 0;
    wake_seq = 0;
    for (k = 0; k < CAP_MAX; k++)
        owner[k] = 0;
    pool_waitq_open(&q);
}

static void pool_setup(void)
{
    pool_setup_with(CAP, NULL);
}

/* Pops every free slot (both lists): how many were back. */
static uint32_t slots_back(void)
{
    uint32_t n = 0;
    while (pool_slots_pop_own(&slots, &idle) != POOL_NIL)
        n++;
    while (pool_slots_pop_own(&slots, &empty) != POOL_NIL)
        n++;
    return n;
}

/* The newcomer's fast path: the gate open, pop idle then empty. */
static uint32_t fast_acquire(void)
{
    uint32_t gen, i;
    if (pool_waitq_gate(&q) != 0)
        return POOL_NIL;
    i = pool_slots_pop_hold(&slots, &idle, &gen);
    if (i == POOL_NIL)
        i = pool_slots_pop_hold(&slots, &empty, &gen);
    if (i != POOL_NIL)
        pool_fetch_add64(&acquires, 1, POOL_RELAXED);   /* relaxed: a statistic */
    return i;
}

static void release(uint32_t i)
{
    pool_slots_free_push(&slots, &idle, i);
    count(&releases);
    if (pool_waitq_notify(&q))
        pool_waitq_released(&q, NULL);
}

/* A grant (slot i from list k, owned RELEASING) its waiter will not use. */
static void refuse(uint32_t i, uint32_t k)
{
    if (pool_waitq_pass_grant(&q, i, k, NULL)) {
        count(&grants_passed);
        return;
    }
    pool_fetch_add64(&acquires, (uint64_t)0 - 1, POOL_RELAXED);   /* relaxed: a statistic */
    pool_slots_free_push(&slots, list_of(k), i);
    count(&grants_given_back);
    if (pool_waitq_notify(&q))
        pool_waitq_released(&q, NULL);
}

enum { ACQ_OK,
       ACQ_CLOSED,
       ACQ_TIMEOUT,
       ACQ_LOST };

/* The extension's acquire.  timeout_ns: NO_TIMEOUT, or a wait after which
 * the waiter gives up; refuse_late: a grant that came with the timeout is
 * refused (1) or used (0).  ACQ_OK with *out held. */
static int acquire(thread_waiter_t *t, long timeout_ns, int refuse_late, uint32_t *out)
{
    uint32_t i, k;
    int r, woken;
    if ((i = fast_acquire()) != POOL_NIL) {
        *out = i;
        return ACQ_OK;
    }
    waiter_reset(t);   /* not queued: nobody wakes it now */
    r = pool_waitq_join(&q, &t->rec, &i, &k);
    if (r == POOL_JOIN_TOOK) {
        pool_slots_hold(&slots, i);
        *out = i;
        return ACQ_OK;
    }
    if (r == POOL_JOIN_CLOSED) {
        count(&closed_exits);
        return ACQ_CLOSED;
    }
    count(&sleeps);
    woken = waiter_sleep(t, timeout_ns);
    pool_waitq_leave(&q, &t->rec, &i, &k, NULL);
    if (i != POOL_NIL) {
        if (pool_waitq_is_closed(&q)) {
            refuse(i, k);   /* closed: give it back */
            count(&closed_exits);
            return ACQ_CLOSED;
        }
        if (!woken) {
            /* granted as it timed out: use it or not */
            count(&late_grants);
            if (refuse_late) {
                refuse(i, k);
                count(&timeouts);
                return ACQ_TIMEOUT;
            }
        }
        count(&grants_used);
        pool_slots_hold(&slots, i);
        *out = i;
        return ACQ_OK;
    }
    if (pool_waitq_is_closed(&q)) {
        count(&closed_exits);
        return ACQ_CLOSED;
    }
    if (!woken) {
        if (timeout_ns >= 0) {
            count(&timeouts);
            return ACQ_TIMEOUT;
        }
        count(&lost_wakeups);
        return ACQ_LOST;
    }
    /* woken without a grant on an open queue: nothing in these tests
     * sends a hint to an open queue (a failure, checked by each test) */
    count(&bare_wakes);
    return ACQ_LOST;
}

static void take(uint32_t i, uint64_t me)
{
    uint64_t expected = 0;
    /* acq_rel: the owner flag is a second, independent check of ownership */
    if (!pool_cas64(&owner[i], &expected, me, POOL_ACQ_REL, POOL_RELAXED))
        count(&double_handouts);
}

static void give(uint32_t i)
{
    pool_store64(&owner[i], 0, POOL_RELEASE);  /* release: before the push */
}

/* Holds slot i a while (spin < 0: gives up the CPU meanwhile, so that on
 * a machine with fewer cores than threads the others run and queue up, and
 * the hand-off, not the scheduler, decides who gets the slot next). */
static void use(uint32_t i, uint64_t me, int spin)
{
    volatile int n;
    take(i, me);
    if (spin < 0)
        sched_yield();
    for (n = 0; n < spin; n++)   /* hold it a while: others must wait */
        ;
    count(&uses);
    give(i);
    release(i);
}

static pthread_barrier_t start;

static int run(void *(*fn)(void *), int nthreads)
{
    pthread_t t[THREADS];
    int k;
    pthread_barrier_init(&start, NULL, (unsigned)nthreads);
    for (k = 0; k < nthreads; k++)
        if (pthread_create(&t[k], NULL, fn, (void *)(uintptr_t)k) != 0)
            return -1;
    for (k = 0; k < nthreads; k++)
        pthread_join(t[k], NULL);
    pthread_barrier_destroy(&start);
    return 0;
}

/* Every slot back, nobody queued, the counters balanced. */
static int check_quiescent(const char *test)
{
    uint64_t a = get(&acquires), r = get(&releases);
    uint32_t back;
    CHECK(get(&double_handouts) == 0, "%s: %llu double hand-outs", test,
          (unsigned long long)get(&double_handouts));
    CHECK(get(&lost_wakeups) == 0, "%s: %llu lost wake-ups", test,
          (unsigned long long)get(&lost_wakeups));
    CHECK(pool_waitq_waiting(&q) == 0, "%s: %llu still queued", test,
          (unsigned long long)pool_waitq_waiting(&q));
    CHECK(a == r, "%s: %llu acquires counted, %llu releases", test,
          (unsigned long long)a, (unsigned long long)r);
    CHECK(r == get(&uses), "%s: %llu releases, %llu uses", test, (unsigned long long)r,
          (unsigned long long)get(&uses));
    back = slots_back();
    CHECK(back == CAP, "%s: %u of %d slots back", test, back, CAP);
    return 0;
}

/* ---- 1. churn -------------------------------------------------------------- */

static uint64_t total, per_thread[THREADS];

static void *churn_worker(void *arg)
{
    uintptr_t k = (uintptr_t)arg;
    thread_waiter_t t;
    waiter_init(&t);
    pthread_barrier_wait(&start);
    /* relaxed: a ticket; a lost wake-up stops everyone (each would sleep
     * SLEEP_LIMIT_S) */
    while (!broken() && pool_fetch_add64(&total, 1, POOL_RELAXED) < ITERS) {
        uint32_t i;
        if (acquire(&t, NO_TIMEOUT, 0, &i) != ACQ_OK)
            break;   /* a lost wake-up, counted */
        per_thread[k]++;
        use(i, k + 1, -1);
    }
    waiter_destroy(&t);
    return NULL;
}

static int test_churn(void)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    double ratio;
    int k;
    pool_setup();
    total = 0;
    for (k = 0; k < THREADS; k++)
        per_thread[k] = 0;
    CHECK(run(churn_worker, THREADS) == 0, "threads");
    if (check_quiescent("churn"))
        return 1;
    CHECK(get(&sleeps) > 0, "churn: nobody ever waited: the test tested nothing");
    CHECK(get(&bare_wakes) == 0, "churn: %llu wake-ups without a grant on an open queue",
          (unsigned long long)get(&bare_wakes));
    CHECK(get(&uses) == ITERS, "churn: %llu of %d hand-outs", (unsigned long long)get(&uses),
          ITERS);
    for (k = 0; k < THREADS; k++) {
        if (per_thread[k] < lo)
            lo = per_thread[k];
        if (per_thread[k] > hi)
            hi = per_thread[k];
    }
    ratio = lo ? (double)hi / (double)lo : 1e30;
    CHECK(ratio <= FAIR_RATIO, "churn: unfair: %llu..%llu hand-outs per thread (%.2f > %.1f)",
          (unsigned long long)lo, (unsigned long long)hi, ratio, FAIR_RATIO);
    pool_slots_free(&slots);
    passes++;
    printf("churn: %d threads share %d acquire/release on %d slots, %llu sleeps, no lost "
           "wake-up, no double hand-out, fair: %llu..%llu per thread (max/min %.3f)\n",
           THREADS, ITERS, CAP, (unsigned long long)get(&sleeps), (unsigned long long)lo,
           (unsigned long long)hi, ratio);
    return 0;
}

/* ---- 2. timeouts at the moment of grant ------------------------------------------ */

static void *timeout_worker(void *arg)
{
    uintptr_t k = (uintptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (k + 1);
    thread_waiter_t t;
    int n;
    waiter_init(&t);
    pthread_barrier_wait(&start);
    for (n = 0; n < ITERS / THREADS && !broken(); n++) {
        uint64_t r = rnd(&rng);
        uint32_t i;
        long timeout_ns = (long)(r % 51) * 1000;   /* 0..50 us */
        int rc = acquire(&t, timeout_ns, (int)((r >> 8) & 1), &i);
        if (rc == ACQ_OK)
            use(i, k + 1, (r >> 16) & 1 ? -1 : (int)((r >> 17) % 200));
        else if (rc != ACQ_TIMEOUT)
            break;   /* counted */
    }
    waiter_destroy(&t);
    return NULL;
}

static int test_timeouts(void)
{
    pool_setup();
    CHECK(run(timeout_worker, THREADS) == 0, "threads");
    if (check_quiescent("timeouts"))
        return 1;
    CHECK(get(&closed_exits) == 0, "timeouts: the open pool said closed");
    CHECK(get(&timeouts) > 0 && get(&sleeps) > 0, "timeouts: nobody timed out (%llu timeouts, %llu sleeps, %llu uses)",
          (unsigned long long)get(&timeouts), (unsigned long long)get(&sleeps), (unsigned long long)get(&uses));
    CHECK(get(&bare_wakes) == 0, "timeouts: %llu wake-ups without a grant on an open queue",
          (unsigned long long)get(&bare_wakes));
    pool_slots_free(&slots);
    passes++;
    printf("timeouts: %d threads x %d attempts, %llu timeouts, %llu grants at the timeout "
           "(%llu passed on, %llu given back), %llu uses, no slot lost\n",
           THREADS, ITERS / THREADS, (unsigned long long)get(&timeouts),
           (unsigned long long)get(&late_grants), (unsigned long long)get(&grants_passed),
           (unsigned long long)get(&grants_given_back), (unsigned long long)get(&uses));
    return 0;
}

/* ---- 3. close during grants ----------------------------------------------------- */

static uint32_t held[CAP];
static uint64_t close_rng, round_ok, round_closed;

static void *close_waiter(void *arg)
{
    uintptr_t k = (uintptr_t)arg;
    thread_waiter_t t;
    uint32_t i;
    int rc;
    waiter_init(&t);
    rc = acquire(&t, NO_TIMEOUT, 0, &i);
    if (rc == ACQ_OK) {
        count(&round_ok);
        use(i, k + 1, 100);
    } else if (rc == ACQ_CLOSED) {
        count(&round_closed);
    }
    waiter_destroy(&t);
    return NULL;
}

static void *closer(void *arg)
{
    uint64_t r = rnd(&close_rng);
    uint64_t want = r % THREADS;                 /* 0 .. THREADS - 1 queued */
    uint32_t close_at = (uint32_t)((r >> 8) % (CAP + 1));   /* after this many releases */
    uint32_t k;
    (void)arg;
    while (pool_waitq_waiting(&q) < want)   /* every waiter queues: no slot is free */
        sched_yield();
    for (k = 0; k <= CAP; k++) {
        uint32_t y = (uint32_t)((r >> (16 + 2 * k)) & 3);   /* 0..3 yields: let grants land */
        if (k == close_at)
            pool_waitq_close(&q, NULL);
        if (k < CAP) {
            give(held[k]);
            release(held[k]);
        }
        while (y-- > 0)
            sched_yield();
    }
    return NULL;
}

static int test_close(void)
{
    pthread_t w[THREADS - 1], c;
    uint64_t ok = 0, gave_back = 0;
    int k, round;
    close_rng = 0x2545f4914f6cdd1dull;
    for (round = 0; round < CLOSE_ROUNDS; round++) {
        pool_setup();
        round_ok = round_closed = 0;
        for (k = 0; k < CAP; k++) {
            held[k] = fast_acquire();
            CHECK(held[k] != POOL_NIL, "close: the main thread could not take slot %d", k);
            take(held[k], 99);
            count(&uses);   /* released by the closer */
        }
        for (k = 0; k < THREADS - 1; k++)
            CHECK(pthread_create(&w[k], NULL, close_waiter, (void *)(uintptr_t)k) == 0,
                  "thread");
        CHECK(pthread_create(&c, NULL, closer, NULL) == 0, "thread");
        for (k = 0; k < THREADS - 1; k++)
            pthread_join(w[k], NULL);
        pthread_join(c, NULL);
        CHECK(pool_waitq_is_closed(&q), "close: not closed");
        CHECK(pool_waitq_close(&q, NULL) == 0, "close: closed twice");
        CHECK(get(&round_ok) + get(&round_closed) == THREADS - 1,
              "close: round %d: %llu granted + %llu saw the close, of %d waiters", round,
              (unsigned long long)get(&round_ok), (unsigned long long)get(&round_closed),
              THREADS - 1);
        CHECK(get(&bare_wakes) == 0, "close: a wake-up without a grant while open");
        if (check_quiescent("close"))
            return 1;
        ok += get(&round_ok);
        gave_back += get(&grants_given_back);
        pool_slots_free(&slots);
    }
    passes++;
    printf("close: %d rounds, %d waiters each on a held pool, a concurrent close wakes them "
           "all (%llu granted, %llu grants given back after the close), every slot back\n",
           CLOSE_ROUNDS, THREADS - 1, (unsigned long long)ok, (unsigned long long)gave_back);
    return 0;
}

/* ---- 4. single-threaded unit checks ---------------------------------------------- */

static int unit_fifo(void)
{
    thread_waiter_t a, b;
    uint32_t i0, i1, s, k;
    pool_setup();
    waiter_init(&a);
    waiter_init(&b);
    i0 = fast_acquire();
    i1 = fast_acquire();
    CHECK(i0 != POOL_NIL && i1 != POOL_NIL && fast_acquire() == POOL_NIL, "fifo: take both");
    CHECK(pool_waitq_join(&q, &a.rec, &s, &k) == POOL_JOIN_QUEUED, "fifo: a queued");
    CHECK(pool_waitq_join(&q, &b.rec, &s, &k) == POOL_JOIN_QUEUED, "fifo: b queued");
    CHECK(pool_waitq_waiting(&q) == 2 && pool_waitq_gate(&q) == 2 * POOL_GATE_WAITER,
          "fifo: two queued");
    release(i1);
    CHECK(a.woken && !b.woken, "fifo: the first release wakes a, not b");
    CHECK(a.rec.grant == i1 && a.rec.grant_list == 0 && !a.rec.queued, "fifo: a granted i1");
    CHECK(b.rec.grant == POOL_NIL && b.rec.queued, "fifo: b still waits");
    CHECK(get(&acquires) == 3, "fifo: a grant counts an acquire");
    CHECK(POOL_SLOT_STATE(pool_slots_load(&slots, i1)) == POOL_SLOT_RELEASING,
          "fifo: a granted slot is owned RELEASING");
    release(i0);
    CHECK(b.woken && b.rec.grant == i0 && a.order < b.order, "fifo: then b, after a");
    CHECK(pool_waitq_gate(&q) == 0, "fifo: the gate opens with nobody queued");
    CHECK(pool_waitq_leave(&q, &a.rec, &s, &k, NULL) == POOL_LEFT_SIGNALED && s == i1 && k == 0,
          "fifo: a leaves with its grant");
    CHECK(a.rec.grant == POOL_NIL, "fifo: leave clears the grant");
    pool_slots_hold(&slots, s);
    count(&uses);
    release(s);
    CHECK(pool_waitq_leave(&q, &b.rec, &s, &k, NULL) == POOL_LEFT_SIGNALED && s == i0,
          "fifo: b leaves with its grant");
    pool_slots_hold(&slots, s);
    count(&uses);
    release(s);
    CHECK(get(&acquires) == 4 && get(&releases) == 4, "fifo: counts balanced");
    CHECK(slots_back() == CAP, "fifo: slots back");
    waiter_destroy(&a);
    waiter_destroy(&b);
    pool_slots_free(&slots);
    return 0;
}

static int unit_join(void)
{
    thread_waiter_t a, b;
    uint32_t i0, i1, s, k;
    pool_setup();
    waiter_init(&a);
    waiter_init(&b);
    /* nobody queued, a slot free: join takes it */
    CHECK(pool_waitq_join(&q, &a.rec, &s, &k) == POOL_JOIN_TOOK && s != POOL_NIL && k == 1,
          "join: takes a free slot (from `empty`)");
    CHECK(!a.rec.queued && pool_waitq_gate(&q) == 0 && get(&acquires) == 1,
          "join: took it without queueing, acquire counted");
    CHECK(POOL_SLOT_STATE(pool_slots_load(&slots, s)) == POOL_SLOT_RELEASING,
          "join: the slot it took is owned RELEASING");
    pool_slots_hold(&slots, s);
    release(s);   /* onto idle */
    /* idle is preferred */
    CHECK(pool_waitq_join(&q, &a.rec, &i0, &k) == POOL_JOIN_TOOK && i0 == s && k == 0,
          "join: prefers `idle`");
    pool_slots_hold(&slots, i0);
    i1 = fast_acquire();
    CHECK(i1 != POOL_NIL, "join: second slot");
    /* no barging: a queued; a slot pushed, its releaser not yet at notify */
    CHECK(pool_waitq_join(&q, &a.rec, &s, &k) == POOL_JOIN_QUEUED, "join: a queued");
    pool_slots_free_push(&slots, &idle, i0);
    count(&releases);
    CHECK(fast_acquire() == POOL_NIL, "join: the fast path does not barge past a");
    CHECK(pool_waitq_join(&q, &b.rec, &s, &k) == POOL_JOIN_QUEUED,
          "join: b queues behind a although a slot is free");
    CHECK(pool_waitq_notify(&q) != 0, "join: notify sees the waiters");
    CHECK(pool_waitq_released(&q, NULL) == 1, "join: released grants one");
    CHECK(a.rec.grant == i0 && b.rec.grant == POOL_NIL && b.rec.queued,
          "join: the free slot went to a, the oldest");
    /* pass_grant: a will not use it; it goes to b */
    CHECK(pool_waitq_leave(&q, &a.rec, &s, &k, NULL) == POOL_LEFT_SIGNALED && s == i0,
          "join: a leaves with the grant");
    CHECK(pool_waitq_pass_grant(&q, s, k, NULL) == 1, "pass_grant: to b");
    CHECK(b.woken && b.rec.grant == i0 && !b.rec.queued && pool_waitq_waiting(&q) == 0,
          "pass_grant: b holds it now");
    CHECK(get(&acquires) == 4, "pass_grant: a passed grant stays counted");
    CHECK(pool_waitq_leave(&q, &b.rec, &s, &k, NULL) == POOL_LEFT_SIGNALED && s == i0,
          "pass_grant: b leaves with it");
    CHECK(pool_waitq_pass_grant(&q, s, k, NULL) == 0, "pass_grant: 0 when nobody waits");
    refuse(s, k);   /* gives it back: nobody waits */
    CHECK(get(&grants_given_back) == 1 && get(&acquires) == 3, "pass_grant: given back");
    /* leave while queued: this call unlinks; a second finds nothing */
    CHECK(pool_waitq_join(&q, &a.rec, &s, &k) == POOL_JOIN_TOOK && s == i0,
          "join: the given-back slot is free again");
    pool_slots_hold(&slots, s);
    CHECK(pool_waitq_join(&q, &b.rec, &s, &k) == POOL_JOIN_QUEUED, "join: b queued");
    CHECK(pool_waitq_leave(&q, &b.rec, &s, &k, NULL) == POOL_LEFT_UNLINKED && s == POOL_NIL,
          "leave: unlinked itself, no grant");
    CHECK(pool_waitq_leave(&q, &b.rec, &s, &k, NULL) == 0, "leave: a second leave: nothing");
    CHECK(pool_waitq_gate(&q) == 0, "leave: gate open");
    release(i0);
    release(i1);
    CHECK(get(&acquires) == 4 && get(&releases) == 4,
          "join: counts %llu %llu", (unsigned long long)get(&acquires),
          (unsigned long long)get(&releases));
    CHECK(slots_back() == CAP, "join: slots back");
    waiter_destroy(&a);
    waiter_destroy(&b);
    pool_slots_free(&slots);
    return 0;
}

static int unit_deferred(void)
{
    thread_waiter_t a, d, e;
    pool_waiter_t *deferred = NULL;
    uint32_t i0, i1, s, k;
    pool_setup();
    waiter_init(&a);
    waiter_init(&d);
    waiter_init(&e);
    d.rec.wake = NULL;   /* an asyncio task's record */
    i0 = fast_acquire();
    i1 = fast_acquire();
    CHECK(pool_waitq_join(&q, &d.rec, &s, &k) == POOL_JOIN_QUEUED, "deferred: d queued");
    CHECK(pool_waitq_join(&q, &a.rec, &s, &k) == POOL_JOIN_QUEUED, "deferred: a queued");
    pool_slots_free_push(&slots, &idle, i0);
    CHECK(pool_waitq_notify(&q) && pool_waitq_released(&q, &deferred) == 1,
          "deferred: released grants one");
    CHECK(deferred == &d.rec && d.rec.next == NULL && d.rec.grant == i0 && !d.rec.queued,
          "deferred: d comes back on the deferred list, granted");
    CHECK(!a.woken && a.rec.queued, "deferred: a still waits");
    /* d's loop is gone: the grant comes out and is passed on, to a */
    deferred = NULL;
    pool_waitq_pass_on(&q, &d.rec, &s, &k, &deferred);
    CHECK(s == i0 && k == 0 && d.rec.grant == POOL_NIL && deferred == NULL,
          "pass_on: the grant comes out of the record");
    CHECK(pool_waitq_pass_grant(&q, s, k, NULL) == 1 && a.woken && a.rec.grant == i0,
          "pass_on: passed on to a");
    pool_waitq_pass_on(&q, &d.rec, &s, &k, &deferred);
    CHECK(s == POOL_NIL && deferred == NULL, "pass_on: twice: nothing");
    CHECK(pool_waitq_leave(&q, &a.rec, &s, &k, NULL) == POOL_LEFT_SIGNALED && s == i0,
          "pass_on: a leaves with it");
    pool_slots_hold(&slots, s);
    /* close: queued records woken with a hint, no grant */
    waiter_reset(&a);
    CHECK(pool_waitq_join(&q, &a.rec, &s, &k) == POOL_JOIN_QUEUED, "close: a queued");
    CHECK(pool_waitq_join(&q, &e.rec, &s, &k) == POOL_JOIN_QUEUED, "close: e queued");
    CHECK(pool_waitq_join(&q, &d.rec, &s, &k) == POOL_JOIN_QUEUED, "close: d queued");
    deferred = NULL;
    CHECK(pool_waitq_close(&q, &deferred) == 1 && pool_waitq_is_closed(&q), "close: closes");
    CHECK(a.woken && e.woken && a.rec.signaled && e.rec.signaled && deferred == &d.rec
              && d.rec.signaled && a.rec.grant == POOL_NIL && e.rec.grant == POOL_NIL
              && d.rec.grant == POOL_NIL && pool_waitq_waiting(&q) == 0,
          "close: wakes every record, signaled, no grant");
    CHECK(pool_waitq_close(&q, NULL) == 0, "close: twice");
    CHECK(pool_waitq_join(&q, &e.rec, &s, &k) == POOL_JOIN_CLOSED && !e.rec.queued,
          "close: join on a closed queue");
    deferred = NULL;
    CHECK(pool_waitq_leave(&q, &a.rec, &s, &k, &deferred) == POOL_LEFT_SIGNALED && s == POOL_NIL
              && deferred == NULL,
          "close: a leaves, signaled, nobody to pass the hint to");
    CHECK(pool_waitq_leave(&q, &e.rec, &s, &k, NULL) == POOL_LEFT_SIGNALED, "close: e leaves");
    pool_waitq_pass_on(&q, &d.rec, &s, &k, NULL);
    CHECK(s == POOL_NIL && !d.rec.signaled, "close: d's hint passed on (to nobody)");
    /* drain waiters on a closed queue: a release grants nothing, hints one */
    waiter_reset(&a);
    waiter_reset(&e);
    pool_waitq_enqueue(&q, &a.rec);
    pool_waitq_enqueue(&q, &e.rec);
    CHECK(pool_waitq_gate(&q) == (POOL_GATE_CLOSED | 2 * POOL_GATE_WAITER),
          "drain: two queued on a closed queue");
    pool_slots_free_push(&slots, &idle, i0);
    CHECK(pool_waitq_notify(&q) && pool_waitq_released(&q, NULL) == 1, "drain: one hint");
    CHECK(a.woken && a.rec.signaled && a.rec.grant == POOL_NIL && !e.woken && e.rec.queued,
          "drain: a hinted, no grant; e waits");
    CHECK(pool_waitq_leave(&q, &a.rec, &s, &k, NULL) == POOL_LEFT_SIGNALED && s == POOL_NIL,
          "drain: a leaves without using the hint");
    CHECK(e.woken && e.rec.signaled && !e.rec.queued, "drain: the hint went to e");
    CHECK(pool_waitq_leave(&q, &e.rec, &s, &k, NULL) == POOL_LEFT_SIGNALED, "drain: e leaves");
    /* a deferred drain waiter: released() hands it back */
    pool_waitq_enqueue(&q, &d.rec);
    pool_slots_free_push(&slots, &idle, i1);
    deferred = NULL;
    CHECK(pool_waitq_notify(&q) && pool_waitq_released(&q, &deferred) == 1
              && deferred == &d.rec && d.rec.signaled && d.rec.grant == POOL_NIL,
          "drain: a deferred record comes back hinted");
    CHECK(pool_waitq_leave(&q, &d.rec, &s, &k, NULL) == POOL_LEFT_SIGNALED, "drain: d leaves");
    CHECK(pool_waitq_waiting(&q) == 0, "drain: nobody queued");
    CHECK(slots_back() == CAP, "drain: every slot back");
    waiter_destroy(&a);
    waiter_destroy(&d);
    waiter_destroy(&e);
    pool_slots_free(&slots);
    return 0;
}

static int test_unit(void)
{
    if (unit_fifo() || unit_join() || unit_deferred())
        return 1;
    passes++;
    printf("unit: FIFO grants, join takes/queues/refuses, no barging, pass_grant, deferred "
           "records and pass_on, close, drain hints\n");
    return 0;
}

/* ---- 5. the threads' caches (src/pool_cache.h) ------------------------------------
 * ObjectPool's free-threaded hot path: a free slot per thread ("shard") in
 * front of the idle list, bound to the queue (pool_waitq_bind's cache), so
 * a waiter that finds the lists empty steals a cached slot.  The model:
 *   acquire  gate open ? my shard : idle : empty : steal a shard ; else
 *            join (which pops, then steals) / sleep / leave, as above.
 *   release  HELD -> FREE ; put it in my shard ; notify (the fence): if the
 *            gate is shut, reclaim it and push it on idle (unless a waiter
 *            or another releaser stole it meanwhile), released, and closed:
 *            drain.  The shard full: push on idle, notify, as before.
 *   drain    (close, and a release that sees `closed`) steal every shard,
 *            pop idle; each slot owned and moved to `empty` (_drain_idle,
 *            _unhold_empty).
 * The release's put and the joiner's steal are a Dekker pair (as the push
 * and the pop): a waiter left asleep while a slot sits in a shard is a lost
 * wake-up (SLEEP_LIMIT_S, and c_sleep's look at the shards).  The close's
 * CAS and drain make the same pair with the put: nothing stays cached. */

#define CCAP 6                 /* the cache tests' pool: fewer slots than threads */
#ifndef CACHE_CLOSE_ROUNDS
#define CACHE_CLOSE_ROUNDS 60
#endif
#define SHARED_SHARDS 3        /* churn's second run: threads share shards */

static pool_cache_t cache;
static uint32_t ccap;
static uint64_t cache_takes, fast_steals, join_took, uncached, reclaim_lost, shard_full,
    drained, bad_releases, hidden_slots;

static int cache_setup(uint32_t cap)
{
    CHECK(cap <= CAP_MAX && pool_cache_init(&cache) == 0, "cache: init");
    ccap = cap;
    pool_setup_with(cap, &cache);
    cache_takes = fast_steals = join_took = uncached = reclaim_lost = shard_full = 0;
    drained = bad_releases = hidden_slots = 0;
    return 0;
}

static void cache_teardown(void)
{
    pool_slots_free(&slots);
    pool_cache_free(&cache);
}

static uint64_t shard_slot(uint32_t k)
{
    return pool_load64(&cache.shards[k].slot, POOL_RELAXED);   /* relaxed: one thread */
}

/* The fast path: the gate open, my shard, then idle, empty, other shards. */
static uint32_t c_fast_acquire(pool_cache_shard_t *sh)
{
    uint32_t gen, i;
    if (pool_waitq_gate(&q) != 0)
        return POOL_NIL;
    if ((i = pool_cache_take(sh)) != POOL_NIL) {
        pool_slots_hold(&slots, i);
        count(&cache_takes);
    } else if ((i = pool_slots_pop_hold(&slots, &idle, &gen)) == POOL_NIL
               && (i = pool_slots_pop_hold(&slots, &empty, &gen)) == POOL_NIL
               && (i = pool_cache_steal(&cache)) != POOL_NIL) {
        pool_slots_hold(&slots, i);
        count(&fast_steals);
    }
    if (i != POOL_NIL)
        count(&acquires);
    return i;
}

/* Every cached slot, then every idle one, owned and moved to `empty`. */
static void c_drain(void)
{
    for (;;) {
        uint32_t i = pool_cache_steal(&cache);
        if (i != POOL_NIL)
            pool_slots_own(&slots, i);
        else if ((i = pool_slots_pop_own(&slots, &idle)) == POOL_NIL)
            return;
        count(&drained);
        pool_slots_free_push(&slots, &empty, i);
    }
}

/* After a push (or a cached slot's fence) that found the gate shut. */
static void c_after_push(void)
{
    pool_waitq_released(&q, NULL);
    if (pool_waitq_is_closed(&q))
        c_drain();
}

/* ObjectPool's plain release (_return_idle, _cold_uncache). */
static void c_release(pool_cache_shard_t *sh, uint32_t i)
{
    uint64_t w = pool_slots_load(&slots, i);
    if (pool_slots_release_handle(&slots, i, POOL_SLOT_GEN(w)) != POOL_FREED) {
        count(&bad_releases);   /* not HELD by us: a double hand-out */
        return;
    }
    count(&releases);
    if (pool_cache_put(sh, i)) {
        if (pool_waitq_notify(&q)) {   /* someone waits, or closed */
            if (pool_cache_reclaim(sh, i)) {
                pool_slots_push(&slots, &idle, i);
                count(&uncached);
            } else {
                count(&reclaim_lost);   /* a waiter (or its releaser) stole it */
            }
            c_after_push();
        }
        return;
    }
    count(&shard_full);
    pool_slots_push(&slots, &idle, i);
    if (pool_waitq_notify(&q))
        c_after_push();
}

/* A grant its waiter will not use (its pool closed). */
static void c_refuse(uint32_t i, uint32_t k)
{
    if (pool_waitq_pass_grant(&q, i, k, NULL)) {
        count(&grants_passed);
        return;
    }
    pool_fetch_add64(&acquires, (uint64_t)0 - 1, POOL_RELAXED);   /* relaxed: a statistic */
    pool_slots_free_push(&slots, list_of(k), i);
    count(&grants_given_back);
    if (pool_waitq_notify(&q))
        c_after_push();
}

/* A queued waiter's sleep: woken (1), or not.  Besides SLEEP_LIMIT_S, it
 * looks at the shards every SLICE_NS: while it is queued the gate is shut,
 * so a slot cached meanwhile is taken back by its releaser at once; one
 * seen in the same shard with the same generation for HIDDEN_SLICES slices
 * in a row is hidden from the waiters (a lost wake-up, counted). */
#define SLICE_NS 100000000L    /* 100 ms */
#define HIDDEN_SLICES 10

static int c_sleep(thread_waiter_t *t)
{
    uint64_t seen[POOL_CACHE_SHARDS];
    int same[POOL_CACHE_SHARDS] = {0};
    int n, s;
    for (s = 0; s < (int)POOL_CACHE_SHARDS; s++)
        seen[s] = POOL_NIL;
    for (n = 0; n < SLEEP_LIMIT_S * (1000000000L / SLICE_NS); n++) {
        if (waiter_sleep(t, SLICE_NS))
            return 1;
        for (s = 0; s < (int)POOL_CACHE_SHARDS; s++) {
            uint64_t i = pool_load64(&cache.shards[s].slot, POOL_RELAXED);   /* relaxed: a look */
            uint64_t v = i == POOL_NIL
                ? POOL_NIL
                : (i | (uint64_t)POOL_SLOT_GEN(pool_slots_load(&slots, (uint32_t)i)) << 32);
            same[s] = v != POOL_NIL && v == seen[s] ? same[s] + 1 : 0;
            seen[s] = v;
            if (same[s] >= HIDDEN_SLICES) {
                count(&hidden_slots);
                fprintf(stderr, "a waiter slept %d ms while slot %u sat in shard %d\n",
                        (int)(HIDDEN_SLICES * (SLICE_NS / 1000000)), (unsigned)i, s);
                return 0;
            }
        }
    }
    return 0;
}

/* acquire() with the cache, no timeout. */
static int c_acquire(thread_waiter_t *t, pool_cache_shard_t *sh, uint32_t *out)
{
    uint32_t i, k;
    int r, woken;
    if ((i = c_fast_acquire(sh)) != POOL_NIL) {
        *out = i;
        return ACQ_OK;
    }
    waiter_reset(t);
    r = pool_waitq_join(&q, &t->rec, &i, &k);
    if (r == POOL_JOIN_TOOK) {
        count(&join_took);
        pool_slots_hold(&slots, i);
        *out = i;
        return ACQ_OK;
    }
    if (r == POOL_JOIN_CLOSED) {
        count(&closed_exits);
        return ACQ_CLOSED;
    }
    count(&sleeps);
    woken = c_sleep(t);
    pool_waitq_leave(&q, &t->rec, &i, &k, NULL);
    if (i != POOL_NIL) {
        if (pool_waitq_is_closed(&q)) {
            c_refuse(i, k);
            count(&closed_exits);
            return ACQ_CLOSED;
        }
        count(&grants_used);
        pool_slots_hold(&slots, i);
        *out = i;
        return ACQ_OK;
    }
    if (pool_waitq_is_closed(&q)) {
        count(&closed_exits);
        return ACQ_CLOSED;
    }
    count(woken ? &bare_wakes : &lost_wakeups);
    return ACQ_LOST;
}

static void c_use(uint32_t i, uint64_t me, pool_cache_shard_t *sh, int spin)
{
    volatile int n;
    take(i, me);
    if (spin < 0)
        sched_yield();
    for (n = 0; n < spin; n++)
        ;
    count(&uses);
    give(i);
    c_release(sh, i);
}

/* One free slot found at the end: FREE, in range, not seen before. */
static int c_collect(uint32_t i, uint8_t *seen, const char *test, const char *where)
{
    CHECK(i < ccap, "%s: slot %u out of range (%s)", test, i, where);
    CHECK(!seen[i], "%s: slot %u found twice (%s)", test, i, where);
    CHECK(POOL_SLOT_STATE(pool_slots_load(&slots, i)) == POOL_SLOT_FREE,
          "%s: slot %u %s is not FREE", test, i, where);
    seen[i] = 1;
    pool_slots_own(&slots, i);
    return 0;
}

/* Every slot is free exactly once: on a list or in a shard.  drained: the
 * pool was closed and drained, so all of them are on `empty` (nothing left
 * idle or cached).  Takes them all. */
static int c_slots_back(const char *test, int drained_all)
{
    uint8_t seen[CAP_MAX] = {0};
    uint32_t i, n_idle = 0, n_empty = 0, n_cached = 0;
    while ((i = pool_freelist_pop_mpmc(&idle, slots.next)) != POOL_NIL) {
        if (c_collect(i, seen, test, "idle"))
            return 1;
        n_idle++;
    }
    while ((i = pool_freelist_pop_mpmc(&empty, slots.next)) != POOL_NIL) {
        if (c_collect(i, seen, test, "empty"))
            return 1;
        n_empty++;
    }
    while ((i = pool_cache_steal(&cache)) != POOL_NIL) {
        if (c_collect(i, seen, test, "cached"))
            return 1;
        n_cached++;
    }
    CHECK(n_idle + n_empty + n_cached == ccap,
          "%s: %u idle + %u empty + %u cached, of %u slots", test, n_idle, n_empty, n_cached,
          ccap);
    CHECK(!drained_all || n_empty == ccap,
          "%s: after close and drain, %u idle and %u cached slots stayed hidden", test, n_idle,
          n_cached);
    return 0;
}

static int c_quiescent(const char *test, int drained_all)
{
    uint64_t a = get(&acquires), r = get(&releases);
    CHECK(get(&double_handouts) == 0 && get(&bad_releases) == 0,
          "%s: %llu double hand-outs, %llu releases of slots not held", test,
          (unsigned long long)get(&double_handouts), (unsigned long long)get(&bad_releases));
    CHECK(get(&lost_wakeups) == 0, "%s: %llu lost wake-ups (%llu while a slot sat in a shard)",
          test, (unsigned long long)get(&lost_wakeups), (unsigned long long)get(&hidden_slots));
    CHECK(get(&bare_wakes) == 0, "%s: %llu wake-ups without a grant on an open queue", test,
          (unsigned long long)get(&bare_wakes));
    CHECK(pool_waitq_waiting(&q) == 0, "%s: %llu still queued", test,
          (unsigned long long)pool_waitq_waiting(&q));
    CHECK(a == r && r == get(&uses), "%s: %llu acquires counted, %llu releases, %llu uses",
          test, (unsigned long long)a, (unsigned long long)r, (unsigned long long)get(&uses));
    return c_slots_back(test, drained_all);
}

/* ---- 5a. churn through the caches --------------------------------------------------- */

static int cache_shared;   /* threads use shards k % SHARED_SHARDS, not their own */

static pool_cache_shard_t *c_my_shard(uintptr_t k)
{
    return cache_shared ? &cache.shards[k % SHARED_SHARDS] : pool_cache_mine(&cache);
}

static void *cache_churn_worker(void *arg)
{
    uintptr_t k = (uintptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (k + 1);
    pool_cache_shard_t *sh;
    thread_waiter_t t;
    waiter_init(&t);
    sh = c_my_shard(k);
    pthread_barrier_wait(&start);
    /* relaxed: a ticket */
    while (!broken() && pool_fetch_add64(&total, 1, POOL_RELAXED) < ITERS / 2) {
        uint64_t r = rnd(&rng);
        uint32_t i;
        if (c_acquire(&t, sh, &i) != ACQ_OK)
            break;   /* a lost wake-up, counted */
        c_use(i, k + 1, sh, (r & 3) == 0 ? -1 : (int)((r >> 8) % 64));
        /* think a while, holding nothing, half the time: the queue empties
         * and the gate opens now and then (else a convoy keeps it shut and
         * every release uncaches at once) */
        if ((r >> 16) & 1)
            sched_yield();
    }
    waiter_destroy(&t);
    return NULL;
}

static int test_cache_churn(void)
{
    /* own shards; shared shards; own shards and 2 slots, so that the queue
     * stays busy and a slot hidden in a shard stays hidden (c_sleep) */
    const char *name[3] = {"cache churn", "cache churn (shared shards)",
                           "cache churn (2 slots)"};
    const uint32_t cap[3] = {CCAP, CCAP, 2};
    int run_no;
    for (run_no = 0; run_no < 3; run_no++) {
        cache_shared = run_no == 1;
        if (cache_setup(cap[run_no]))
            return 1;
        total = 0;
        CHECK(run(cache_churn_worker, THREADS) == 0, "threads");
        if (c_quiescent(name[run_no], 0))
            return 1;
        CHECK(get(&uses) == ITERS / 2, "%s: %llu of %d hand-outs", name[run_no],
              (unsigned long long)get(&uses), ITERS / 2);
        CHECK(get(&sleeps) > 0 && get(&cache_takes) > 0 && get(&uncached) > 0,
              "%s: a path never ran: %llu sleeps, %llu taken from the own shard, %llu "
              "uncached at a shut gate",
              name[run_no], (unsigned long long)get(&sleeps),
              (unsigned long long)get(&cache_takes), (unsigned long long)get(&uncached));
        printf("%s: %d threads, %d hand-outs on %d slots: %llu from the own shard, %llu "
               "stolen by the fast path, %llu taken by join, %llu grants, %llu sleeps; "
               "releases: %llu uncached at a shut gate, %llu stolen before the reclaim, %llu "
               "shard full; no lost wake-up, no double hand-out, every slot free once\n",
               name[run_no], THREADS, ITERS / 2, cap[run_no],
               (unsigned long long)get(&cache_takes), (unsigned long long)get(&fast_steals),
               (unsigned long long)get(&join_took), (unsigned long long)get(&grants_used),
               (unsigned long long)get(&sleeps), (unsigned long long)get(&uncached),
               (unsigned long long)get(&reclaim_lost), (unsigned long long)get(&shard_full));
        cache_teardown();
    }
    passes++;
    return 0;
}

/* ---- 5b. close while the caches hold slots ------------------------------------------ */

static uint64_t close_after, workers_done;

static void *cache_close_worker(void *arg)
{
    uintptr_t k = (uintptr_t)arg;
    uint64_t rng = 0xd1b54a32d192ed03ull * (k + 1);
    pool_cache_shard_t *sh;
    thread_waiter_t t;
    int n;
    waiter_init(&t);
    sh = pool_cache_mine(&cache);
    for (n = 0; n < 2000 && !broken(); n++) {
        uint64_t r = rnd(&rng);
        uint32_t i;
        if (c_acquire(&t, sh, &i) != ACQ_OK)
            break;   /* closed (or a lost wake-up, counted) */
        c_use(i, k + 1, sh, (r & 1) ? -1 : (int)((r >> 8) % 64));
    }
    count(&workers_done);
    waiter_destroy(&t);
    return NULL;
}

static void *cache_closer(void *arg)
{
    (void)arg;
    while (get(&uses) < close_after && get(&workers_done) < THREADS - 1)
        sched_yield();
    pool_waitq_close(&q, NULL);
    c_drain();   /* close()'s drain: the shards, then idle */
    return NULL;
}

static int test_cache_close(void)
{
    pthread_t w[THREADS - 1], c;
    uint64_t rng = 0x2545f4914f6cdd1dull, total_drained = 0, total_closed = 0;
    int k, round;
    for (round = 0; round < CACHE_CLOSE_ROUNDS; round++) {
        char name[48];
        if (cache_setup(CCAP))
            return 1;
        close_after = rnd(&rng) % 400;
        workers_done = 0;
        for (k = 0; k < THREADS - 1; k++)
            CHECK(pthread_create(&w[k], NULL, cache_close_worker, (void *)(uintptr_t)k) == 0,
                  "thread");
        CHECK(pthread_create(&c, NULL, cache_closer, NULL) == 0, "thread");
        for (k = 0; k < THREADS - 1; k++)
            pthread_join(w[k], NULL);
        pthread_join(c, NULL);
        CHECK(pool_waitq_is_closed(&q), "cache close: not closed");
        snprintf(name, sizeof name, "cache close, round %d", round);
        if (c_quiescent(name, 1))
            return 1;
        total_drained += get(&drained);
        total_closed += get(&closed_exits);
        cache_teardown();
    }
    passes++;
    printf("cache close: %d rounds, %d threads churn through their shards while the pool "
           "closes; %llu slots drained (close's and late releases' drains), %llu acquires saw "
           "the close; nothing left idle or cached, every slot free once\n",
           CACHE_CLOSE_ROUNDS, THREADS - 1, (unsigned long long)total_drained,
           (unsigned long long)total_closed);
    return 0;
}

/* ---- 5c. single-threaded: a waiter vs a cached slot; close ---------------------------- */

static int unit_cache(void)
{
    thread_waiter_t a, b;
    uint32_t i0, i1, i2, i3, s, k;
    if (cache_setup(2))
        return 1;
    waiter_init(&a);
    waiter_init(&b);
    i0 = c_fast_acquire(&cache.shards[0]);
    i1 = c_fast_acquire(&cache.shards[0]);
    CHECK(i0 != POOL_NIL && i1 != POOL_NIL && c_fast_acquire(&cache.shards[0]) == POOL_NIL,
          "cache: take both");
    /* the gate open: a release parks the slot in its shard */
    count(&uses);
    c_release(&cache.shards[5], i0);
    CHECK(shard_slot(5) == i0 && get(&uncached) == 0, "cache: the release cached i0");
    /* a slot in a shard, the lists empty: join steals it */
    CHECK(pool_waitq_join(&q, &a.rec, &s, &k) == POOL_JOIN_TOOK && s == i0 && k == 0,
          "cache: join steals the cached slot (TOOK i0, list 0)");
    CHECK(shard_slot(5) == POOL_NIL && !a.rec.queued && pool_waitq_gate(&q) == 0
              && get(&acquires) == 3,
          "cache: stolen, not queued, gate open, the acquire counted");
    CHECK(POOL_SLOT_STATE(pool_slots_load(&slots, s)) == POOL_SLOT_RELEASING,
          "cache: the stolen slot is owned RELEASING");
    pool_slots_hold(&slots, s);
    /* someone queued: the release caches, sees the gate shut, reclaims,
     * pushes, and the head is granted the slot */
    CHECK(pool_waitq_join(&q, &a.rec, &s, &k) == POOL_JOIN_QUEUED, "cache: a queued");
    count(&uses);
    c_release(&cache.shards[7], i1);
    CHECK(get(&uncached) == 1 && get(&reclaim_lost) == 0 && shard_slot(7) == POOL_NIL,
          "cache: the release took its cached slot back to the list");
    CHECK(a.woken && a.rec.grant == i1 && a.rec.grant_list == 0 && !a.rec.queued
              && pool_waitq_gate(&q) == 0,
          "cache: a granted the slot its releaser cached");
    CHECK(pool_waitq_leave(&q, &a.rec, &s, &k, NULL) == POOL_LEFT_SIGNALED && s == i1,
          "cache: a leaves with it");
    pool_slots_hold(&slots, s);
    /* a thief first: a queued; a slot cached; before its releaser reclaims
     * it, another releaser's released() steals it for a */
    waiter_reset(&a);
    CHECK(pool_waitq_join(&q, &a.rec, &s, &k) == POOL_JOIN_QUEUED, "cache: a queued again");
    CHECK(pool_slots_release_handle(&slots, i0, POOL_SLOT_GEN(pool_slots_load(&slots, i0)))
              == POOL_FREED,
          "cache: free i0");
    count(&releases);
    count(&uses);
    CHECK(pool_cache_put(&cache.shards[2], i0) == 1, "cache: put");
    CHECK(pool_cache_put(&cache.shards[2], i0) == 0, "cache: a full shard refuses a put");
    CHECK(pool_waitq_notify(&q) != 0, "cache: the releaser sees the gate shut");
    CHECK(pool_waitq_released(&q, NULL) == 1 && a.rec.grant == i0 && shard_slot(2) == POOL_NIL,
          "cache: released() steals the cached slot for a");
    CHECK(pool_cache_reclaim(&cache.shards[2], i0) == 0,
          "cache: the reclaim finds it gone (its taker owns it)");
    CHECK(pool_waitq_released(&q, NULL) == 0, "cache: nothing more to grant");
    CHECK(pool_waitq_leave(&q, &a.rec, &s, &k, NULL) == POOL_LEFT_SIGNALED && s == i0,
          "cache: a leaves with it");
    pool_slots_hold(&slots, s);
    /* the fast path does not take a cached slot past a waiter */
    CHECK(pool_waitq_join(&q, &b.rec, &s, &k) == POOL_JOIN_QUEUED, "cache: b queued");
    CHECK(c_fast_acquire(&cache.shards[0]) == POOL_NIL, "cache: no barging with b queued");
    CHECK(pool_waitq_leave(&q, &b.rec, &s, &k, NULL) == POOL_LEFT_UNLINKED, "cache: b leaves");
    /* the fast path: my shard first, then another's */
    count(&uses);
    c_release(&cache.shards[0], i0);
    count(&uses);
    c_release(&cache.shards[1], i1);
    CHECK(shard_slot(0) == i0 && shard_slot(1) == i1, "cache: both cached");
    CHECK(c_fast_acquire(&cache.shards[1]) == i1 && get(&cache_takes) == 1,
          "cache: the fast path takes its own shard's slot");
    CHECK(c_fast_acquire(&cache.shards[3]) == i0 && get(&fast_steals) == 1,
          "cache: the lists empty, it steals another shard's");
    count(&uses);
    c_release(&cache.shards[0], i0);
    count(&uses);
    c_release(&cache.shards[1], i1);
    if (c_quiescent("cache unit", 0))
        return 1;
    waiter_destroy(&a);
    waiter_destroy(&b);
    cache_teardown();

    /* close: slots cached, idle, empty and held; the closer's drain and a
     * release after the close leave every slot on `empty`, none hidden */
    if (cache_setup(4))
        return 1;
    i0 = c_fast_acquire(&cache.shards[0]);
    i1 = c_fast_acquire(&cache.shards[0]);
    i2 = c_fast_acquire(&cache.shards[0]);
    i3 = c_fast_acquire(&cache.shards[0]);
    CHECK(i3 != POOL_NIL, "close: take all four");
    count(&uses);
    c_release(&cache.shards[4], i0);             /* cached */
    count(&uses);
    c_release(&cache.shards[9], i1);             /* cached */
    CHECK(pool_slots_release_handle(&slots, i2, POOL_SLOT_GEN(pool_slots_load(&slots, i2)))
              == POOL_FREED,
          "close: free i2");
    count(&releases);
    count(&uses);
    pool_slots_push(&slots, &idle, i2);           /* idle */
    CHECK(pool_waitq_close(&q, NULL) == 1, "close: closes");
    CHECK(pool_waitq_join(&q, &a.rec, &s, &k) == POOL_JOIN_CLOSED,
          "close: join refuses, although slots are cached");
    c_drain();
    CHECK(get(&drained) == 3 && shard_slot(4) == POOL_NIL && shard_slot(9) == POOL_NIL,
          "close: the drain stole both cached slots and popped the idle one (%llu)",
          (unsigned long long)get(&drained));
    count(&uses);
    c_release(&cache.shards[4], i3);             /* cached, then sees `closed` */
    CHECK(get(&uncached) == 1 && get(&drained) == 4 && shard_slot(4) == POOL_NIL,
          "close: a release after the close takes its slot back and drains it");
    if (c_quiescent("cache close unit", 1))
        return 1;
    cache_teardown();

    /* steal every shard plus pop the lists: every free slot, once */
    if (cache_setup(4))
        return 1;
    i0 = c_fast_acquire(&cache.shards[0]);
    i1 = c_fast_acquire(&cache.shards[0]);
    i2 = c_fast_acquire(&cache.shards[0]);
    count(&uses);
    c_release(&cache.shards[15], i0);
    count(&uses);
    c_release(&cache.shards[8], i1);
    count(&uses);
    c_release(&cache.shards[8], i2);             /* the shard is full: onto idle */
    CHECK(get(&shard_full) == 1, "close: a full shard: the release pushes");
    CHECK(pool_waitq_close(&q, NULL) == 1, "close: closes");
    if (c_quiescent("cache close, undrained", 0))
        return 1;
    waiter_destroy(&a);
    waiter_destroy(&b);
    cache_teardown();
    return 0;
}

static int test_cache_unit(void)
{
    if (unit_cache())
        return 1;
    passes++;
    printf("cache unit: join steals a cached slot; a release that caches and meets a waiter "
           "moves it to the list, granted to the head; a thief before the reclaim; no barging "
           "past a waiter; own shard then steal; close: drain and late release leave nothing "
           "cached or idle; steal + pop finds every slot once\n");
    return 0;
}

int main(void)
{
    printf("wait queue, atomics variant: %s\n", POOL_ATOMIC_VARIANT);
    test_unit();
    test_churn();
    test_timeouts();
    test_close();
    test_cache_unit();
    test_cache_churn();
    test_cache_close();
    printf("%d passed, %d failed\n", passes, failures);
    return failures ? 1 : 0;
}
