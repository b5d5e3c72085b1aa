/* pool_mem.c - the aligned arena behind BufferPool (cold path). */
#include <stdlib.h>
#include "pool_mem.h"

int pool_arena_init(pool_arena_t *arena, size_t size, uint32_t count, size_t alignment)
{
    size_t align, stride, total;
    arena->base = NULL;
    arena->raw = NULL;
    arena->stride = arena->size = arena->alignment = 0;
    arena->count = 0;
    if (size == 0 || count == 0 || alignment == 0 || (alignment & (alignment - 1)) != 0)
        return POOL_MEM_EINVAL;
    align = alignment < POOL_CACHE_LINE ? POOL_CACHE_LINE : alignment;
    if (size > SIZE_MAX - (align - 1))
        return POOL_MEM_EINVAL;
    stride = (size + align - 1) & ~(align - 1);
    if (stride > (SIZE_MAX - align) / count)
        return POOL_MEM_EINVAL;
    total = stride * count + align;  /* + align: room to round base up */
    /* calloc: zeroed memory, lazily committed by the OS for large blocks */
    arena->raw = calloc(1, total);
    if (arena->raw == NULL)
        return POOL_MEM_ENOMEM;
    arena->base = (unsigned char *)(((uintptr_t)arena->raw + align - 1) & ~(uintptr_t)(align - 1));
    arena->stride = stride;
    arena->size = size;
    arena->alignment = align;
    arena->count = count;
    return 0;
}

void pool_arena_free(pool_arena_t *arena)
{
    free(arena->raw);
    arena->raw = NULL;
    arena->base = NULL;
    arena->count = 0;
}
