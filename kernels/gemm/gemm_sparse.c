/* Zero-skipping float32 GEMM for a mostly-zero A, such as a batch of MNIST images (81% of
 * the pixels are exactly 0) in the first layer's forward product x @ W and its weight
 * gradient x.T @ dh. Dense kernels multiply those zeros; here each row of A is compressed
 * to its nonzeros first (one pass over A, which costs 1/n of the product), and
 *
 *   C[i, j] := (accumulate ? C[i, j] : 0) + sum over p with A[i, p] != 0 of A[i, p] B[p, j]
 *
 * then the usual bias / relu epilogue. Skipping a term A[i, p] B[p, j] with A[i, p] == 0
 * leaves the sum unchanged as long as B[p, j] is finite (0 * inf would be NaN), so B is
 * checked first and any non-finite B falls back to the dense path: results equal the dense
 * product up to rounding order (no KC slicing here: one FMA chain per element, in
 * increasing p). Used when A's density is at most PBN_SPARSE_MAX_DENSITY, with AVX2 + FMA
 * only (the portable build always runs dense). The work is split into fixed (column
 * block, row block) tasks and every C element is computed by one task, in the same
 * order whatever the thread count. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "gemm_internal.h"
#include "../openmp_shim.h"
#include "../pbn_runtime.h"

#define PBN_SPARSE_MAX_DENSITY 0.30   /* nonzeros / (m k) */
#define PBN_SPARSE_MIN_N 32           /* compressing A costs m k: worth it for wide B */
#define PBN_SPARSE_COLS 64            /* columns per task: 8 vector accumulators */
#define PBN_SPARSE_ROWS 32            /* rows per task */
#define PBN_SPARSE_MAX_ELEMS (1 << 23) /* m k: the compressed copy takes 8 bytes each */
#define PBN_SPARSE_PARALLEL_MIN 1e6   /* m n k below which one thread does everything */
double pbn_sparse_parallel_min(void) { return PBN_SPARSE_PARALLEL_MIN; }

/* products computed here so far (tests read it to prove the path is taken) */
static unsigned long pbn_sparse_products = 0;
unsigned long pbn_gemm_sparse_products(void) { return pbn_sparse_products; }

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define PBN_AVX2 __attribute__((target("avx2,fma")))

/* Copy columns j_lo..j_hi (at most PBN_SPARSE_COLS) of B's k rows into dst (k x
 * PBN_SPARSE_COLS, zero-padded), so a task reads its block contiguously (rows of B are
 * a power-of-two stride apart and would fall into a few L1 sets); returns 1 if a copied
 * value is not finite (exponent field all ones: an integer OR the compiler vectorises). */
PBN_AVX2 static int sparse_pack_b(pbn_int k, const float *B, pbn_int rsb, pbn_int j_lo, pbn_int j_hi,
                         float *dst)
{
    uint32_t special = 0;
    const pbn_int w = j_hi - j_lo;
    for (pbn_int p = 0; p < k; p++) {
        const float *b = B + p * rsb + j_lo;
        float *d = dst + p * PBN_SPARSE_COLS;
        for (pbn_int j = 0; j < w; j++) {
            uint32_t u;
            memcpy(&u, b + j, sizeof u);
            special |= (u & 0x7f800000u) == 0x7f800000u;
            d[j] = b[j];
        }
        for (pbn_int j = w; j < PBN_SPARSE_COLS; j++) d[j] = 0.0f;
    }
    return special != 0;
}

/* C[i, j0 + jb : j0 + jb + 8 NV] for rows i_lo..i_hi, from the compressed rows (row i has
 * count[i] nonzeros, at col / val [i * k ...]) and the packed B block Bb of columns
 * j0.. (row p at Bb + p * PBN_SPARSE_COLS) */
