/* Matrix-vector products for the GEMM engine (see gemv.h).
 *
 * Both shapes reduce to  y_i = sum_p M(i, p) v(p),  i < rows:
 *   n == 1:  M = A (rows = m, row gather allowed), v = B's column, y = C's column;
 *   m == 1:  M = B^T (rows = n),                   v = A's row,    y = C's row.
 * Two loop orders, picked from strides only:
 *   - "dot":  M's rows are contiguous (unit p stride): each y_i is a dot product, summed
 *             in 64 bytes of interleaved partial sums combined pairwise, four rows at a
 *             time (the vector read once for the four) with the same order as one row;
 *   - "axpy": M's columns are contiguous (unit i stride): y += M[:, p] v(p) for p in order,
 *             vectorised across i, on a block of AXPY_BLOCK rows at a time (long
 *             contiguous runs of each column: short ones, a page apart, ran 3x slower).
 * Threads take fixed blocks of rows; a single long dot product (rows == 1) is cut into
 * fixed chunks of k whose partial sums are added in chunk order. Every y_i is therefore
 * summed in an order set by the shapes alone: 1 and N threads agree bitwise.
 * The inner loops (gemv_tpl.h) are compiled for AVX-512, AVX2 and the baseline and picked by
 * the ISA in use (gemm_runtime.h); none contracts into FMA, so all three agree bitwise.
 */
#include <stdlib.h>
#include "gemv.h"
#include "gemm_internal.h"
#include "../openmp_shim.h"
#include "../pbn_runtime.h"

#define ROW_BLOCK 64          /* rows per task of the dot order */
#define AXPY_BLOCK 1024       /* rows per task of the axpy order (its sums stay in L1) */
#define DOT_CHUNK 16384       /* k per partial sum of a single long dot product */
#define PARALLEL_MIN 65536    /* rows * k below which one thread does everything */
double pbn_gemv_parallel_min(void) { return PARALLEL_MIN; }

/* Lanes of partial sums per dot product: 64 bytes (16 float, 8 double). */
#define DOT_LANES(T) ((int)(64 / sizeof(T)))

#define DEFINE_GEMV_KERNELS(T, SUF)                                                        \
typedef struct {                                                                          \
    T (*dot)(const T *x, const T *y, pbn_int incy, pbn_int k);                            \
    void (*dot4)(const T *const *x, const T *y, pbn_int k, T *out);                       \
    void (*axpy_block)(const T *M, pbn_int cs, const T *v, pbn_int incv, pbn_int k, T *y, \
                       pbn_int rows);                                                     \
} gemv_kernels_##SUF;
DEFINE_GEMV_KERNELS(float, f32)
DEFINE_GEMV_KERNELS(double, f64)

/* ---- the inner loops per ISA ---- */
#define ISA portable
#define T float
#define SUF f32
#include "gemv_tpl.h"
#undef T
#undef SUF
#define T double
#define SUF f64
#include "gemv_tpl.h"
#undef T
#undef SUF
#undef ISA

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define PBN_GEMV_X86 1
#pragma GCC push_options
#pragma GCC target("avx2")
#define ISA avx2
#define T float
#define SUF f32
#include "gemv_tpl.h"
#undef T
#undef SUF
#define T double
#define SUF f64
#include "gemv_tpl.h"
#undef T
#undef SUF
#undef ISA
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,prefer-vector-width=512")
#define ISA avx512
#define T float
#define SUF f32
#include "gemv_tpl.h"
#undef T
#undef SUF
#define T double
#define SUF f64
#include "gemv_tpl.h"
#undef T
#undef SUF
#undef ISA
#pragma GCC pop_options
#else
#define PBN_GEMV_X86 0
#endif

#define DEFINE_GEMV_PICK(SUF)                                                             \
static const gemv_kernels_##SUF *gemv_pick_##SUF(void)                                    \
{                                                                                         \
    switch (PBN_GEMV_X86 ? pbn_isa() : PBN_ISA_PORTABLE) {                                \
    PBN_GEMV_CASES(SUF)                                                                   \
    default: return &gemv_kernels_portable_##SUF;                                         \
    }                                                                                     \
}
#if PBN_GEMV_X86
#define PBN_GEMV_CASES(SUF)                                                               \
    case PBN_ISA_AVX512: return &gemv_kernels_avx512_##SUF;                               \
    case PBN_ISA_AVX2: return &gemv_kernels_avx2_##SUF;
