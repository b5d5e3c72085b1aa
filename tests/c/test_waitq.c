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
#define FAIR_RATIO 2.0
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
static uint64_t owner[CAP];
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

static void pool_setup(void)
{
    int k;
    pool_freelist_init(&idle);
    pool_slots_init(&slots, CAP, &empty);   /* every slot onto `empty` */
    pool_waitq_init(&q);
    pool_waitq_bind(&q, &slots, &idle, &empty, &acquires, NULL);
    acquires = releases = 0;
    double_handouts = lost_wakeups = closed_exits = sleeps = bare_wakes = 0;
    timeouts = late_grants = grants_used = grants_passed = grants_given_back = uses = 0;
    wake_seq = 0;
    for (k = 0; k < CAP; k++)
        owner[k] = 0;
    pool_waitq_open(&q);
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

enum { ACQ_OK, ACQ_CLOSED, ACQ_TIMEOUT, ACQ_LOST };

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

int main(void)
{
    printf("wait queue, atomics variant: %s\n", POOL_ATOMIC_VARIANT);
    test_unit();
    test_churn();
    test_timeouts();
    test_close();
    printf("%d passed, %d failed\n", passes, failures);
    return failures ? 1 : 0;
}