PBN_AVX2 __attribute__((always_inline)) static inline void
sparse_tile(const int NV, const int32_t *count, const int32_t *col, const float *val,
            pbn_int k, pbn_int i_lo, pbn_int i_hi, const float *Bb, pbn_int j0, pbn_int jb,
            float *C, pbn_int rsc, int accumulate, const float *bias, int relu)
{
    const __m256 zero = _mm256_setzero_ps();
    const float *B = Bb + jb;
    for (pbn_int i = i_lo; i < i_hi; i++) {
        __m256 acc[8];
        for (int v = 0; v < NV; v++) acc[v] = zero;
        const int32_t *ci = col + i * k;
        const float *vi = val + i * k;
        const int32_t nq = count[i];
        for (int32_t q = 0; q < nq; q++) {
            const __m256 a = _mm256_set1_ps(vi[q]);
            const float *b = B + (pbn_int)ci[q] * PBN_SPARSE_COLS;
            for (int v = 0; v < NV; v++) acc[v] = _mm256_fmadd_ps(a, _mm256_loadu_ps(b + 8 * v), acc[v]);
        }
        float *c = C + i * rsc + j0 + jb;
        for (int v = 0; v < NV; v++) {
            __m256 x = acc[v];
            if (accumulate) x = _mm256_add_ps(_mm256_loadu_ps(c + 8 * v), x);
            if (bias) x = _mm256_add_ps(x, _mm256_loadu_ps(bias + j0 + jb + 8 * v));
            if (relu) x = _mm256_max_ps(zero, x);   /* NaN stays NaN, as in the dense kernel */
            _mm256_storeu_ps(c + 8 * v, x);
        }
    }
}

/* the same for the last w < 8 columns of a block, one at a time */
PBN_AVX2 static void sparse_tail(const int32_t *count, const int32_t *col, const float *val,
                                 pbn_int k, pbn_int i_lo, pbn_int i_hi, const float *Bb,
                                 pbn_int j0, pbn_int jb, pbn_int w, float *C, pbn_int rsc,
                                 int accumulate, const float *bias, int relu)
{
    for (pbn_int i = i_lo; i < i_hi; i++)
        for (pbn_int j = jb; j < jb + w; j++) {
            float s = 0.0f;
            for (int32_t q = 0; q < count[i]; q++)
                s = __builtin_fmaf(val[i * k + q], Bb[(pbn_int)col[i * k + q] * PBN_SPARSE_COLS + j], s);
            float *c = C + i * rsc + j0 + j;
            if (accumulate) s = *c + s;
            if (bias) s = s + bias[j0 + j];
            if (relu) s = s < 0 ? 0.0f : s;
            *c = s;
        }
}

/* rows i_lo..i_hi x the w columns of the block starting at column j0 */
PBN_AVX2 static void sparse_task(const int32_t *count, const int32_t *col, const float *val,
                                 pbn_int k, pbn_int i_lo, pbn_int i_hi, const float *Bb,
                                 pbn_int j0, pbn_int w, float *C, pbn_int rsc,
                                 int accumulate, const float *bias, int relu)
{
    if (w == PBN_SPARSE_COLS) {
        sparse_tile(8, count, col, val, k, i_lo, i_hi, Bb, j0, 0, C, rsc, accumulate, bias, relu);
        return;
    }
    pbn_int jb = 0;
    for (; jb + 8 <= w; jb += 8)
        sparse_tile(1, count, col, val, k, i_lo, i_hi, Bb, j0, jb, C, rsc, accumulate, bias, relu);
    if (jb < w)
        sparse_tail(count, col, val, k, i_lo, i_hi, Bb, j0, jb, w - jb, C, rsc, accumulate,
                    bias, relu);
}

/* Row i of A compressed: its nonzeros at col / val [i * k, i * k + count[i]), in p order. */
PBN_AVX2 static int32_t sparse_compress_row(const float *a, pbn_int csa, pbn_int k, int32_t *col,
                                   float *val)
{
    int32_t nnz = 0;
    for (pbn_int p = 0; p < k; p++) {
        const float x = a[p * csa];
        col[nnz] = (int32_t)p;
        val[nnz] = x;
        nnz += x != 0.0f;            /* branch-free: random zeros would mispredict */
    }
    return nnz;
}

