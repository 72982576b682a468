/* Tile kernels of the zero-skipping float32 path (gemm_sparse.c), for any vector width:
 * included once per ISA by gemm_sparse.c, in gemm_vec.h's float32 vocabulary. The last
 * partial vector of a block runs masked.
 * Every C element is acc := 0, acc := fma(A[i, p], B[p, j], acc) over A's nonzeros in p
 * order, then the epilogue x := (accumulate ? C + acc : acc); x += bias[j]; x := max(0, x):
 * the same bits for any vector width, masked or scalar. */

#define SFN(name) PBN_CAT(name, ISA)

/* one vector-width row chunk: lanes < w (w == W: unmasked) */
#define SP_LOAD(p, w) ((w) == W ? VLOADU(p) : VMASKLOAD(p, VMASK(w)))
#define SP_STORE(p, w, v) do { if ((w) == W) VSTOREU(p, v); else VMASKSTORE(p, VMASK(w), v); } while (0)

/* C[i, j0 + jb + v W + l] for rows i_lo..i_hi, vectors v < NV (the last one w lanes wide),
 * from the compressed rows (row i: count[i] nonzeros at col / val [i * k ...]) and the packed
 * B block Bb of the columns from j0 (row p at Bb + p * PBN_SPARSE_COLS) */
VEC_TARGET __attribute__((always_inline)) static inline void
SFN(sparse_tile)(const int NV, const int w, const int32_t *count, const int32_t *col,
                 const float *val, pbn_int k, pbn_int i_lo, pbn_int i_hi, const float *Bb,
                 pbn_int j0, pbn_int jb, float *C, pbn_int rsc, int accumulate,
                 const float *bias, int relu)
{
    const VT zero = VZERO();
    const float *B = Bb + jb;
    for (pbn_int i = i_lo; i < i_hi; i++) {
        VT acc[8];
        for (int v = 0; v < NV; v++) acc[v] = zero;
        const int32_t *ci = col + i * k;
        const float *vi = val + i * k;
        const int32_t nq = count[i];
        for (int32_t q = 0; q < nq; q++) {
            const VT a = VSET1(vi[q]);
            const float *b = B + (pbn_int)ci[q] * PBN_SPARSE_COLS;
            for (int v = 0; v < NV; v++) acc[v] = VFMA(a, VLOADU(b + W * v), acc[v]);
        }
        float *c = C + i * rsc + j0 + jb;
        for (int v = 0; v < NV; v++) {
            const int lanes = v == NV - 1 ? w : W;
            VT x = acc[v];
            if (accumulate) x = VADD(SP_LOAD(c + W * v, lanes), x);
            if (bias) x = VADD(x, SP_LOAD(bias + j0 + jb + W * v, lanes));
            if (relu) x = VMAX(zero, x);   /* NaN stays NaN, as in the dense kernel */
            SP_STORE(c + W * v, lanes, x);
        }
    }
}


/* rows i_lo..i_hi x the w columns of the block starting at column j0 */
VEC_TARGET static void SFN(sparse_task)(const int32_t *count, const int32_t *col,
                                       const float *val, pbn_int k, pbn_int i_lo, pbn_int i_hi,
                                       const float *Bb, pbn_int j0, pbn_int w, float *C,
                                       pbn_int rsc, int accumulate, const float *bias, int relu)
{
    if (w == PBN_SPARSE_COLS) {
        SFN(sparse_tile)(PBN_SPARSE_COLS / W, W, count, col, val, k, i_lo, i_hi, Bb, j0, 0, C,
                         rsc, accumulate, bias, relu);
        return;
    }
    pbn_int jb = 0;
    for (; jb + W <= w; jb += W)
        SFN(sparse_tile)(1, W, count, col, val, k, i_lo, i_hi, Bb, j0, jb, C, rsc, accumulate,
                         bias, relu);
    if (jb < w)                        /* the last w - jb < W columns: masked */
        SFN(sparse_tile)(1, (int)(w - jb), count, col, val, k, i_lo, i_hi, Bb, j0, jb, C, rsc,
                         accumulate, bias, relu);
}

#undef SP_LOAD
#undef SP_STORE
#undef SFN
