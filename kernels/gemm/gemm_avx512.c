/* AVX-512 micro-kernels (float 12x32, double 12x16: 24 zmm accumulators, 2 B vectors and a
 * broadcast of the 32 registers). Compiled per function with target(...) so the build needs
 * no -march flag; called only when the runtime layer chose avx512 (kernels/pbn_isa.h). Edge
 * tiles use opmask loads / stores. Per C element the sum is the one of the AVX2 6x16 / 6x8
 * kernels (gemm_ukr_tpl.h), so the avx512 and avx2 paths agree bitwise. */
#include "gemm_internal.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define PBN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

/* ---- float: 12 x 32 ---- */
#define PBN_VEC PBN_VEC_AVX512_F32
#include "gemm_vec.h"
#define UKR_NAME pbn_sgemm_avx512_12x32
#define MR PBN_AVX512_MR_F32
#define NV (PBN_AVX512_NR_F32 / 16)
#include "gemm_ukr_tpl.h"
#undef UKR_NAME
#undef MR
#undef NV
#include "gemm_vec_undef.h"

/* ---- double: 12 x 16 ---- */
#define PBN_VEC PBN_VEC_AVX512_F64
#include "gemm_vec.h"
#define UKR_NAME pbn_dgemm_avx512_12x16
#define MR PBN_AVX512_MR_F64
#define NV (PBN_AVX512_NR_F64 / 8)
#include "gemm_ukr_tpl.h"
#undef UKR_NAME
#undef MR
#undef NV
#include "gemm_vec_undef.h"

/* ---- float, small n: dot products along k, the order of pbn_dot3x4_avx2_f32 ----
 * One zmm holds two of the AVX2 kernel's 8-lane accumulators: columns j (lanes 0..7) and
 * j + 1 (lanes 8..15) of one row, lane l summing the p with p % 8 == l by FMA in p order;
 * the row's 8 values of A are broadcast to both halves, and bp is B^T packed in column pairs
 * (pbn_dot_pack_pairs_f32). The 8 lanes of each half are then added in the AVX2 kernel's
 * tree ((l + l+4), then (0 + 2, 1 + 3), then (0 + 1); each add is exact-commutative), so every
 * output has the AVX2 path's bits. PBN_DOT_ROWS rows x np pairs <= 24 accumulators. */
PBN_AVX512 static inline __m512 pbn_hsum8_pairs(__m512 v)
{
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
}

/* acc[r][q] += x[r] * (pair q of the packed p block at b); x[r]: row r's 8 values, twice */
#define PBN_DOT_STEP(NP, x, b, kb)                                                      \
    do {                                                                                \
        _Pragma("GCC unroll 8")                                                         \
        for (int q = 0; q < NP; q++) {                                                  \
            const __m512 bq = _mm512_loadu_ps((b) + q * (kb) * 16);                     \
            _Pragma("GCC unroll 4")                                                     \
            for (int r = 0; r < PBN_DOT_ROWS; r++)                                      \
                acc[r][q] = _mm512_fmadd_ps(x[r], bq, acc[r][q]);                       \
        }                                                                               \
    } while (0)

PBN_AVX512 __attribute__((always_inline)) static inline void
pbn_dot_rows_pairs(const int NP, pbn_int k, const float *const *a, const float *bp, float *out)
{
    __m512 acc[PBN_DOT_ROWS][8];
    _Pragma("GCC unroll 4")
    for (int r = 0; r < PBN_DOT_ROWS; r++)
        _Pragma("GCC unroll 8")
        for (int q = 0; q < NP; q++) acc[r][q] = _mm512_setzero_ps();
    const pbn_int kb = (k + 7) / 8;          /* 8-deep p blocks; the packed B is zero-padded */
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
    pbn_int p = 0;
    const float *b = bp;
    for (; p + 8 <= k; p += 8, b += 16) {
        const __m512 x[PBN_DOT_ROWS] = {
            _mm512_broadcast_f32x8(_mm256_loadu_ps(a0 + p)),
            _mm512_broadcast_f32x8(_mm256_loadu_ps(a1 + p)),
            _mm512_broadcast_f32x8(_mm256_loadu_ps(a2 + p)),
            _mm512_broadcast_f32x8(_mm256_loadu_ps(a3 + p)) };
        PBN_DOT_STEP(NP, x, b, kb);
    }
    if (p < k) {                             /* the k tail: lanes past k read nothing, are 0 */
        const __mmask8 in = (__mmask8)((1u << (k - p)) - 1);
        const __m512 x[PBN_DOT_ROWS] = {
            _mm512_broadcast_f32x8(_mm256_maskz_loadu_ps(in, a0 + p)),
            _mm512_broadcast_f32x8(_mm256_maskz_loadu_ps(in, a1 + p)),
            _mm512_broadcast_f32x8(_mm256_maskz_loadu_ps(in, a2 + p)),
            _mm512_broadcast_f32x8(_mm256_maskz_loadu_ps(in, a3 + p)) };
        PBN_DOT_STEP(NP, x, b, kb);
    }
    float t[16] __attribute__((aligned(64)));
    for (int r = 0; r < PBN_DOT_ROWS; r++)
        for (int q = 0; q < NP; q++) {
            _mm512_store_ps(t, pbn_hsum8_pairs(acc[r][q]));
            out[r * 16 + 2 * q] = t[0];
            out[r * 16 + 2 * q + 1] = t[8];
        }
}
#undef PBN_DOT_STEP

PBN_AVX512 void pbn_dot_rows_avx512_f32(pbn_int k, const float *const *a, const float *bp,
                                        int n, float *out)
{
    switch ((n + 1) / 2) {
    case 1: pbn_dot_rows_pairs(1, k, a, bp, out); break;
    case 2: pbn_dot_rows_pairs(2, k, a, bp, out); break;
    case 3: pbn_dot_rows_pairs(3, k, a, bp, out); break;
    case 4: pbn_dot_rows_pairs(4, k, a, bp, out); break;
    case 5: pbn_dot_rows_pairs(5, k, a, bp, out); break;
    case 6: pbn_dot_rows_pairs(6, k, a, bp, out); break;
    case 7: pbn_dot_rows_pairs(7, k, a, bp, out); break;
    default: pbn_dot_rows_pairs(8, k, a, bp, out); break;
    }
}

#else /* not x86 with GCC-style builtins: the runtime layer never selects avx512 */

void pbn_sgemm_avx512_12x32(pbn_int kc, const float *const *a, pbn_int as, const float *b, pbn_int bs,
                            float *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                            int load_c, const float *bias, int relu)
{ (void)kc; (void)a; (void)as; (void)b; (void)bs; (void)c; (void)rsc; (void)csc; (void)mr; (void)nr;
  (void)load_c; (void)bias; (void)relu; }
void pbn_dgemm_avx512_12x16(pbn_int kc, const double *const *a, pbn_int as, const double *b, pbn_int bs,
                            double *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                            int load_c, const double *bias, int relu)
{ (void)kc; (void)a; (void)as; (void)b; (void)bs; (void)c; (void)rsc; (void)csc; (void)mr; (void)nr;
  (void)load_c; (void)bias; (void)relu; }
void pbn_dot_rows_avx512_f32(pbn_int k, const float *const *a, const float *bp, int n, float *out)
{ (void)k; (void)a; (void)bp; (void)n; (void)out; }
#endif
