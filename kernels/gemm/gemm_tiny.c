/* Whole small products for the batched path, without packing: C := A @ B for m, k <=
 * PBN_TINY_MAX and n a whole number of vectors (PBN_TINY_WIDTH), B and C with unit column
 * stride; A is read through its strides. Packing a 16 x 16 operand costs about as much as
 * multiplying it, so these kernels read A and B in place.
 *
 * AVX2 + FMA path: a group of R rows of C is held in R x NV vector accumulators (NV vectors
 * per row, R x NV = 8..12 so that independent FMA chains hide the FMA latency); for each p
 * the NV vectors of B's row p are loaded once and each row's A[i, p] is broadcast against
 * them. The m % R leftover rows form one smaller group. Portable path: the same loops in plain C.
 * Either way each C[i, j] is summed over p = 0..k-1 in order, whatever the grouping, so the
 * result does not depend on the thread count or on where a row falls. */
#include "gemm_internal.h"

#define DEFINE_TINY_PORTABLE(T, SUF)                                                      \
static void tiny_portable_##SUF(pbn_int m, pbn_int n, pbn_int k, const T *A, pbn_int rsa, \
                                pbn_int csa, const T *B, pbn_int rsb, T *C, pbn_int rsc)  \
{                                                                                         \
    for (pbn_int i = 0; i < m; i++) {                                                     \
        const T *a = A + i * rsa;                                                         \
        T *c = C + i * rsc;                                                               \
        for (pbn_int j = 0; j < n; j++) c[j] = 0;                                         \
        for (pbn_int p = 0; p < k; p++) {                                                 \
            const T ap = a[p * csa], *b = B + p * rsb;                                    \
            for (pbn_int j = 0; j < n; j++) c[j] += ap * b[j];                            \
        }                                                                                 \
    }                                                                                     \
}
DEFINE_TINY_PORTABLE(float, f32)
DEFINE_TINY_PORTABLE(double, f64)

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define PBN_AVX2 __attribute__((target("avx2,fma")))

/* rows [i, i + R) of C; R and NV are constants after inlining, so the loops unroll and the
 * accumulator array lives in registers */
#define DEFINE_TINY_ROWS(T, SUF, VT, LANES, VZERO, VLOAD, VSTORE, VBCAST, VFMA)             \
PBN_AVX2 __attribute__((always_inline)) static inline void                                  \
tiny_rows_##SUF(const int R, const int NV, pbn_int k, const T *A, pbn_int rsa, pbn_int csa, \
                const T *B, pbn_int rsb, T *C, pbn_int rsc)                                 \
{                                                                                           \
    VT acc[8][4];                                                                           \
    for (int r = 0; r < R; r++)                                                             \
        for (int v = 0; v < NV; v++) acc[r][v] = VZERO();                                   \
    for (pbn_int p = 0; p < k; p++) {                                                       \
        VT b[4];                                                                            \
        for (int v = 0; v < NV; v++) b[v] = VLOAD(B + p * rsb + v * LANES);                 \
        for (int r = 0; r < R; r++) {                                                       \
            const VT a = VBCAST(A + r * rsa + p * csa);                                     \
            for (int v = 0; v < NV; v++) acc[r][v] = VFMA(a, b[v], acc[r][v]);              \
        }                                                                                   \
    }                                                                                       \
    for (int r = 0; r < R; r++)                                                             \
        for (int v = 0; v < NV; v++) VSTORE(C + r * rsc + v * LANES, acc[r][v]);            \
}

DEFINE_TINY_ROWS(float, f32, __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps,
                 _mm256_broadcast_ss, _mm256_fmadd_ps)
DEFINE_TINY_ROWS(double, f64, __m256d, 4, _mm256_setzero_pd, _mm256_loadu_pd, _mm256_storeu_pd,
                 _mm256_broadcast_sd, _mm256_fmadd_pd)

/* C := A @ B with NV vectors per row, rows in groups of R */
#define DEFINE_TINY_AVX2(T, SUF, NV, R)                                                     \
PBN_AVX2 static void tiny_avx2_##SUF##_v##NV(pbn_int m, pbn_int k, const T *A, pbn_int rsa, \
                                             pbn_int csa, const T *B, pbn_int rsb, T *C,    \
                                             pbn_int rsc)                                   \
{                                                                                           \
    pbn_int i = 0;                                                                          \
    for (; i + R <= m; i += R)                                                              \
        tiny_rows_##SUF(R, NV, k, A + i * rsa, rsa, csa, B, rsb, C + i * rsc, rsc);         \
    A += i * rsa;                                                                           \
    C += i * rsc;                                                                           \
    switch (m - i) {                   /* the last m % R rows as one group */               \
    case 7: tiny_rows_##SUF(7 % R, NV, k, A, rsa, csa, B, rsb, C, rsc); break;              \
    case 6: tiny_rows_##SUF(6 % R, NV, k, A, rsa, csa, B, rsb, C, rsc); break;              \
    case 5: tiny_rows_##SUF(5 % R, NV, k, A, rsa, csa, B, rsb, C, rsc); break;              \
    case 4: tiny_rows_##SUF(4 % R, NV, k, A, rsa, csa, B, rsb, C, rsc); break;              \
    case 3: tiny_rows_##SUF(3 % R, NV, k, A, rsa, csa, B, rsb, C, rsc); break;              \
    case 2: tiny_rows_##SUF(2 % R, NV, k, A, rsa, csa, B, rsb, C, rsc); break;              \
    case 1: tiny_rows_##SUF(1, NV, k, A, rsa, csa, B, rsb, C, rsc); break;                  \
    default: break;                                                                         \
    }                                                                                       \
}

