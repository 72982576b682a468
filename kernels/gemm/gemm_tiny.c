/* Whole small products for the batched path, without packing: C := A @ B for m, k <=
 * PBN_TINY_MAX and n a whole number of vectors (PBN_TINY_WIDTH), B and C with unit column
 * stride; A is read through its strides. Packing a 16 x 16 operand costs about as much as
 * multiplying it, so these kernels read A and B in place.
 *
 * SIMD paths: row groups of R rows x NV vectors held in registers (gemm_tiny_tpl.h), with
 * R x NV = 12..24 independent FMA chains: AVX2 (8 float / 4 double lanes, 16 ymm registers)
 * and AVX-512 (16 / 8 lanes, 32 zmm registers). Portable path: the same loops in plain C.
 * On every path each C[i, j] is summed over p = 0..k-1 in order with one FMA per term (the
 * portable loop rounds each product instead), whatever the grouping or vector width, so the
 * avx512 and avx2 paths agree bitwise and the thread count never matters.
 *
 * pbn_tiny_kernel_<dt>(n) picks the kernel of the ISA in use once per batch: a call per
 * product then costs one indirect call, not a dispatch (a 16 x 16 x 16 product is ~100 ns). */
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

/* ---- AVX2 + FMA: float 8 lanes, double 4 ---- */
#define PBN_VEC PBN_VEC_AVX2_F32
#include "gemm_vec.h"
#include "gemm_tiny_tpl.h"
DEFINE_TINY_V(1, 8)        /* n = 8 */
DEFINE_TINY_V(2, 6)        /* n = 16: the 6 x 16 tile of the packed kernel */
DEFINE_TINY_V(4, 3)        /* n = 32 */
DEFINE_TINY_HALVES(4, 3)   /* n = 64: two 32-column halves, 12 FMAs per 7 loads */
#include "gemm_vec_undef.h"

#define PBN_VEC PBN_VEC_AVX2_F64
#include "gemm_vec.h"
#include "gemm_tiny_tpl.h"
DEFINE_TINY_V(2, 6)        /* n = 8 */
DEFINE_TINY_V(4, 3)        /* n = 16 */
DEFINE_TINY_HALVES(4, 3)   /* n = 32 */
#include "gemm_vec_undef.h"

/* ---- AVX-512: float 16 lanes, double 8; 16..24 accumulators of the 32 zmm ---- */
#define PBN_VEC PBN_VEC_AVX512_F32
#include "gemm_vec.h"
#include "gemm_tiny_tpl.h"
DEFINE_TINY_V(1, 16)       /* n = 16: a 16 x 16 product is one group */
DEFINE_TINY_V(2, 12)       /* n = 32 */
DEFINE_TINY_V(4, 6)        /* n = 64 */
#include "gemm_vec_undef.h"

#define PBN_VEC PBN_VEC_AVX512_F64
#include "gemm_vec.h"
#include "gemm_tiny_tpl.h"
DEFINE_TINY_V(1, 16)       /* n = 8 */
DEFINE_TINY_V(2, 12)       /* n = 16 */
DEFINE_TINY_V(4, 6)        /* n = 32 */
#include "gemm_vec_undef.h"

static pbn_tiny_f32 tiny_simd_f32(int isa, pbn_int n)
{
    if (isa == PBN_ISA_AVX512)
        switch (n) {
        case 16: return tiny_v1r16_avx512_f32;
        case 32: return tiny_v2r12_avx512_f32;
        case 64: return tiny_v4r6_avx512_f32;
        default: break;            /* n = 8 is half a zmm: the AVX2 kernel */
        }
    switch (n) {
    case 8:  return tiny_v1r8_avx2_f32;
    case 16: return tiny_v2r6_avx2_f32;
    case 32: return tiny_v4r3_avx2_f32;
    case 64: return tiny_v4r3x2_avx2_f32;
    default: return NULL;
    }
}

static pbn_tiny_f64 tiny_simd_f64(int isa, pbn_int n)
{
    if (isa == PBN_ISA_AVX512)
        switch (n) {
        case 8:  return tiny_v1r16_avx512_f64;
        case 16: return tiny_v2r12_avx512_f64;
        case 32: return tiny_v4r6_avx512_f64;
        default: break;
        }
    switch (n) {
    case 8:  return tiny_v2r6_avx2_f64;
    case 16: return tiny_v4r3_avx2_f64;
    case 32: return tiny_v4r3x2_avx2_f64;
    default: return NULL;
    }
}
#else
static pbn_tiny_f32 tiny_simd_f32(int isa, pbn_int n) { (void)isa; (void)n; return NULL; }
static pbn_tiny_f64 tiny_simd_f64(int isa, pbn_int n) { (void)isa; (void)n; return NULL; }
#endif

pbn_tiny_f32 pbn_tiny_kernel_f32(pbn_int n)
{
    if (!PBN_TINY_WIDTH_F32(n)) return NULL;
    const int isa = pbn_isa();
    pbn_tiny_f32 f = isa >= PBN_ISA_AVX2 ? tiny_simd_f32(isa, n) : NULL;
    return f ? f : tiny_portable_f32;
}

pbn_tiny_f64 pbn_tiny_kernel_f64(pbn_int n)
{
    if (!PBN_TINY_WIDTH_F64(n)) return NULL;
    const int isa = pbn_isa();
    pbn_tiny_f64 f = isa >= PBN_ISA_AVX2 ? tiny_simd_f64(isa, n) : NULL;
    return f ? f : tiny_portable_f64;
}
