/*
 * pool_addrmap.c - the writer half of the address map (cold path: runs when
 * an object is created or destroyed).  Compiled with real atomics in every
 * build: it is never hot, and then one object file serves both variants.
 */
#include <stdlib.h>
#include "pool_addrmap.h"

/* Two empty entries: the empty map's mask is 1 and its shift 63, so the
 * hash lands on entry 0 or 1, and both say "not here". */
static pool_addrmap_entry_t pool_addrmap_empty_[2];

void pool_addrmap_init_empty(pool_addrmap_t *map)
{
    map->seq = 0;
    map->mask = 1;
    map->shift = 63;
    map->entries = pool_addrmap_empty_;
}

int pool_addrmap_init(pool_addrmap_t *map, uint32_t capacity)
{
    uint64_t size = 4;
    unsigned bits = 2;
    pool_addrmap_entry_t *entries;
    pool_addrmap_init_empty(map);
    while (size < 2 * (uint64_t)capacity) {
        size <<= 1;
        bits++;
    }
    if (size > SIZE_MAX / sizeof(pool_addrmap_entry_t))
        return -1;
    entries = (pool_addrmap_entry_t *)calloc((size_t)size, sizeof(pool_addrmap_entry_t));
    if (entries == NULL)
        return -1;
    map->mask = size - 1;
    map->shift = 64u - bits;
    map->entries = entries;
    return 0;
}

void pool_addrmap_free(pool_addrmap_t *map)
{
    if (map->entries != pool_addrmap_empty_)
        free(map->entries);
    pool_addrmap_init_empty(map);
}

static void pool_addrmap_lock_(pool_addrmap_t *map)
{
    uint64_t seq = pool_load64(&map->seq, POOL_RELAXED);  /* relaxed: the CAS decides */
    unsigned spins = 0;
    for (;;) {
        if (seq & 1u) {
            pool_backoff(&spins);                        /* another writer: wait */
            seq = pool_load64(&map->seq, POOL_RELAXED);  /* relaxed: as above */
            continue;
        }
        /* acquire: our entry reads and writes come after we own the map */
        if (pool_cas64(&map->seq, &seq, seq + 1, POOL_ACQUIRE, POOL_RELAXED))
            return;
    }
}

static void pool_addrmap_unlock_(pool_addrmap_t *map)
{
    /* release: publishes the entries with the new even seq; pairs with the
     * reader's acquire load of seq */
    pool_store64(&map->seq, pool_load64(&map->seq, POOL_RELAXED) + 1, POOL_RELEASE);
}

static void pool_addrmap_put_(pool_addrmap_entry_t *e, uintptr_t key, uint32_t index)
{
    /* release: a reader that loads either word (acquire) also sees our odd
     * seq, which precedes these stores, and so retries */
    pool_store32(&e->index, index, POOL_RELEASE);
    pool_storeptr(&e->key, key, POOL_RELEASE);
}

int pool_addrmap_insert(pool_addrmap_t *map, uintptr_t key, uint32_t index)
{
    uint64_t pos;
    int rc = 0;
    if (map->entries == pool_addrmap_empty_)
        return POOL_MAP_EEMPTY;   /* the shared empty table stays empty */
    pool_addrmap_lock_(map);
    /* The table is never full: size >= 2 * capacity >= 2 * live keys. */
    for (pos = pool_addrmap_home_(map, key);; pos = (pos + 1) & map->mask) {
        pool_addrmap_entry_t *e = &map->entries[pos];
        if (e->key == key) {
            rc = POOL_MAP_EDUPLICATE;
            break;
        }
        if (e->key == 0) {
            pool_addrmap_put_(e, key, index);
            break;
        }
    }
    pool_addrmap_unlock_(map);
    return rc;
}

int pool_addrmap_remove(pool_addrmap_t *map, uintptr_t key)
{
    uint64_t hole, pos, n;
    int found = 0;
    pool_addrmap_lock_(map);
    hole = pool_addrmap_home_(map, key);
    for (n = 0; n <= map->mask; n++, hole = (hole + 1) & map->mask) {
        if (map->entries[hole].key == key) {
            found = 1;
            break;
        }
        if (map->entries[hole].key == 0) break;
    }
    if (!found) {
        pool_addrmap_unlock_(map);
        return POOL_MAP_ENOTFOUND;
    }
    /* Backward-shift deletion: move later members of the cluster into the
     * hole unless their home lies cyclically in (hole, pos]. */
    for (pos = (hole + 1) & map->mask; map->entries[pos].key != 0; pos = (pos + 1) & map->mask) {
        uint64_t home = pool_addrmap_home_(map, map->entries[pos].key);
        int stays = hole <= pos ? (hole < home && home <= pos) : (hole < home || home <= pos);
        if (stays)
            continue;
        pool_addrmap_put_(&map->entries[hole], map->entries[pos].key, map->entries[pos].index);
        hole = pos;
    }
    pool_addrmap_put_(&map->entries[hole], 0, 0);
    pool_addrmap_unlock_(map);
    return 0;
}
