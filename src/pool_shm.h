/*
 * pool_shm.h - SharedBufferPool's segment: blocks in shared memory, handed
 * between processes, with a crashed holder's slots reclaimable.
 *
 * Layout (one segment, offsets only, nothing a pointer)
 * -----------------------------------------------------
 *   [0, 320)          the header: five cache lines.
 *     lines 0-1       the layout, written once by the creator before anyone
 *                     else can map the segment: magic, version, block size,
 *                     capacity, alignment, offsets, total size, a 16-byte id,
 *                     and the key of its name (attach(name) opens only a
 *                     segment whose key is the name's: a locator socket left
 *                     by a closed pool can name an fd reused since).
 *     line 2          wake: a futex word bumped by every release; sleepers:
 *                     1 if someone may sleep on it; waiters: how many
 *                     threads wait in acquire (a statistic).
 *     line 3          hint: the slot the last release freed (where the next
 *                     take starts looking); hungry_until: while a waiter
 *                     waits, a CLOCK_MONOTONIC time (ns) 200 ms ahead,
 *                     renewed at each of its wake-ups; 0 when nobody waits.
 *     line 4          counters: hand-outs, releases, reclaimed; `named`: 1
 *                     while the creator owns the pool's name (attach(name)
 *                     picks, among the creator's segments of that name, the
 *                     one whose creator still owns it).
 *   [320, 320 + 8 * capacity)
 *                     one 64-bit word per slot (below).
 *   [blocks_offset, total)
 *                     capacity blocks, each `stride` bytes, the first at a
 *                     page boundary (or at `alignment` if larger).
 *
 * A process never trusts the segment after attaching: it checks the header
 * once (pool_shm_check_header), copies the layout into its own memory
 * (pool_shm_layout_t) and from then on computes every address from that copy
 * alone.  Any word another process scribbles over (the header, a slot word,
 * the hint, the futex word) can then only make an operation fail or retry,
 * never read or write outside the mapping: slot indexes come from the local
 * layout, the hint is reduced modulo the local capacity, and a slot word of
 * no known form is reported as corrupt.  The segment's size is sealed by the
 * creator (memfd seals: no shrink, no grow), so it cannot be truncated under
 * a mapping (no SIGBUS).
 *
 * Slot words
 * ----------
 *   0                        FREE
 *   1 | pid << 2 | tag << 32 HELD by process pid (pid < 2^30), whose start
 *                            time hashes to tag: a pid reused by a later
 *                            process has another tag
 *   2 | ticket << 2          IN TRANSIT: pickled by its holder, waiting for
 *                            the one unpickling that presents this 62-bit
 *                            ticket (pool_shm_ticket: unique per send)
 *   anything else            corrupt (never written by this code)
 *
 * Every transition is ONE compare-and-swap of the slot word, so a process
 * killed at any instruction leaves each word FREE, HELD by it (reclaimable
 * once it is dead) or IN TRANSIT; never a slot that nobody can name.  There
 * is no free-list: a free-list pop followed by "mark held" has a window in
 * which a SIGKILL loses the slot, and its links would be pointers another
 * process could corrupt.  A take scans the slot words from the hint instead;
 * the hint is the last freed slot, so when blocks are free a take usually
 * succeeds at its first word.
 *
 * Waiting: a thread that finds no FREE word sets `sleepers`, reads `wake`,
 * scans once more and sleeps on `wake` with FUTEX_WAIT (shared, not
 * PRIVATE: the word is in shared memory), in slices of at most 100 ms so
 * that a lost wake-up (a waker killed between its release and its wake)
 * costs at most a slice.  A release bumps `wake` after freeing its word and,
 * if `sleepers` is set, clears it and wakes every sleeper (each sets it again
 * before it sleeps again).  A flag, not a count: a sleeper killed asleep
 * costs the next release one needless wake, not every release after it.
 *
 * No barging: while `hungry_until` is set and not past, a newcomer does not
 * take a free word before the waiters had a chance: it sleeps until the
 * next release first (or until the time passes), then waits as they do.
 * Without that, a process that releases and at once acquires again takes
 * its block back before the woken waiter runs, and can starve it for ever.
 * A time, not a flag, so that a waiter killed while waiting holds newcomers
 * back 200 ms at most.  (Not a FIFO: the woken waiters race; see docs.)
 */
#ifndef POOL_SHM_H
#define POOL_SHM_H

