/* Private declarations shared by the GEMM engine's translation units (not part of the API).
 *
 * Micro-kernel contract (one MR x NR tile of C):
 *   a[i] (i < MR) points at row i of the A sliver; its element p is a[i][p * as].
 *     packed A:   a[i] = panel + i, as = MR  (one contiguous MR x kc panel)
 *     unpacked A: a[i] = &A[row(i), pc], as = csa (rows past mr repeat a valid row)
 *   b is an NR-column sliver of B: element (p, j) at b[p * bs + j]
 *     packed B:   bs = NR, zero-padded past nr
 *     unpacked B: b = &B[pc, j0], bs = rsb (only when csb == 1 and nr == NR)
 *   The tile is computed in full (MR x NR) and only mr x nr of it is written to C:
 *     C := (load_c ? C : 0) + acc;  C += bias[j] if bias;  C := max(C, 0) if relu
 *   where bias, when given, already points at the tile's first column.
 */
#ifndef PBN_GEMM_INTERNAL_H
#define PBN_GEMM_INTERNAL_H
#include "gemm.h"

#define PBN_CAT_(a, b) a##_##b
#define PBN_CAT(a, b) PBN_CAT_(a, b)

/* Register-tile shapes; the AVX2 and portable kernels share them so packing is shared. */
#define PBN_MR_F32 6
#define PBN_NR_F32 16
#define PBN_MR_F64 6
#define PBN_NR_F64 8

typedef void (*pbn_ukr_f32)(pbn_int kc, const float *const *a, pbn_int as, const float *b, pbn_int bs,
                            float *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                            int load_c, const float *bias, int relu);
typedef void (*pbn_ukr_f64)(pbn_int kc, const double *const *a, pbn_int as, const double *b, pbn_int bs,
                            double *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                            int load_c, const double *bias, int relu);

/* AVX2 + FMA micro-kernels (gemm_avx2.c); only call them when pbn_cpu_has_avx2_fma(). */
void pbn_ukr_avx2_f32(pbn_int kc, const float *const *a, pbn_int as, const float *b, pbn_int bs,
                      float *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                      int load_c, const float *bias, int relu);
void pbn_ukr_avx2_f64(pbn_int kc, const double *const *a, pbn_int as, const double *b, pbn_int bs,
                      double *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                      int load_c, const double *bias, int relu);
int pbn_cpu_has_avx2_fma(void);
/* the AVX2 + FMA kernels are in use: the CPU has them and pbn_gemm_force_portable is off */
int pbn_gemm_use_simd(void);

/* Whole small products without packing (gemm_tiny.c), for the batched path: C := A @ B
 * when m, k <= PBN_TINY_MAX, n is one of the widths below, B and C with unit column stride.
 * Returns 0 (and does nothing) for other n. */
#define PBN_TINY_MAX 64
#define PBN_TINY_WIDTH_F32(n) ((n) == 8 || (n) == 16 || (n) == 32 || (n) == 64)
#define PBN_TINY_WIDTH_F64(n) ((n) == 8 || (n) == 16 || (n) == 32)
int pbn_tiny_gemm_f32(pbn_int m, pbn_int n, pbn_int k, const float *A, pbn_int rsa,
                      pbn_int csa, const float *B, pbn_int rsb, float *C, pbn_int rsc);
int pbn_tiny_gemm_f64(pbn_int m, pbn_int n, pbn_int k, const double *A, pbn_int rsa,
                      pbn_int csa, const double *B, pbn_int rsb, double *C, pbn_int rsc);

/* 64-byte aligned scratch of at least `bytes`, one buffer per thread kept between calls
 * (gemm.c), or NULL when out of memory; pbn_scratch_done when the thread is done with it. */
void *pbn_scratch(size_t bytes);
void pbn_scratch_done(void);

/* Zero-skipping float32 product for a mostly-zero A (gemm_sparse.c): same arguments and
 * result as pbn_gemm_f32 (up to summation order); returns 0 and does nothing when A is not
 * sparse enough, B has a non-finite value, or the shape / CPU does not qualify. */
int pbn_sparse_gemm_f32(pbn_int m, pbn_int n, pbn_int k, const float *A, pbn_int rsa,
                        pbn_int csa, const pbn_int *a_rows, const float *B, pbn_int rsb,
                        pbn_int csb, float *C, pbn_int rsc, pbn_int csc, int accumulate,
                        const float *bias, int relu, int n_threads);

/* Small-n float kernel (gemm_avx2.c): for the 3 rows a[0..2] (contiguous in p) and nb <= 4
 * rows of bt (B transposed, row j at bt + j * ldb, contiguous in p), out[r * 4 + j] :=
 * sum_p a[r][p] * bt[j * ldb + p], vectorised along k. Only call it when pbn_cpu_has_avx2_fma(). */
void pbn_dot3x4_avx2_f32(pbn_int k, const float *const *a, const float *bt, pbn_int ldb,
                         int nb, float *out);

#endif
