/*
 * pool_classes.h - a cache of aligned memory blocks in power-of-two size
 * classes, under a byte budget (ArrayPool).  Plain C, no Python.
 *
 * A cache, not a bounded pool: a request that finds no cached block of its
 * class gets a new one (pool_classes_take never waits), and a block given
 * back is kept only if its class has a free cache slot and the bytes kept
 * stay within the budget; otherwise it is freed at once.
 *
 * Layout
 * ------
 *   classes[c]   one per size 2^(min_shift + c), c < nclasses; the largest
 *                class is max_size (or max_bytes) rounded up to a power of
 *                two.  Each class is a slot table of `capacity` cache slots:
 *                  cached   a free-list (pool_freelist.h) of the slots whose
 *                           blocks[i] holds a cached block;
 *                  empty    a free-list of the slots holding nothing;
 *                  next[]   the links of both lists (a slot is on exactly one);
 *                  blocks[] slot -> block address, valid while on `cached`.
 *                The tables are allocated by pool_classes_init; blocks are
 *                not: a block is allocated the first time its class is
 *                asked for and finds nothing cached, never all up front.
 *   oversize     requests above the largest class (only when max_size is
 *                None) are allocated rounded up to a page and never cached.
 *   Blocks of POOL_BLOCK_MMAP_MIN bytes and more are mapped from the OS
 *   (mmap / VirtualAlloc; MADV_HUGEPAGE from 2 MiB where the kernel has it),
 *   so freeing one (trim, or a give-back over budget) returns its pages to
 *   the OS at once; smaller ones come from the C allocator, aligned.
 *
 * ABA strategy: the free-lists' (pool_freelist.h): every successful CAS on
 * a list head bumps a 32-bit tag.  A slot moves cached -> (owner) -> empty
 * -> (owner) -> cached; blocks[i] is written only by the owner of slot i,
 * between its pop from `empty` and its push onto `cached`, and that push's
 * release publishes it to the popper's acquire.
 *
 * The byte budget, enforced atomically
 * ------------------------------------
 * `retained` counts the bytes of every cached block, plus those of blocks
 * being cached right now.  A give-back first reserves its bytes with a CAS
 * loop that refuses to go above max_bytes (pool_classes_reserve_), and only
 * then takes an empty slot; a hit subtracts its block's bytes after it has
 * popped it.  So at every instant, for any reader:
 *     bytes of cached blocks  <=  retained  <=  max_bytes.
 * Nothing ever adds first and checks after (which would let a reader see
 * retained above the budget for a moment).  `peak` is retained's highest
 * value, raised by a CAS-max loop that rarely runs.
 *
 * Invariants
 *   - a block is cached (its slot on `cached`) XOR handed out to exactly one
 *     owner XOR being freed: a popped slot's block is the popper's alone;
 *   - a cache slot is on `cached` XOR on `empty` XOR owned by one caller;
 *   - out[c] counts the blocks of class c handed out and not given back.
 *
 * Accepted races: statistics (hits, misses, out, n_cached) are relaxed
 * counters, each exact on its own, not a consistent snapshot together.
 * trim() against concurrent give-backs is best effort: it frees what it
 * finds cached while retained is above its target; a block given back
 * meanwhile may stay.  Every class's list heads sit in one cache line of
 * their own; `retained` is one word every give-back and hit touches (a
 * global budget needs one): contended only between threads that hit the
 * cache at the same moment.
 *
 * Concurrency contract: _mpmc functions may be called from any number of
 * threads at once (in the POOL_ATOMIC_PLAIN build, only under the GIL);
 * pool_classes_init/_destroy are single-threaded; pool_classes_trim may
 * run with anything.
 */
#ifndef POOL_CLASSES_H
#define POOL_CLASSES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "pool_atomic.h"
#include "pool_freelist.h"

#define POOL_CLASSES_MIN_SHIFT 6            /* 64 B: the smallest block (one cache line) */
#define POOL_CLASSES_MAX_SHIFT 47           /* 128 TiB: more than any address space */
#define POOL_CLASSES_SLOTS 64               /* cache slots per class: arbitrary; tune later */
#define POOL_BLOCK_MMAP_MIN ((size_t)65536) /* blocks this size and up are mapped pages */
#define POOL_POISON_BYTE 0xDB               /* clear=poison fills released blocks with it */

enum {
    POOL_CLEAR_NEVER = 0,
    POOL_CLEAR_ON_RELEASE = 1,
    POOL_CLEAR_POISON = 2
};

/* pool_classes_take results; negative values are failures */
enum {
    POOL_TAKE_HIT = 0,        /* a cached block */
    POOL_TAKE_MISS = 1,       /* a new block */
    POOL_TAKE_ENOMEM = -1,    /* the memory cannot be had */
    POOL_TAKE_EPOISON = -3    /* clear=poison: a cached block was written after
                               * its release; it was freed, not handed out */
};

