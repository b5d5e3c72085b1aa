/*
 * pool_stats.h - statistics counters that a reader can report and reset
 * without losing or double-counting an event, and running maxima.
 *
 * Layout: a counter is a uint64_t that is only ever added to; its mark is a
 * second uint64_t, the counter's value at the last resetting report.
 *
 * Counters are never zeroed, because the pools derive their gauges from
 * them (in_use = acquires - releases, size = creations - destructions).  A
 * report gives counter - mark; a resetting report also moves the mark to
 * the value it reported, with one CAS.  So every event lands in exactly one
 * resetting report, even when two threads reset at once: the loser of the
 * CAS retries against the winner's mark and reports only what came after.
 *
 * A maximum (the longest wait, the longest hold) is raised by CAS and reset
 * by swapping in 0: a new maximum that races a reset lands in this report
 * or the next, never in neither.
 *
 * Accepted race: the counters of one report are each read atomically, not
 * all at one instant (acquires and releases may be a few events apart).
 *
 * Concurrency contract: every function may be called from any thread (in
 * the POOL_ATOMIC_PLAIN build, only under the GIL).
 */
#ifndef POOL_STATS_H
#define POOL_STATS_H

#include <stdint.h>
#include "pool_atomic.h"

static inline void pool_stat_add(uint64_t *c, uint64_t v)
{
    /* relaxed: a statistic; nothing is ordered by it */
    pool_fetch_add64(c, v, POOL_RELAXED);
}

/* counter - mark; with reset != 0, the mark moves to the value reported. */
static inline uint64_t pool_stat_since(const uint64_t *c, uint64_t *mark, int reset)
{
    /* acquire: a mark set by another reset comes with that reset's read of
     * the counter, so our read below is no older (read-read coherence);
     * pairs with the release CAS below */
    uint64_t m = pool_load64(mark, POOL_ACQUIRE);
    for (;;) {
        uint64_t v = pool_load64(c, POOL_RELAXED);   /* relaxed: see above */
        if (v < m)
            v = m;   /* cannot happen (see above); a report never goes negative */
        if (!reset)
            return v - m;
        /* release: publishes our read of the counter with the new mark;
         * on failure m is the winner's mark (acquire), and we retry */
        if (pool_cas64(mark, &m, v, POOL_ACQ_REL, POOL_ACQUIRE))
            return v - m;
    }
}

/* pool_stat_since for a value read elsewhere (a sum of counters, each
 * never decreasing): value - mark, the mark moved to it on reset. */
static inline uint64_t pool_stat_since_value(uint64_t v, uint64_t *mark, int reset)
{
    /* acquire/release: as in pool_stat_since */
    uint64_t m = pool_load64(mark, POOL_ACQUIRE);
    for (;;) {
        uint64_t w = v < m ? m : v;   /* a sum read before another reset's */
        if (!reset)
            return w - m;
        if (pool_cas64(mark, &m, w, POOL_ACQ_REL, POOL_ACQUIRE))
            return w - m;
    }
}

/* Raises *mx to v if v is larger. */
static inline void pool_stat_raise(uint64_t *mx, uint64_t v)
{
    /* relaxed: a statistic; the CAS alone decides */
    uint64_t cur = pool_load64(mx, POOL_RELAXED);
    while (v > cur && !pool_cas64(mx, &cur, v, POOL_RELAXED, POOL_RELAXED)) {
    }
}

/* The maximum; with reset != 0, swapped for 0 in the same step. */
static inline uint64_t pool_stat_max(uint64_t *mx, int reset)
{
    uint64_t cur = pool_load64(mx, POOL_RELAXED);   /* relaxed: as above */
    if (reset)
        while (!pool_cas64(mx, &cur, 0, POOL_RELAXED, POOL_RELAXED)) {
        }
    return cur;
}

#endif /* POOL_STATS_H */
