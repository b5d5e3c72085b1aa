/* pool_shm.c - SharedBufferPool's cold code: layout, header checks, futex
 * sleep and wake.  The design is in pool_shm.h. */
#define _GNU_SOURCE /* syscall() */
#include "pool_shm.h"

#include <errno.h>
#include <string.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#elif POOL_SHM_SUPPORTED
#include <time.h>
#endif

_Static_assert(sizeof(pool_shm_header_t) == POOL_SHM_HEADER, "header is five cache lines");
_Static_assert(offsetof(pool_shm_header_t, wake) == 128, "wake on its own line");
_Static_assert(offsetof(pool_shm_header_t, hint) == 192, "hint on its own line");
_Static_assert(offsetof(pool_shm_header_t, handouts) == 256, "counters on their own line");

static int round_up(uint64_t x, uint64_t to, uint64_t *out)
{
    /* to is a power of two */
    if (x > UINT64_MAX - (to - 1))
        return -1;
    *out = (x + to - 1) & ~(to - 1);
    return 0;
}

int pool_shm_plan(pool_shm_layout_t *l, uint64_t block_size, uint32_t capacity,
                  uint64_t alignment, uint64_t page)
{
    uint64_t words_end, first, stride, blocks;
    if (block_size == 0 || capacity == 0 || capacity > POOL_SHM_MAX_CAPACITY || alignment == 0
        || (alignment & (alignment - 1)) != 0 || page == 0 || (page & (page - 1)) != 0)
        return -1;
    words_end = POOL_SHM_HEADER + 8ull * capacity;
    if (round_up(words_end, alignment > page ? alignment : page, &first) < 0
        || round_up(block_size, alignment, &stride) < 0)
        return -1;
    if (stride > (UINT64_MAX - first) / capacity)
        return -1;
    blocks = stride * capacity;
    if (round_up(first + blocks, page, &l->total_size) < 0)
        return -1;
    l->capacity = capacity;
    l->block_size = block_size;
    l->alignment = alignment;
    l->stride = stride;
    l->blocks_offset = first;
    return 0;
}

static void bind(pool_shm_layout_t *l, char *base)
{
    l->base = base;
    l->header = (pool_shm_header_t *)base;
    l->words = (uint64_t *)(base + POOL_SHM_HEADER);
    l->blocks = base + l->blocks_offset;
}

void pool_shm_init(pool_shm_layout_t *l, char *base, const uint8_t id[16],
                   const uint8_t *name_key)
{
    pool_shm_header_t *h = (pool_shm_header_t *)base;
    h->version = POOL_SHM_VERSION;
    h->capacity = l->capacity;
    h->block_size = l->block_size;
    h->alignment = l->alignment;
    h->stride = l->stride;
    h->blocks_offset = l->blocks_offset;
    h->total_size = l->total_size;
    memcpy(h->id, id, 16);
    if (name_key != NULL)
        memcpy(h->name_key, name_key, sizeof h->name_key);
    /* the magic last: a reader that sees it sees the rest (nobody can map
     * the segment before the creator returns, but be exact anyway) */
    __atomic_store_n(&h->magic, POOL_SHM_MAGIC, __ATOMIC_RELEASE);
    bind(l, base);
}

int pool_shm_check_header(pool_shm_layout_t *l, char *base, uint64_t size, uint64_t page)
{
    const pool_shm_header_t *h = (const pool_shm_header_t *)base;
    pool_shm_header_t copy;
    if (size < POOL_SHM_HEADER)
        return POOL_SHM_ESMALL;
    memcpy(&copy, h, sizeof copy); /* read once: another process may be writing */
    if (copy.magic != POOL_SHM_MAGIC)
        return POOL_SHM_EMAGIC;
    if (copy.version != POOL_SHM_VERSION)
        return POOL_SHM_EVERSION;
    /* recompute the layout from the three sizes; every other field must agree */
    if (pool_shm_plan(l, copy.block_size, copy.capacity, copy.alignment, page) < 0
        || l->stride != copy.stride || l->blocks_offset != copy.blocks_offset
        || l->total_size != copy.total_size)
        return POOL_SHM_ELAYOUT;
    if (size < l->total_size)
        return POOL_SHM_ETRUNC;
    bind(l, base);
    return 0;
}

void pool_shm_freed(const pool_shm_layout_t *l, uint32_t i)
{
    /* relaxed: only where the next take starts looking */
    __atomic_store_n(&l->header->hint, i, __ATOMIC_RELAXED);
    /* seq_cst, with the read of `sleepers` after it: a Dekker pair with
     * pool_shm_will_sleep (a sleeper sets the flag, then reads `wake`) */
    __atomic_fetch_add(&l->header->wake, 1, __ATOMIC_SEQ_CST);
    /* seq_cst load, then an exchange (acq_rel) only if set: one waker
     * clears it and wakes everyone, who set it again before sleeping */
    if (__atomic_load_n(&l->header->sleepers, __ATOMIC_SEQ_CST) != 0
        && __atomic_exchange_n(&l->header->sleepers, 0, __ATOMIC_ACQ_REL) != 0) {
#if defined(__linux__)
        syscall(SYS_futex, &l->header->wake, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
#endif
    }
}

void pool_shm_waiters_add(const pool_shm_layout_t *l, int32_t d)
{
    /* relaxed: a statistic */
    __atomic_fetch_add(&l->header->waiters, (uint32_t)d, __ATOMIC_RELAXED);
}

int pool_shm_sleep(const pool_shm_layout_t *l, uint32_t seq, int64_t timeout_ns)
{
#if defined(__linux__)
    struct timespec ts;
    long rc;
    if (timeout_ns < 0)
        timeout_ns = 0;
    ts.tv_sec = (time_t)(timeout_ns / 1000000000);
    ts.tv_nsec = (long)(timeout_ns % 1000000000);
    rc = syscall(SYS_futex, &l->header->wake, FUTEX_WAIT, seq, &ts, NULL, 0);
    if (rc == 0 || errno == EAGAIN)
        return 0;
    return errno;
#elif POOL_SHM_SUPPORTED
    /* no futex: a short sleep, then the caller scans again */
    struct timespec ts = {0, 1000000};
    (void)l;
    (void)seq;
    if (timeout_ns < 1000000)
        ts.tv_nsec = timeout_ns > 0 ? (long)timeout_ns : 0;
    return nanosleep(&ts, NULL) == 0 ? 0 : errno;
#else
    (void)l;
    (void)seq;
    (void)timeout_ns;
    return ENOSYS;
#endif
}