/* Block flags */
#define POOL_BLOCK_ZEROED 1u   /* every byte is 0: a fresh mapping, or cleared on release */

typedef struct pool_block {
    unsigned char *ptr;
    size_t size;               /* the block's bytes: its class's size, or page-rounded */
    uint32_t cls;              /* class index; nclasses for an oversize block */
    uint32_t flags;            /* POOL_BLOCK_ZEROED */
    size_t bad_offset;         /* POOL_TAKE_EPOISON: the first byte found written */
} pool_block_t;

typedef struct pool_class {   /* 64 bytes: one cache line per class */
    pool_freelist_t cached;   /* slots holding a cached block */
    pool_freelist_t empty;    /* slots holding nothing */
    uint32_t *next;           /* links of both lists */
    uintptr_t *blocks;        /* slot -> block; the slot's owner writes it */
    uint64_t out;             /* blocks handed out, not given back (relaxed) */
    uint64_t n_cached;        /* blocks cached (relaxed gauge) */
    uint64_t hits;            /* relaxed statistic */
    uint64_t misses;          /* relaxed statistic */
} pool_class_t;

typedef struct pool_classes {
    pool_class_t *classes;    /* nclasses + 1: the last one is `oversize` (no slots) */
    void *classes_raw;        /* what the allocator returned for classes */
    uint32_t *next_all;       /* every class's next[] in one allocation */
    uintptr_t *blocks_all;    /* every class's blocks[] in one allocation */
    uint64_t max_bytes;       /* the budget; written by pool_classes_set_budget */
    uint64_t retained;        /* bytes cached or being cached (see above) */
    uint64_t peak;            /* retained's highest value */
    uint64_t live;            /* blocks allocated and not yet freed (relaxed; cold paths) */
    size_t max_size;          /* largest request; SIZE_MAX: no limit (oversize ok) */
    size_t alignment;         /* of every block: a power of two */
    uint32_t min_shift;       /* log2 of the smallest block */
    uint32_t nclasses;
    uint32_t capacity;        /* cache slots per class */
    int clear;                /* POOL_CLEAR_* */
} pool_classes_t;

/* ---- cold (pool_classes.c) ----------------------------------------------- */

/* Single-threaded.  max_size == 0: no limit, classes up to max_bytes (at
 * least one class).  Returns 0, POOL_TAKE_ENOMEM, or -2 for bad arguments
 * (alignment not a power of two, clear unknown). */
int pool_classes_init(pool_classes_t *pc, uint64_t max_bytes, size_t max_size,
                      size_t alignment, int clear);
/* Single-threaded, nothing handed out may come back after it: frees every
 * cached block and the tables. */
void pool_classes_destroy(pool_classes_t *pc);
/* Frees cached blocks, largest class first, until retained <= target.
 * Returns the bytes freed.  Any thread, any time. */
uint64_t pool_classes_trim(pool_classes_t *pc, uint64_t target);
/* A new block of `size` bytes aligned to `alignment`; NULL if it cannot be
 * had.  *zeroed: 1 if its bytes are known to be 0. */
void *pool_block_alloc(size_t size, size_t alignment, int *zeroed);
void pool_block_free(void *p, size_t size, size_t alignment);
/* Frees a block that is neither cached nor handed out any more. */
void pool_classes_free_(pool_classes_t *pc, void *p, size_t size);
/* The miss path of pool_classes_take_mpmc: allocate (b->cls is set). */
int pool_classes_take_new_(pool_classes_t *pc, size_t nbytes, pool_block_t *b);
/* clear=poison: the offset of the first byte of p[0:size] that is not
 * POOL_POISON_BYTE, or SIZE_MAX if none. */
size_t pool_poison_check(const unsigned char *p, size_t size);

/* ---- sizes ------------------------------------------------------------ */

static inline uint32_t pool_ceil_log2_(uint64_t n)   /* n >= 2 */
{
#if defined(__GNUC__) || defined(__clang__)
    return 64u - (uint32_t)__builtin_clzll(n - 1);
#else
    uint32_t s = 0;
    for (n -= 1; n; n >>= 1)
        s++;
    return s;
#endif
}

/* The class of an nbytes request (nclasses: oversize).  nbytes <= max_size. */
static inline uint32_t pool_classes_index(const pool_classes_t *pc, size_t nbytes)
{
    uint32_t s;
    if (nbytes <= ((size_t)1 << pc->min_shift))
        return 0;
    s = pool_ceil_log2_(nbytes) - pc->min_shift;
    return s < pc->nclasses ? s : pc->nclasses;
}

static inline size_t pool_classes_size(const pool_classes_t *pc, uint32_t c)
{
    return (size_t)1 << (pc->min_shift + c);
}

/* ---- the budget ------------------------------------------------------- */