#include <stddef.h>
#include <stdint.h>

#define POOL_SHM_MAGIC 0x314D48534C4F4F50ull /* "POOLSHM1" little-endian */
#define POOL_SHM_VERSION 2u
#define POOL_SHM_HEADER 320u /* sizeof(pool_shm_header_t), checked in pool_shm.c */
#define POOL_SHM_MAX_CAPACITY (1u << 24)

/* Shared memory and futexes: Linux (and other POSIX systems, with a sleep
 * instead of the futex).  Elsewhere (MSVC) the header compiles to stubs and
 * SharedBufferPool refuses to be made. */
#if defined(_MSC_VER) && !defined(__clang__)
#define POOL_SHM_SUPPORTED 0
#define __atomic_load_n(p, mo) (*(p))
#define __atomic_fetch_add(p, v, mo) (*(p) += (v))
#define __atomic_store_n(p, v, mo) (*(p) = (v))
#define __atomic_compare_exchange_n(p, e, d, w, s, f) (0)
#define __atomic_exchange_n(p, v, mo) (*(p))
#else
#define POOL_SHM_SUPPORTED 1
#endif

#define POOL_SHM_FREE 0u
#define POOL_SHM_HELD 1u
#define POOL_SHM_TRANSIT 2u

typedef struct {
    /* lines 0-1: the layout, immutable once published (92 bytes) */
    uint64_t magic;
    uint32_t version;
    uint32_t capacity;
    uint64_t block_size;
    uint64_t alignment;
    uint64_t stride;
    uint64_t blocks_offset;
    uint64_t total_size;
    uint8_t id[16];
    uint8_t name_key[20]; /* sha256(name)[:20]: attach(name) checks it */
    char pad0[128 - 92];
    /* line 2 (offset 128) */
    uint32_t wake;
    uint32_t sleepers;
    uint32_t waiters;
    char pad1[64 - 12];
    /* line 3 (offset 192) */
    uint32_t hint;
    uint32_t pad2a;
    uint64_t hungry_until;
    char pad2[64 - 16];
    /* line 4 (offset 256) */
    uint64_t handouts;
    uint64_t releases;
    uint64_t reclaimed;
    uint32_t named; /* 1 while the creator's pool owns its name */
    char pad3[64 - 28];
} pool_shm_header_t;

/* The process's own copy of the layout: every address comes from here. */
typedef struct {
    char *base;
    pool_shm_header_t *header;
    uint64_t *words;
    char *blocks;
    uint32_t capacity;
    uint64_t block_size;
    uint64_t alignment;
    uint64_t stride;
    uint64_t blocks_offset;
    uint64_t total_size;
} pool_shm_layout_t;

/* ---- layout ------------------------------------------------------------ */

/* Fills l's sizes for a new segment; 0, or -1 if a size overflows. */
int pool_shm_plan(pool_shm_layout_t *l, uint64_t block_size, uint32_t capacity,
                  uint64_t alignment, uint64_t page);

/* Writes a new segment's header at base (zero-filled memory of l->total_size);
 * name_key: its name's key (20 bytes), or NULL for none. */
void pool_shm_init(pool_shm_layout_t *l, char *base, const uint8_t id[16],
                   const uint8_t *name_key);

/* Checks the header at base (size bytes mapped) and fills l from it.
 * 0 if good; else a negative POOL_SHM_E* saying what is wrong. */
#define POOL_SHM_ESMALL (-1)   /* shorter than a header */
#define POOL_SHM_EMAGIC (-2)   /* not a pool_ext segment */
#define POOL_SHM_EVERSION (-3) /* another layout version */
#define POOL_SHM_ELAYOUT (-4)  /* sizes that do not add up */
#define POOL_SHM_ETRUNC (-5)   /* shorter than its layout says */
int pool_shm_check_header(pool_shm_layout_t *l, char *base, uint64_t size, uint64_t page);

/* ---- slot words ---------------------------------------------------------- */

static inline uint64_t pool_shm_held_word(uint32_t pid, uint32_t tag)
{
    return POOL_SHM_HELD | ((uint64_t)pid << 2) | ((uint64_t)tag << 32);
}

static inline uint64_t pool_shm_transit_word(uint64_t ticket)
{
    return POOL_SHM_TRANSIT | (ticket << 2);
}

