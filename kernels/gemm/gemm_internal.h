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
#include "gemm_runtime.h"

#define PBN_CAT_(a, b) a##_##b
#define PBN_CAT(a, b) PBN_CAT_(a, b)

/* ---- the one table of register tiles and cache blocks, per ISA and dtype ----
 * KC (the depth of a k slice) is shared by every ISA of a dtype: each C element is summed
 * slice by slice, so equal slices are what makes the avx512 and avx2 paths agree bitwise.
 * MR x NR (the register tile), MC (rows of a packed A block, L2) and NC (columns of a packed
 * B block, L3) may differ per ISA: they change where operands are read from, not the order
 * of any sum. The portable kernels use the AVX2 tile. Read at run time through
 * pbn_gemm_block_sizes_isa (tests, show_config); nothing else copies these numbers.
 * KC 384 f32 (was 256): 3 k slices instead of 4 for the MLP's k = 784 (fewer passes over
 * C); measured 0-9% faster on (128,784)@(784,512) over three interleaved A/B rounds. */
#define PBN_KC_F32 384
#define PBN_KC_F64 256
#define PBN_AVX2_MR_F32 6
#define PBN_AVX2_NR_F32 16
#define PBN_AVX2_MC_F32 144
#define PBN_AVX2_NC_F32 4080
#define PBN_AVX2_MR_F64 6
#define PBN_AVX2_NR_F64 8
#define PBN_AVX2_MC_F64 72
#define PBN_AVX2_NC_F64 4080
/* AVX-512: 12 x 2 zmm accumulators + 2 B vectors + 1 broadcast of the 32 registers, so
 * 24 independent FMA chains cover 2 pipes x 4 cycles of latency; A block 144 x 384 float
 * (216 KiB) and 72 x 256 double (144 KiB) sit in the 1 MiB L2. */
#define PBN_AVX512_MR_F32 12
#define PBN_AVX512_NR_F32 32
#define PBN_AVX512_MC_F32 144
#define PBN_AVX512_NC_F32 4096
#define PBN_AVX512_MR_F64 12
#define PBN_AVX512_NR_F64 16
#define PBN_AVX512_MC_F64 72
#define PBN_AVX512_NC_F64 4096

/* ---- the epilogue every path applies to an output element ----
 * x := (accumulate ? C + acc : acc);  x := x + bias if bias;  x := max(0, x) if relu, where
 * max keeps a NaN and a -0.0 (as the vector kernels' max(0, x) and numpy.maximum do).
 * c: the element of C (read only when accumulating); bias: its column's bias or NULL. The
 * vector kernels apply the same three steps lane-wise (gemm_ukr_tpl.h, gemm_sparse_tpl.h). */
#define PBN_DEFINE_EPILOGUE(T, SUF)                                                       \
static inline T pbn_epilogue_##SUF(T acc, const T *c, int accumulate, const T *bias,      \
                                   int relu)                                              \
{                                                                                         \
    T x = accumulate ? *c + acc : acc;                                                    \
    if (bias) x = x + *bias;                                                              \
    return relu && x < 0 ? (T)0 : x;                                                      \
}
PBN_DEFINE_EPILOGUE(float, f32)
PBN_DEFINE_EPILOGUE(double, f64)
#undef PBN_DEFINE_EPILOGUE
#define PBN_EPILOGUE(acc, c, accumulate, bias, relu)                                      \
    _Generic((acc), float: pbn_epilogue_f32, double: pbn_epilogue_f64)(acc, c, accumulate, bias, relu)

typedef void (*pbn_ukr_f32)(pbn_int kc, const float *const *a, pbn_int as, const float *b, pbn_int bs,
                            float *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                            int load_c, const float *bias, int relu);
typedef void (*pbn_ukr_f64)(pbn_int kc, const double *const *a, pbn_int as, const double *b, pbn_int bs,
                            double *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                            int load_c, const double *bias, int relu);

/* Micro-kernels, named by ISA and tile; call one only when pbn_isa() is at least its ISA.
 * AVX2 + FMA (gemm_avx2.c) */
void pbn_sgemm_avx2_6x16(pbn_int kc, const float *const *a, pbn_int as, const float *b, pbn_int bs,
                         float *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                         int load_c, const float *bias, int relu);