#else
#define PBN_GEMV_CASES(SUF)
#endif
DEFINE_GEMV_PICK(f32)
DEFINE_GEMV_PICK(f64)

#define DEFINE_GEMV(T, SUF)                                                               \
/* y[i] := sum_p M[i*rs + p*cs] v[p*incv] for i < rows, with a general-stride M */        \
static void gather_dots_##SUF(const gemv_kernels_##SUF *kr, const T *M, pbn_int rs,       \
                              pbn_int cs, const pbn_int *rows_idx, const T *v,            \
                              pbn_int incv, pbn_int k, T *y, pbn_int rows)                \
{                                                                                         \
    pbn_int i = 0;                                                                        \
    if (cs == 1 && incv == 1)                                                             \
        for (; i + 4 <= rows; i += 4) {                                                   \
            const T *x[4];                                                                \
            for (int r = 0; r < 4; r++) x[r] = M + (rows_idx ? rows_idx[i + r] : i + r) * rs; \
            kr->dot4(x, v, k, y + i);                                                     \
        }                                                                                 \
    for (; i < rows; i++) {                                                               \
        const T *row = M + (rows_idx ? rows_idx[i] : i) * rs;                             \
        if (cs == 1) { y[i] = kr->dot(row, v, incv, k); continue; }                       \
        T s = 0;                                                                          \
        for (pbn_int p = 0; p < k; p++) s += row[p * cs] * v[p * incv];                   \
        y[i] = s;                                                                         \
    }                                                                                     \
}                                                                                         \
static void epilogue_##SUF(const T *sums, pbn_int rows, T *Y, pbn_int incy, int accumulate,\
                           const T *bias, pbn_int inc_bias, int relu)                     \
{                                                                                         \
    for (pbn_int i = 0; i < rows; i++)                                                    \
        Y[i * incy] = PBN_EPILOGUE(sums[i], Y + i * incy, accumulate,                      \
                                   bias ? bias + i * inc_bias : NULL, relu);              \
}                                                                                         \
/* rows r0..r1 of y := M v, then the epilogue */                                          \
static void row_block_##SUF(const gemv_kernels_##SUF *kr, int axpy, const T *M,           \
                            pbn_int rs, pbn_int cs, const pbn_int *rows_idx,              \
                            const T *v, pbn_int incv, pbn_int k, T *Y, pbn_int incy,      \
                            int accumulate, const T *bias, pbn_int inc_bias, int relu,    \
                            pbn_int r0, pbn_int r1)                                       \
{                                                                                         \
    T sums[AXPY_BLOCK];                                                                   \
    pbn_int rows = r1 - r0;                                                               \
    if (axpy)                                                                             \
        kr->axpy_block(M + r0, cs, v, incv, k, sums, rows);                               \
    else                                                                                  \
        gather_dots_##SUF(kr, rows_idx ? M : M + r0 * rs, rs, cs,                         \
                          rows_idx ? rows_idx + r0 : NULL, v, incv, k, sums, rows);       \
    epilogue_##SUF(sums, rows, Y + r0 * incy, incy, accumulate,                           \
                   bias ? bias + r0 * inc_bias : NULL, inc_bias, relu);                   \
}                                                                                         \
static void gemv_##SUF(const T *M, pbn_int rs, pbn_int cs, const pbn_int *rows_idx,       \
                       const T *v, pbn_int incv, pbn_int k, T *Y, pbn_int incy,           \
                       pbn_int rows, int accumulate, const T *bias, pbn_int inc_bias,     \
                       int relu, int n_threads)                                           \
{                                                                                         \
    const gemv_kernels_##SUF *kr = gemv_pick_##SUF();                                     \
    if ((double)rows * (double)k < PARALLEL_MIN) n_threads = 1;                           \
    if (rows == 1 && k > DOT_CHUNK && (cs == 1 || k == 1)) {                              \
        const T *row = M + (rows_idx ? rows_idx[0] : 0) * rs;                             \
        pbn_int n_chunks = (k + DOT_CHUNK - 1) / DOT_CHUNK;                               \
        T *part = (T *)malloc((size_t)n_chunks * sizeof(T));                              \
        if (part) {                                                                       \
            if (n_threads > n_chunks) n_threads = (int)n_chunks;                          \
            pbn_region reg;                                                               \
            n_threads = pbn_region_begin(&reg, n_threads);                                \
            pbn_count(PBN_PATH_GEMM_GEMV, n_threads);                                     \
            _Pragma("omp parallel for num_threads(n_threads) schedule(static)")           \
            for (pbn_int c = 0; c < n_chunks; c++) {                                      \
                pbn_region_check(&reg);                                                   \
                pbn_int p0 = c * DOT_CHUNK;                                               \
                pbn_int len = k - p0 < DOT_CHUNK ? k - p0 : DOT_CHUNK;                    \
                part[c] = kr->dot(row + p0, v + p0 * incv, incv, len);                    \
                pbn_region_done(&reg);                                                    \
            }                                                                             \
            pbn_region_end(&reg, n_threads);                                              \
            T s = 0;                                                                      \
            for (pbn_int c = 0; c < n_chunks; c++) s += part[c];                          \
            free(part);                                                                   \
            epilogue_##SUF(&s, 1, Y, incy, accumulate, bias, inc_bias, relu);             \
            return;                                                                       \
        }                                                                                 \
    }                                                                                     \
    const int axpy = rs == 1 && cs != 1 && !rows_idx;                                     \
    const pbn_int block = axpy ? AXPY_BLOCK : ROW_BLOCK;                                  \
    pbn_int n_blocks = (rows + block - 1) / block;                                        \
    if (n_threads > n_blocks) n_threads = (int)(n_blocks > 0 ? n_blocks : 1);             \
    pbn_region reg;                                                                       \
    n_threads = pbn_region_begin(&reg, n_threads);                                        \
    pbn_count(PBN_PATH_GEMM_GEMV, n_threads);                                             \
    _Pragma("omp parallel for num_threads(n_threads) schedule(static)")                   \
    for (pbn_int b = 0; b < n_blocks; b++) {                                              \
        pbn_region_check(&reg);                                                           \
        pbn_int r0 = b * block, r1 = r0 + block < rows ? r0 + block : rows;               \
        row_block_##SUF(kr, axpy, M, rs, cs, rows_idx, v, incv, k, Y, incy, accumulate,   \
                        bias, inc_bias, relu, r0, r1);                                    \
        pbn_region_done(&reg);                                                            \
    }                                                                                     \
    pbn_region_end(&reg, n_threads);                                                      \
}                                                                                         \
int pbn_gemv_##SUF(pbn_int m, pbn_int n, pbn_int k,                                       \
                   const T *A, pbn_int rsa, pbn_int csa, const pbn_int *a_rows,           \
                   const T *B, pbn_int rsb, pbn_int csb, T *C, pbn_int rsc, pbn_int csc,  \
                   int accumulate, const T *bias, int relu, int n_threads)                \
{                                                                                         \
    if (k <= 0 || (m != 1 && n != 1)) return 0;                                           \
    if (n == 1)  /* C[:, 0] = A @ B[:, 0]; the bias is the one value bias[0] */           \
        gemv_##SUF(A, rsa, csa, a_rows, B, rsb, k, C, rsc, m, accumulate, bias, 0, relu,  \
                   n_threads);                                                            \
    else         /* C[0, :] = B^T @ A[row 0, :]; M(j, p) = B[p*rsb + j*csb] */            \
        gemv_##SUF(B, csb, rsb, NULL, A + (a_rows ? a_rows[0] : 0) * rsa, csa, k, C, csc, \
                   n, accumulate, bias, 1, relu, n_threads);                              \
    return 1;                                                                             \
}

DEFINE_GEMV(float, f32)
DEFINE_GEMV(double, f64)
