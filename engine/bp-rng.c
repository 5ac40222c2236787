/* bp-rng.c: splitmix64 generator shared by initialisers, dropout and data shuffling. */
#include "bp-rng.h"

#include <math.h>

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static inline uint64_t
mix (uint64_t z)
{
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void
bp_rng_seed (uint64_t seed)
{
  rng_state = mix (seed + 0x9e3779b97f4a7c15ULL);
}

uint64_t
bp_rng_state (void)
{
  return rng_state;
}

void
bp_rng_set_state (uint64_t state)
{
  rng_state = state;
}

uint64_t
bp_rng_u64 (void)
{
  rng_state += 0x9e3779b97f4a7c15ULL;
  return mix (rng_state);
}

float
bp_rng_uniform (void)
{
  return (float) (bp_rng_u64 () >> 40) * (1.0f / 16777216.0f);
}

float
bp_rng_normal (void)
{
  /* Box-Muller with u1 in (0, 1] so the log is finite. */
  double u1 = ((double) (bp_rng_u64 () >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  double u2 = (double) (bp_rng_u64 () >> 11) * (1.0 / 9007199254740992.0);
  return (float) (sqrt (-2.0 * log (u1)) * cos (2.0 * M_PI * u2));
}

uint64_t
bp_rng_below (uint64_t n)
{
  /* Lemire's nearly-divisionless method would be faster; rejection keeps it exact. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do
    r = bp_rng_u64 ();
  while (r >= limit);
  return r % n;
}

uint64_t
bp_rng_hash (uint64_t key, uint64_t k)
{
  return mix (key ^ mix (k + 0x9e3779b97f4a7c15ULL));
}

void
bp_rng_permutation (int64_t *perm, int64_t n)
{
  for (int64_t i = 0; i < n; i++)
    perm[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t) bp_rng_below ((uint64_t) i + 1);
    int64_t tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
}
