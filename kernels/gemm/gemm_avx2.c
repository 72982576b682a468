/* AVX2 + FMA micro-kernels (6x16 float, 6x8 double). Compiled per function with
 * target("avx2,fma") so the build needs no -march flag; chosen at run time by the runtime
 * layer (kernels/pbn_isa.h). */
#include "gemm_internal.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define PBN_AVX2 __attribute__((target("avx2,fma")))

/* ---- float: 6 x 16 (12 ymm accumulators, 2 B vectors and a broadcast of the 16) ---- */
#define PBN_VEC PBN_VEC_AVX2_F32
#include "gemm_vec.h"
#define UKR_NAME pbn_sgemm_avx2_6x16
#define MR PBN_AVX2_MR_F32
#define NV (PBN_AVX2_NR_F32 / 8)
#include "gemm_ukr_tpl.h"
#undef UKR_NAME
#undef MR
#undef NV
#include "gemm_vec_undef.h"

/* ---- float, small n: dot products vectorised along k ----
 * out[r * 4 + j] = sum_p a[r][p] * bt[j * ldb + p] for r < 3, j < nb (nb <= 4); the a rows
 * and the bt rows are contiguous in p. 3 x 4 accumulators of 8 lanes; lane l sums the p
 * with p % 8 == l (the k tail through masked loads, which read nothing past k), then the
 * lanes are added in a fixed tree. The order depends on k only. */
#define DOT_ROW3(J) do {                                                           \
        const __m256 bv_ = _mm256_loadu_ps(bt + (J) * ldb + p);                     \
        c0##J = _mm256_fmadd_ps(x0, bv_, c0##J); c1##J = _mm256_fmadd_ps(x1, bv_, c1##J); \
        c2##J = _mm256_fmadd_ps(x2, bv_, c2##J);                                    \
    } while (0)
#define DOT_ROW3M(J) do {                                                          \
        const __m256 bv_ = _mm256_maskload_ps(bt + (J) * ldb + p, msk);             \
        c0##J = _mm256_fmadd_ps(x0, bv_, c0##J); c1##J = _mm256_fmadd_ps(x1, bv_, c1##J); \
        c2##J = _mm256_fmadd_ps(x2, bv_, c2##J);                                    \
    } while (0)

PBN_AVX2 static inline float pbn_hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

PBN_AVX2 __attribute__((always_inline)) static inline void
pbn_dot3xn(pbn_int k, const float *a0, const float *a1, const float *a2,
           const float *bt, pbn_int ldb, const int nb, float *out)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;
    __m256 c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m256 c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    pbn_int p = 0;
    for (; p + 8 <= k; p += 8) {
        const __m256 x0 = _mm256_loadu_ps(a0 + p), x1 = _mm256_loadu_ps(a1 + p), x2 = _mm256_loadu_ps(a2 + p);
        DOT_ROW3(0);
        if (nb > 1) DOT_ROW3(1);
        if (nb > 2) DOT_ROW3(2);
        if (nb > 3) DOT_ROW3(3);
    }
    if (p < k) {
        const __m256i msk = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(k - p)),
                                               _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const __m256 x0 = _mm256_maskload_ps(a0 + p, msk), x1 = _mm256_maskload_ps(a1 + p, msk);
        const __m256 x2 = _mm256_maskload_ps(a2 + p, msk);
        DOT_ROW3M(0);
        if (nb > 1) DOT_ROW3M(1);
        if (nb > 2) DOT_ROW3M(2);
        if (nb > 3) DOT_ROW3M(3);
    }
    out[0] = pbn_hsum8(c00); out[4] = pbn_hsum8(c10); out[8] = pbn_hsum8(c20);
    if (nb > 1) { out[1] = pbn_hsum8(c01); out[5] = pbn_hsum8(c11); out[9] = pbn_hsum8(c21); }
    if (nb > 2) { out[2] = pbn_hsum8(c02); out[6] = pbn_hsum8(c12); out[10] = pbn_hsum8(c22); }
    if (nb > 3) { out[3] = pbn_hsum8(c03); out[7] = pbn_hsum8(c13); out[11] = pbn_hsum8(c23); }
}

PBN_AVX2 void pbn_dot3x4_avx2_f32(pbn_int k, const float *const *a, const float *bt, pbn_int ldb,
                                  int nb, float *out)
{
    switch (nb) {
    case 1: pbn_dot3xn(k, a[0], a[1], a[2], bt, ldb, 1, out); break;
    case 2: pbn_dot3xn(k, a[0], a[1], a[2], bt, ldb, 2, out); break;
    case 3: pbn_dot3xn(k, a[0], a[1], a[2], bt, ldb, 3, out); break;
    default: pbn_dot3xn(k, a[0], a[1], a[2], bt, ldb, 4, out); break;
    }
}
#undef DOT_ROW3
#undef DOT_ROW3M

/* ---- double: 6 x 8 ---- */
#define PBN_VEC PBN_VEC_AVX2_F64
#include "gemm_vec.h"
#define UKR_NAME pbn_dgemm_avx2_6x8
#define MR PBN_AVX2_MR_F64
#define NV (PBN_AVX2_NR_F64 / 4)
#include "gemm_ukr_tpl.h"
#undef UKR_NAME
#undef MR
#undef NV
#include "gemm_vec_undef.h"

#else /* not x86 with GCC-style builtins: only the portable path exists */

void pbn_sgemm_avx2_6x16(pbn_int kc, const float *const *a, pbn_int as, const float *b, pbn_int bs,
                      float *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                      int load_c, const float *bias, int relu)
{ (void)kc; (void)a; (void)as; (void)b; (void)bs; (void)c; (void)rsc; (void)csc; (void)mr; (void)nr;
  (void)load_c; (void)bias; (void)relu; }
void pbn_dgemm_avx2_6x8(pbn_int kc, const double *const *a, pbn_int as, const double *b, pbn_int bs,
                      double *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                      int load_c, const double *bias, int relu)
{ (void)kc; (void)a; (void)as; (void)b; (void)bs; (void)c; (void)rsc; (void)csc; (void)mr; (void)nr;
  (void)load_c; (void)bias; (void)relu; }
void pbn_dot3x4_avx2_f32(pbn_int k, const float *const *a, const float *bt, pbn_int ldb,
                         int nb, float *out)
{ (void)k; (void)a; (void)bt; (void)ldb; (void)nb; (void)out; }
#endif
