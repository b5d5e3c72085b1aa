/*
 * test_core.c - validate program for the C core (no Python).
 *
 * 1. free-list: THREADS threads each pop and push ITERS times on one list
 *    of CAPACITY slots; every pop claims an owner flag with a CAS that must
 *    succeed (else two threads hold one index: a double hand-out); at the
 *    end every index is on the list exactly once.
 * 2. slot states: HELD/RELEASING/RETIRING transitions, double release,
 *    stale generations, exports, raced by THREADS threads on one slot.
 *    A stale release (an old generation) racing the owner never wins.
 * 3. address map: random inserts/removes against a reference array,
 *    concurrent readers while a writer churns, and a reader blocked by a
 *    writer yields the CPU.
 * 4. statistics (pool_stats.h): threads add to a counter while others
 *    report-and-reset it; every increment is in exactly one report.
 *
 * Built twice by tests/c/CMakeLists.txt: with real atomics (threads on) and
 * with -DPOOL_ATOMIC_PLAIN (the GIL variant; single-threaded, as it must be).
 * Exit 0 and "N passed, 0 failed" on success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_addrmap.h"
#include "pool_freelist.h"
#include "pool_mem.h"
#include "pool_slots.h"
#include "pool_spinlock.h"
#include "validate.h"
#include "pool_stats.h"

#ifdef POOL_ATOMIC_PLAIN
#define THREADS 1
#else
#include <pthread.h>
#include <time.h>
#define THREADS 8
static void pool_sleep_ms_(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}
#endif

#ifndef ITERS
#define ITERS 200000
#endif

/* pool_backoff()'s yields (POOL_BACKOFF_TEST_HOOK, set by CMakeLists.txt) */
static uint64_t backoff_yields;
void test_backoff_hook(void);
void test_backoff_hook(void) { pool_fetch_add64(&backoff_yields, 1, POOL_RELAXED); }

/* ---- 1. free-list ------------------------------------------------------ */

enum { FL_CAPACITY = 7 };
static pool_slots_t fl_slots;
static pool_freelist_t fl_list;
static uint64_t fl_owner[FL_CAPACITY];     /* 0 free, else thread id + 1 */
static uint64_t fl_double_handout = 0;

static void *freelist_worker(void *arg)
{
    uint64_t me = (uint64_t)(uintptr_t)arg + 1, seed = me * 0x9E3779B97F4A7C15u;
    uint32_t held[FL_CAPACITY];
    int nheld = 0, n;
    for (n = 0; n < ITERS; n++) {
        if (nheld < 3 && (nheld == 0 || (rnd(&seed) & 1))) {
            uint32_t i = pool_freelist_pop_mpmc(&fl_list, fl_slots.next);
            uint64_t expected = 0;
            if (i == POOL_NIL)
                continue;
            if (!pool_cas64(&fl_owner[i], &expected, me, POOL_ACQ_REL, POOL_RELAXED))
                pool_fetch_add64(&fl_double_handout, 1, POOL_RELAXED);
            held[nheld++] = i;
        } else {
            uint32_t i = held[--nheld];
            pool_store64(&fl_owner[i], 0, POOL_RELEASE);
            pool_freelist_push_mpmc(&fl_list, fl_slots.next, i);
        }
    }
    while (nheld > 0) {
        uint32_t i = held[--nheld];
        pool_store64(&fl_owner[i], 0, POOL_RELEASE);
        pool_freelist_push_mpmc(&fl_list, fl_slots.next, i);
    }
    return NULL;
}

static int run_threads(void *(*fn)(void *))
{
#ifdef POOL_ATOMIC_PLAIN
    fn((void *)0);
#else
    pthread_t t[THREADS];
    uintptr_t k;
    for (k = 0; k < THREADS; k++)
        if (pthread_create(&t[k], NULL, fn, (void *)k) != 0)
            return -1;
    for (k = 0; k < THREADS; k++)
        pthread_join(t[k], NULL);
#endif
    return 0;
}

