/*
 * pool_mem.h - one aligned, zeroed allocation carved into equal slots.
 *
 * Layout: [padding][slot 0][slot 1]...[slot n-1], each slot `stride` bytes,
 * stride = buffer_size rounded up to the alignment, and the alignment is at
 * least POOL_CACHE_LINE, so no two slots share a cache line (no false
 * sharing between threads that own neighbouring buffers).
 *
 * Invariants: base is aligned to `alignment`; the whole block is zeroed at
 * allocation; sizes are checked for overflow before anything is allocated.
 */
#ifndef POOL_MEM_H
#define POOL_MEM_H

#include <stddef.h>
#include <stdint.h>

#define POOL_CACHE_LINE 64  /* x86-64 and most ARM64 parts; Apple M is 128 for L2 only */

typedef struct pool_arena {
    unsigned char *base;    /* first slot, aligned */
    void *raw;              /* what calloc returned; freed by pool_arena_free */
    size_t stride;          /* bytes from one slot to the next */
    size_t size;            /* usable bytes per slot (buffer_size) */
    size_t alignment;       /* effective alignment: max(requested, POOL_CACHE_LINE) */
    uint32_t count;         /* number of slots */
} pool_arena_t;

/* 0 on success; -1 if the sizes overflow or alignment is not a power of two
 * (POOL_MEM_EINVAL), -2 if the memory cannot be had (POOL_MEM_ENOMEM). */
#define POOL_MEM_EINVAL (-1)
#define POOL_MEM_ENOMEM (-2)
int pool_arena_init(pool_arena_t *arena, size_t size, uint32_t count, size_t alignment);
void pool_arena_free(pool_arena_t *arena);

static inline unsigned char *pool_arena_slot(const pool_arena_t *arena, uint32_t i)
{
    return arena->base + (size_t)i * arena->stride;
}

#endif /* POOL_MEM_H */
