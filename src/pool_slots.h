/*
 * pool_slots.h - per-slot state words: who holds a slot, and is it exported.
 *
 * Layout of one state word (uint64_t):
 *
 *     63            32 31           8 7        0
 *    +----------------+--------------+----------+
 *    |  generation    |   exports    |  state   |
 *    +----------------+--------------+----------+
 *
 *   state       POOL_SLOT_FREE, _HELD, _RELEASING or _RETIRING (below)
 *   exports     live buffer-protocol exports (memoryviews, numpy arrays)
 *   generation  bumped each time the slot becomes FREE, so a handle that
 *               carries (index, generation) goes stale in O(1) on release
 *
 * Life cycle
 *
 *     FREE --hold--> HELD --release_begin--> RELEASING --finish--> FREE
 *                     |     (ObjectPool: hooks run while RELEASING)
 *                     +--release_handle, exports == 0----------> FREE
 *                     +--release_handle, exports  > 0--> RETIRING
 *                                         last export_end -----> FREE
 *
 * Invariants
 *   - state FREE <=> the index is on a free-list, but for the short window
 *     in which its owner has set FREE and not yet pushed it;
 *   - exactly one caller wins each transition out of HELD or RETIRING (a CAS
 *     on the whole word), and only that caller may push the index: a double
 *     release loses the CAS and is reported, never pushed twice;
 *   - exports > 0 implies state is HELD or RETIRING, and the slot's memory is
 *     never handed out again before exports drops to 0.
 *
 * Generation wrap: after 2^32 releases of one slot a stale handle's
 * generation matches again.  Handles therefore also keep a local "released"
 * flag (see PooledBuffer); the generation guards races between threads.
 */
#ifndef POOL_SLOTS_H
#define POOL_SLOTS_H

#include <stddef.h>
#include <stdint.h>
#include "pool_atomic.h"
#include "pool_freelist.h"

enum {
    POOL_SLOT_FREE = 0,       /* on a free-list, or being pushed there */
    POOL_SLOT_HELD = 1,       /* handed out to exactly one owner */
    POOL_SLOT_RELEASING = 2,  /* owner is returning it (ObjectPool hooks running) */
    POOL_SLOT_RETIRING = 3    /* released while exported: freed by the last export */
};

/* Results of transitions; negative values are the caller's misuse. */
enum {
    POOL_OK = 0,
    POOL_FREED = 1,           /* the slot is FREE now: the caller must push it */
    POOL_DEFERRED = 2,        /* released while exported; the last export frees it */
    POOL_ENOTHELD = -1,       /* not held (already released or never handed out) */
    POOL_ESTALE = -2,         /* the handle's generation is old: already released */
    POOL_EEXPORTS = -3        /* export count would overflow 24 bits */
};

#define POOL_SLOT_STATE(w)   ((uint32_t)((w) & 0xffu))
#define POOL_SLOT_EXPORTS(w) ((uint32_t)(((w) >> 8) & 0xffffffu))
#define POOL_SLOT_GEN(w)     ((uint32_t)((w) >> 32))
#define POOL_SLOT_WORD(gen, exports, state) \
    (((uint64_t)(gen) << 32) | ((uint64_t)(exports) << 8) | (uint64_t)(state))
#define POOL_SLOT_MAX_EXPORTS 0xffffffu

/* The owner (it just popped index i) marks it HELD; returns the generation. */
static inline uint32_t pool_slot_hold(uint64_t *state, uint32_t i)
{
    /* relaxed: we own i, and nobody may leave FREE but us; others only fail
     * their CASes against FREE */
    uint64_t w = pool_load64(&state[i], POOL_RELAXED);
    /* release: a releaser that reads this HELD word (acquire, in
     * pool_slot_load) also sees everything done to the slot before it was
     * handed out again, e.g. ObjectPool's removal of the previous object;
     * pairs with the acquire load in pool_slot_load */
    pool_store64(&state[i], POOL_SLOT_WORD(POOL_SLOT_GEN(w), 0, POOL_SLOT_HELD),
                 POOL_RELEASE);
    return POOL_SLOT_GEN(w);
}

/* The whole state word of slot i, for a caller that checks it against what
 * it expects before a transition (pool_slot_release_begin). */
static inline uint64_t pool_slot_load(uint64_t *state, uint32_t i)
{
    /* acquire: pairs with the release store in pool_slot_hold */
    return pool_load64(&state[i], POOL_ACQUIRE);
}

/* The owner of a just-popped index marks it RELEASING instead of HELD: owned
 * but not handed out, so no release (a stale double release racing close's
 * drain, say) can win it.  Returns nothing: the owner is alone. */
static inline void pool_slot_own(uint64_t *state, uint32_t i)
{
    /* relaxed: as in pool_slot_hold */
    uint64_t w = pool_load64(&state[i], POOL_RELAXED);
    pool_store64(&state[i], POOL_SLOT_WORD(POOL_SLOT_GEN(w), 0, POOL_SLOT_RELEASING),
                 POOL_RELAXED);
}

/* HELD(gen) -> RELEASING(gen) (ObjectPool: identity-based release).  The
 * caller read gen from pool_slot_load and checked that the slot holds the
 * object it releases; the CAS then fails if the slot was released (and
 * perhaps handed out again, with a new generation) since.  So a stale
 * release never wins, not even for a moment, a slot that another owner
 * holds.  ObjectPool slots are never exported: the word is exact.
 * POOL_OK: the caller owns the slot; POOL_ESTALE / POOL_ENOTHELD: not its. */
