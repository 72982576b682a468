/* PBN_SIMD_CLONES: compile a loop twice, for AVX2 and for the baseline ISA, and pick one at
 * load time (GCC target_clones / ifunc; x86-64 Linux only, elsewhere one portable build).
 * Contraction into FMA stays off (-std=c11), so both clones give bitwise-equal results. */
#ifndef PBN_SIMD_CLONES_H
#define PBN_SIMD_CLONES_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define PBN_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PBN_SIMD_CLONES
#endif

#endif
