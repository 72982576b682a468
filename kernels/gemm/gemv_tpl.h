/* Inner loops of the matrix-vector path (gemv.c), compiled once per (ISA, dtype): included by
 * gemv.c inside a target region. Expects T, SUF (f32 / f64), ISA (name suffix). Plain C that
 * the compiler vectorises for the ISA; no FMA contraction (-std=c11), so every ISA rounds
 * each product and sum alike and the variants agree bitwise. */

#define GFN(name) PBN_CAT(PBN_CAT(name, ISA), SUF)

/* The lanes of a dot product summed in a fixed pairwise tree, then the k tail in order. */
static inline T GFN(dot_finish)(T *acc, const T *x, const T *y, pbn_int incy, pbn_int p,
                                pbn_int k)
{
    for (int w = DOT_LANES(T) / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    T s = acc[0];
    for (; p < k; p++) s += x[p] * y[p * incy];
    return s;
}

/* sum_p x[p] * y[p * incy] for p < k: lane l sums the p = l (mod DOT_LANES), then
 * dot_finish; dot4 computes four rows at once in exactly the same order */
static T GFN(dot)(const T *x, const T *y, pbn_int incy, pbn_int k)
{
    enum { L = DOT_LANES(T) };
    T acc[L] = {0};
    pbn_int p = 0;
    if (incy == 1)
        for (; p + L <= k; p += L)
            for (int l = 0; l < L; l++) acc[l] += x[p + l] * y[p + l];
    return GFN(dot_finish)(acc, x, y, incy, p, k);
}

/* out[r] := dot(x[r], y) for four rows x[0..3] (contiguous), y contiguous: y is loaded
 * once per step for all four, and 4 independent chains hide the add latency */
static void GFN(dot4)(const T *const *x, const T *y, pbn_int k, T *out)
{
    enum { L = DOT_LANES(T) };
    T a0[L] = {0}, a1[L] = {0}, a2[L] = {0}, a3[L] = {0};
    const T *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
    pbn_int p = 0;
    for (; p + L <= k; p += L)
        for (int l = 0; l < L; l++) {
            const T yl = y[p + l];
            a0[l] += x0[p + l] * yl; a1[l] += x1[p + l] * yl;
            a2[l] += x2[p + l] * yl; a3[l] += x3[p + l] * yl;
        }
    out[0] = GFN(dot_finish)(a0, x0, y, 1, p, k);
    out[1] = GFN(dot_finish)(a1, x1, y, 1, p, k);
    out[2] = GFN(dot_finish)(a2, x2, y, 1, p, k);
    out[3] = GFN(dot_finish)(a3, x3, y, 1, p, k);
}

/* y[i] := sum_p M[i + p*cs] v[p*incv] for i < rows (unit row stride), p in order */
static void GFN(axpy_block)(const T *M, pbn_int cs, const T *v, pbn_int incv, pbn_int k,
                            T *y, pbn_int rows)
{
    for (pbn_int i = 0; i < rows; i++) y[i] = 0;
    for (pbn_int p = 0; p < k; p++) {
        const T *col = M + p * cs;
        const T vp = v[p * incv];
        for (pbn_int i = 0; i < rows; i++) y[i] += col[i] * vp;
    }
}

static const PBN_CAT(gemv_kernels, SUF) GFN(gemv_kernels) = {
    GFN(dot), GFN(dot4), GFN(axpy_block)
};

#undef GFN