static inline int pool_slot_release_begin(uint64_t *state, uint32_t i, uint32_t gen)
{
    uint64_t expected = POOL_SLOT_WORD(gen, 0, POOL_SLOT_HELD);
    /* acquire: the winner takes ownership and must see the holder's writes;
     * relaxed on failure: we only report it */
    if (pool_cas64(&state[i], &expected, POOL_SLOT_WORD(gen, 0, POOL_SLOT_RELEASING),
                   POOL_ACQUIRE, POOL_RELAXED))
        return POOL_OK;
    return POOL_SLOT_GEN(expected) != gen ? POOL_ESTALE : POOL_ENOTHELD;
}

/* The owner of a HELD or RELEASING slot makes it FREE (bumping the
 * generation) just before pushing it. */
static inline void pool_slot_set_free(uint64_t *state, uint32_t i)
{
    /* relaxed: only the owner writes now; the push that follows publishes */
    uint64_t w = pool_load64(&state[i], POOL_RELAXED);
    pool_store64(&state[i], POOL_SLOT_WORD(POOL_SLOT_GEN(w) + 1u, 0, POOL_SLOT_FREE),
                 POOL_RELAXED);
}

/* Handle release (PooledBuffer): HELD(gen) -> FREE, or RETIRING if exported. */
static inline int pool_slot_release_handle(uint64_t *state, uint32_t i, uint32_t gen)
{
    uint64_t w = pool_load64(&state[i], POOL_RELAXED);  /* relaxed: the CAS decides */
    for (;;) {
        uint64_t desired;
        int result;
        if (POOL_SLOT_GEN(w) != gen)
            return POOL_ESTALE;
        if (POOL_SLOT_STATE(w) != POOL_SLOT_HELD)
            return POOL_ENOTHELD;
        if (POOL_SLOT_EXPORTS(w) == 0) {
            desired = POOL_SLOT_WORD(gen + 1u, 0, POOL_SLOT_FREE);
            result = POOL_FREED;
        } else {
            desired = POOL_SLOT_WORD(gen, POOL_SLOT_EXPORTS(w), POOL_SLOT_RETIRING);
            result = POOL_DEFERRED;
        }
        /* acq_rel: the winner may own the slot (acquire) and its RETIRING
         * mark must be seen by the last export_end (release) */
        if (pool_cas64(&state[i], &w, desired, POOL_ACQ_REL, POOL_RELAXED))
            return result;
    }
}

/* A buffer export starts: HELD(gen) only; exports + 1. */
static inline int pool_slot_export_begin(uint64_t *state, uint32_t i, uint32_t gen)
{
    uint64_t w = pool_load64(&state[i], POOL_RELAXED);  /* relaxed: the CAS decides */
    for (;;) {
        if (POOL_SLOT_GEN(w) != gen)
            return POOL_ESTALE;
        if (POOL_SLOT_STATE(w) != POOL_SLOT_HELD)
            return POOL_ENOTHELD;
        if (POOL_SLOT_EXPORTS(w) == POOL_SLOT_MAX_EXPORTS)
            return POOL_EEXPORTS;
        /* acquire: the exporter reads memory the holder may have written */
        if (pool_cas64(&state[i], &w, w + (1u << 8), POOL_ACQUIRE, POOL_RELAXED))
            return POOL_OK;
    }
}

/* A buffer export ends: exports - 1.  POOL_FREED if this was the last export
 * of a RETIRING slot: the caller must then push the index. */
static inline int pool_slot_export_end(uint64_t *state, uint32_t i, uint32_t gen)
{
    uint64_t w = pool_load64(&state[i], POOL_RELAXED);  /* relaxed: the CAS decides */
    for (;;) {
        uint64_t desired;
        int result = POOL_OK;
        if (POOL_SLOT_GEN(w) != gen || POOL_SLOT_EXPORTS(w) == 0)
            return POOL_ESTALE;  /* unbalanced: a bug in the caller */
        if (POOL_SLOT_STATE(w) == POOL_SLOT_RETIRING && POOL_SLOT_EXPORTS(w) == 1) {
            desired = POOL_SLOT_WORD(gen + 1u, 0, POOL_SLOT_FREE);
            result = POOL_FREED;
        } else {
            desired = w - (1u << 8);
        }
        /* acq_rel: the last exporter takes ownership (acquire) and its
         * writes through the view happen before the next owner's (release) */
        if (pool_cas64(&state[i], &w, desired, POOL_ACQ_REL, POOL_RELAXED))
            return result;
    }
}

/* True if the slot is HELD by generation gen (a handle is live). */
static inline int pool_slot_is_held(uint64_t *state, uint32_t i, uint32_t gen)
{
    /* acquire: pairs with the acq_rel CASes that end a hand-out, so a
     * "released" answer comes with that release's effects */
    uint64_t w = pool_load64(&state[i], POOL_ACQUIRE);
    return POOL_SLOT_GEN(w) == gen && POOL_SLOT_STATE(w) == POOL_SLOT_HELD;
}

/* ---- slot arrays: allocation (pool_slots.c) ---------------------------- */

typedef struct pool_slots {
    uint32_t capacity;
    uint32_t *next;       /* free-list links, one per slot */
    uint64_t *state;      /* state words, one per slot */
} pool_slots_t;

/* Allocates the arrays, all slots FREE with generation 0, and pushes every
 * index onto `fl` (index 0 on top).  Returns 0, or -1 on allocation failure
 * (nothing allocated) or capacity out of range (errno-free: caller checks). */
int pool_slots_init(pool_slots_t *slots, uint32_t capacity, pool_freelist_t *fl);
void pool_slots_free(pool_slots_t *slots);

/* Bytes the core spends per slot (excluding pooled objects or buffers). */
size_t pool_slots_bytes_per_slot(void);

#endif /* POOL_SLOTS_H */
