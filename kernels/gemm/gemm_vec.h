/* The vector vocabulary the GEMM templates are written in (gemm_ukr_tpl.h, gemm_tiny_tpl.h,
 * gemm_sparse_tpl.h), for one (ISA, dtype). Define PBN_VEC to one of
 *   PBN_VEC_AVX2_F32, PBN_VEC_AVX2_F64, PBN_VEC_AVX512_F32, PBN_VEC_AVX512_F64
 * and include this file; it defines
 *   ISA (name suffix: avx2 / avx512), VEC_TARGET (the functions' target attribute), T, SUF
 *   (f32 / f64), VT (vector type), W (lanes), VZERO(), VLOADU(p), VSTOREU(p, v), VBCAST(p)
 *   (broadcast *p), VSET1(x) (broadcast a value), VFMA(a, b, c) = a*b+c, VADD(a, b), VSUB(a, b),
 *   VMUL(a, b) (each rounded once: the build never contracts them into an FMA),
 *   VMAX(a, b) (b when either is NaN: max(0, x) keeps a NaN x, as numpy does), VMASK_T,
 *   VMASK(n) (lanes < n set; any n), VMASKLOAD(p, m) (reads no lane outside m, the others
 *   are 0), VMASKSTORE(p, m, v) (writes no lane outside m).
 * Include gemm_vec_undef.h after the template to instantiate the next one. Only for files
 * that include <immintrin.h> on x86 with GCC-style builtins. */
#define PBN_VEC_AVX2_F32 1
#define PBN_VEC_AVX2_F64 2
#define PBN_VEC_AVX512_F32 3
#define PBN_VEC_AVX512_F64 4

#if PBN_VEC == PBN_VEC_AVX2_F32 || PBN_VEC == PBN_VEC_AVX2_F64
#define ISA avx2
#define VEC_TARGET __attribute__((target("avx2,fma")))
#define VMASK_T __m256i
#else
#define ISA avx512
#define VEC_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#endif

#if PBN_VEC == PBN_VEC_AVX2_F32
#define T float
#define SUF f32
#define VT __m256
#define W 8
#define VZERO() _mm256_setzero_ps()
#define VLOADU(p) _mm256_loadu_ps(p)
#define VSTOREU(p, v) _mm256_storeu_ps(p, v)
#define VBCAST(p) _mm256_broadcast_ss(p)
#define VSET1(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VMASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define VMASKLOAD(p, m) _mm256_maskload_ps(p, m)
#define VMASKSTORE(p, m, v) _mm256_maskstore_ps(p, m, v)
#elif PBN_VEC == PBN_VEC_AVX2_F64
#define T double
#define SUF f64
#define VT __m256d
#define W 4
#define VZERO() _mm256_setzero_pd()
#define VLOADU(p) _mm256_loadu_pd(p)
#define VSTOREU(p, v) _mm256_storeu_pd(p, v)
#define VBCAST(p) _mm256_broadcast_sd(p)
#define VSET1(x) _mm256_set1_pd(x)
#define VFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define VADD(a, b) _mm256_add_pd(a, b)
#define VSUB(a, b) _mm256_sub_pd(a, b)
#define VMUL(a, b) _mm256_mul_pd(a, b)
#define VMAX(a, b) _mm256_max_pd(a, b)
#define VMASK(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define VMASKLOAD(p, m) _mm256_maskload_pd(p, m)
#define VMASKSTORE(p, m, v) _mm256_maskstore_pd(p, m, v)
#elif PBN_VEC == PBN_VEC_AVX512_F32
#define T float
#define SUF f32
#define VT __m512
#define W 16
#define VMASK_T __mmask16
#define VZERO() _mm512_setzero_ps()
#define VLOADU(p) _mm512_loadu_ps(p)
#define VSTOREU(p, v) _mm512_storeu_ps(p, v)
#define VBCAST(p) _mm512_set1_ps(*(p))
#define VSET1(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VSUB(a, b) _mm512_sub_ps(a, b)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define VMASK(n) ((n) >= 16 ? (__mmask16)0xFFFF : (n) <= 0 ? (__mmask16)0 : (__mmask16)((1u << (n)) - 1))
#define VMASKLOAD(p, m) _mm512_maskz_loadu_ps(m, p)
#define VMASKSTORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#elif PBN_VEC == PBN_VEC_AVX512_F64
#define T double
#define SUF f64
#define VT __m512d
#define W 8
#define VMASK_T __mmask8
#define VZERO() _mm512_setzero_pd()
#define VLOADU(p) _mm512_loadu_pd(p)
#define VSTOREU(p, v) _mm512_storeu_pd(p, v)
#define VBCAST(p) _mm512_set1_pd(*(p))
#define VSET1(x) _mm512_set1_pd(x)
#define VFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define VADD(a, b) _mm512_add_pd(a, b)
#define VSUB(a, b) _mm512_sub_pd(a, b)
#define VMUL(a, b) _mm512_mul_pd(a, b)
#define VMAX(a, b) _mm512_max_pd(a, b)
#define VMASK(n) ((n) >= 8 ? (__mmask8)0xFF : (n) <= 0 ? (__mmask8)0 : (__mmask8)((1u << (n)) - 1))
#define VMASKLOAD(p, m) _mm512_maskz_loadu_pd(m, p)
#define VMASKSTORE(p, m, v) _mm512_mask_storeu_pd(p, m, v)
#else
#error "gemm_vec.h: define PBN_VEC to one of the PBN_VEC_* values"
#endif
