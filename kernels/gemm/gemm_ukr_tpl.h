/* Register-blocked micro-kernel body for any vector width, included once per (ISA, dtype,
 * tile) by the ISA's file. Contract: gemm_internal.h. Expects gemm_vec.h's vocabulary and
 *   UKR_NAME, MR (rows), NV (vectors per row; NR = NV * W).
 * Every C element is summed the same way whatever the tile and vector width: acc := 0, then
 * acc := fma(a[i][p], b[p][j], acc) for p = 0..kc-1 in order, then the epilogue
 *   x := (load_c ? C + acc : acc);  x := x + bias[j] if bias;  x := max(0, x) if relu
 * (max(0, NaN) keeps the NaN, as numpy does), so two tiles of different shape (AVX2 6x16 and
 * AVX-512 12x32) give bitwise-identical C from the same k slices. */

#define UKR_NR (NV * W)

/* the epilogue of one row i, vectors v < NV; MASKED: lanes outside mk[v] are not touched */
#define UKR_ROW(I, MASKED) do {                                                        \
        T *cr_ = c + (I) * rsc;                                                        \
        _Pragma("GCC unroll 8")                                                        \
        for (int v_ = 0; v_ < NV; v_++) {                                              \
            VT x_ = acc[I][v_];                                                        \
            if (load_c) x_ = VADD(MASKED ? VMASKLOAD(cr_ + v_ * W, mk[v_]) : VLOADU(cr_ + v_ * W), x_); \
            if (bias) x_ = VADD(x_, bv[v_]);                                           \
            if (relu) x_ = VMAX(vz, x_);                                               \
            if (MASKED) VMASKSTORE(cr_ + v_ * W, mk[v_], x_); else VSTOREU(cr_ + v_ * W, x_); \
        }                                                                              \
    } while (0)

VEC_TARGET void UKR_NAME(pbn_int kc, const T *const *a, pbn_int as, const T *b, pbn_int bs,
                         T *c, pbn_int rsc, pbn_int csc, int mr, int nr,
                         int load_c, const T *bias, int relu)
{
    VT acc[MR][NV];
    _Pragma("GCC unroll 16")
    for (int i = 0; i < MR; i++) {
        _Pragma("GCC unroll 8")
        for (int v = 0; v < NV; v++) acc[i][v] = VZERO();
    }
    for (int i = 0; i < mr; i++) {
        _mm_prefetch((const char *)(c + i * rsc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * rsc + UKR_NR - 1), _MM_HINT_T0);
    }

    int packed = as == MR;
    for (int i = 1; i < MR && packed; i++) packed = a[i] == a[0] + i;
    if (packed) {
        /* packed A panel: element (i, p) at a0[p * MR + i], one pointer */
        const T *a0 = a[0];
        for (pbn_int p = 0; p < kc; p++) {
            VT bv_[NV];
            _Pragma("GCC unroll 8")
            for (int v = 0; v < NV; v++) bv_[v] = VLOADU(b + v * W);
            _Pragma("GCC unroll 16")
            for (int i = 0; i < MR; i++) {
                const VT t = VBCAST(a0 + i);
                _Pragma("GCC unroll 8")
                for (int v = 0; v < NV; v++) acc[i][v] = VFMA(t, bv_[v], acc[i][v]);
            }
            a0 += MR;
            b += bs;
        }
    } else {
        /* A read in place: one pointer per row, element p at a[i][p * as] */
        const T *ar[MR];
        _Pragma("GCC unroll 16")
        for (int i = 0; i < MR; i++) ar[i] = a[i];
        pbn_int off = 0;
        for (pbn_int p = 0; p < kc; p++) {
            VT bv_[NV];
            _Pragma("GCC unroll 8")
            for (int v = 0; v < NV; v++) bv_[v] = VLOADU(b + v * W);
            _Pragma("GCC unroll 16")
            for (int i = 0; i < MR; i++) {
                const VT t = VBCAST(ar[i] + off);
                _Pragma("GCC unroll 8")
                for (int v = 0; v < NV; v++) acc[i][v] = VFMA(t, bv_[v], acc[i][v]);
            }
            off += as;
            b += bs;
        }
    }

    const VT vz = VZERO();
    VT bv[NV];
    VMASK_T mk[NV];
    if (csc == 1) {
        const int full = nr == UKR_NR;
        _Pragma("GCC unroll 8")
        for (int v = 0; v < NV; v++) {
            mk[v] = VMASK(nr - v * W);
            bv[v] = bias ? (full ? VLOADU(bias + v * W) : VMASKLOAD(bias + v * W, mk[v])) : vz;
        }
        if (full && mr == MR) {
            _Pragma("GCC unroll 16")
            for (int i = 0; i < MR; i++) UKR_ROW(i, 0);
        } else {
            _Pragma("GCC unroll 16")
            for (int i = 0; i < MR; i++)
                if (i < mr) UKR_ROW(i, 1);
        }
        return;
    }
    /* strided C: spill the accumulators, then write what is inside C element by element */
    T t[MR * UKR_NR] __attribute__((aligned(64)));
    _Pragma("GCC unroll 16")
    for (int i = 0; i < MR; i++) {
        _Pragma("GCC unroll 8")
        for (int v = 0; v < NV; v++) VSTOREU(t + i * UKR_NR + v * W, acc[i][v]);
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            T *cp = c + i * rsc + j * csc;
            *cp = PBN_EPILOGUE(t[i * UKR_NR + j], cp, load_c, bias ? bias + j : NULL, relu);
        }
}

#undef UKR_NR
#undef UKR_ROW
