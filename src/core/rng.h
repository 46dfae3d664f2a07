/* rng.h: a small seeded random generator (xoshiro256**, seeded by splitmix64) used for initialisation,
 * shuffling, augmentation and random probe vectors. Same seed, same sequence, on every machine. */
#ifndef HS_RNG_H
#define HS_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *rng, uint64_t seed);
uint64_t rng_next_u64(Rng *rng);
/* Uniform double in [0, 1). */
double rng_uniform(Rng *rng);
/* Uniform integer in [0, n), n > 0. */
uint64_t rng_below(Rng *rng, uint64_t n);
/* Standard normal (Box-Muller). */
double rng_normal(Rng *rng);
/* Fisher-Yates shuffle of idx[0..n). */
void rng_shuffle(Rng *rng, int *idx, int n);

#endif
