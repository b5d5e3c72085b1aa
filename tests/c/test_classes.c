/*
 * test_classes.c - validate program for ArrayPool's size classes
 * (src/pool_classes.h), with real threads and real atomics (run under
 * ThreadSanitizer by run_sanitizers.sh).  No Python.
 *
 * 1. sizes: the class of a request, the smallest and largest classes,
 *    oversize blocks, alignment, mapped blocks, poison and clear-on-release.
 * 2. budget: single-threaded give-backs stop at max_bytes; trim frees down
 *    to its target, largest first; a full class frees what comes back.
 * 3. threads: THREADS threads each take and give back ITERS blocks of
 *    random sizes (64 B .. 1 MiB).  Every thread writes its id over the
 *    first and last words of each block it holds and checks them before
 *    giving it back (a block handed out twice at once is overwritten by the
 *    other owner); a watcher thread samples retained <= max_bytes all the
 *    while.  At the end nothing is out, retained equals the cached bytes,
 *    and after trim(0) no block is left allocated (nothing leaked).
 *
 * Exit 0 and "N passed, 0 failed" on success.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_classes.h"
#include "validate.h"

#define THREADS 8
#ifndef ITERS
#define ITERS 100000
#endif
#define HOLD 4   /* blocks each thread holds at once */

/* pool_backoff()'s test hook (POOL_BACKOFF_TEST_HOOK, set by CMakeLists.txt) */
void test_backoff_hook(void);
void test_backoff_hook(void) {}

static uint64_t cached_bytes(pool_classes_t *pc)
{
    uint64_t total = 0;
    uint32_t c;
    for (c = 0; c < pc->nclasses; c++)
        total += pc->classes[c].n_cached * pool_classes_size(pc, c);
    return total;
}

/* ---- 1. sizes ----------------------------------------------------------- */

static int test_sizes(void)
{
    pool_classes_t pc;
    pool_block_t b, b2;
    uint32_t c;
    CHECK(pool_classes_init(&pc, 1 << 20, 0, 64, POOL_CLEAR_NEVER) == 0, "init");
    CHECK(pc.nclasses == 20 - 6 + 1, "classes 64 B .. 1 MiB: %u", pc.nclasses);
    CHECK(pool_classes_index(&pc, 0) == 0 && pool_classes_index(&pc, 64) == 0, "class 0");
    CHECK(pool_classes_index(&pc, 65) == 1 && pool_classes_index(&pc, 128) == 1, "class 1");
    CHECK(pool_classes_index(&pc, 1 << 20) == pc.nclasses - 1, "largest");
    CHECK(pool_classes_index(&pc, (1 << 20) + 1) == pc.nclasses, "oversize");
    for (c = 0; c < 25; c++) {
        size_t n = ((size_t)1 << c) + (c & 1);
        int rc = pool_classes_take_mpmc(&pc, n, &b);
        CHECK(rc == POOL_TAKE_HIT || rc == POOL_TAKE_MISS, "take %zu: %d", n, rc);
        CHECK(b.size >= n && ((uintptr_t)b.ptr & 63) == 0, "size %zu align %p", b.size, b.ptr);
        if (rc == POOL_TAKE_MISS && b.size >= POOL_BLOCK_MMAP_MIN)
            CHECK(b.flags & POOL_BLOCK_ZEROED, "a mapped block is zeroed");
        memset(b.ptr, 0xAB, n);
        pool_classes_give_mpmc(&pc, &b);
    }
    /* classes 64 B, 256 B, 1 KiB .. 256 KiB are kept; 1 MiB is over budget */
    CHECK(pc.classes[pc.nclasses].out == 0 && pc.live == 7 && pc.retained == 349504,
          "oversize blocks freed: %llu live, %llu retained", (unsigned long long)pc.live,
          (unsigned long long)pc.retained);
    /* a hit returns the block we gave back */
    CHECK(pool_classes_take_mpmc(&pc, 100, &b) == POOL_TAKE_MISS, "first 128 B");
    pool_classes_give_mpmc(&pc, &b);
    CHECK(pool_classes_take_mpmc(&pc, 128, &b2) == POOL_TAKE_HIT && b2.ptr == b.ptr, "hit");
    pool_classes_give_mpmc(&pc, &b2);
    pool_classes_destroy(&pc);

    /* alignment above a page, and huge-page-sized mapped blocks */
    CHECK(pool_classes_init(&pc, 64 << 20, 8 << 20, 1 << 16, POOL_CLEAR_NEVER) == 0, "init");
    CHECK(pool_classes_take_mpmc(&pc, 1, &b) == POOL_TAKE_MISS && b.size == 1 << 16, "min");
    CHECK(((uintptr_t)b.ptr & 0xffff) == 0, "64 KiB aligned");
    pool_classes_give_mpmc(&pc, &b);
    CHECK(pool_classes_take_mpmc(&pc, 3 << 20, &b) == POOL_TAKE_MISS && b.size == 4 << 20, "4M");
    memset(b.ptr, 1, b.size);
    pool_classes_give_mpmc(&pc, &b);
    pool_classes_destroy(&pc);

    /* clear on release, poison */
    CHECK(pool_classes_init(&pc, 1 << 20, 0, 64, POOL_CLEAR_ON_RELEASE) == 0, "init");
    pool_classes_take_mpmc(&pc, 200, &b);
    memset(b.ptr, 7, 200);
    pool_classes_give_mpmc(&pc, &b);
    CHECK(pool_classes_take_mpmc(&pc, 200, &b) == POOL_TAKE_HIT && (b.flags & POOL_BLOCK_ZEROED)
          && b.ptr[0] == 0 && b.ptr[255] == 0, "zeroed on release");
    pool_classes_give_mpmc(&pc, &b);
    pool_classes_destroy(&pc);
    CHECK(pool_classes_init(&pc, 1 << 20, 0, 64, POOL_CLEAR_POISON) == 0, "init");
    pool_classes_take_mpmc(&pc, 200, &b);
    pool_classes_give_mpmc(&pc, &b);
    CHECK(pool_classes_take_mpmc(&pc, 200, &b2) == POOL_TAKE_HIT && b2.ptr[17] == POOL_POISON_BYTE,
          "poisoned");
    pool_classes_give_mpmc(&pc, &b2);
    b.ptr[17] = 0;   /* a write after release */
    CHECK(pool_classes_take_mpmc(&pc, 200, &b2) == POOL_TAKE_EPOISON && b2.bad_offset == 17
          && b2.ptr == NULL, "poison caught at offset %zu", b2.bad_offset);
    CHECK(pc.retained == 0 && pc.live == 0 && pc.classes[2].out == 0, "the bad block is freed");
    CHECK(pool_classes_take_mpmc(&pc, 200, &b2) == POOL_TAKE_MISS, "then a fresh one");
    pool_classes_give_mpmc(&pc, &b2);
    pool_classes_destroy(&pc);
    CHECK(pool_classes_init(&pc, 1, 0, 3, POOL_CLEAR_NEVER) == -2, "alignment 3 refused");
    CHECK(pool_classes_init(&pc, 1, 0, 64, 7) == -2, "unknown clear refused");
    passes++;
    return 0;
}

