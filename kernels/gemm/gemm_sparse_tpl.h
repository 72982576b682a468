/* Tile kernels of the zero-skipping float32 path (gemm_sparse.c), for any vector width:
 * included once per ISA by gemm_sparse.c, in gemm_vec.h's float32 vocabulary.
 *
 * The rows of A are taken PBN_SPARSE_GROUP at a time and a group's rows share one list:
 * the columns p where any of them is nonzero, in increasing p, with each row's value there
 * (zero where that row has none). A B row block loaded for a listed p then serves every row
 * of the group (a single row list would load it once per row, and those loads from L2 are
 * what the product waits on). Every C element is
 *   acc := +0;  acc := fma(A[i, p], B[p, j], acc) over the group's list in p order
 * then the epilogue x := (accumulate ? C + acc : acc); x += bias[j]; x := max(0, x).
 * A listed zero of row i adds exactly nothing (B is finite), with one exception: an acc
 * of -0 (only after a product that underflowed to -0) becomes +0. So this is the sum over
 * row i's own nonzeros up to the sign of such a zero; the lists depend on m and A only, so
 * every vector width, ISA and thread count gives the same bits. */

#define SFN(name) PBN_CAT(name, ISA)

/* columns per sub-tile: 4 zmm (AVX-512: 6 x 4 accumulators + 4 B vectors + 1 broadcast of
 * 32 registers) or 2 ymm (AVX2: 6 x 2 + 2 + 1 of 16) */
#define SP_NV (W == 16 ? 4 : 2)

#define SP_LOAD(p, lanes, mask) ((lanes) >= W ? VLOADU(p) : VMASKLOAD(p, mask))
#define SP_STORE(p, lanes, mask, x) do {                                                   \
        if ((lanes) >= W) VSTOREU(p, x); else VMASKSTORE(p, mask, x);                     \
    } while (0)

/* the GEMM epilogue of one accumulator (lanes < W: the first lanes only) into C at c */
VEC_TARGET __attribute__((always_inline)) static inline void
SFN(sparse_store)(VT x, pbn_int lanes, float *c, int accumulate, const float *bias, int relu)
{
    const VMASK_T mask = VMASK((int)lanes);
    if (accumulate) x = VADD(SP_LOAD(c, lanes, mask), x);
    if (bias) x = VADD(x, SP_LOAD(bias, lanes, mask));
    if (relu) x = VMAX(VZERO(), x);   /* NaN stays NaN, as in the dense kernel */
    SP_STORE(c, lanes, mask, x);
}

/* the optimizer step of one accumulator g = G[i, j ..] instead (the loops of
 * optim_spans_tpl.h, the same roundings: no contraction) */
VEC_TARGET __attribute__((always_inline)) static inline void
SFN(sparse_sgd)(VT g, pbn_int lanes, const pbn_sgd_step_f32 *step, pbn_int i, pbn_int j)
{
    const VMASK_T mask = VMASK((int)lanes);
    const VT lr = VSET1(step->lr);
    float *w = step->w + i * step->rsw + j;
    const VT wi = SP_LOAD(w, lanes, mask);
    if (!step->v) {                                       /* w := w - lr g */
        SP_STORE(w, lanes, mask, VSUB(wi, VMUL(lr, g)));
        return;
    }
    const VT m = VSET1(step->momentum);
    float *v = step->v + i * step->rsv + j;
    const VT vi = VSUB(VMUL(m, SP_LOAD(v, lanes, mask)), VMUL(lr, g));   /* m v - lr g */
    SP_STORE(v, lanes, mask, vi);
    const VT d = step->nesterov ? VSUB(VMUL(m, vi), VMUL(lr, g)) : vi;
    SP_STORE(w, lanes, mask, VADD(wi, d));
}

/* rows i0 .. i0 + R of C, columns [0, wcols) of the sub-tile at c0 (C row i0) reading the
 * packed B sub-tile at B (row p at B + p * PBN_SPARSE_COLS) and the group's list
 * (nu columns ucol, row r's value at the q-th at uval[r * rs + q * qs]) */
