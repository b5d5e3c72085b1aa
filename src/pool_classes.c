/* pool_classes.c - ArrayPool's size classes: set-up, trim, and the blocks
 * themselves (the cold paths; the hot ones are inline in pool_classes.h). */
#include <stdlib.h>
#include <string.h>
#include "pool_classes.h"

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <malloc.h>
#else
#include <sys/mman.h>
#endif

#define POOL_HUGE_PAGE ((size_t)2 << 20)   /* x86-64 and ARM64 (4 KiB base pages) */
#define POOL_CLASS_ALIGN 64                 /* one cache line per pool_class_t */

/* ---- blocks --------------------------------------------------------------- */

#if defined(_WIN32)
static void *pool_map_(size_t size, size_t align)
{
    int tries;
    if (align <= 65536)   /* VirtualAlloc's granularity */
        return VirtualAlloc(NULL, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    /* Reserve more, find the aligned address inside, release, map exactly
     * there; another thread may take the range in between: retry. */
    for (tries = 0; tries < 16; tries++) {
        uintptr_t raw = (uintptr_t)VirtualAlloc(NULL, size + align, MEM_RESERVE, PAGE_NOACCESS);
        void *p;
        if (raw == 0)
            return NULL;
        VirtualFree((void *)raw, 0, MEM_RELEASE);
        p = VirtualAlloc((void *)((raw + align - 1) & ~(uintptr_t)(align - 1)), size,
                         MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
        if (p != NULL)
            return p;
    }
    return NULL;
}

static void pool_unmap_(void *p, size_t size)
{
    (void)size;
    VirtualFree(p, 0, MEM_RELEASE);
}
#else
#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON   /* older macOS headers */
#endif
static void *pool_map_(size_t size, size_t align)
{
    unsigned char *raw, *p;
    size_t head, tail;
    if (size >= POOL_HUGE_PAGE && align < POOL_HUGE_PAGE)
        align = POOL_HUGE_PAGE;   /* so the kernel can back it with huge pages */
    if (size > SIZE_MAX - align)
        return NULL;
    /* Map more and unmap the unaligned head and the tail: what is left is
     * exactly [p, p + size), which pool_unmap_ unmaps. */
    raw = (unsigned char *)mmap(NULL, size + align, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == (unsigned char *)MAP_FAILED)
        return NULL;
    p = (unsigned char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
    head = (size_t)(p - raw);
    tail = align - head;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap(p + size, tail);
#if defined(MADV_HUGEPAGE)
    if (size >= POOL_HUGE_PAGE)
        (void)madvise(p, size, MADV_HUGEPAGE);   /* a hint: fine if refused */
#endif
    return p;
}

static void pool_unmap_(void *p, size_t size)
{
    munmap(p, size);
}
#endif

void *pool_block_alloc(size_t size, size_t alignment, int *zeroed)
{
    void *p = NULL;
    *zeroed = 0;
    if (size >= POOL_BLOCK_MMAP_MIN) {
        *zeroed = 1;   /* fresh anonymous pages read as zero */
        return pool_map_(size, alignment);
    }
#if defined(_WIN32)
    p = _aligned_malloc(size, alignment);
#else
    if (posix_memalign(&p, alignment, size) != 0)
        p = NULL;
#endif
    return p;
}

void pool_block_free(void *p, size_t size, size_t alignment)
{
    (void)alignment;
    if (size >= POOL_BLOCK_MMAP_MIN) {
        pool_unmap_(p, size);
        return;
    }
#if defined(_WIN32)
    _aligned_free(p);
#else
    free(p);
#endif
}

size_t pool_poison_check(const unsigned char *p, size_t size)
{
    size_t i = 0;
    uint64_t word;
    memset(&word, POOL_POISON_BYTE, sizeof word);
    /* blocks are at least 64-byte aligned and sized: compare words first */
    for (; i + sizeof word <= size; i += sizeof word) {
        uint64_t w;
        memcpy(&w, p + i, sizeof w);
        if (w != word)
            break;
    }
    for (; i < size; i++)
        if (p[i] != POOL_POISON_BYTE)
            return i;
    return SIZE_MAX;
}

void pool_classes_free_(pool_classes_t *pc, void *p, size_t size)
{
    pool_block_free(p, size, pc->alignment);
    pool_fetch_add64(&pc->live, (uint64_t)-1, POOL_RELAXED);   /* relaxed: gauge */
}

int pool_classes_take_new_(pool_classes_t *pc, size_t nbytes, pool_block_t *b)
{
    pool_class_t *k = &pc->classes[b->cls];
    int zeroed;
    if (b->cls < pc->nclasses) {
        b->size = pool_classes_size(pc, b->cls);
    } else {
        /* oversize: never cached; whole mapping units, or alignment units */
        size_t unit = nbytes >= POOL_BLOCK_MMAP_MIN ? POOL_BLOCK_MMAP_MIN : pc->alignment;
        if (nbytes > SIZE_MAX - unit) {
            b->ptr = NULL;
            return POOL_TAKE_ENOMEM;
        }
        b->size = (nbytes + unit - 1) & ~(unit - 1);
    }
    b->ptr = (unsigned char *)pool_block_alloc(b->size, pc->alignment, &zeroed);
    if (b->ptr == NULL)
        return POOL_TAKE_ENOMEM;
    b->flags = zeroed ? POOL_BLOCK_ZEROED : 0;
    pool_fetch_add64(&pc->live, 1, POOL_RELAXED);    /* relaxed: gauge */
    pool_fetch_add64(&k->misses, 1, POOL_RELAXED);   /* relaxed: statistic */
    pool_fetch_add64(&k->out, 1, POOL_RELAXED);      /* relaxed: gauge */
    return POOL_TAKE_MISS;
}

/* ---- the cache ------------------------------------------------------------- */

int pool_classes_init(pool_classes_t *pc, uint64_t max_bytes, size_t max_size,
                      size_t alignment, int clear)
{
    uint32_t min_shift, top_shift, c, i, cap = POOL_CLASSES_SLOTS;
    memset(pc, 0, sizeof *pc);
    if (alignment == 0 || (alignment & (alignment - 1)) != 0
        || (uint64_t)alignment > ((uint64_t)1 << POOL_CLASSES_MAX_SHIFT)
        || clear < POOL_CLEAR_NEVER || clear > POOL_CLEAR_POISON)
        return -2;
    if (alignment < ((size_t)1 << POOL_CLASSES_MIN_SHIFT))
        alignment = (size_t)1 << POOL_CLASSES_MIN_SHIFT;
    min_shift = pool_ceil_log2_(alignment) > POOL_CLASSES_MIN_SHIFT ? pool_ceil_log2_(alignment)
                                                                    : POOL_CLASSES_MIN_SHIFT;
    if (max_size == 0) {
        /* no limit: classes up to the largest block the budget can keep */
        top_shift = max_bytes >= 2 ? pool_ceil_log2_(max_bytes + 1) - 1 : 0;
    } else {
        top_shift = max_size >= 2 ? pool_ceil_log2_(max_size) : 0;
    }
    if (top_shift > POOL_CLASSES_MAX_SHIFT)
        top_shift = POOL_CLASSES_MAX_SHIFT;
    if (top_shift > sizeof(size_t) * 8 - 2)
        top_shift = (uint32_t)(sizeof(size_t) * 8 - 2);   /* 32-bit: 1 GiB classes at most */
    if (top_shift < min_shift)
        top_shift = min_shift;
    pc->nclasses = top_shift - min_shift + 1;
    pc->min_shift = min_shift;
    pc->alignment = alignment;
    pc->max_size = max_size == 0 ? SIZE_MAX : max_size;
    pc->max_bytes = max_bytes;
    pc->clear = clear;
    pc->capacity = cap;
    pc->classes_raw = malloc((pc->nclasses + 1) * sizeof(pool_class_t) + POOL_CLASS_ALIGN);
    pc->next_all = (uint32_t *)malloc((size_t)pc->nclasses * cap * sizeof(uint32_t));
    pc->blocks_all = (uintptr_t *)calloc((size_t)pc->nclasses * cap, sizeof(uintptr_t));
    if (pc->classes_raw == NULL || pc->next_all == NULL || pc->blocks_all == NULL) {
        pool_classes_destroy(pc);
        return POOL_TAKE_ENOMEM;
    }
    pc->classes = (pool_class_t *)(((uintptr_t)pc->classes_raw + POOL_CLASS_ALIGN - 1)
                                   & ~(uintptr_t)(POOL_CLASS_ALIGN - 1));
    memset(pc->classes, 0, (pc->nclasses + 1) * sizeof(pool_class_t));
    for (c = 0; c <= pc->nclasses; c++) {
        pool_class_t *k = &pc->classes[c];
        pool_freelist_init(&k->cached);
        pool_freelist_init(&k->empty);
        if (c == pc->nclasses)
            break;   /* oversize: no slots */
        k->next = pc->next_all + (size_t)c * cap;
        k->blocks = pc->blocks_all + (size_t)c * cap;
        /* single-threaded: chain every slot onto `empty` by hand, 0 on top */
        for (i = 0; i < cap; i++)
            k->next[i] = i + 1 < cap ? i + 1 : POOL_NIL;
        k->empty.head = 0;   /* tag 0, index 0 */
    }
    return 0;
}

uint64_t pool_classes_trim(pool_classes_t *pc, uint64_t target)
{
    uint64_t freed = 0;
    uint32_t c = pc->nclasses;
    while (c-- > 0) {
        pool_class_t *k = &pc->classes[c];
        size_t size = pool_classes_size(pc, c);
        /* relaxed: a count; the pops below decide what is ours */
        while (pool_load64(&pc->retained, POOL_RELAXED) > target) {
            uint32_t i = pool_freelist_pop_mpmc(&k->cached, k->next);
            void *p;
            if (i == POOL_NIL)
                break;
            /* relaxed: ours since the pop's acquire */
            p = (void *)pool_loadptr(&k->blocks[i], POOL_RELAXED);
            pool_freelist_push_mpmc(&k->empty, k->next, i);
            pool_fetch_add64(&k->n_cached, (uint64_t)-1, POOL_RELAXED);  /* relaxed: gauge */
            pool_classes_unreserve_(pc, size);
            pool_classes_free_(pc, p, size);
            freed += size;
        }
    }
    return freed;
}

void pool_classes_destroy(pool_classes_t *pc)
{
    if (pc->classes != NULL)
        pool_classes_trim(pc, 0);
    free(pc->classes_raw);
    free(pc->next_all);
    free(pc->blocks_all);
    pc->classes = NULL;
    pc->classes_raw = NULL;
    pc->next_all = NULL;
    pc->blocks_all = NULL;
    pc->nclasses = 0;
}
