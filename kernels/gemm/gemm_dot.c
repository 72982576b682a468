/* float32 products with a narrow C (n <= 16), as dot products along k.
 *
 * For n <= 16 with A rows contiguous in k (the n = 10 output layer's forward pass
 * (128,512)@(512,10)) a broadcast micro-kernel wastes most of every FMA (n = 10 fills 10 of
 * 16 or 32 lanes); dot products along k use every lane:
 *
 *   C[i, j] := (accumulate ? C[i, j] : 0) + sum_p A[i, p] B[p, j];  + bias[j];  max(0, .)
 *
 * where each sum is 8 FMA chains (lane l takes the p = l mod 8, in p order) added in a fixed
 * tree: the same order on the AVX2 kernel (3 rows x 4 columns of 8-lane accumulators, B^T
 * read in place when B's rows have unit stride, else packed n x k) and the AVX-512 one
 * (PBN_DOT_ROWS rows x all columns, two columns per zmm, B^T packed in column pairs), so
 * the two agree bitwise. Threads take fixed blocks of rows; each element's order depends
 * on k only, so the result is bitwise the same for any thread count. */
#include "gemm_internal.h"
#include "../openmp_shim.h"
#include "../pbn_runtime.h"

/* the shapes this path takes (f32 only; the portable ISA uses the packed engine) */
static int pbn_choose_dot(pbn_int n, pbn_int k, pbn_int csa)
{
    return n <= 16 && k >= 64 && csa == 1;
}

/* C[i, j] of rows i0.. (mr of them) from out[r * ld + j]: the epilogue */
static void pbn_dot_store(pbn_int i0, int mr, pbn_int j0, int nb, const float *out, int ld,
                          float *C, pbn_int rsc, pbn_int csc, int accumulate,
                          const float *bias, int relu)
{
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nb; j++) {
            float *cp = C + (i0 + r) * rsc + (j0 + j) * csc;
            *cp = PBN_EPILOGUE(out[r * ld + j], cp, accumulate, bias ? bias + j0 + j : NULL, relu);
        }
}

/* a[r] := row (i0 + r) of A for r < R (rows past mr repeat row i0: computed, not stored) */
static void pbn_dot_rows_of(const float *A, pbn_int rsa, const pbn_int *a_rows, pbn_int i0,
                            int mr, int R, const float **a)
{
    for (int r = 0; r < R; r++) {
        pbn_int row = i0 + (r < mr ? r : 0);
        if (a_rows) row = a_rows[row];
        a[r] = A + row * rsa;
    }
}

typedef struct {
    pbn_int m, n, k;
    const float *A; pbn_int rsa; const pbn_int *a_rows;
    const float *bt; pbn_int ldb;   /* AVX2: B^T rows; AVX-512: the packed pairs */
    float *C; pbn_int rsc, csc;
    int accumulate; const float *bias; int relu;
    int rows;                       /* rows per block: 3 (AVX2) or PBN_DOT_ROWS */
} pbn_dot_args;

static void pbn_dot_blocks(const pbn_dot_args *g, int avx512, pbn_int blk_lo, pbn_int blk_hi)
{
    float out[PBN_DOT_ROWS * 16];
    const float *a[PBN_DOT_ROWS];
    for (pbn_int blk = blk_lo; blk < blk_hi; blk++) {
        const pbn_int i0 = blk * g->rows;
        const int mr = (int)(g->m - i0 < g->rows ? g->m - i0 : g->rows);
        pbn_dot_rows_of(g->A, g->rsa, g->a_rows, i0, mr, g->rows, a);
        if (avx512) {
            pbn_dot_rows_avx512_f32(g->k, a, g->bt, (int)g->n, out);
            pbn_dot_store(i0, mr, 0, (int)g->n, out, 16, g->C, g->rsc, g->csc, g->accumulate,
                          g->bias, g->relu);
            continue;
        }
        for (pbn_int j0 = 0; j0 < g->n; j0 += 4) {
            const int nb = (int)(g->n - j0 < 4 ? g->n - j0 : 4);
            pbn_dot3x4_avx2_f32(g->k, a, g->bt + j0 * g->ldb, g->ldb, nb, out);
            pbn_dot_store(i0, mr, j0, nb, out, 4, g->C, g->rsc, g->csc, g->accumulate,
                          g->bias, g->relu);
        }
    }
}

