/* AVX-512 micro-kernels (float 12x32, double 12x16: 24 zmm accumulators, 2 B vectors and a
 * broadcast of the 32 registers). Compiled per function with target(...) so the build needs
 * no -march flag; called only when the runtime layer chose avx512 (gemm_runtime.c). Edge
 * tiles use opmask loads / stores. Per C element the sum is the one of the AVX2 6x16 / 6x8
 * kernels (gemm_ukr_tpl.h), so the avx512 and avx2 paths agree bitwise. */
#include "gemm_internal.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define PBN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

PBN_AVX512 static inline __mmask16 pbn_mask16(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}
PBN_AVX512 static inline __mmask8 pbn_mask8(int n)
{
    return n >= 8 ? (__mmask8)0xFF : n <= 0 ? (__mmask8)0 : (__mmask8)((1u << n) - 1);
}

#define UKR_TARGET PBN_AVX512

/* ---- float: 12 x 32 ---- */
#define UKR_NAME pbn_sgemm_avx512_12x32
#define T float
#define VT __m512
#define VMASK_T __mmask16
#define W 16
#define MR PBN_AVX512_MR_F32
#define NV (PBN_AVX512_NR_F32 / 16)
#define VZERO() _mm512_setzero_ps()
#define VLOADU(p) _mm512_loadu_ps(p)
#define VSTOREU(p, v) _mm512_storeu_ps(p, v)
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VMAX(a, b) _mm512_max_ps(a, b) /* returns b when either is NaN: keeps NaN like numpy */
#define VMASK(n) pbn_mask16(n)
#define VMASKLOAD(p, m) _mm512_maskz_loadu_ps(m, p)
#define VMASKSTORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#include "gemm_ukr_tpl.h"
#undef UKR_NAME
#undef T
#undef VT
#undef VMASK_T
#undef W
#undef MR
#undef NV
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

/* ---- double: 12 x 16 ---- */
#define UKR_NAME pbn_dgemm_avx512_12x16
#define T double
#define VT __m512d
#define VMASK_T __mmask8
#define W 8
#define MR PBN_AVX512_MR_F64
#define NV (PBN_AVX512_NR_F64 / 8)
#define VZERO() _mm512_setzero_pd()
#define VLOADU(p) _mm512_loadu_pd(p)
#define VSTOREU(p, v) _mm512_storeu_pd(p, v)
#define VBCAST(p) _mm512_set1_pd(*(p))
#define VFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define VADD(a, b) _mm512_add_pd(a, b)
#define VMAX(a, b) _mm512_max_pd(a, b)
#define VMASK(n) pbn_mask8(n)
#define VMASKLOAD(p, m) _mm512_maskz_loadu_pd(m, p)
#define VMASKSTORE(p, m, v) _mm512_mask_storeu_pd(p, m, v)
#include "gemm_ukr_tpl.h"

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
#endif