void pbn_dgemm_avx2_6x8(pbn_int kc, const double *const *a, pbn_int as, const double *b, pbn_int bs,
                        double *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                        int load_c, const double *bias, int relu);
/* AVX-512 F/BW/VL/DQ + FMA (gemm_avx512.c) */
void pbn_sgemm_avx512_12x32(pbn_int kc, const float *const *a, pbn_int as, const float *b, pbn_int bs,
                            float *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                            int load_c, const float *bias, int relu);
void pbn_dgemm_avx512_12x16(pbn_int kc, const double *const *a, pbn_int as, const double *b, pbn_int bs,
                            double *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                            int load_c, const double *bias, int relu);

/* Whole small products without packing (gemm_tiny.c), for the batched path: C := A @ B
 * when m, k <= PBN_TINY_MAX, n is one of the widths below, B and C with unit column stride.
 * pbn_tiny_kernel_<dt>(n) is the kernel of the ISA in use for width n (NULL for other n);
 * it ignores n where the kernel is made for one width. */
#define PBN_TINY_MAX 64
#define PBN_TINY_WIDTH_F32(n) ((n) == 8 || (n) == 16 || (n) == 32 || (n) == 64)
#define PBN_TINY_WIDTH_F64(n) ((n) == 8 || (n) == 16 || (n) == 32)
typedef void (*pbn_tiny_f32)(pbn_int m, pbn_int n, pbn_int k, const float *A, pbn_int rsa,
                             pbn_int csa, const float *B, pbn_int rsb, float *C, pbn_int rsc);
typedef void (*pbn_tiny_f64)(pbn_int m, pbn_int n, pbn_int k, const double *A, pbn_int rsa,
                             pbn_int csa, const double *B, pbn_int rsb, double *C, pbn_int rsc);
pbn_tiny_f32 pbn_tiny_kernel_f32(pbn_int n);
pbn_tiny_f64 pbn_tiny_kernel_f64(pbn_int n);

/* Zero-skipping float32 product for a mostly-zero A (gemm_sparse.c): same arguments and
 * result as pbn_gemm_f32 (up to summation order); returns 0 and does nothing when A is not
 * sparse enough, B has a non-finite value, or the shape / CPU does not qualify. With a
 * step (pbn_gemm_sgd_f32), C is not written: the step's update is applied instead
 * (accumulate, bias and relu must then be off). */
int pbn_sparse_gemm_f32(pbn_int m, pbn_int n, pbn_int k, const float *A, pbn_int rsa,
                        pbn_int csa, const pbn_int *a_rows, const float *B, pbn_int rsb,
                        pbn_int csb, float *C, pbn_int rsc, pbn_int csc, int accumulate,
                        const float *bias, int relu, const pbn_sgd_step_f32 *step,
                        int n_threads);

/* Small-n float32 product, dot products along k (gemm_dot.c): same arguments and result
 * as pbn_gemm_f32; returns 0 and does nothing when the shape / CPU does not qualify or
 * scratch cannot be had. */
int pbn_dot_gemm_f32(pbn_int m, pbn_int n, pbn_int k, const float *A, pbn_int rsa,
                     pbn_int csa, const pbn_int *a_rows, const float *B, pbn_int rsb,
                     pbn_int csb, float *C, pbn_int rsc, pbn_int csc, int accumulate,
                     const float *bias, int relu, int n_threads);

/* Its kernels. AVX2 (gemm_avx2.c): for the 3 rows a[0..2] (contiguous in p) and nb <= 4
 * rows of bt (B transposed, row j at bt + j * ldb, contiguous in p), out[r * 4 + j] :=
 * sum_p a[r][p] * bt[j * ldb + p]: lane l of an 8-lane FMA chain sums the p = l (mod 8),
 * the lanes are then added in a fixed tree. AVX-512 (gemm_avx512.c): the same sums, bit for
 * bit, for PBN_DOT_ROWS rows a[r] and all n <= 16 columns, from B^T packed in column pairs
 * by pbn_dot_pack_pairs (gemm_dot.c): out[r * 16 + j]. */
#define PBN_DOT_ROWS 4
void pbn_dot3x4_avx2_f32(pbn_int k, const float *const *a, const float *bt, pbn_int ldb,
                         int nb, float *out);
void pbn_dot_rows_avx512_f32(pbn_int k, const float *const *a, const float *bp, int n,
                             float *out);

#endif
