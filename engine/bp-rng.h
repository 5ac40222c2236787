/* bp-rng.h: the engine's one seedable random number generator (bit-for-bit repeatable runs). */
#pragma once

#include <stdint.h>

/* The state is a single 64-bit counter (splitmix64), so it saves and restores as one number. */
void bp_rng_seed (uint64_t seed);
uint64_t bp_rng_state (void);
void bp_rng_set_state (uint64_t state);

uint64_t bp_rng_u64 (void);
/* Uniform in [0, 1). */
float bp_rng_uniform (void);
/* Standard normal (Box-Muller). */
float bp_rng_normal (void);
/* Uniform integer in [0, n). */
uint64_t bp_rng_below (uint64_t n);

/* Stateless hash for parallel kernels: the k-th draw of a stream started from `key`.
 * Kernels take one key from bp_rng_u64 () and then draw per element, so the result does not
 * depend on the thread count. */
uint64_t bp_rng_hash (uint64_t key, uint64_t k);
static inline float
bp_rng_hash_uniform (uint64_t key, uint64_t k)
{
  return (float) (bp_rng_hash (key, k) >> 40) * (1.0f / 16777216.0f);
}

/* Fisher-Yates shuffle of 0..n-1 into perm. */
void bp_rng_permutation (int64_t *perm, int64_t n);