VEC_TARGET __attribute__((always_inline)) static inline void
SFN(sparse_group_tile)(const int R, int32_t nu, const int32_t *ucol, const float *uval,
                       pbn_int rs, pbn_int qs, const float *B, float *c0, pbn_int rsc, pbn_int wcols,
                       int accumulate, const float *bias, int relu,
                       const pbn_sgd_step_f32 *step, pbn_int row0, pbn_int col0)
{
    const VT zero = VZERO();
    VT acc[PBN_SPARSE_GROUP][SP_NV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < SP_NV; v++) acc[r][v] = zero;
    for (int32_t q = 0; q < nu; q++) {
        const float *b = B + (pbn_int)ucol[q] * PBN_SPARSE_COLS;
        VT bv[SP_NV];
        for (int v = 0; v < SP_NV; v++) bv[v] = VLOADU(b + W * v);
        for (int r = 0; r < R; r++) {
            const VT a = VSET1(uval[r * rs + q * qs]);
            for (int v = 0; v < SP_NV; v++) acc[r][v] = VFMA(a, bv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int v = 0; v < SP_NV; v++) {
            const pbn_int lanes = wcols - W * v;
            if (lanes <= 0) break;
            if (step)
                SFN(sparse_sgd)(acc[r][v], lanes, step, row0 + r, col0 + W * v);
            else
                SFN(sparse_store)(acc[r][v], lanes, c0 + r * rsc + W * v, accumulate,
                                  bias ? bias + W * v : NULL, relu);
        }
    }
}

/* the groups of rows [i_lo, i_hi) (i_lo a multiple of PBN_SPARSE_GROUP) x columns
 * [j_lo, j_hi) (whole column blocks but the last, PBN_SPARSE_COLS wide), group by group
 * (so that C, or the step's W and V, is swept row after row); the block from column j0 is
 * packed at Bp + (j0 / COLS) k COLS, zero-padded to PBN_SPARSE_COLS. Group g lists count[g]
 * columns at col + g kp, its values at val + g GROUP kp laid out with strides (rs, qs)
 * (gemm_sparse.c) */
VEC_TARGET static void SFN(sparse_task)(pbn_int m, pbn_int k, const int32_t *count,
                                       const int32_t *col, const float *val, pbn_int kp,
                                       pbn_int rs, pbn_int qs, pbn_int i_lo, pbn_int i_hi,
                                       const float *Bp, pbn_int j_lo, pbn_int j_hi, float *C,
                                       pbn_int rsc, int accumulate, const float *bias, int relu,
                                       const pbn_sgd_step_f32 *step)
{
    for (pbn_int i0 = i_lo; i0 < i_hi; i0 += PBN_SPARSE_GROUP) {
        const pbn_int g = i0 / PBN_SPARSE_GROUP;
        const int rows = (int)(m - i0 < PBN_SPARSE_GROUP ? m - i0 : PBN_SPARSE_GROUP);
        const int32_t nu = count[g];
        const int32_t *ucol = col + g * kp;
        const float *uval = val + g * PBN_SPARSE_GROUP * kp;
        for (pbn_int j0 = j_lo; j0 < j_hi; j0 += PBN_SPARSE_COLS) {
            const float *Bb = Bp + (j0 / PBN_SPARSE_COLS) * k * PBN_SPARSE_COLS;
            const pbn_int w = j_hi - j0 < PBN_SPARSE_COLS ? j_hi - j0 : PBN_SPARSE_COLS;
            for (pbn_int jb = 0; jb < w; jb += SP_NV * W) {
                float *c0 = step ? NULL : C + i0 * rsc + j0 + jb;
                const float *bj = bias ? bias + j0 + jb : NULL;
                const pbn_int wcols = w - jb;
                switch (rows) {   /* a constant R per case: the accumulators stay in registers */
#define SP_CASE(R) case R: SFN(sparse_group_tile)(R, nu, ucol, uval, rs, qs, Bb + jb, c0, rsc,  \
                                     wcols, accumulate, bj, relu, step, i0, j0 + jb); break;
                SP_CASE(1) SP_CASE(2) SP_CASE(3) SP_CASE(4) SP_CASE(5) SP_CASE(6)
#undef SP_CASE
                }
            }
        }
    }
}

#undef SP_NV
#undef SP_LOAD
#undef SP_STORE
#undef SFN