static int test_freelist(void)
{
    int seen[FL_CAPACITY] = {0};
    uint32_t i, count = 0;
    CHECK(pool_slots_init(&fl_slots, FL_CAPACITY, &fl_list) == 0, "init");
    CHECK(run_threads(freelist_worker) == 0, "threads");
    CHECK(fl_double_handout == 0, "%llu double hand-outs",
          (unsigned long long)fl_double_handout);
    while ((i = pool_freelist_pop_mpmc(&fl_list, fl_slots.next)) != POOL_NIL) {
        CHECK(i < FL_CAPACITY, "index %u out of range", i);
        CHECK(!seen[i], "index %u on the list twice", i);
        seen[i] = 1;
        count++;
    }
    CHECK(count == FL_CAPACITY, "%u of %d indices left: slots lost", count, FL_CAPACITY);
    pool_slots_free(&fl_slots);
    passes++;
    printf("freelist: %d threads x %d ops, no double hand-out, all %d indices back\n",
           THREADS, ITERS, FL_CAPACITY);
    return 0;
}

/* ---- 2. slot states ---------------------------------------------------- */

static int test_slot_states(void)
{
    pool_slots_t s;
    pool_freelist_t fl;
    uint32_t i, gen;
    CHECK(pool_slots_init(&s, 2, &fl) == 0, "init");
    i = pool_slots_pop_hold(&s, &fl, &gen);
    CHECK(pool_slots_is_held(&s, i, gen), "held");
    /* exports then deferred release */
    CHECK(pool_slots_export_begin(&s, i, gen) == POOL_OK, "export 1");
    CHECK(pool_slots_export_begin(&s, i, gen) == POOL_OK, "export 2");
    CHECK(pool_slots_release_handle(&s, i, gen) == POOL_DEFERRED, "deferred");
    CHECK(pool_slots_release_handle(&s, i, gen) == POOL_ENOTHELD, "double release");
    CHECK(pool_slots_export_begin(&s, i, gen) == POOL_ENOTHELD, "export after release");
    CHECK(pool_slots_export_end(&s, i, gen) == POOL_OK, "end 1");
    CHECK(pool_slots_export_end(&s, i, gen) == POOL_FREED, "last export frees");
    CHECK(!pool_slots_is_held(&s, i, gen), "stale after free");
    CHECK(pool_slots_release_handle(&s, i, gen) == POOL_ESTALE, "stale release");
    pool_slots_push(&s, &fl, i);   /* FREE already: the last export_end made it so */
    /* identity-style release: the releaser names the generation it saw */
    i = pool_slots_pop_hold(&s, &fl, &gen);
    CHECK(POOL_SLOT_GEN(pool_slots_load(&s, i)) == gen, "load");
    CHECK(pool_slots_release_begin(&s, i, gen) == POOL_OK, "release_begin");
    CHECK(pool_slots_release_begin(&s, i, gen) == POOL_ENOTHELD, "second release_begin");
    pool_slots_free_push(&s, &fl, i);
    CHECK(pool_slots_release_begin(&s, i, gen) == POOL_ESTALE, "release of a free slot");
    /* A stale release (it saw the previous hand-out's generation) of a slot
     * that was handed out again: it must fail, and leave the slot HELD so the
     * real owner's release succeeds (it used to win the CAS, then undo it). */
    i = pool_slots_pop_hold(&s, &fl, &gen);
    CHECK(pool_slots_release_begin(&s, i, gen - 1) == POOL_ESTALE, "stale release");
    CHECK(pool_slots_is_held(&s, i, gen), "still held by its owner");
    CHECK(pool_slots_release_begin(&s, i, gen) == POOL_OK, "owner's release");
    pool_slots_free_push(&s, &fl, i);
    pool_slots_free(&s);
    passes++;
    printf("slot states: transitions, double release, stale generations\n");
    return 0;
}

/* Raced release: THREADS threads try to release the same held slot; one wins. */
static pool_slots_t race_slots;
static uint64_t race_wins;
static uint32_t race_gen;

static void *race_worker(void *arg)
{
    (void)arg;
    if (pool_slots_release_handle(&race_slots, 0, race_gen) == POOL_FREED)
        pool_fetch_add64(&race_wins, 1, POOL_RELAXED);
    return NULL;
}

static int test_release_race(void)
{
    pool_freelist_t fl;
    int round;
    CHECK(pool_slots_init(&race_slots, 1, &fl) == 0, "init");
    for (round = 0; round < 200; round++) {
        uint32_t i = pool_slots_pop_hold(&race_slots, &fl, &race_gen);
        CHECK(i == 0, "pop");
        race_wins = 0;
        CHECK(run_threads(race_worker) == 0, "threads");
        CHECK(race_wins == 1, "%llu winners of one release", (unsigned long long)race_wins);
        pool_slots_push(&race_slots, &fl, i);
    }
    pool_slots_free(&race_slots);
    passes++;
    printf("release race: %d threads x 200 rounds, exactly one winner each\n", THREADS);
    return 0;
}

