/* AVX2 + FMA micro-kernel body, included by gemm_avx2.c once per dtype. Expects:
 *   UKR_NAME, T, VT (vector type), W (lanes), MR (= 6), NR (= 2 * W),
 *   VZERO(), VLOADU(p), VSTOREU(p, v), VBCAST(p), VFMA(a, b, c) = a*b+c, VADD, VMAX,
 *   VMASK(n) (lanes < n set), VMASKLOAD(p, m), VMASKSTORE(p, m, v).
 * Tile: 6 rows x 2 vectors = 12 accumulators, + 2 B vectors + 1 broadcast = 15 ymm. */

/* Epilogue of one row held in two vectors x0, x1 (full width, unit column stride). */
#define ROW_FULL(I, X0, X1) do {                                                        \
        T *cr_ = c + (I) * rsc;                                                         \
        VT x0_ = (X0), x1_ = (X1);                                                      \
        if (load_c) { x0_ = VADD(VLOADU(cr_), x0_); x1_ = VADD(VLOADU(cr_ + W), x1_); } \
        if (bias) { x0_ = VADD(x0_, bv0); x1_ = VADD(x1_, bv1); }                       \
        if (relu) { x0_ = VMAX(vz, x0_); x1_ = VMAX(vz, x1_); }                         \
        VSTOREU(cr_, x0_); VSTOREU(cr_ + W, x1_);                                       \
    } while (0)

#define KSTEP(OFF, BP) do {                                                              \
        VT b0_ = VLOADU(BP), b1_ = VLOADU((BP) + W), t_;                                 \
        t_ = VBCAST(a0 + (OFF)); c00 = VFMA(t_, b0_, c00); c01 = VFMA(t_, b1_, c01);     \
        t_ = VBCAST(a1 + (OFF)); c10 = VFMA(t_, b0_, c10); c11 = VFMA(t_, b1_, c11);     \
        t_ = VBCAST(a2 + (OFF)); c20 = VFMA(t_, b0_, c20); c21 = VFMA(t_, b1_, c21);     \
        t_ = VBCAST(a3 + (OFF)); c30 = VFMA(t_, b0_, c30); c31 = VFMA(t_, b1_, c31);     \
        t_ = VBCAST(a4 + (OFF)); c40 = VFMA(t_, b0_, c40); c41 = VFMA(t_, b1_, c41);     \
        t_ = VBCAST(a5 + (OFF)); c50 = VFMA(t_, b0_, c50); c51 = VFMA(t_, b1_, c51);     \
    } while (0)

PBN_AVX2 void UKR_NAME(pbn_int kc, const T *const *a, pbn_int as, const T *b, pbn_int bs,
                       T *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                       int load_c, const T *bias, int relu)
{
    const T *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    VT c00 = VZERO(), c01 = VZERO(), c10 = VZERO(), c11 = VZERO(), c20 = VZERO(), c21 = VZERO();
    VT c30 = VZERO(), c31 = VZERO(), c40 = VZERO(), c41 = VZERO(), c50 = VZERO(), c51 = VZERO();

    for (int i = 0; i < mr; i++) _mm_prefetch((const char *)(c + i * rsc), _MM_HINT_T0);

    pbn_int off = 0;
    for (pbn_int p = 0; p < kc; p++) {
        KSTEP(off, b);
        off += as;
        b += bs;
    }

    const VT vz = VZERO();
    VT bv0 = vz, bv1 = vz;
    if (mr == MR && nr == NR && csc == 1) {
        if (bias) { bv0 = VLOADU(bias); bv1 = VLOADU(bias + W); }
        ROW_FULL(0, c00, c01); ROW_FULL(1, c10, c11); ROW_FULL(2, c20, c21);
        ROW_FULL(3, c30, c31); ROW_FULL(4, c40, c41); ROW_FULL(5, c50, c51);
        return;
    }
    /* Edge tile or strided C: spill the accumulators, then write what is inside C. */
    T t[MR * NR] __attribute__((aligned(32)));
    VSTOREU(t + 0 * NR, c00); VSTOREU(t + 0 * NR + W, c01);
    VSTOREU(t + 1 * NR, c10); VSTOREU(t + 1 * NR + W, c11);
    VSTOREU(t + 2 * NR, c20); VSTOREU(t + 2 * NR + W, c21);
    VSTOREU(t + 3 * NR, c30); VSTOREU(t + 3 * NR + W, c31);
    VSTOREU(t + 4 * NR, c40); VSTOREU(t + 4 * NR + W, c41);
    VSTOREU(t + 5 * NR, c50); VSTOREU(t + 5 * NR + W, c51);
    if (csc == 1) {
        /* masked loads/stores never touch the lanes past nr */
        const VMASK_T m0 = VMASK(nr), m1 = VMASK(nr - W);
        if (bias) { bv0 = VMASKLOAD(bias, m0); bv1 = VMASKLOAD(bias + W, m1); }
        for (int i = 0; i < mr; i++) {
            T *cr = c + i * rsc;
            VT x0 = VLOADU(t + i * NR), x1 = VLOADU(t + i * NR + W);
            if (load_c) { x0 = VADD(VMASKLOAD(cr, m0), x0); x1 = VADD(VMASKLOAD(cr + W, m1), x1); }
            if (bias) { x0 = VADD(x0, bv0); x1 = VADD(x1, bv1); }
            if (relu) { x0 = VMAX(vz, x0); x1 = VMAX(vz, x1); }
            VMASKSTORE(cr, m0, x0); VMASKSTORE(cr + W, m1, x1);
        }
        return;
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            T *cp = c + i * rsc + j * csc;
            T s = t[i * NR + j];
            if (load_c) s = *cp + s;
            if (bias) s = s + bias[j];
            if (relu) s = s < 0 ? (T)0 : s;
            *cp = s;
        }
}

#undef ROW_FULL
#undef KSTEP