/* The n-th ticket of a process whose random key is `key`: a bijection of
 * (key + n) mod 2^62 (xor-shift and odd multiplies, each one-to-one on 62
 * bits), so a process repeats no ticket in 2^62 sends, and two processes
 * (independent keys) share one with chance 2^-62.  A ticket tells a replayed
 * pickle from the live one; it is no secret from a process of the same user,
 * which can write the slot words anyway. */
static inline uint64_t pool_shm_ticket(uint64_t key, uint64_t n)
{
    const uint64_t m = (1ull << 62) - 1;
    uint64_t x = (key + n) & m;
    x ^= x >> 31;
    x = (x * 0xbf58476d1ce4e5b9ull) & m;
    x ^= x >> 29;
    x = (x * 0x94d049bb133111ebull) & m;
    return x ^ (x >> 32);
}

static inline unsigned pool_shm_kind(uint64_t w)
{
    if (w == 0)
        return POOL_SHM_FREE;
    return (unsigned)(w & 3u) == POOL_SHM_HELD || (unsigned)(w & 3u) == POOL_SHM_TRANSIT
        ? (unsigned)(w & 3u)
        : 3u; /* corrupt */
}

static inline uint32_t pool_shm_word_pid(uint64_t w) { return (uint32_t)((w >> 2) & 0x3FFFFFFFu); }
static inline uint32_t pool_shm_word_tag(uint64_t w) { return (uint32_t)(w >> 32); }

static inline uint64_t pool_shm_load(const pool_shm_layout_t *l, uint32_t i)
{
    /* acquire: pairs with the CAS that wrote the word */
    return __atomic_load_n(&l->words[i], __ATOMIC_ACQUIRE);
}