#ifndef POOL_ATOMIC_PLAIN
/* A stale release racing the real owner: the owner hands slot 0 out and
 * releases it over and over; the other threads keep releasing it with the
 * generation of a hand-out that has ended.  No stale release may win, and
 * the owner's release must never fail (free-threaded ObjectPool: a release
 * that looked an object up just before its slot was refilled). */
static pool_slots_t stale_slots;
static pool_freelist_t stale_fl;
static uint64_t stale_stop, stale_gen, stale_wins, owner_failures;

static void *stale_worker(void *arg)
{
    (void)arg;
    while (!pool_load64(&stale_stop, POOL_ACQUIRE)) {
        /* acquire: any generation the owner published, now or earlier */
        uint32_t gen = (uint32_t)pool_load64(&stale_gen, POOL_ACQUIRE);
        if (pool_slots_release_begin(&stale_slots, 0, gen - 1) == POOL_OK)
            pool_fetch_add64(&stale_wins, 1, POOL_RELAXED);
    }
    return NULL;
}

static int test_stale_release_race(void)
{
    pthread_t t[THREADS - 1];
    uintptr_t k;
    int n;
    CHECK(pool_slots_init(&stale_slots, 1, &stale_fl) == 0, "init");
    for (k = 0; k < THREADS - 1; k++)
        CHECK(pthread_create(&t[k], NULL, stale_worker, (void *)k) == 0, "thread");
    for (n = 0; n < ITERS; n++) {
        uint32_t gen = 0;
        uint32_t i = pool_slots_pop_hold(&stale_slots, &stale_fl, &gen);
        volatile int use;
        pool_store64(&stale_gen, gen, POOL_RELEASE);  /* release: pairs with the workers */
        for (use = 0; use < 200; use++)  /* hold it a moment, as a user would */
            ;
        if (pool_slots_release_begin(&stale_slots, i, gen) != POOL_OK)
            owner_failures++;
        pool_slots_free_push(&stale_slots, &stale_fl, i);
    }
    pool_store64(&stale_stop, 1, POOL_RELEASE);
    for (k = 0; k < THREADS - 1; k++)
        pthread_join(t[k], NULL);
    CHECK(stale_wins == 0, "%llu stale releases won", (unsigned long long)stale_wins);
    CHECK(owner_failures == 0, "the owner's release failed %llu times",
          (unsigned long long)owner_failures);
    pool_slots_free(&stale_slots);
    passes++;
    printf("stale release race: %d stale releasers vs the owner, %d rounds, "
           "no stale win, no spurious failure\n", THREADS - 1, ITERS);
    return 0;
}
#endif

/* ---- 3. address map ---------------------------------------------------- */

static int test_addrmap_model(void)
{
    enum { CAP = 1000 };
    pool_addrmap_t map;
    static uintptr_t keys[CAP];   /* slot -> key or 0 */
    uint64_t seed = 42;
    int n, k;
    CHECK(pool_addrmap_init(&map, CAP) == 0, "init");
    for (n = 0; n < 200000; n++) {
        uint32_t slot = (uint32_t)(rnd(&seed) % CAP);
        if (keys[slot] == 0) {
            /* clustered keys, 16-byte aligned like object addresses */
            uintptr_t key = (uintptr_t)((rnd(&seed) % 4096) + 1) * 16;
            int dup = 0;
            for (k = 0; k < CAP; k++)
                dup |= keys[k] == key;
            CHECK(pool_addrmap_insert(&map, key, slot) == (dup ? POOL_MAP_EDUPLICATE : 0),
                  "insert");
            if (!dup)
                keys[slot] = key;
        } else {
            CHECK(pool_addrmap_find(&map, keys[slot]) == slot, "find before remove");
            CHECK(pool_addrmap_remove(&map, keys[slot]) == 0, "remove");
            CHECK(pool_addrmap_find(&map, keys[slot]) == POOL_NIL, "find after remove");
            keys[slot] = 0;
        }
    }
    for (k = 0; k < CAP; k++)
        if (keys[k])
            CHECK(pool_addrmap_find(&map, keys[k]) == (uint32_t)k, "final find %d", k);
    CHECK(pool_addrmap_remove(&map, 8) == POOL_MAP_ENOTFOUND, "remove missing");
    pool_addrmap_free(&map);
    /* the empty map: lookups find nothing, writers change nothing, free twice */
    CHECK(pool_addrmap_find(&map, 16) == POOL_NIL, "find in the empty map");
    CHECK(pool_addrmap_insert(&map, 16, 1) == POOL_MAP_EEMPTY, "insert into the empty map");
    CHECK(pool_addrmap_remove(&map, 16) == POOL_MAP_ENOTFOUND, "remove from the empty map");
    CHECK(pool_addrmap_find(&map, 16) == POOL_NIL, "still empty");
    pool_addrmap_free(&map);
    passes++;
    printf("address map: 200000 random inserts/removes match the model; the empty map\n");
    return 0;
}

