/* Row-group kernels of the batched small-product path (gemm_tiny.c), for any vector width:
 * included once per (ISA, dtype) by gemm_tiny.c, in gemm_vec.h's vocabulary.
 * A group of R rows of C is held in R x NV vector accumulators (NV vectors per row); for each
 * p the NV vectors of B's row p are loaded once and each row's A[i, p] is broadcast against
 * them. Every C element is acc := 0, then acc := fma(A[i, p], B[p, j], acc) for p = 0..k-1 in
 * order, then stored: the same bits for any R, NV and vector width. */

#define TFN(name) PBN_CAT(PBN_CAT(name, ISA), SUF)

/* rows [0, R) of C := A @ B, NV vectors wide; R and NV are constants after inlining, so the
 * loops unroll and the accumulators live in registers */
VEC_TARGET __attribute__((always_inline)) static inline void
TFN(tiny_rows)(const int R, const int NV, pbn_int k, const T *A, pbn_int rsa, pbn_int csa,
               const T *B, pbn_int rsb, T *C, pbn_int rsc)
{
    VT acc[16][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = VZERO();
    for (pbn_int p = 0; p < k; p++) {
        VT b[4];
        for (int v = 0; v < NV; v++) b[v] = VLOADU(B + p * rsb + v * W);
        for (int r = 0; r < R; r++) {
            const VT a = VBCAST(A + r * rsa + p * csa);
            for (int v = 0; v < NV; v++) acc[r][v] = VFMA(a, b[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) VSTOREU(C + r * rsc + v * W, acc[r][v]);
}

/* TFN(tiny_v<NV>r<R>): C := A @ B for m <= PBN_TINY_MAX rows, NV vectors per row, rows in
 * groups of R (R <= 16), the last m % R rows as one smaller group. */
#define TINY_LEFT(X, NV, R) \
    case X: TFN(tiny_rows)((X) % (R), NV, k, A, rsa, csa, B, rsb, C, rsc); break;
#define DEFINE_TINY_V(NV, R)                                                                \
VEC_TARGET static void TFN(tiny_v##NV##r##R)(pbn_int m, pbn_int n, pbn_int k, const T *A,  \
                                              pbn_int rsa, pbn_int csa, const T *B,         \
                                              pbn_int rsb, T *C, pbn_int rsc)               \
{                                                                                           \
    (void)n;                                                                                \
    pbn_int i = 0;                                                                          \
    for (; i + (R) <= m; i += (R))                                                          \
        TFN(tiny_rows)(R, NV, k, A + i * rsa, rsa, csa, B, rsb, C + i * rsc, rsc);          \
    A += i * rsa;                                                                           \
    C += i * rsc;                                                                           \
    switch (m - i) {                                                                        \
    TINY_LEFT(1, NV, R) TINY_LEFT(2, NV, R) TINY_LEFT(3, NV, R) TINY_LEFT(4, NV, R)         \
    TINY_LEFT(5, NV, R) TINY_LEFT(6, NV, R) TINY_LEFT(7, NV, R) TINY_LEFT(8, NV, R)         \
    TINY_LEFT(9, NV, R) TINY_LEFT(10, NV, R) TINY_LEFT(11, NV, R) TINY_LEFT(12, NV, R)      \
    TINY_LEFT(13, NV, R) TINY_LEFT(14, NV, R) TINY_LEFT(15, NV, R)                          \
    default: break;                                                                         \
    }                                                                                       \
}

/* the same on two halves of C's columns (n = 2 NV W), e.g. n = 64 with 4 AVX2 vectors */
#define DEFINE_TINY_HALVES(NV, R)                                                           \
VEC_TARGET static void TFN(tiny_v##NV##r##R##x2)(pbn_int m, pbn_int n, pbn_int k,          \
                                                  const T *A, pbn_int rsa, pbn_int csa,     \
                                                  const T *B, pbn_int rsb, T *C, pbn_int rsc) \
{                                                                                           \
    TFN(tiny_v##NV##r##R)(m, n, k, A, rsa, csa, B, rsb, C, rsc);                            \
    TFN(tiny_v##NV##r##R)(m, n, k, A, rsa, csa, B + (NV) * W, rsb, C + (NV) * W, rsc);      \
}
