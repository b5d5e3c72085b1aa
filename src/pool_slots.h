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
 *
 * API: every operation takes the slot table (struct pool_slots *) and an
 * index, as ck's take their structure.  The two sequences every pool runs
 * have names: pool_slots_pop_hold (pop a free index and hold it) and
 * pool_slots_free_push (make an owned index FREE and push it).  Waking a
 * waiter after a push is the wait queue's business (pool_waitq.h).
 * Concurrency contract: every function may be called from any thread (in
 * the POOL_ATOMIC_PLAIN build, only under the GIL); "owner" functions only
 * by the caller that owns index i (it won the transition that gave it i).
 */
#ifndef POOL_SLOTS_H
#define POOL_SLOTS_H

#include <stddef.h>
#include <stdint.h>
#include "pool_atomic.h"
#include "pool_freelist.h"

/* POOL_DEBUG (the sanitizer builds of tests/c): each transition checks the
 * word it starts from and aborts with a message if the life cycle above is
 * broken.  Compiled out otherwise: release builds run the same code. */
#if defined(POOL_DEBUG)
#include <stdio.h>
#include <stdlib.h>
#define POOL_ASSERT(cond, what)                                              \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: POOL_ASSERT(%s) failed: %s\n", __FILE__, \
                    __LINE__, #cond, what);                                  \
            abort();                                                         \
        }                                                                    \
    } while (0)
#else
#define POOL_ASSERT(cond, what) ((void)0)
#endif

