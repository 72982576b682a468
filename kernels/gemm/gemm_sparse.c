/* Zero-skipping float32 GEMM for a mostly-zero A, such as a batch of MNIST images (81% of
 * the pixels are exactly 0) in the first layer's forward product x @ W and its weight
 * gradient x.T @ dh. Dense kernels multiply those zeros; here the rows of A are compressed
 * first, PBN_SPARSE_GROUP rows at a time, to the columns where any row of the group is
 * nonzero (one pass over A, which costs 1/n of the product), and
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
 * order whatever the thread count. pbn_gemm_sgd_f32 (gemm.h) runs the same product with
 * an optimizer step in place of the store of C.
 *
 * Why groups: a listed column costs one load of a 64-column row block of B (from L2) for
 * the whole group instead of one per row. On MNIST batches the union of 6 rows lists 0.38
 * (x @ W1) / 0.30 (x.T @ dh: neighbouring pixels) of the B rows that 6 single-row lists
 * would, for 2.3x / 1.8x the FMAs (the listed zeros): on the Xeon of 2026-12-05 the tile
 * loop moved from the L2 stream to the FMA pipes at about the same time for x @ W1
 * (427 -> 410 us, 1 thread) and x.T @ dh gained with the column-wise compress of x.T and
 * row-block tasks below (358 -> 270 us, 1 thread; 214 -> 166 us, 2 threads). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "gemm_internal.h"
#include "../openmp_shim.h"
#include "../pbn_runtime.h"

#define PBN_SPARSE_MAX_DENSITY 0.30   /* nonzeros / (m k) */
#define PBN_SPARSE_MIN_N 32           /* compressing A costs m k: worth it for wide B */
#define PBN_SPARSE_COLS 64            /* columns per task (a packed B block) */
#define PBN_SPARSE_GROUP 6            /* rows of A sharing one column list (registers: the tiles) */
#define PBN_SPARSE_ROWS (6 * PBN_SPARSE_GROUP) /* rows per task */
#define PBN_SPARSE_MAX_ELEMS (1 << 23) /* m k: the compressed copy takes ~5 bytes each */
#define PBN_SPARSE_ROWS_OUTER_BYTES (512 * 1024) /* packed B up to this: row-block tasks */
#define PBN_SPARSE_PAD 16             /* slots past a list's k (whole-vector stores) */
_Static_assert(PBN_SPARSE_GROUP == 6, "gemm_sparse_tpl.h dispatches groups of 1..6 rows");
_Static_assert(PBN_SPARSE_ROWS % PBN_SPARSE_GROUP == 0, "a task holds whole groups");
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

/* The group of rows a[0 .. rows) of A compressed: the nu columns where any row is nonzero
 * at col[0 .. nu), in increasing p, and row r's value there at val[r * kp + q] (its zeros
 * included). Returns nu; adds the group's nonzeros to *nnz. col and val[r * kp] have
 * PBN_SPARSE_PAD writable slots past k (the vector path stores whole vectors). */
PBN_AVX2 static int32_t sparse_compress_group(const float *const *a, int rows, pbn_int csa,
                                              pbn_int k, int32_t *col, float *val, pbn_int kp,
                                              double *nnz)
{
    int32_t nu = 0;
    long nonzeros = 0;
    for (pbn_int p = 0; p < k; p++) {
        int any = 0;
        for (int r = 0; r < rows; r++) {
            const float x = a[r][p * csa];
            val[r * kp + nu] = x;
            any |= x != 0.0f;
            nonzeros += x != 0.0f;
        }
        col[nu] = (int32_t)p;
        nu += any;                   /* branch-free: random zeros would mispredict */
    }
    *nnz += (double)nonzeros;
    return nu;
}

/* The same for contiguous rows, 16 columns a step: the columns where any row is nonzero
 * and each row's values there are packed to the front of a register (vpcompressd /
 * vcompressps, register form) and stored whole; the next store starts where they end. */