/* ---- 2. budget ---------------------------------------------------------- */

static int test_budget(void)
{
    pool_classes_t pc;
    pool_block_t b[POOL_CLASSES_SLOTS + 8];
    int i, kept = 0;
    CHECK(pool_classes_init(&pc, 10 * 4096, 0, 64, POOL_CLEAR_NEVER) == 0, "init");
    for (i = 0; i < 16; i++)
        CHECK(pool_classes_take_mpmc(&pc, 4096, &b[i]) == POOL_TAKE_MISS, "take");
    for (i = 0; i < 16; i++) {
        kept += pool_classes_give_mpmc(&pc, &b[i]);
        CHECK(pc.retained <= pc.max_bytes, "budget");
    }
    CHECK(kept == 10 && pc.retained == 10 * 4096 && pc.live == 10, "kept %d", kept);
    CHECK(pc.peak == 10 * 4096, "peak");
    /* trim frees the largest first, down to the target */
    CHECK(pool_classes_take_mpmc(&pc, 64, &b[0]) == POOL_TAKE_MISS, "64 B");
    CHECK(pool_classes_take_mpmc(&pc, 4096, &b[1]) == POOL_TAKE_HIT, "hit");
    pool_classes_give_mpmc(&pc, &b[0]);
    CHECK(pool_classes_trim(&pc, 5000) == 8 * 4096 && pc.retained == 4096 + 64, "trim %llu",
          (unsigned long long)pc.retained);
    pool_classes_give_mpmc(&pc, &b[1]);
    CHECK(pool_classes_trim(&pc, 0) == 2 * 4096 + 64 && pc.retained == 0 && pc.live == 0,
          "trim 0");
    pool_classes_destroy(&pc);
    /* a full class frees what comes back */
    CHECK(pool_classes_init(&pc, 1 << 30, 0, 64, POOL_CLEAR_NEVER) == 0, "init");
    for (i = 0; i < POOL_CLASSES_SLOTS + 8; i++)
        pool_classes_take_mpmc(&pc, 64, &b[i]);
    for (i = 0, kept = 0; i < POOL_CLASSES_SLOTS + 8; i++)
        kept += pool_classes_give_mpmc(&pc, &b[i]);
    CHECK(kept == POOL_CLASSES_SLOTS && pc.live == POOL_CLASSES_SLOTS, "class full: %d", kept);
    pool_classes_destroy(&pc);
    /* a zero budget keeps nothing */
    CHECK(pool_classes_init(&pc, 0, 0, 64, POOL_CLEAR_NEVER) == 0 && pc.nclasses == 1, "init");
    pool_classes_take_mpmc(&pc, 64, &b[0]);
    CHECK(pool_classes_give_mpmc(&pc, &b[0]) == 0 && pc.live == 0, "nothing kept");
    pool_classes_destroy(&pc);
    passes++;
    return 0;
}

