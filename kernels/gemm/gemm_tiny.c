/* Whole small products for the batched path, without packing: C := A @ B for n = 8 or 16
 * (a compile-time width, so each row of C lives in one or two vector registers),
 * m, k <= PBN_TINY_MAX, and B, C with unit column stride. Each C[i, :] is summed over
 * p = 0..k-1 in order; packing 16 x 16 operands costs about as much as multiplying them. */
#include "gemm_internal.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define PBN_TINY_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PBN_TINY_CLONES
#endif

#define DEFINE_TINY_WIDTH(T, SUF, N)                                                      \
PBN_TINY_CLONES static void tiny_##SUF##_n##N(pbn_int m, pbn_int k,                       \
        const T *A, pbn_int rsa, pbn_int csa, const T *B, pbn_int rsb, T *C, pbn_int rsc) \
{                                                                                         \
    for (pbn_int i = 0; i < m; i++) {                                                     \
        const T *a = A + i * rsa;                                                         \
        T row[N] = {0};                                                                   \
        for (pbn_int p = 0; p < k; p++) {                                                 \
            const T ap = a[p * csa], *b = B + p * rsb;                                    \
            for (int j = 0; j < N; j++) row[j] += ap * b[j];                              \
        }                                                                                 \
        T *c = C + i * rsc;                                                               \
        for (int j = 0; j < N; j++) c[j] = row[j];                                        \
    }                                                                                     \
}

#define DEFINE_TINY(T, SUF)                                                               \
DEFINE_TINY_WIDTH(T, SUF, 8)                                                              \
DEFINE_TINY_WIDTH(T, SUF, 16)                                                             \
int pbn_tiny_gemm_##SUF(pbn_int m, pbn_int n, pbn_int k, const T *A, pbn_int rsa,         \
                        pbn_int csa, const T *B, pbn_int rsb, T *C, pbn_int rsc)          \
{                                                                                         \
    switch (n) {                                                                          \
    case 8:  tiny_##SUF##_n8(m, k, A, rsa, csa, B, rsb, C, rsc); return 1;                \
    case 16: tiny_##SUF##_n16(m, k, A, rsa, csa, B, rsb, C, rsc); return 1;               \
    default: return 0;                                                                    \
    }                                                                                     \
}

DEFINE_TINY(float, f32)
DEFINE_TINY(double, f64)