PBN_AVX512 static int32_t sparse_compress_group_avx512(const float *const *a, int rows,
                                                       pbn_int k, int32_t *col, float *val,
                                                       pbn_int kp, double *nnz)
{
    int32_t nu = 0;
    long nonzeros = 0;
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    for (pbn_int p = 0; p < k; p += 16) {
        const __mmask16 in = k - p >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k - p)) - 1);
        __m512 x[PBN_SPARSE_GROUP];
        __mmask16 any = 0;
        for (int r = 0; r < rows; r++) {
            x[r] = _mm512_maskz_loadu_ps(in, a[r] + p);
            const __mmask16 nz = _mm512_mask_cmp_ps_mask(in, x[r], _mm512_setzero_ps(),
                                                         _CMP_NEQ_UQ);
            any |= nz;
            nonzeros += __builtin_popcount((unsigned)nz);
        }
        _mm512_storeu_si512(col + nu, _mm512_maskz_compress_epi32(any, idx));
        for (int r = 0; r < rows; r++)
            _mm512_storeu_ps(val + r * kp + nu, _mm512_maskz_compress_ps(any, x[r]));
        nu += __builtin_popcount((unsigned)any);
        idx = _mm512_add_epi32(idx, step);
    }
    *nnz += (double)nonzeros;
    return nu;
}

/* The group of the rows i0 .. i0 + rows of A where A has unit row stride (A = x.T, the
 * weight gradient's x.T @ dh): column p of the group is `rows` contiguous floats, read as
 * one masked vector; the values are stored the other way round, the q-th listed column's
 * at val[q * PBN_SPARSE_GROUP + r]. Same lists as sparse_compress_group. */