/* Adds size to retained unless that would exceed max_bytes: 1 if added. */
static inline int pool_classes_reserve_(pool_classes_t *pc, uint64_t size)
{
    /* relaxed: the CAS below decides; the budget orders no other memory */
    uint64_t old = pool_load64(&pc->retained, POOL_RELAXED);
    uint64_t max = pool_load64(&pc->max_bytes, POOL_RELAXED);  /* relaxed: a number */
    uint64_t peak;
    for (;;) {
        if (size > max || old > max - size)
            return 0;
        /* relaxed: retained is a count; the block itself is published by
         * the release push onto `cached` */
        if (pool_cas64(&pc->retained, &old, old + size, POOL_RELAXED, POOL_RELAXED))
            break;
    }
    old += size;
    /* relaxed: a statistic; raised only, by whoever sees a new high */
    peak = pool_load64(&pc->peak, POOL_RELAXED);
    while (old > peak && !pool_cas64(&pc->peak, &peak, old, POOL_RELAXED, POOL_RELAXED))
        ;
    return 1;
}

static inline void pool_classes_unreserve_(pool_classes_t *pc, uint64_t size)
{
    /* relaxed: a count; never below the bytes still cached (we subtract
     * only what we added, after the block left the cache) */
    pool_fetch_add64(&pc->retained, (uint64_t)0 - size, POOL_RELAXED);
}

/* ---- the hot path ----------------------------------------------------- */

/* Hands out a block for nbytes (<= max_size: the caller checked), cached
 * if its class has one, else new.  POOL_TAKE_HIT / _MISS with *b filled,
 * or a failure (*b->ptr is NULL). */
static inline int pool_classes_take_mpmc(pool_classes_t *pc, size_t nbytes, pool_block_t *b)
{
    uint32_t c = pool_classes_index(pc, nbytes);
    pool_class_t *k = &pc->classes[c];
    uint32_t i;
    b->cls = c;
    b->flags = 0;
    if (c < pc->nclasses && (i = pool_freelist_pop_mpmc(&k->cached, k->next)) != POOL_NIL) {
        /* relaxed: slot i is ours; its pop (acquire) pairs with the release
         * push that published blocks[i] */
        b->ptr = (unsigned char *)pool_loadptr(&k->blocks[i], POOL_RELAXED);
        b->size = pool_classes_size(pc, c);
        pool_freelist_push_mpmc(&k->empty, k->next, i);
        pool_fetch_add64(&k->n_cached, (uint64_t)-1, POOL_RELAXED);  /* relaxed: gauge */
        pool_classes_unreserve_(pc, b->size);
        if (pc->clear == POOL_CLEAR_ON_RELEASE)
            b->flags = POOL_BLOCK_ZEROED;
        else if (pc->clear == POOL_CLEAR_POISON
                 && (b->bad_offset = pool_poison_check(b->ptr, b->size)) != SIZE_MAX) {
            pool_classes_free_(pc, b->ptr, b->size);
            b->ptr = NULL;
            return POOL_TAKE_EPOISON;
        }
        pool_fetch_add64(&k->hits, 1, POOL_RELAXED);   /* relaxed: statistic */
        pool_fetch_add64(&k->out, 1, POOL_RELAXED);    /* relaxed: gauge */
        return POOL_TAKE_HIT;
    }
    return pool_classes_take_new_(pc, nbytes, b);
}

/* Gives back a block that pool_classes_take_mpmc handed out (b as it was
 * filled then).  Cached if its class has room within the budget (cleared
 * or poisoned first, as `clear` says), else freed.  1 if cached. */
static inline int pool_classes_give_mpmc(pool_classes_t *pc, const pool_block_t *b)
{
    pool_class_t *k = &pc->classes[b->cls];
    uint32_t i;
    pool_fetch_add64(&k->out, (uint64_t)-1, POOL_RELAXED);   /* relaxed: gauge */
    if (b->cls < pc->nclasses && pool_classes_reserve_(pc, b->size)) {
        i = pool_freelist_pop_mpmc(&k->empty, k->next);
        if (i != POOL_NIL) {
            if (pc->clear == POOL_CLEAR_ON_RELEASE)
                memset(b->ptr, 0, b->size);
            else if (pc->clear == POOL_CLEAR_POISON)
                memset(b->ptr, POOL_POISON_BYTE, b->size);
            /* relaxed: published by the release push below */
            pool_storeptr(&k->blocks[i], (uintptr_t)b->ptr, POOL_RELAXED);
            pool_fetch_add64(&k->n_cached, 1, POOL_RELAXED);   /* relaxed: gauge */
            pool_freelist_push_mpmc(&k->cached, k->next, i);
            return 1;
        }
        pool_classes_unreserve_(pc, b->size);   /* the class is full */
    }
    pool_classes_free_(pc, b->ptr, b->size);
    return 0;
}

#endif /* POOL_CLASSES_H */
