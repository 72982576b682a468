/* AVX2 + FMA micro-kernels (6x16 float, 6x8 double). Compiled per function with
 * target("avx2,fma") so the build needs no -march flag; chosen at run time. */
#include "gemm_internal.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define PBN_AVX2 __attribute__((target("avx2,fma")))

int pbn_cpu_has_avx2_fma(void)
{
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached;
}

/* ---- float: 6 x 16 ---- */
#define UKR_NAME pbn_ukr_avx2_f32
#define T float
#define VT __m256
#define VMASK_T __m256i
#define W 8
#define MR PBN_MR_F32
#define NR PBN_NR_F32
#define VZERO() _mm256_setzero_ps()
#define VLOADU(p) _mm256_loadu_ps(p)
#define VSTOREU(p, v) _mm256_storeu_ps(p, v)
#define VBCAST(p) _mm256_broadcast_ss(p)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b) /* returns b when either is NaN: keeps NaN like numpy */
#define VMASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define VMASKLOAD(p, m) _mm256_maskload_ps(p, m)
#define VMASKSTORE(p, m, v) _mm256_maskstore_ps(p, m, v)
#include "gemm_avx2_ukr.h"
#undef UKR_NAME
#undef T
#undef VT
#undef VMASK_T
#undef W
#undef MR
#undef NR
#undef VZERO
#undef VLOADU
#undef VSTOREU
#undef VBCAST
#undef VFMA
#undef VADD
#undef VMAX
#undef VMASK
#undef VMASKLOAD
#undef VMASKSTORE

/* ---- double: 6 x 8 ---- */
#define UKR_NAME pbn_ukr_avx2_f64
#define T double
#define VT __m256d
#define VMASK_T __m256i
#define W 4
#define MR PBN_MR_F64
#define NR PBN_NR_F64
#define VZERO() _mm256_setzero_pd()
#define VLOADU(p) _mm256_loadu_pd(p)
#define VSTOREU(p, v) _mm256_storeu_pd(p, v)
#define VBCAST(p) _mm256_broadcast_sd(p)
#define VFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define VADD(a, b) _mm256_add_pd(a, b)
#define VMAX(a, b) _mm256_max_pd(a, b)
#define VMASK(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define VMASKLOAD(p, m) _mm256_maskload_pd(p, m)
#define VMASKSTORE(p, m, v) _mm256_maskstore_pd(p, m, v)
#include "gemm_avx2_ukr.h"

#else /* not x86 with GCC-style builtins: only the portable path exists */

int pbn_cpu_has_avx2_fma(void) { return 0; }
void pbn_ukr_avx2_f32(pbn_int kc, const float *const *a, pbn_int as, const float *b, pbn_int bs,
                      float *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                      int load_c, const float *bias, int relu)
{ (void)kc; (void)a; (void)as; (void)b; (void)bs; (void)c; (void)rsc; (void)csc; (void)mr; (void)nr;
  (void)load_c; (void)bias; (void)relu; }
void pbn_ukr_avx2_f64(pbn_int kc, const double *const *a, pbn_int as, const double *b, pbn_int bs,
                      double *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                      int load_c, const double *bias, int relu)
{ (void)kc; (void)a; (void)as; (void)b; (void)bs; (void)c; (void)rsc; (void)csc; (void)mr; (void)nr;
  (void)load_c; (void)bias; (void)relu; }
#endif
