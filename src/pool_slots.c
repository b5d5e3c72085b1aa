/* pool_slots.c - allocation of the slot arrays (cold path, single-threaded). */
#include <stdlib.h>
#include "pool_slots.h"

int pool_slots_init(pool_slots_t *slots, uint32_t capacity, pool_freelist_t *fl)
{
    return pool_slots_init_padded(slots, capacity, fl, 0);
}

int pool_slots_init_padded(pool_slots_t *slots, uint32_t capacity, pool_freelist_t *fl, int pad)
{
    uint32_t i;
    slots->capacity = 0;
    slots->shift = (pad && capacity <= POOL_SLOTS_PAD_MAX) ? 3u : 0u;
    slots->next = NULL;
    slots->state = NULL;
    pool_freelist_init(fl);
    if (capacity == 0 || capacity > POOL_MAX_CAPACITY)
        return -1;
    /* calloc, not malloc(capacity * 4): it checks the product, which a
     * 32-bit size_t would wrap to a small block the chain below overruns */
    slots->next = (uint32_t *)calloc((size_t)capacity, sizeof(uint32_t));
    slots->state = (uint64_t *)calloc((size_t)capacity << slots->shift, sizeof(uint64_t));
    if (slots->next == NULL || slots->state == NULL) {
        pool_slots_free(slots);
        return -1;
    }
    slots->capacity = capacity;
    /* Chain them by hand (no other thread can see the list yet): 0 on top. */
    for (i = 0; i < capacity; i++)
        slots->next[i] = (i + 1 < capacity) ? i + 1 : POOL_NIL;
    fl->head = (uint64_t)0;  /* tag 0, index 0 */
    return 0;
}

void pool_slots_free(pool_slots_t *slots)
{
    free(slots->next);
    free(slots->state);
    slots->next = NULL;
    slots->state = NULL;
    slots->capacity = 0;
    slots->shift = 0;
}
