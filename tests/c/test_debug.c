/*
 * test_debug.c - POOL_DEBUG's checks fire: built with POOL_DEBUG, this
 * program breaks the slot life cycle on purpose (the transition named by
 * argv[1]) and must die in a POOL_ASSERT with its message.  With no
 * argument it runs a correct life cycle and exits 0.
 * test_c_core.py runs it; it is no ctest test (it aborts by design).
 */
#include <stdio.h>
#include <string.h>
#include "pool_slots.h"

int main(int argc, char **argv)
{
    pool_slots_t s;
    pool_freelist_t fl;
    uint32_t gen, i;
    const char *what = argc > 1 ? argv[1] : "";
#if !defined(POOL_DEBUG)
    fprintf(stderr, "built without POOL_DEBUG\n");
    return 2;
#endif
    if (pool_slots_init(&s, 4, &fl) != 0)
        return 2;
    i = pool_slots_pop_hold(&s, &fl, &gen);
    if (strcmp(what, "push_held") == 0)
        pool_slots_push(&s, &fl, i);              /* HELD, never made FREE */
    if (strcmp(what, "hold_held") == 0)
        pool_slots_hold(&s, i);                   /* held twice */
    if (strcmp(what, "export_end_free") == 0) {
        pool_slots_export_begin(&s, i, gen);
        POOL_SLOT_AT(&s, i) = POOL_SLOT_WORD(gen, 1, POOL_SLOT_FREE);   /* a corrupt word */
        pool_slots_export_end(&s, i, gen);
    }
    if (strcmp(what, "out_of_range") == 0)
        pool_slots_release_handle(&s, 4, gen);
    pool_slots_free_push(&s, &fl, i);
    if (strcmp(what, "free_push_free") == 0)
        pool_slots_free_push(&s, &fl, i);         /* a double release */
    pool_slots_free(&s);
    printf("life cycle ok\n");
    return 0;
}
