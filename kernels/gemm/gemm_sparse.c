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
 * increasing p, on every ISA: the avx512 and avx2 tiles give the same bits). Used when A's
 * density is at most PBN_SPARSE_MAX_DENSITY, with AVX2 + FMA or AVX-512 (the tile kernels
 * of each: gemm_sparse_tpl.h; contiguous rows of A are compressed with vcompressps on
 * AVX-512); the portable path always runs dense. The work is split into fixed (column
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
#define PBN_SPARSE_PAD 16             /* slots past the last row's k (whole-vector stores) */
#define PBN_SPARSE_PARALLEL_MIN 1e6   /* m n k below which one thread does everything */
double pbn_sparse_parallel_min(void) { return PBN_SPARSE_PARALLEL_MIN; }

/* products computed here so far (tests read it to prove the path is taken) */
static unsigned long pbn_sparse_products = 0;
unsigned long pbn_gemm_sparse_products(void) { return pbn_sparse_products; }

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define PBN_AVX2 __attribute__((target("avx2,fma")))
#define PBN_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))

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

/* Row i of A compressed: its nonzeros at col / val [i * k, i * k + count[i]), in p order.
 * col and val have PBN_SPARSE_PAD writable slots past k (the vector path stores whole
 * vectors). */
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

/* The same for a contiguous row, 16 elements a step: the nonzeros and their indices are
 * packed to the front of a register (vcompressps / vpcompressd, register form) and stored
 * whole; the next store starts where the nonzeros end. */
PBN_AVX512 static int32_t sparse_compress_row_avx512(const float *a, pbn_int k, int32_t *col,
                                                     float *val)
{
    int32_t nnz = 0;
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    pbn_int p = 0;
    for (; p + 16 <= k; p += 16) {
        const __m512 x = _mm512_loadu_ps(a + p);
        const __mmask16 nz = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        _mm512_storeu_ps(val + nnz, _mm512_maskz_compress_ps(nz, x));
        _mm512_storeu_si512(col + nnz, _mm512_maskz_compress_epi32(nz, idx));
        nnz += __builtin_popcount((unsigned)nz);
        idx = _mm512_add_epi32(idx, step);
    }
    if (p < k) {
        const __mmask16 in = (__mmask16)((1u << (k - p)) - 1);
        const __m512 x = _mm512_maskz_loadu_ps(in, a + p);
        const __mmask16 nz = _mm512_mask_cmp_ps_mask(in, x, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        _mm512_storeu_ps(val + nnz, _mm512_maskz_compress_ps(nz, x));
        _mm512_storeu_si512(col + nnz, _mm512_maskz_compress_epi32(nz, idx));
        nnz += __builtin_popcount((unsigned)nz);
    }
    return nnz;
}

/* ---- the tile kernels per ISA (gemm_sparse_tpl.h) ---- */
#define PBN_VEC PBN_VEC_AVX2_F32
#include "gemm_vec.h"
#include "gemm_sparse_tpl.h"
#include "gemm_vec_undef.h"

#define PBN_VEC PBN_VEC_AVX512_F32
#include "gemm_vec.h"
#include "gemm_sparse_tpl.h"
#include "gemm_vec_undef.h"

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
    const int avx512 = pbn_isa() >= PBN_ISA_AVX512;
    const size_t slots = (size_t)m * (size_t)k + PBN_SPARSE_PAD;
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
            const float *a = A + (a_rows ? a_rows[i] : i) * rsa;
            count[i] = avx512 && csa == 1
                ? sparse_compress_row_avx512(a, k, col + (size_t)i * k, val + (size_t)i * k)
                : sparse_compress_row(a, csa, k, col + (size_t)i * k, val + (size_t)i * k);
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
                const float *Bb = Bp + (size_t)cb * k * PBN_SPARSE_COLS;
                if (avx512)
                    sparse_task_avx512(count, col, val, k, i_lo, i_hi, Bb, j_lo, j_hi - j_lo,
                                       C, rsc, accumulate, bias, relu);
                else
                    sparse_task_avx2(count, col, val, k, i_lo, i_hi, Bb, j_lo, j_hi - j_lo,
                                     C, rsc, accumulate, bias, relu);
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