#ifndef POOL_ATOMIC_PLAIN
/* Readers look up stable keys while a writer churns other keys around them
 * (backward shifts move entries): a reader must never get a wrong index. */
static pool_addrmap_t churn_map;
static uint64_t churn_stop, churn_errors;
enum { STABLE = 64, CHURN = 64 };

static void *churn_reader(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg + 7;
    while (!pool_load64(&churn_stop, POOL_ACQUIRE)) {
        uint32_t k = (uint32_t)(rnd(&seed) % STABLE);
        if (pool_addrmap_find(&churn_map, (uintptr_t)(k + 1) * 16) != k)
            pool_fetch_add64(&churn_errors, 1, POOL_RELAXED);
    }
    return NULL;
}

static int test_addrmap_concurrent(void)
{
    pthread_t t[3];
    uintptr_t k;
    int n;
    CHECK(pool_addrmap_init(&churn_map, STABLE + CHURN) == 0, "init");
    for (k = 0; k < STABLE; k++)
        CHECK(pool_addrmap_insert(&churn_map, (k + 1) * 16, (uint32_t)k) == 0, "insert");
    for (k = 0; k < 3; k++)
        CHECK(pthread_create(&t[k], NULL, churn_reader, (void *)k) == 0, "thread");
    for (n = 0; n < ITERS; n++) {
        uintptr_t key = (uintptr_t)(STABLE + 1 + (n % CHURN)) * 16;
        pool_addrmap_insert(&churn_map, key, 1000000);
        pool_addrmap_remove(&churn_map, key);
    }
    pool_store64(&churn_stop, 1, POOL_RELEASE);
    for (k = 0; k < 3; k++)
        pthread_join(t[k], NULL);
    CHECK(churn_errors == 0, "%llu wrong lookups", (unsigned long long)churn_errors);
    pool_addrmap_free(&churn_map);
    passes++;
    printf("address map: 3 readers vs a churning writer, %d rounds, no wrong lookup\n", ITERS);
    return 0;
}

/* A reader that finds the map locked by a writer that does not come back
 * (preempted inside its critical section) must yield the CPU, not spin
 * through its whole time slice.  The "writer" here is the test: it holds
 * seq odd until the reader has yielded, or gives up after 5 s. */

static void *locked_reader(void *arg)
{
    (void)arg;
    pool_addrmap_find(&churn_map, 16);
    return NULL;
}

static int test_addrmap_reader_yields(void)
{
    pthread_t t;
    int ms;
    CHECK(pool_addrmap_init(&churn_map, 4) == 0, "init");
    CHECK(pool_addrmap_insert(&churn_map, 16, 0) == 0, "insert");
    backoff_yields = 0;
    pool_store64(&churn_map.seq, 1, POOL_RELEASE);  /* a writer is inside */
    CHECK(pthread_create(&t, NULL, locked_reader, NULL) == 0, "thread");
    for (ms = 0; ms < 5000 && pool_load64(&backoff_yields, POOL_RELAXED) == 0; ms++)
        pool_sleep_ms_(1);
    pool_store64(&churn_map.seq, 2, POOL_RELEASE);  /* the writer leaves */
    pthread_join(t, NULL);
    CHECK(backoff_yields > 0, "the reader never yielded while the map was locked");
    pool_addrmap_free(&churn_map);
    passes++;
    printf("address map: a reader blocked by a writer yields the CPU\n");
    return 0;
}
#endif

/* ---- spinlock: a plain counter under the lock must count every increment -- */

static pool_spinlock_t spin;
static uint64_t spin_counter;   /* plain on purpose: TSan flags any unlocked access */