PBN_AVX2 static int32_t sparse_compress_group_t(const float *a0, int rows, pbn_int csa,
                                                pbn_int k, int32_t *col, float *val,
                                                double *nnz)
{
    int32_t nu = 0;
    long nonzeros = 0;
    const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows),
                                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (pbn_int p = 0; p < k; p++) {
        const __m256 x = _mm256_maskload_ps(a0 + p * csa, lanes);
        const int nz = _mm256_movemask_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NEQ_UQ));
        _mm256_maskstore_ps(val + (pbn_int)nu * PBN_SPARSE_GROUP, lanes, x);
        col[nu] = (int32_t)p;
        nonzeros += __builtin_popcount((unsigned)nz);
        nu += nz != 0;               /* masked-off lanes load as 0: nz has no bit past rows */
    }
    *nnz += (double)nonzeros;
    return nu;
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
                        const float *bias, int relu, const pbn_sgd_step_f32 *step,
                        int n_threads)
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
    /* A = x.T (unit row stride): the group's column is contiguous, values stored by column */
    const int transposed = rsa == 1 && csa != 1 && !a_rows;
    const pbn_int groups = (m + PBN_SPARSE_GROUP - 1) / PBN_SPARSE_GROUP;
    const pbn_int kp = k + PBN_SPARSE_PAD;        /* slots per list */
    const size_t list_slots = (size_t)groups * (size_t)kp;
    const pbn_int col_blocks = (n + PBN_SPARSE_COLS - 1) / PBN_SPARSE_COLS;
    const size_t bp_elems = (size_t)col_blocks * (size_t)k * PBN_SPARSE_COLS;
    char *mem = (char *)pbn_scratch(bp_elems * sizeof(float)
                                    + list_slots * (1 + PBN_SPARSE_GROUP) * sizeof(float)
                                    + (size_t)groups * sizeof(int32_t) + 64);
    if (!mem) return 0;
    float *Bp = (float *)mem;                      /* column block cb at Bp + cb * k * COLS */
    float *val = Bp + bp_elems;                    /* group g, row r: val + (g GROUP + r) kp */
    int32_t *col = (int32_t *)(val + list_slots * PBN_SPARSE_GROUP);  /* group g: col + g kp */
    int32_t *count = col + list_slots;             /* group g lists count[g] columns */
    const pbn_int rs = transposed ? 1 : kp;        /* row r, q-th column: val[r rs + q qs] */
    const pbn_int qs = transposed ? PBN_SPARSE_GROUP : 1;

    const pbn_int row_blocks = (m + PBN_SPARSE_ROWS - 1) / PBN_SPARSE_ROWS;
    /* Tasks: when the packed B fits in L2 (x.T @ dh: 256 KB), a task is a row block across
     * all columns, so C (or the step's W and V, which come from memory) is swept in whole
     * rows, as the streaming prefetchers like it (by column blocks, the fused step ran at
     * 0.81x the unfused one on 2 threads); otherwise (x @ W1: 1.6 MB) column block outer,
     * so that a task's B block stays in L2. */
    const int rows_outer = bp_elems * sizeof(float) <= PBN_SPARSE_ROWS_OUTER_BYTES;
    const pbn_int tasks = rows_outer ? row_blocks : col_blocks * row_blocks;
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
        for (pbn_int g = 0; g < groups; g++) {
            const pbn_int i0 = g * PBN_SPARSE_GROUP;
            const int rows = (int)(m - i0 < PBN_SPARSE_GROUP ? m - i0 : PBN_SPARSE_GROUP);
            int32_t *gc = col + (size_t)g * kp;
            float *gv = val + (size_t)g * PBN_SPARSE_GROUP * kp;
            if (transposed) {
                count[g] = sparse_compress_group_t(A + i0, rows, csa, k, gc, gv, &nnz);
                continue;
            }
            const float *a[PBN_SPARSE_GROUP];
            for (int r = 0; r < rows; r++) a[r] = A + (a_rows ? a_rows[i0 + r] : i0 + r) * rsa;
            count[g] = avx512 && csa == 1
                ? sparse_compress_group_avx512(a, rows, k, gc, gv, kp, &nnz)
                : sparse_compress_group(a, rows, csa, k, gc, gv, kp, &nnz);
        }
        _Pragma("omp for schedule(static) reduction(|:special)")
        for (pbn_int cb = 0; cb < col_blocks; cb++) {
            const pbn_int j_lo = cb * PBN_SPARSE_COLS;
            const pbn_int j_hi = j_lo + PBN_SPARSE_COLS < n ? j_lo + PBN_SPARSE_COLS : n;
            special |= sparse_pack_b(k, B, rsb, j_lo, j_hi, Bp + (size_t)cb * k * PBN_SPARSE_COLS);
        }
        _Pragma("omp single")
        go = !special && nnz <= PBN_SPARSE_MAX_DENSITY * (double)m * (double)k;
        /* 2. the product in (row block, column range) tasks */
        if (go) {
            _Pragma("omp for schedule(static) nowait")
            for (pbn_int t = 0; t < tasks; t++) {
                const pbn_int cb = rows_outer ? 0 : t / row_blocks;
                const pbn_int rb = rows_outer ? t : t % row_blocks;
                const pbn_int j_lo = cb * PBN_SPARSE_COLS, i_lo = rb * PBN_SPARSE_ROWS;
                const pbn_int j_hi = rows_outer || j_lo + PBN_SPARSE_COLS > n
                                     ? n : j_lo + PBN_SPARSE_COLS;
                const pbn_int i_hi = i_lo + PBN_SPARSE_ROWS < m ? i_lo + PBN_SPARSE_ROWS : m;
                if (avx512)
                    sparse_task_avx512(m, k, count, col, val, kp, rs, qs, i_lo, i_hi, Bp, j_lo,
                                       j_hi, C, rsc, accumulate, bias, relu, step);
                else
                    sparse_task_avx2(m, k, count, col, val, kp, rs, qs, i_lo, i_hi, Bp, j_lo,
                                     j_hi, C, rsc, accumulate, bias, relu, step);
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
                        const float *bias, int relu, const pbn_sgd_step_f32 *step,
                        int n_threads)
{
    (void)step; (void)m; (void)n; (void)k; (void)A; (void)rsa; (void)csa; (void)a_rows; (void)B;
    (void)rsb; (void)csb; (void)C; (void)rsc; (void)csc; (void)accumulate; (void)bias;
    (void)relu; (void)n_threads;
    return 0;
}
#endif