DEFINE_TINY_AVX2(float, f32, 1, 8)      /* n = 8 (R = 8: case 8 never reached below) */
DEFINE_TINY_AVX2(float, f32, 2, 6)      /* n = 16: the 6 x 16 tile of the packed kernel */
DEFINE_TINY_AVX2(float, f32, 4, 3)      /* n = 32 */
DEFINE_TINY_AVX2(double, f64, 2, 6)     /* n = 8  */
DEFINE_TINY_AVX2(double, f64, 4, 3)     /* n = 16 */

static int tiny_avx2_f32(pbn_int m, pbn_int n, pbn_int k, const float *A, pbn_int rsa,
                         pbn_int csa, const float *B, pbn_int rsb, float *C, pbn_int rsc)
{
    switch (n) {
    case 8:  tiny_avx2_f32_v1(m, k, A, rsa, csa, B, rsb, C, rsc); return 1;
    case 16: tiny_avx2_f32_v2(m, k, A, rsa, csa, B, rsb, C, rsc); return 1;
    case 32: tiny_avx2_f32_v4(m, k, A, rsa, csa, B, rsb, C, rsc); return 1;
    case 64:                            /* two 32-column halves: 12 FMAs per 7 loads */
        tiny_avx2_f32_v4(m, k, A, rsa, csa, B, rsb, C, rsc);
        tiny_avx2_f32_v4(m, k, A, rsa, csa, B + 32, rsb, C + 32, rsc);
        return 1;
    default: return 0;
    }
}

static int tiny_avx2_f64(pbn_int m, pbn_int n, pbn_int k, const double *A, pbn_int rsa,
                         pbn_int csa, const double *B, pbn_int rsb, double *C, pbn_int rsc)
{
    switch (n) {
    case 8:  tiny_avx2_f64_v2(m, k, A, rsa, csa, B, rsb, C, rsc); return 1;
    case 16: tiny_avx2_f64_v4(m, k, A, rsa, csa, B, rsb, C, rsc); return 1;
    case 32:
        tiny_avx2_f64_v4(m, k, A, rsa, csa, B, rsb, C, rsc);
        tiny_avx2_f64_v4(m, k, A, rsa, csa, B + 16, rsb, C + 16, rsc);
        return 1;
    default: return 0;
    }
}
#else
static int tiny_avx2_f32(pbn_int m, pbn_int n, pbn_int k, const float *A, pbn_int rsa,
                         pbn_int csa, const float *B, pbn_int rsb, float *C, pbn_int rsc)
{ (void)m; (void)n; (void)k; (void)A; (void)rsa; (void)csa; (void)B; (void)rsb; (void)C; (void)rsc; return 0; }
static int tiny_avx2_f64(pbn_int m, pbn_int n, pbn_int k, const double *A, pbn_int rsa,
                         pbn_int csa, const double *B, pbn_int rsb, double *C, pbn_int rsc)
{ (void)m; (void)n; (void)k; (void)A; (void)rsa; (void)csa; (void)B; (void)rsb; (void)C; (void)rsc; return 0; }
#endif

#define DEFINE_TINY_ENTRY(T, SUF, WIDTH_OK)                                               \
int pbn_tiny_gemm_##SUF(pbn_int m, pbn_int n, pbn_int k, const T *A, pbn_int rsa,         \
                        pbn_int csa, const T *B, pbn_int rsb, T *C, pbn_int rsc)          \
{                                                                                         \
    if (!WIDTH_OK(n)) return 0;                                                           \
    if (pbn_gemm_use_simd() && tiny_avx2_##SUF(m, n, k, A, rsa, csa, B, rsb, C, rsc))     \
        return 1;                                                                         \
    tiny_portable_##SUF(m, n, k, A, rsa, csa, B, rsb, C, rsc);                            \
    return 1;                                                                             \
}
DEFINE_TINY_ENTRY(float, f32, PBN_TINY_WIDTH_F32)
DEFINE_TINY_ENTRY(double, f64, PBN_TINY_WIDTH_F64)