int pbn_sparse_gemm_f32(pbn_int m, pbn_int n, pbn_int k, const float *A, pbn_int rsa,
                        pbn_int csa, const pbn_int *a_rows, const float *B, pbn_int rsb,
                        pbn_int csb, float *C, pbn_int rsc, pbn_int csc, int accumulate,
                        const float *bias, int relu, int n_threads)
{
    if (m <= 0 || k <= 0 || n < PBN_SPARSE_MIN_N || csb != 1 || csc != 1
            || (double)m * (double)k > (double)PBN_SPARSE_MAX_ELEMS || !pbn_gemm_use_simd())
        return 0;
    {   /* a cheap probe first: dense operands (the common case) leave after a few rows */
        const pbn_int rows = m < 4 ? m : 4;
        pbn_int probe = 0;
        for (pbn_int i = 0; i < rows; i++) {
            const float *a = A + (a_rows ? a_rows[i] : i) * rsa;
            for (pbn_int p = 0; p < k; p++) probe += a[p * csa] != 0.0f;
        }
        if ((double)probe > 2.0 * PBN_SPARSE_MAX_DENSITY * (double)rows * (double)k) return 0;
    }
    const size_t slots = (size_t)m * (size_t)k;
    const pbn_int col_blocks = (n + PBN_SPARSE_COLS - 1) / PBN_SPARSE_COLS;
    const size_t bp_elems = (size_t)col_blocks * (size_t)k * PBN_SPARSE_COLS;
    char *mem = (char *)pbn_scratch(bp_elems * sizeof(float)
                                    + slots * (sizeof(int32_t) + sizeof(float))
                                    + (size_t)m * sizeof(int32_t) + 64);
    if (!mem) return 0;
    float *Bp = (float *)mem;                      /* column block cb at Bp + cb * k * COLS */
    int32_t *col = (int32_t *)(Bp + bp_elems);
    float *val = (float *)(col + slots);
    int32_t *count = (int32_t *)(val + slots);     /* row i: col / val [i * k, + count[i]) */

    const pbn_int row_blocks = (m + PBN_SPARSE_ROWS - 1) / PBN_SPARSE_ROWS;
    const pbn_int tasks = col_blocks * row_blocks;
    int nt = n_threads < 1 ? 1 : n_threads;
    if ((double)m * (double)k * (double)n < PBN_SPARSE_PARALLEL_MIN || tasks < 2) nt = 1;
    if (nt > tasks) nt = (int)tasks;
    pbn_region reg;
    nt = pbn_region_begin(&reg, nt);
    (void)nt;                                      /* unused in a build without OpenMP */
    double nnz = 0.0;
    int special = 0, go = 0;
    _Pragma("omp parallel num_threads(nt)")
    {
        pbn_region_check(&reg);
        /* 1. compress A's rows, pack and check B (both split across the team) */
        _Pragma("omp for schedule(static) reduction(+:nnz) nowait")
        for (pbn_int i = 0; i < m; i++) {
            count[i] = sparse_compress_row(A + (a_rows ? a_rows[i] : i) * rsa, csa, k,
                                           col + (size_t)i * k, val + (size_t)i * k);
            nnz += count[i];
        }
        _Pragma("omp for schedule(static) reduction(|:special)")
        for (pbn_int cb = 0; cb < col_blocks; cb++) {
            const pbn_int j_lo = cb * PBN_SPARSE_COLS;
            const pbn_int j_hi = j_lo + PBN_SPARSE_COLS < n ? j_lo + PBN_SPARSE_COLS : n;
            special |= sparse_pack_b(k, B, rsb, j_lo, j_hi, Bp + (size_t)cb * k * PBN_SPARSE_COLS);
        }
        _Pragma("omp single")
        go = !special && nnz <= PBN_SPARSE_MAX_DENSITY * (double)m * (double)k;
        /* 2. the product, column block outer: a task's B block stays in L2 */
        if (go) {
            _Pragma("omp for schedule(static) nowait")
            for (pbn_int t = 0; t < tasks; t++) {
                const pbn_int cb = t / row_blocks, rb = t % row_blocks;
                const pbn_int j_lo = cb * PBN_SPARSE_COLS, i_lo = rb * PBN_SPARSE_ROWS;
                const pbn_int j_hi = j_lo + PBN_SPARSE_COLS < n ? j_lo + PBN_SPARSE_COLS : n;
                const pbn_int i_hi = i_lo + PBN_SPARSE_ROWS < m ? i_lo + PBN_SPARSE_ROWS : m;
                sparse_task(count, col, val, k, i_lo, i_hi,
                            Bp + (size_t)cb * k * PBN_SPARSE_COLS, j_lo, j_hi - j_lo, C, rsc,
                            accumulate, bias, relu);
            }
        }
        pbn_region_done(&reg);
    }
    pbn_region_end(&reg, nt);
    pbn_scratch_done();
    pbn_sparse_products += (unsigned long)go;
    if (go) pbn_count(PBN_PATH_GEMM_SPARSE, nt);
    return go;
}

#else
int pbn_sparse_gemm_f32(pbn_int m, pbn_int n, pbn_int k, const float *A, pbn_int rsa,
                        pbn_int csa, const pbn_int *a_rows, const float *B, pbn_int rsb,
                        pbn_int csb, float *C, pbn_int rsc, pbn_int csc, int accumulate,
                        const float *bias, int relu, int n_threads)
{
    (void)m; (void)n; (void)k; (void)A; (void)rsa; (void)csa; (void)a_rows; (void)B;
    (void)rsb; (void)csb; (void)C; (void)rsc; (void)csc; (void)accumulate; (void)bias;
    (void)relu; (void)n_threads;
    return 0;
}
#endif