enum {
    POOL_SLOT_FREE = 0,       /* on a free-list, or being pushed there */
    POOL_SLOT_HELD = 1,       /* handed out to exactly one owner */
    POOL_SLOT_RELEASING = 2,  /* owned, not handed out: ObjectPool hooks run, close drains */
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

#define POOL_SLOT_STATE(w) ((uint32_t)((w) & 0xffu))
#define POOL_SLOT_EXPORTS(w) ((uint32_t)(((w) >> 8) & 0xffffffu))
#define POOL_SLOT_GEN(w) ((uint32_t)((w) >> 32))
#define POOL_SLOT_WORD(gen, exports, state) \
    (((uint64_t)(gen) << 32) | ((uint64_t)(exports) << 8) | (uint64_t)(state))
#define POOL_SLOT_MAX_EXPORTS 0xffffffu

typedef struct pool_slots {
    uint32_t capacity;
    uint32_t shift;       /* slot i's word is state[i << shift]: 3 spreads the
                           * words one per 64-byte line (pool_slots_init_padded) */
    uint32_t *next;       /* free-list links, one per slot (pool_freelist.h) */
    uint64_t *state;      /* state words, one per slot (or per 8 words) */
} pool_slots_t;

/* Slot i's state word.  The GIL build (POOL_ATOMIC_PLAIN) never pads: its
 * words are dense, and the shift is not even read. */
#if defined(POOL_ATOMIC_PLAIN)
#define POOL_SLOT_AT(s, i) ((s)->state[(i)])
#else
#define POOL_SLOT_AT(s, i) ((s)->state[(size_t)(i) << (s)->shift])
#endif

/* Allocates the arrays, all slots FREE with generation 0, and pushes every
 * index onto `fl` (index 0 on top).  Returns 0, or -1 on allocation failure
 * or a capacity out of range (nothing is then allocated).  Single-threaded. */
int pool_slots_init(pool_slots_t *s, uint32_t capacity, pool_freelist_t *fl);
/* The same; with pad != 0 (free-threaded builds, up to POOL_SLOTS_PAD_MAX
 * slots) each state word gets a cache line of its own, so that threads
 * holding neighbouring slots do not write one line (64 bytes per slot
 * instead of 8).  Never pad in a POOL_ATOMIC_PLAIN build (see POOL_SLOT_AT). */
#define POOL_SLOTS_PAD_MAX 65536u
int pool_slots_init_padded(pool_slots_t *s, uint32_t capacity, pool_freelist_t *fl, int pad);
void pool_slots_free(pool_slots_t *s);

/* ---- owner transitions -------------------------------------------------- */

/* Owner: index i was just popped (FREE), or is owned RELEASING (an idle
 * object taken to be vetted, pool_slots_own); mark it HELD and return its
 * generation. */
static inline uint32_t pool_slots_hold(pool_slots_t *s, uint32_t i)
{
    /* relaxed: we own i, and nobody may leave FREE but us; others only fail
     * their CASes against FREE */
    uint64_t w = pool_load64(&POOL_SLOT_AT(s, i), POOL_RELAXED);
    POOL_ASSERT(i < s->capacity, "hold: index out of range");
    POOL_ASSERT((POOL_SLOT_STATE(w) == POOL_SLOT_FREE || POOL_SLOT_STATE(w) == POOL_SLOT_RELEASING)
                    && POOL_SLOT_EXPORTS(w) == 0,
                "hold: the slot is not owned (FREE just popped, or RELEASING)");
    /* release: a releaser that reads this HELD word (acquire, in
     * pool_slots_load) also sees everything done to the slot before it was
     * handed out again, e.g. ObjectPool's removal of the previous object;
     * pairs with the acquire load in pool_slots_load */
    pool_store64(&POOL_SLOT_AT(s, i), POOL_SLOT_WORD(POOL_SLOT_GEN(w), 0, POOL_SLOT_HELD),
                 POOL_RELEASE);
    return POOL_SLOT_GEN(w);
}

/* Pops a free index from fl and holds it: the index, or POOL_NIL if fl is
 * empty.  *gen receives the hand-out's generation. */
static inline uint32_t pool_slots_pop_hold(pool_slots_t *s, pool_freelist_t *fl,
                                           uint32_t *gen)
{
    uint32_t i = pool_freelist_pop_mpmc(fl, s->next);
#if defined(POOL_DEBUG)
    if (i != POOL_NIL) {
        uint64_t w = pool_load64(&POOL_SLOT_AT(s, i), POOL_RELAXED);
        POOL_ASSERT(POOL_SLOT_STATE(w) == POOL_SLOT_FREE, "pop_hold: a popped slot is not FREE");
    }
#endif
    *gen = i != POOL_NIL ? pool_slots_hold(s, i) : 0;   /* always set: no caller */
    return i;                                           /* reads it uninitialised */
}

/* Owner: index i was just popped; mark it RELEASING instead of HELD: owned
 * but not handed out, so no release (a stale double release racing close's
 * drain, say) can win it. */
static inline void pool_slots_own(pool_slots_t *s, uint32_t i)
{
    /* relaxed: as in pool_slots_hold; the owner is alone */
    uint64_t w = pool_load64(&POOL_SLOT_AT(s, i), POOL_RELAXED);
    POOL_ASSERT(i < s->capacity, "own: index out of range");
    POOL_ASSERT(POOL_SLOT_STATE(w) == POOL_SLOT_FREE && POOL_SLOT_EXPORTS(w) == 0,
                "own: a popped slot is not FREE");
    pool_store64(&POOL_SLOT_AT(s, i), POOL_SLOT_WORD(POOL_SLOT_GEN(w), 0, POOL_SLOT_RELEASING),
                 POOL_RELAXED);
}

/* Pops a free index from fl and owns it without handing it out
 * (pool_slots_own): for a pool taking its slots back, as close() drains
 * the idle objects.  POOL_NIL if fl is empty. */
static inline uint32_t pool_slots_pop_own(pool_slots_t *s, pool_freelist_t *fl)
{
    uint32_t i = pool_freelist_pop_mpmc(fl, s->next);
    if (i != POOL_NIL)
        pool_slots_own(s, i);
    return i;
}

/* Owner of a HELD or RELEASING index: make it FREE (a new generation, so
 * handles of the ended hand-out go stale) and push it onto fl. */
static inline void pool_slots_free_push(pool_slots_t *s, pool_freelist_t *fl, uint32_t i)
{
    /* relaxed: only the owner writes now; the push's release CAS publishes */
    uint64_t w = pool_load64(&POOL_SLOT_AT(s, i), POOL_RELAXED);
    POOL_ASSERT(i < s->capacity, "free_push: index out of range");
    POOL_ASSERT((POOL_SLOT_STATE(w) == POOL_SLOT_HELD || POOL_SLOT_STATE(w) == POOL_SLOT_RELEASING)
                    && POOL_SLOT_EXPORTS(w) == 0,
                "free_push: the slot is not owned (HELD or RELEASING, no exports)");
    pool_store64(&POOL_SLOT_AT(s, i), POOL_SLOT_WORD(POOL_SLOT_GEN(w) + 1u, 0, POOL_SLOT_FREE),
                 POOL_RELAXED);
    pool_freelist_push_mpmc(fl, s->next, i);
}

/* Owner of an index that a transition already made FREE (POOL_FREED from
 * release_handle or export_end): push it onto fl. */
static inline void pool_slots_push(pool_slots_t *s, pool_freelist_t *fl, uint32_t i)
{
    POOL_ASSERT(i < s->capacity, "push: index out of range");
    /* the low 32 bits: state FREE and no exports, whatever the generation */
    POOL_ASSERT((pool_load64(&POOL_SLOT_AT(s, i), POOL_RELAXED) & 0xffffffffu) == POOL_SLOT_FREE,
                "push: the slot was not made FREE");
    pool_freelist_push_mpmc(fl, s->next, i);
}

/* ---- transitions any thread may try (exactly one wins) ------------------- */

/* The whole state word of slot i, for a caller that checks it before a
 * transition (pool_slots_release_begin). */
static inline uint64_t pool_slots_load(pool_slots_t *s, uint32_t i)
{
    /* acquire: pairs with the release store in pool_slots_hold */
    return pool_load64(&POOL_SLOT_AT(s, i), POOL_ACQUIRE);
}

/* HELD(gen) -> RELEASING(gen) (ObjectPool: identity-based release).  The
 * caller read gen from pool_slots_load and checked that the slot holds the
 * object it releases; the CAS then fails if the slot was released (and
 * perhaps handed out again, with a new generation) since.  So a stale
 * release never wins, not even for a moment, a slot that another owner
 * holds.  ObjectPool slots are never exported: the word is exact.
 * POOL_OK: the caller owns the slot; POOL_ESTALE / POOL_ENOTHELD: not its. */
static inline int pool_slots_release_begin(pool_slots_t *s, uint32_t i, uint32_t gen)
{
    uint64_t expected = POOL_SLOT_WORD(gen, 0, POOL_SLOT_HELD);
    POOL_ASSERT(i < s->capacity, "release_begin: index out of range");
    /* acquire: the winner takes ownership and must see the holder's writes;
     * relaxed on failure: we only report it */
    if (pool_cas64(&POOL_SLOT_AT(s, i), &expected, POOL_SLOT_WORD(gen, 0, POOL_SLOT_RELEASING),
                   POOL_ACQUIRE, POOL_RELAXED))
        return POOL_OK;
    return POOL_SLOT_GEN(expected) != gen ? POOL_ESTALE : POOL_ENOTHELD;
}

/* Handle release (PooledBuffer): HELD(gen) -> FREE (POOL_FREED: push it), or
 * RETIRING if exported (POOL_DEFERRED: the last export_end frees it). */
static inline int pool_slots_release_handle(pool_slots_t *s, uint32_t i, uint32_t gen)
{
    uint64_t w = pool_load64(&POOL_SLOT_AT(s, i), POOL_RELAXED);  /* relaxed: the CAS decides */
    POOL_ASSERT(i < s->capacity, "release_handle: index out of range");
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
        if (pool_cas64(&POOL_SLOT_AT(s, i), &w, desired, POOL_ACQ_REL, POOL_RELAXED))
            return result;
    }
}