/* One CAS of slot i's word from `from` to `to`: 1 if it was `from`. */
static inline int pool_shm_swap(const pool_shm_layout_t *l, uint32_t i, uint64_t from, uint64_t to)
{
    /* acq_rel: a taker sees the previous holder's writes to the block
     * (acquire), and its own writes happen after it owns the word; a
     * releaser's writes to the block are visible to the next taker (release) */
    return __atomic_compare_exchange_n(&l->words[i], &from, to, 0, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}

/* Takes a FREE slot for `me` (a HELD word): its index, or -1 if none is
 * FREE.  Starts at the hint (the last freed slot, or the one after the last
 * taken), so a take after a release is one CAS, and so is each take that
 * fills a pool; a scan passes only words held out of order. */
static inline int64_t pool_shm_take(const pool_shm_layout_t *l, uint64_t me)
{
    /* relaxed: the hint is only where to start looking; any value is safe */
    uint32_t start = __atomic_load_n(&l->header->hint, __ATOMIC_RELAXED) % l->capacity;
    uint32_t i = start;
    do {
        if (pool_shm_load(l, i) == 0 && pool_shm_swap(l, i, 0, me)) {
            /* relaxed: where the next take starts (the slot after this one,
             * so that filling the pool is linear, not quadratic) */
            __atomic_store_n(&l->header->hint, i + 1 == l->capacity ? 0 : i + 1,
                             __ATOMIC_RELAXED);
            /* relaxed: a statistic */
            __atomic_fetch_add(&l->header->handouts, 1, __ATOMIC_RELAXED);
            return i;
        }
        if (++i == l->capacity)
            i = 0;
    } while (i != start);
    return -1;
}

/* Slot i was freed (its word is FREE now): point the next take at it and
 * wake sleepers.  Also after a reclaim. */
void pool_shm_freed(const pool_shm_layout_t *l, uint32_t i);

/* Gives slot i back: its word must be `me`.  0, or -1 if it was not (the
 * segment was changed under us: reclaimed or scribbled over). */
static inline int pool_shm_give(const pool_shm_layout_t *l, uint32_t i, uint64_t me)
{
    if (!pool_shm_swap(l, i, me, 0))
        return -1;
    /* relaxed: a statistic */
    __atomic_fetch_add(&l->header->releases, 1, __ATOMIC_RELAXED);
    pool_shm_freed(l, i);
    return 0;
}

/* ---- waiting ------------------------------------------------------------- */

/* Someone waits: newcomers go to the slow path (relaxed: a hint; the slow
 * path reads the time). */
static inline int pool_shm_hungry(const pool_shm_layout_t *l)
{
    return __atomic_load_n(&l->header->hungry_until, __ATOMIC_RELAXED) != 0;
}

static inline uint64_t pool_shm_hungry_until(const pool_shm_layout_t *l)
{
    /* relaxed: a time to compare with the clock */
    return __atomic_load_n(&l->header->hungry_until, __ATOMIC_RELAXED);
}

static inline void pool_shm_set_hungry(const pool_shm_layout_t *l, uint64_t until)
{
    /* relaxed: a hint; the futex word orders the hand-off itself */
    __atomic_store_n(&l->header->hungry_until, until, __ATOMIC_RELAXED);
}

/* Clears the claim if it is still `until` (a waiter leaving clears its own
 * claim, not a newer one another waiter wrote).  relaxed: a hint. */
static inline void pool_shm_clear_hungry(const pool_shm_layout_t *l, uint64_t until)
{
    __atomic_compare_exchange_n(&l->header->hungry_until, &until, 0, 0, __ATOMIC_RELAXED,
                                __ATOMIC_RELAXED);
}

/* The futex word's value, read before the last scan.  seq_cst: the second
 * half of pool_shm_will_sleep's Dekker pair (and it orders the read before
 * the scan that follows it). */
static inline uint32_t pool_shm_wake_seq(const pool_shm_layout_t *l)
{
    return __atomic_load_n(&l->header->wake, __ATOMIC_SEQ_CST);
}

/* A waiter is about to read `wake` and sleep: sets `sleepers`.  seq_cst,
 * with the read of `wake` after it: a Dekker pair with pool_shm_freed (a
 * releaser bumps `wake`, then reads `sleepers`), so either the waiter's read
 * sees the bump (and its scan the freed word), or the releaser sees the flag
 * and wakes it. */
static inline void pool_shm_will_sleep(const pool_shm_layout_t *l)
{
    __atomic_store_n(&l->header->sleepers, 1, __ATOMIC_SEQ_CST);
}

/* Counts a waiter in (+1) or out (-1): a statistic (stats()["waiters"]);
 * relaxed. */
void pool_shm_waiters_add(const pool_shm_layout_t *l, int32_t d);

/* Sleeps while the futex word is seq, at most timeout_ns (call without the
 * GIL).  0 when woken or the word changed, or an errno: ETIMEDOUT, EINTR
 * (a signal: the caller checks for Python's handlers), ENOSYS (no futex:
 * the caller sleeps instead). */
int pool_shm_sleep(const pool_shm_layout_t *l, uint32_t seq, int64_t timeout_ns);

/* ---- the operating system (pool_shm_os.c; Linux) --------------------------
 * Each returns >= 0, or -errno. */

/* A new segment: a sealed memfd labelled "pool_ext:<label>", mode 0600,
 * size bytes, its pages allocated now (ENOSPC/ENOMEM here, not SIGBUS later). */
int pool_shm_os_create(const char *label, uint64_t size);

/* Opens another process's segment through /proc/<pid>/fd/<fd>, checking that
 * it belongs to this user and is sealed against resizing; *size: its size. */
int pool_shm_os_open(int pid, int fd, uint64_t *size);

/* Maps fd's first size bytes shared, read-write, at an address aligned to
 * align (a power of two; page alignment at least); NULL on failure. */
char *pool_shm_os_map(int fd, uint64_t size, uint64_t align);
void pool_shm_os_unmap(char *base, uint64_t size);
void pool_shm_os_close(int fd);

/* The pool's name: abstract Unix sockets (Linux), bound and never used,
 * which the kernel drops when their process exits: nothing is left to clean
 * up.  "\0pool_ext/<uid>/<key>" is the name itself (one owner: a second
 * bind is -EADDRINUSE); "\0pool_ext/<uid>/<key>/<pid>.<fd>" says where its
 * segment is, for attach() to find in /proc/net/unix.  Returns the socket's
 * fd, or -errno. */
int pool_shm_os_name_bind(const char *name);
/* Closes a socket pool_shm_os_name_bind made (nothing if it is not one). */
void pool_shm_os_name_close(int fd);
/* A fork child's first step: closes every name socket it inherited. */
void pool_shm_os_forget_names(void);

/* This process's id (0 where there is no getpid()). */
long pool_shm_os_getpid(void);

/* Runs child() in the child of every fork(), Python's or not
 * (pthread_atfork, registered once; a later call replaces child), and
 * keeps fork() out of the name sockets' critical sections (name_lock in
 * pool_shm_os.c); -ENOSYS off Linux. */
int pool_shm_os_atfork(void (*child)(void));

#endif
