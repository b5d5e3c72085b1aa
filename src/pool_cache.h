/*
 * pool_cache.h - a small cache of free slots per thread, in front of a
 * pool's shared free-list, so that threads that acquire and release on one
 * pool do not all write the same cache line (free-threaded builds).
 *
 * Layout
 * ------
 *   shards    POOL_CACHE_SHARDS entries, each alone on its cache line:
 *               slot      a FREE slot index parked here, or POOL_NIL
 *               acquires  hand-outs this shard's threads made (a statistic)
 *               releases  and ended
 *   A thread uses one shard, picked once per thread, round-robin (so two
 *   threads use two shards; more threads than shards share, still
 *   correctly: every access is atomic).
 *
 * Protocol
 * --------
 *   release:  slot FREE ; put it in my shard (CAS NIL -> i) ; fence ; gate?
 *             if the gate is shut (someone waits, or closed): take it back
 *             (CAS i -> NIL) and push it on the shared list as before.
 *   acquire:  gate open ? take my shard's slot (CAS i -> NIL) : shared list
 *   join:     gate + 2 ; fence ; pop the lists ; else steal any shard's slot
 * The release's cache store and the joiner's steal are a Dekker pair like
 * the free-list push and pop (pool_waitq.h): either the joiner steals the
 * slot or the releaser sees it and moves it to the list, where it is
 * granted.  So a cached slot never starves a waiter.  close(), drain() and
 * evict() steal every shard first: nothing stays hidden from them.
 *
 * A cached slot is FREE (its generation already moved on) and on no list;
 * whoever takes it owns it, as a pop would.  Only pools with nothing to do
 * at hand-out and release use the cache.  GIL builds do not use it at all
 * (POOL_THREAD_CACHE is 0 there: one thread runs at a time).
 *
 * Concurrency contract: every function may be called from any thread.
 */
#ifndef POOL_CACHE_H
#define POOL_CACHE_H

#include <stdint.h>
#include <stdlib.h>
#include "pool_atomic.h"
#include "pool_freelist.h"

#define POOL_CACHE_SHARDS 16u     /* a power of two */
#define POOL_CACHE_LINE_BYTES 64

typedef struct pool_cache_shard {
    uint64_t slot;                 /* a cached FREE slot, or POOL_NIL */
    uint64_t acquires;             /* statistics of this shard's threads */
    uint64_t releases;
    uint64_t pad[POOL_CACHE_LINE_BYTES / 8 - 3];
} pool_cache_shard_t;

typedef struct pool_cache {
    pool_cache_shard_t *shards;    /* NULL: no cache */
    void *mem;                     /* what to free */
} pool_cache_t;

/* The calling thread's shard number (+1; 0: not picked yet), in this
 * module's own static TLS: initial-exec, a load from the thread pointer
 * (glibc keeps room for a few bytes of it in modules loaded later).  Static
 * in each file that includes this header; only the extension reads it. */
#if defined(_MSC_VER)
static __declspec(thread) uint32_t pool_cache_my_shard_;
static uint64_t pool_cache_next_shard_;
#else
static _Thread_local uint32_t pool_cache_my_shard_
    __attribute__((tls_model("initial-exec"), unused));
static uint64_t pool_cache_next_shard_ __attribute__((unused));
#endif

static inline void pool_cache_none(pool_cache_t *c)
{
    c->shards = NULL;
    c->mem = NULL;
}

/* Allocates the shards, all empty: 0, or -1 (no memory; c stays empty). */
static inline int pool_cache_init(pool_cache_t *c)
{
    uint32_t k;
    uintptr_t p;
    c->mem = calloc(POOL_CACHE_SHARDS + 1, sizeof(pool_cache_shard_t));
    if (c->mem == NULL) {
        c->shards = NULL;
        return -1;
    }
    p = ((uintptr_t)c->mem + POOL_CACHE_LINE_BYTES - 1) & ~(uintptr_t)(POOL_CACHE_LINE_BYTES - 1);
    c->shards = (pool_cache_shard_t *)p;
    for (k = 0; k < POOL_CACHE_SHARDS; k++)
        c->shards[k].slot = POOL_NIL;
    return 0;
}

static inline void pool_cache_free(pool_cache_t *c)
{
    free(c->mem);
    pool_cache_none(c);
}

/* The calling thread's shard (c must have shards). */
static inline pool_cache_shard_t *pool_cache_mine(pool_cache_t *c)
{
    uint32_t k = pool_cache_my_shard_;
    if (k == 0) {
        /* relaxed: only spreads threads over shards; any value is correct */
        k = (uint32_t)(pool_fetch_add64(&pool_cache_next_shard_, 1, POOL_RELAXED)
                       % POOL_CACHE_SHARDS)
            + 1;
        pool_cache_my_shard_ = k;
    }
    return &c->shards[k - 1];
}

/* Takes the shard's slot: its index (the caller owns it, FREE), or POOL_NIL. */
static inline uint32_t pool_cache_take(pool_cache_shard_t *s)
{
    /* relaxed: a hint; the CAS decides */
    uint64_t i = pool_load64(&s->slot, POOL_RELAXED);
    if (i == POOL_NIL)
        return POOL_NIL;
    /* acquire: we own the slot and see what its releaser wrote (pairs with
     * the release CAS in pool_cache_put), as a free-list pop does */
    if (!pool_cas64(&s->slot, &i, POOL_NIL, POOL_ACQUIRE, POOL_RELAXED))
        return POOL_NIL;   /* a thief came first (the shard's other user) */
    return (uint32_t)i;
}

/* Parks FREE slot i (owned) in the shard: 1, or 0 if the shard is full. */
static inline int pool_cache_put(pool_cache_shard_t *s, uint32_t i)
{
    uint64_t nil = POOL_NIL;
    /* release: publishes the slot's contents to whoever takes it; relaxed on
     * failure: the caller pushes it on the list instead */
    return pool_cas64(&s->slot, &nil, i, POOL_RELEASE, POOL_RELAXED);
}

/* After a put, the releaser saw the gate shut: takes i back to push it on
 * the list.  1 if it did; 0 if someone took it meanwhile (then nothing to
 * do: its taker owns it). */
static inline int pool_cache_reclaim(pool_cache_shard_t *s, uint32_t i)
{
    uint64_t expected = i;
    /* acquire: as in take */
    return pool_cas64(&s->slot, &expected, POOL_NIL, POOL_ACQUIRE, POOL_RELAXED);
}

/* Takes a slot from any shard: its index (owned, FREE), or POOL_NIL if every
 * shard is empty.  For waiters, close(), drain() and evict(). */
static inline uint32_t pool_cache_steal(pool_cache_t *c)
{
    uint32_t k;
    if (c == NULL || c->shards == NULL)
        return POOL_NIL;
    for (k = 0; k < POOL_CACHE_SHARDS; k++) {
        uint32_t i = pool_cache_take(&c->shards[k]);
        if (i != POOL_NIL)
            return i;
    }
    return POOL_NIL;
}

/* The sum of one statistic over the shards (relaxed reads: a snapshot). */
static inline uint64_t pool_cache_sum(pool_cache_t *c, int releases)
{
    uint64_t n = 0;
    uint32_t k;
    if (c->shards == NULL)
        return 0;
    for (k = 0; k < POOL_CACHE_SHARDS; k++)
        n += pool_load64(releases ? &c->shards[k].releases : &c->shards[k].acquires,
                         POOL_RELAXED);   /* relaxed: a statistic */
    return n;
}

#endif /* POOL_CACHE_H */