/* B^T in column pairs for the AVX-512 kernel: pair q (columns 2q, 2q + 1), p block b (8
 * deep) at dst + (q * kb + b) * 16, column 2q + h in lanes 8h..8h+7; zero past k and n. */
static void pbn_dot_pack_pairs(pbn_int n, pbn_int k, const float *B, pbn_int rsb, pbn_int csb,
                               float *dst)
{
    const pbn_int kb = (k + 7) / 8, np = (n + 1) / 2;
    for (pbn_int q = 0; q < np; q++)
        for (pbn_int b = 0; b < kb; b++)
            for (int h = 0; h < 2; h++) {
                const pbn_int j = 2 * q + h;
                float *d = dst + (q * kb + b) * 16 + 8 * h;
                for (int l = 0; l < 8; l++) {
                    const pbn_int p = b * 8 + l;
                    d[l] = p < k && j < n ? B[p * rsb + j * csb] : 0.0f;
                }
            }
}

int pbn_dot_gemm_f32(pbn_int m, pbn_int n, pbn_int k, const float *A, pbn_int rsa,
                     pbn_int csa, const pbn_int *a_rows, const float *B, pbn_int rsb,
                     pbn_int csb, float *C, pbn_int rsc, pbn_int csc, int accumulate,
                     const float *bias, int relu, int n_threads)
{
    if (!pbn_choose_dot(n, k, csa) || !pbn_gemm_use_simd()) return 0;
    if (m <= 0 || n <= 0) return 1;
    const int avx512 = pbn_isa() >= PBN_ISA_AVX512;
    pbn_dot_args g = { m, n, k, A, rsa, a_rows, B, csb, C, rsc, csc, accumulate, bias, relu,
                       avx512 ? PBN_DOT_ROWS : 3 };
    float *scratch = NULL;
    if (avx512) {
        scratch = (float *)pbn_scratch((size_t)((n + 1) / 2) * (size_t)((k + 7) / 8) * 16
                                       * sizeof(float));
        if (!scratch) return 0;
        pbn_dot_pack_pairs(n, k, B, rsb, csb, scratch);
        g.bt = scratch;
    } else if (rsb != 1) {                     /* B^T rows not contiguous: pack them */
        scratch = (float *)pbn_scratch((size_t)n * (size_t)k * sizeof(float));
        if (!scratch) return 0;
        for (pbn_int q = 0; q < k; q++)
            for (pbn_int j = 0; j < n; j++) scratch[j * k + q] = B[q * rsb + j * csb];
        g.bt = scratch;
        g.ldb = k;
    }
    const pbn_int nblk = (m + g.rows - 1) / g.rows;
    int nt = n_threads < 1 ? 1 : n_threads;
    if (2.0 * (double)m * (double)n * (double)k < pbn_gemm_parallel_min_flops()) nt = 1;
    if (nt > nblk) nt = (int)nblk;
    pbn_region reg;
    nt = pbn_region_begin(&reg, nt);
    pbn_count(PBN_PATH_GEMM_DOT, nt);
    if (nt == 1) {
        pbn_dot_blocks(&g, avx512, 0, nblk);
    } else {
        _Pragma("omp parallel for num_threads(nt) schedule(static)")
        for (int t = 0; t < nt; t++) {
            pbn_region_check(&reg);
            pbn_dot_blocks(&g, avx512, nblk * t / nt, nblk * (t + 1) / nt);
            pbn_region_done(&reg);
        }
        pbn_region_end(&reg, nt);
    }
    if (scratch) pbn_scratch_done();
    return 1;
}