static void *spin_worker(void *arg)
{
    int n;
    (void)arg;
    for (n = 0; n < ITERS / 4; n++) {
        pool_spin_lock(&spin);
        spin_counter++;
        pool_spin_unlock(&spin);
    }
    return NULL;
}

static int test_spinlock(void)
{
    CHECK(run_threads(spin_worker) == 0, "threads");
    CHECK(spin_counter == (uint64_t)THREADS * (ITERS / 4), "lost increments: %llu",
          (unsigned long long)spin_counter);
    passes++;
    printf("spinlock: %d threads x %d locked increments, none lost\n", THREADS, ITERS / 4);
    return 0;
}

/* ---- statistics: reset while others count; no event lost or counted twice -- */

static uint64_t st_counter, st_mark, st_max, st_reported, st_adders_done;

static void *stats_worker(void *arg)
{
    uintptr_t k = (uintptr_t)arg;
    int n;
    if (k % 2 == 0 || THREADS == 1) {          /* an adder */
        for (n = 1; n <= ITERS; n++) {
            pool_stat_add(&st_counter, 1);
            pool_stat_raise(&st_max, (uint64_t)n);
        }
        pool_fetch_add64(&st_adders_done, 1, POOL_RELEASE);
    } else {                                   /* a resetting reader */
        while (pool_load64(&st_adders_done, POOL_ACQUIRE) < (THREADS + 1) / 2) {
            pool_fetch_add64(&st_reported, pool_stat_since(&st_counter, &st_mark, 1),
                             POOL_RELAXED);
            (void)pool_stat_max(&st_max, 1);
        }
    }
    return NULL;
}

static int test_stats(void)
{
    uint64_t adders = THREADS == 1 ? 1 : (THREADS + 1) / 2, total;
    CHECK(run_threads(stats_worker) == 0, "threads");
    total = pool_load64(&st_reported, POOL_RELAXED) + pool_stat_since(&st_counter, &st_mark, 1);
    CHECK(total == adders * ITERS, "reports add up to %llu, not %llu",
          (unsigned long long)total, (unsigned long long)(adders * ITERS));
    CHECK(pool_stat_since(&st_counter, &st_mark, 0) == 0, "a reset left something");
    CHECK(st_counter == adders * ITERS, "the counter itself was changed");
    CHECK(pool_stat_max(&st_max, 0) <= ITERS, "a maximum above any value added");
    (void)pool_stat_max(&st_max, 1);
    CHECK(pool_stat_max(&st_max, 0) == 0, "max not reset");
    passes++;
    printf("statistics: %llu adders x %d, resetting readers: every event in one report\n",
           (unsigned long long)adders, ITERS);
    return 0;
}

/* ---- arena -------------------------------------------------------------- */

static int test_arena(void)
{
    pool_arena_t a;
    uint32_t i;
    CHECK(pool_arena_init(&a, 100, 5, 64) == 0, "init");
    CHECK(a.stride == 128, "stride %zu", a.stride);
    for (i = 0; i < 5; i++) {
        CHECK(((uintptr_t)pool_arena_slot(&a, i) % 64) == 0, "slot %u aligned", i);
        CHECK(pool_arena_slot(&a, i)[99] == 0, "zeroed");
    }
    pool_arena_free(&a);
    CHECK(pool_arena_init(&a, 10, 3, 4096) == 0, "page alignment");
    CHECK(((uintptr_t)pool_arena_slot(&a, 2) % 4096) == 0, "page aligned");
    pool_arena_free(&a);
    CHECK(pool_arena_init(&a, 10, 3, 48) == POOL_MEM_EINVAL, "alignment not a power of two");
    CHECK(pool_arena_init(&a, SIZE_MAX / 2, 4, 64) == POOL_MEM_EINVAL, "overflow");
    passes++;
    printf("arena: alignment, stride, zeroing, overflow checks\n");
    return 0;
}

int main(void)
{
    printf("pool core, atomics variant: %s\n", POOL_ATOMIC_VARIANT);
    test_freelist();
    test_slot_states();
    test_release_race();
    test_addrmap_model();
#ifndef POOL_ATOMIC_PLAIN
    test_stale_release_race();
    test_addrmap_concurrent();
    test_addrmap_reader_yields();
#endif
    test_spinlock();
    test_stats();
    test_arena();
    printf("%d passed, %d failed\n", passes, failures);
    return failures ? 1 : 0;
}
