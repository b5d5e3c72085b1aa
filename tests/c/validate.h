/*
 * validate.h - what every validate program in tests/c shares: the CHECK
 * macro and its pass/fail counters (a program ends by printing
 * "N passed, N failed"), and a per-thread PRNG.
 */
#ifndef POOL_VALIDATE_H
#define POOL_VALIDATE_H

#include <stdint.h>
#include <stdio.h>

static int failures = 0, passes = 0;

/* In a function returning int: report, count a failure and return 1. */
#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            failures++;                                                      \
            return 1;                                                        \
        }                                                                    \
    } while (0)

/* xorshift: a per-thread PRNG, seeded from the thread number */
static inline uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

#endif /* POOL_VALIDATE_H */