/* A buffer export starts: HELD(gen) only; exports + 1. */
static inline int pool_slots_export_begin(pool_slots_t *s, uint32_t i, uint32_t gen)
{
    uint64_t w = pool_load64(&POOL_SLOT_AT(s, i), POOL_RELAXED);  /* relaxed: the CAS decides */
    POOL_ASSERT(i < s->capacity, "export_begin: index out of range");
    for (;;) {
        if (POOL_SLOT_GEN(w) != gen)
            return POOL_ESTALE;
        if (POOL_SLOT_STATE(w) != POOL_SLOT_HELD)
            return POOL_ENOTHELD;
        if (POOL_SLOT_EXPORTS(w) == POOL_SLOT_MAX_EXPORTS)
            return POOL_EEXPORTS;
        /* acquire: the exporter reads memory the holder may have written */
        if (pool_cas64(&POOL_SLOT_AT(s, i), &w, w + (1u << 8), POOL_ACQUIRE, POOL_RELAXED))
            return POOL_OK;
    }
}

/* A buffer export ends: exports - 1.  POOL_FREED if this was the last export
 * of a RETIRING slot: the caller must then push the index. */
static inline int pool_slots_export_end(pool_slots_t *s, uint32_t i, uint32_t gen)
{
    uint64_t w = pool_load64(&POOL_SLOT_AT(s, i), POOL_RELAXED);  /* relaxed: the CAS decides */
    POOL_ASSERT(i < s->capacity, "export_end: index out of range");
    for (;;) {
        uint64_t desired;
        int result = POOL_OK;
        if (POOL_SLOT_GEN(w) != gen || POOL_SLOT_EXPORTS(w) == 0)
            return POOL_ESTALE;  /* unbalanced: a bug in the caller */
        POOL_ASSERT(POOL_SLOT_STATE(w) == POOL_SLOT_HELD
                        || POOL_SLOT_STATE(w) == POOL_SLOT_RETIRING,
                    "export_end: an exported slot is neither HELD nor RETIRING");
        if (POOL_SLOT_STATE(w) == POOL_SLOT_RETIRING && POOL_SLOT_EXPORTS(w) == 1) {
            desired = POOL_SLOT_WORD(gen + 1u, 0, POOL_SLOT_FREE);
            result = POOL_FREED;
        } else {
            desired = w - (1u << 8);
        }
        /* acq_rel: the last exporter takes ownership (acquire) and its
         * writes through the view happen before the next owner's (release) */
        if (pool_cas64(&POOL_SLOT_AT(s, i), &w, desired, POOL_ACQ_REL, POOL_RELAXED))
            return result;
    }
}

/* True if the slot is HELD by generation gen (a handle is live). */
static inline int pool_slots_is_held(pool_slots_t *s, uint32_t i, uint32_t gen)
{
    /* acquire: pairs with the acq_rel CASes that end a hand-out, so a
     * "released" answer comes with that release's effects */
    uint64_t w = pool_load64(&POOL_SLOT_AT(s, i), POOL_ACQUIRE);
    return POOL_SLOT_GEN(w) == gen && POOL_SLOT_STATE(w) == POOL_SLOT_HELD;
}

#endif /* POOL_SLOTS_H */
