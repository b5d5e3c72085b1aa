/*
 * test_shm.c - validate program for SharedBufferPool's segment
 * (src/pool_shm.h), with real threads standing in for processes (each
 * thread its own holder word) on an anonymous shared mapping.  Run under
 * ThreadSanitizer and AddressSanitizer by run_sanitizers.sh.  No Python.
 *
 * 1. layout: a planned segment's header checks out; a wrong magic,
 *    version, inconsistent sizes or a short mapping are each reported.
 * 2. words: take / give / send (IN TRANSIT) / receive by ticket, each one
 *    CAS; a give by another holder fails; a corrupt word is never taken.
 * 3. tickets: pool_shm_ticket is one-to-one in the count (no repeat in a
 *    million sends of one key, even around the 62-bit wrap) and stays
 *    within 62 bits.
 * 4. threads: holders each take and give back ITERS blocks: 4 threads on
 *    8 blocks (never empty: no waits), then 6 threads on 2 blocks, waiting
 *    (futex) when none is free.  Each
 *    marks its ownership in a side array and writes its id over the block,
 *    checking both before the give: a block held twice at once is seen.
 *    The block's bytes are written plainly, so a hand-out without
 *    ordering can be a ThreadSanitizer report.  (Not a sure one: a relaxed
 *    slot CAS was tried and passed, because every release's seq_cst bump
 *    of the futex word also orders most pairs of holders.)  At the end
 *    every word is FREE and hand-outs equal gives.
 *
 * Exit 0 and "N passed, 0 failed" on success.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pool_shm.h"
#include "validate.h"

#define MAX_THREADS 6
#define MAX_CAPACITY 8
#define BLOCK 64
#ifndef ITERS
#define ITERS 100000
#endif

/* pool_backoff()'s test hook (POOL_BACKOFF_TEST_HOOK, set by CMakeLists.txt) */
void test_backoff_hook(void);
void test_backoff_hook(void) {}

static pool_shm_layout_t L;
static uint32_t owner[MAX_CAPACITY]; /* the thread holding each slot, +1; 0: none */
static int violations;

static char *map_segment(uint64_t size)
{
    void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : (char *)p;
}

static int test_layout(void)
{
    pool_shm_layout_t l, c;
    uint8_t id[16] = {1, 2, 3};
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    char *base;
    CHECK(pool_shm_plan(&l, 100, 3, 64, page) == 0, "plan");
    CHECK(l.stride == 128 && l.blocks_offset % page == 0, "stride %llu offset %llu",
          (unsigned long long)l.stride, (unsigned long long)l.blocks_offset);
    CHECK(pool_shm_plan(&l, 0, 3, 64, page) < 0, "block size 0 refused");
    CHECK(pool_shm_plan(&l, 8, 0, 64, page) < 0, "capacity 0 refused");
    CHECK(pool_shm_plan(&l, 8, 3, 48, page) < 0, "alignment not a power of two refused");
    CHECK(pool_shm_plan(&l, UINT64_MAX / 2, POOL_SHM_MAX_CAPACITY, 64, page) < 0,
          "an overflowing size refused");
    CHECK(pool_shm_plan(&l, 100, 3, 64, page) == 0, "plan again");
    base = map_segment(l.total_size);
    CHECK(base != NULL, "map");
    pool_shm_init(&l, base, id, NULL);
    CHECK(pool_shm_check_header(&c, base, l.total_size, page) == 0, "a fresh header checks");
    CHECK(c.capacity == 3 && c.block_size == 100 && c.blocks == base + l.blocks_offset,
          "the copy has the layout");
    CHECK(pool_shm_check_header(&c, base, l.total_size - 1, page) == POOL_SHM_ETRUNC, "short");
    CHECK(pool_shm_check_header(&c, base, 100, page) == POOL_SHM_ESMALL, "shorter than a header");
    ((pool_shm_header_t *)base)->version = 99;
    CHECK(pool_shm_check_header(&c, base, l.total_size, page) == POOL_SHM_EVERSION, "version");
    ((pool_shm_header_t *)base)->version = POOL_SHM_VERSION;
    ((pool_shm_header_t *)base)->stride = 64;
    CHECK(pool_shm_check_header(&c, base, l.total_size, page) == POOL_SHM_ELAYOUT, "layout");
    ((pool_shm_header_t *)base)->stride = l.stride;
    ((pool_shm_header_t *)base)->magic ^= 1;
    CHECK(pool_shm_check_header(&c, base, l.total_size, page) == POOL_SHM_EMAGIC, "magic");
    munmap(base, (size_t)l.total_size);
    passes++;
    return 0;
}