/* ---- 3. threads --------------------------------------------------------- */

#define T_BUDGET ((uint64_t)6 << 20)
static pool_classes_t tpc;
static uint64_t t_running, t_budget_breaches, t_double_owner, t_samples, t_enomem;

static void *churn(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg + 1, seed = id * 0x9E3779B97F4A7C15ull;
    pool_block_t held[HOLD];
    size_t want[HOLD];
    int n, h;
    memset(held, 0, sizeof held);
    for (n = 0; n < ITERS; n++) {
        h = (int)(rnd(&seed) % HOLD);
        if (held[h].ptr != NULL) {
            uint64_t first, last;
            memcpy(&first, held[h].ptr, 8);
            memcpy(&last, held[h].ptr + want[h] - 8, 8);
            if (first != id || last != id)
                pool_fetch_add64(&t_double_owner, 1, POOL_RELAXED);
            pool_classes_give_mpmc(&tpc, &held[h]);
            held[h].ptr = NULL;
        } else {
            want[h] = (size_t)8 << (rnd(&seed) % 18);   /* 8 B .. 1 MiB */
            want[h] += rnd(&seed) % want[h];
            if (want[h] < 16)
                want[h] = 16;   /* the two ids must not overlap */
            if (pool_classes_take_mpmc(&tpc, want[h], &held[h]) < 0) {
                pool_fetch_add64(&t_enomem, 1, POOL_RELAXED);
                held[h].ptr = NULL;
                continue;
            }
            memcpy(held[h].ptr, &id, 8);
            memcpy(held[h].ptr + want[h] - 8, &id, 8);
        }
    }
    for (h = 0; h < HOLD; h++)
        if (held[h].ptr != NULL)
            pool_classes_give_mpmc(&tpc, &held[h]);
    pool_fetch_add64(&t_running, (uint64_t)-1, POOL_RELEASE);
    return NULL;
}

static void *watch(void *arg)
{
    (void)arg;
    while (pool_load64(&t_running, POOL_ACQUIRE) != 0) {
        if (pool_load64(&tpc.retained, POOL_RELAXED) > T_BUDGET)
            pool_fetch_add64(&t_budget_breaches, 1, POOL_RELAXED);
        if (t_samples % 64 == 63)
            pool_classes_trim(&tpc, T_BUDGET / 2);   /* trim races give-backs */
        t_samples++;
    }
    return NULL;
}

static int test_threads(void)
{
    pthread_t th[THREADS], w;
    uint32_t c;
    int i;
    CHECK(pool_classes_init(&tpc, T_BUDGET, 0, 64, POOL_CLEAR_NEVER) == 0, "init");
    t_running = THREADS;
    for (i = 0; i < THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, churn, (void *)(uintptr_t)i) == 0, "thread");
    CHECK(pthread_create(&w, NULL, watch, NULL) == 0, "watcher");
    for (i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_join(w, NULL);
    CHECK(t_enomem == 0, "%llu allocations failed", (unsigned long long)t_enomem);
    CHECK(t_double_owner == 0, "%llu blocks had two owners at once",
          (unsigned long long)t_double_owner);
    CHECK(t_budget_breaches == 0, "retained above max_bytes %llu times in %llu samples",
          (unsigned long long)t_budget_breaches, (unsigned long long)t_samples);
    for (c = 0; c <= tpc.nclasses; c++)
        CHECK(tpc.classes[c].out == 0, "class %u: %llu still out", c,
              (unsigned long long)tpc.classes[c].out);
    CHECK(tpc.retained == cached_bytes(&tpc) && tpc.retained <= T_BUDGET,
          "retained %llu, cached %llu", (unsigned long long)tpc.retained,
          (unsigned long long)cached_bytes(&tpc));
    {
        uint64_t n = 0;
        for (c = 0; c < tpc.nclasses; c++)
            n += tpc.classes[c].n_cached;
        CHECK(tpc.live == n, "live blocks %llu, cached %llu", (unsigned long long)tpc.live,
              (unsigned long long)n);
    }
    pool_classes_trim(&tpc, 0);
    CHECK(tpc.live == 0 && tpc.retained == 0, "leaked: %llu blocks",
          (unsigned long long)tpc.live);
    pool_classes_destroy(&tpc);
    printf("threads: %d threads x %d ops, %llu budget samples\n", THREADS, ITERS,
           (unsigned long long)t_samples);
    passes++;
    return 0;
}

int main(void)
{
    test_sizes();
    test_budget();
    test_threads();
    printf("%d passed, %d failed\n", passes, failures);
    return failures != 0;
}