static int test_words(void)
{
    pool_shm_layout_t l;
    uint8_t id[16] = {0};
    uint64_t a = pool_shm_held_word(101, 7), b = pool_shm_held_word(102, 9);
    uint64_t t = pool_shm_transit_word(0x123456789abcULL);
    int64_t i, j;
    char *base;
    CHECK(pool_shm_plan(&l, 32, 3, 64, (uint64_t)sysconf(_SC_PAGESIZE)) == 0, "plan");
    base = map_segment(l.total_size);
    CHECK(base != NULL, "map");
    pool_shm_init(&l, base, id, NULL);
    CHECK(pool_shm_kind(a) == POOL_SHM_HELD && pool_shm_word_pid(a) == 101
              && pool_shm_word_tag(a) == 7,
          "a held word names its holder");
    CHECK(pool_shm_kind(t) == POOL_SHM_TRANSIT && pool_shm_kind(7) == 3 && pool_shm_kind(4) == 3,
          "kinds");
    l.words[1] = 7; /* corrupt: never taken */
    i = pool_shm_take(&l, a);
    j = pool_shm_take(&l, b);
    CHECK(i >= 0 && j >= 0 && i != j && i != 1 && j != 1, "two takes, not the corrupt word");
    CHECK(pool_shm_take(&l, a) < 0, "none left");
    CHECK(pool_shm_give(&l, (uint32_t)i, b) < 0, "another holder cannot give it");
    CHECK(pool_shm_swap(&l, (uint32_t)i, a, t), "send");
    CHECK(!pool_shm_swap(&l, (uint32_t)i, pool_shm_transit_word(1), b), "a wrong ticket");
    CHECK(pool_shm_swap(&l, (uint32_t)i, t, b), "received");
    CHECK(!pool_shm_swap(&l, (uint32_t)i, t, b), "received once");
    CHECK(pool_shm_give(&l, (uint32_t)i, b) == 0 && pool_shm_give(&l, (uint32_t)j, b) == 0,
          "given back");
    CHECK(pool_shm_take(&l, a) == j, "the next take starts at the last freed slot");
    munmap(base, (size_t)l.total_size);
    passes++;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int test_tickets(void)
{
    enum { N = 1000000 };
    const uint64_t keys[] = {0, 0x0123456789abcdefULL, (1ULL << 62) - N / 2, UINT64_MAX};
    uint64_t *t = malloc(N * sizeof *t);
    size_t k, n;
    CHECK(t != NULL, "malloc");
    for (k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        int repeats = 0, wide = 0;
        for (n = 0; n < N; n++) {
            t[n] = pool_shm_ticket(keys[k], n);
            wide += t[n] >> 62 != 0;
        }
        qsort(t, N, sizeof *t, cmp_u64);
        for (n = 1; n < N; n++)
            repeats += t[n] == t[n - 1];
        CHECK(repeats == 0 && wide == 0, "key %zu: %d repeats, %d over 62 bits", k, repeats, wide);
    }
    free(t);
    passes++;
    return 0;
}

static void *worker(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    uint64_t me = pool_shm_held_word(1000 + id, 0x5eed0000u + id);
    unsigned char stamp = (unsigned char)(id + 1);
    long k;
    for (k = 0; k < ITERS; k++) {
        int64_t i = pool_shm_take(&L, me);
        char *block;
        int n;
        while (i < 0) {
            uint32_t seq;
            pool_shm_will_sleep(&L);
            seq = pool_shm_wake_seq(&L);
            i = pool_shm_take(&L, me);
            if (i < 0)
                pool_shm_sleep(&L, seq, 2000000); /* 2 ms at most */
        }
        if (__atomic_exchange_n(&owner[i], id + 1, __ATOMIC_RELAXED) != 0)
            __atomic_fetch_add(&violations, 1, __ATOMIC_RELAXED);
        block = L.blocks + (uint64_t)i * L.stride;
        memset(block, stamp, BLOCK); /* plain writes: ordered by the word's CAS */
        for (n = 0; n < BLOCK; n++)
            if ((unsigned char)block[n] != stamp) {
                __atomic_fetch_add(&violations, 1, __ATOMIC_RELAXED);
                break;
            }
        if (__atomic_exchange_n(&owner[i], 0, __ATOMIC_RELAXED) != id + 1)
            __atomic_fetch_add(&violations, 1, __ATOMIC_RELAXED);
        if (pool_shm_give(&L, (uint32_t)i, me) != 0)
            __atomic_fetch_add(&violations, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static int test_threads(int threads, uint32_t capacity)
{
    pthread_t t[MAX_THREADS];
    uint8_t id[16] = {9};
    uintptr_t k;
    uint32_t i;
    char *base;
    violations = 0;
    CHECK(pool_shm_plan(&L, BLOCK, capacity, 64, (uint64_t)sysconf(_SC_PAGESIZE)) == 0, "plan");
    base = map_segment(L.total_size);
    CHECK(base != NULL, "map");
    pool_shm_init(&L, base, id, NULL);
    for (k = 0; k < (uintptr_t)threads; k++)
        CHECK(pthread_create(&t[k], NULL, worker, (void *)k) == 0, "thread");
    for (k = 0; k < (uintptr_t)threads; k++)
        pthread_join(t[k], NULL);
    CHECK(violations == 0, "%d blocks held twice, or given back by another", violations);
    for (i = 0; i < capacity; i++)
        CHECK(pool_shm_load(&L, i) == 0, "slot %u not FREE at the end", i);
    CHECK(L.header->handouts == (uint64_t)threads * ITERS
              && L.header->releases == L.header->handouts,
          "hand-outs %llu releases %llu", (unsigned long long)L.header->handouts,
          (unsigned long long)L.header->releases);
    printf("threads: %d holders x %d hand-outs of %u blocks, none held twice\n", threads, ITERS,
           capacity);
    munmap(base, (size_t)L.total_size);
    passes++;
    return 0;
}

int main(void)
{
    test_layout();
    test_words();
    test_tickets();
    test_threads(4, 8);
    test_threads(6, 2);
    printf("%d passed, %d failed\n", passes, failures);
    return failures != 0;
}
