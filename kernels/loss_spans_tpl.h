/* The loss kernels' loops, for one (ISA, dtype): included by loss_spans.h through
 * pbn_variants.h, which sets T, SUF, PBN_F32, ISA, ISA_ID. */

#if PBN_F32
/* y := exp(x), float32, within 2 ulp of the correctly rounded result (tests measure it).
 * x = k ln2 + r with k = round(x / ln2), |r| <= ln2 / 2 (ln2 split in two parts so k ln2 is
 * exact); exp(r) = 1 + r + r^2 P(r), P of degree 5 (the Cephes expf coefficients);
 * exp(x) = exp(r) 2^k1 2^k2 with k1 + k2 = k, so subnormal results are rounded once and
 * overflow gives inf. NaN propagates; x < -104 gives 0, x > 89 gives inf. Branch-free, so
 * the loop vectorises. */
static void PBN_V(exp_span)(const float *x, float *y, ptrdiff_t n)
{
    pbn_variant_ran(PBN_LOOP_EXP, ISA_ID);
    const float round_shift = 12582912.0f;           /* 1.5 * 2^23: adding it rounds to int */
    for (ptrdiff_t i = 0; i < n; i++) {
        float v = x[i];
        v = v < -104.0f ? -104.0f : v;                /* NaN fails both tests and passes */
        v = v > 89.0f ? 89.0f : v;
        float t = v * 1.44269504088896341f + round_shift;
        int32_t k = (int32_t)(pbn_f32_bits(t) - pbn_f32_bits(round_shift));
        float kf = t - round_shift;
        float r = (v - kf * 0.693359375f) - kf * -2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        float e = (p * (r * r) + r) + 1.0f;
        int32_t k1 = k >> 1, k2 = k - k1;             /* each in [-76, 65]: 2^k normal */
        float s1 = pbn_f32_from_bits((uint32_t)(k1 + 127) << 23);
        float s2 = pbn_f32_from_bits((uint32_t)(k2 + 127) << 23);
        y[i] = (e * s1) * s2;
    }
}

/* log(x) for a positive normal float (within 1 ulp): x = 2^e m with m in [sqrt(1/2),
 * sqrt(2)); log(m) = f - f^2/2 + f^3 P(f) with f = m - 1 (the Cephes logf coefficients);
 * e ln2 added in two parts. Branch-free, so loops over it vectorise. */
static inline float PBN_V(log_core)(float x)
{
    const uint32_t u = pbn_f32_bits(x);
    float e = (float)((int32_t)((u >> 23) & 0xffu) - 126);       /* x = 2^e * [0.5, 1) */
    const float m = pbn_f32_from_bits((u & 0x007fffffu) | 0x3f000000u);
    const int low = m < 0.707106781186547524f;
    e = low ? e - 1.0f : e;
    const float f = low ? (m + m) - 1.0f : m - 1.0f;
    const float z = f * f;
    float p = 7.0376836292e-2f;
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    float r = p * f * z;
    r = r + e * -2.12194440e-4f;
    r = r - 0.5f * z;
    return (f + r) + e * 0.693359375f;
}

/* y := log(1 + x), float32, for x >= 0 (tests measure the error). A row's sum of
 * exponentials is 1 + (the others), and rounding that sum to float32 before the log would
 * lose the others when they are below 2^-24 (a confident row's loss would become 0), so the
 * loss takes log1p of the sum minus 1: u = 1 + x rounded, then log(u) plus the first-order
 * correction (x - (u - 1)) / u for the rounding of u. inf and NaN pass through. */
static void PBN_V(log1p_span)(const float *x, float *y, ptrdiff_t n)
{
    pbn_variant_ran(PBN_LOOP_LOG1P, ISA_ID);
    for (ptrdiff_t i = 0; i < n; i++) {
        const float t = x[i], u = 1.0f + t;
        const float r = PBN_V(log_core)(u) + (t - (u - 1.0f)) / u;
        y[i] = (pbn_f32_bits(t) & 0x7f800000u) == 0x7f800000u ? t : r;
    }
}
#else
/* y := exp(x), float64 (libm) */
static void PBN_V(exp_span)(const double *x, double *y, ptrdiff_t n)
{
    pbn_variant_ran(PBN_LOOP_EXP, ISA_ID);
    for (ptrdiff_t i = 0; i < n; i++) y[i] = exp(x[i]);
}

/* y := log(1 + x), float64 (libm) */
static void PBN_V(log1p_span)(const double *x, double *y, ptrdiff_t n)
{
    pbn_variant_ran(PBN_LOOP_LOG1P, ISA_ID);
    for (ptrdiff_t i = 0; i < n; i++) y[i] = log1p(x[i]);
}
#endif

/* pbn_softmax_xent_rows (loss_spans.h) for rows of at most PBN_XENT_NARROW classes: blocks
 * of PBN_XENT_ROWS rows transposed into the scratch block, every step vectorised across
 * rows */
static ptrdiff_t PBN_V(softmax_xent_narrow)(const T *z, ptrdiff_t n, ptrdiff_t c,
                                            const ptrdiff_t *labels, T *dz, double scale,
                                            double *row_loss)
{
    pbn_variant_ran(PBN_LOOP_SOFTMAX_XENT, ISA_ID);
    T w[PBN_XENT_WORK], m[PBN_XENT_ROWS], first[PBN_XENT_ROWS];
    double s[PBN_XENT_ROWS];
    ptrdiff_t correct = 0;
    for (ptrdiff_t r0 = 0; r0 < n; r0 += PBN_XENT_ROWS) {
        const ptrdiff_t R = n - r0 < PBN_XENT_ROWS ? n - r0 : PBN_XENT_ROWS;
        const T *zb = z + r0 * c;
        const ptrdiff_t *yb = labels + r0;
        for (ptrdiff_t j = 0; j < c; j++)                   /* w[j, i] := z[i, j] */
            for (ptrdiff_t i = 0; i < R; i++) w[j * R + i] = zb[i * c + j];
        for (ptrdiff_t i = 0; i < R; i++) m[i] = w[i];
        for (ptrdiff_t j = 1; j < c; j++)                   /* NaN-propagating max */
            for (ptrdiff_t i = 0; i < R; i++) {
                T v = w[j * R + i];
                m[i] = (m[i] != m[i] || v <= m[i]) ? m[i] : v;
            }
        for (ptrdiff_t i = 0; i < R; i++) first[i] = (T)c;
        for (ptrdiff_t j = c; j-- > 0;)                     /* first index of the max */
            for (ptrdiff_t i = 0; i < R; i++) {
                T v = w[j * R + i];
                first[i] = (v == m[i] || (m[i] != m[i] && v != v)) ? (T)j : first[i];
            }
        for (ptrdiff_t i = 0; i < R; i++) {
            correct += first[i] == (T)yb[i];
            row_loss[r0 + i] = (double)m[i] - (double)zb[i * c + yb[i]];
        }
        for (ptrdiff_t j = 0; j < c; j++)
            for (ptrdiff_t i = 0; i < R; i++) w[j * R + i] = w[j * R + i] - m[i];
        PBN_V(exp_span)(w, w, R * c);
        for (ptrdiff_t i = 0; i < R; i++) s[i] = 0.0;
        for (ptrdiff_t j = 0; j < c; j++)
            for (ptrdiff_t i = 0; i < R; i++) s[i] += (double)w[j * R + i];
        for (ptrdiff_t i = 0; i < R; i++) m[i] = (T)(s[i] - 1.0);  /* log1p(sum - 1) in T */
        PBN_V(log1p_span)(m, m, R);
        for (ptrdiff_t i = 0; i < R; i++) row_loss[r0 + i] += (double)m[i];
        if (dz == NULL) continue;
        for (ptrdiff_t i = 0; i < R; i++) s[i] = scale / s[i];
        T *db = dz + r0 * c;
        for (ptrdiff_t j = 0; j < c; j++)
            for (ptrdiff_t i = 0; i < R; i++) db[i * c + j] = (T)(w[j * R + i] * s[i]);
        for (ptrdiff_t i = 0; i < R; i++) db[i * c + yb[i]] = (T)(db[i * c + yb[i]] - scale);
    }
    return correct;
}

/* pbn_softmax_xent_rows for wider rows: one row at a time (malloc'd scratch past
 * PBN_XENT_WORK classes) */
static ptrdiff_t PBN_V(softmax_xent_wide)(const T *z, ptrdiff_t n, ptrdiff_t c,
                                          const ptrdiff_t *labels, T *dz, double scale,
                                          double *row_loss)
{
    pbn_variant_ran(PBN_LOOP_SOFTMAX_XENT, ISA_ID);
    T stack_work[PBN_XENT_WORK];
    T *w = c <= PBN_XENT_WORK ? stack_work : (T *)malloc((size_t)c * sizeof(T));
    if (w == NULL) return -1;
    ptrdiff_t correct = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *zi = z + i * c;
        T m = zi[0];
        for (ptrdiff_t j = 1; j < c; j++) m = (m != m || zi[j] <= m) ? m : zi[j];
        ptrdiff_t first = c;
        for (ptrdiff_t j = c; j-- > 0;)
            first = (zi[j] == m || (m != m && zi[j] != zi[j])) ? j : first;
        correct += first == labels[i];
        row_loss[i] = (double)m - (double)zi[labels[i]];
        for (ptrdiff_t j = 0; j < c; j++) w[j] = zi[j] - m;
        PBN_V(exp_span)(w, w, c);
        double s = 0.0;
        for (ptrdiff_t j = 0; j < c; j++) s += (double)w[j];
        T log_s = (T)(s - 1.0);
        PBN_V(log1p_span)(&log_s, &log_s, 1);
        row_loss[i] += (double)log_s;
        if (dz == NULL) continue;
        T *di = dz + i * c;
        double inv_s = scale / s;
        for (ptrdiff_t j = 0; j < c; j++) di[j] = (T)(w[j] * inv_s);
        di[labels[i]] = (T)(di[labels[i]] - scale);
    }
    if (w != stack_work) free(w);
    return correct;
}

static ptrdiff_t PBN_V(softmax_xent_rows)(const T *z, ptrdiff_t n, ptrdiff_t c,
                                          const ptrdiff_t *labels, T *dz, double scale,
                                          double *row_loss)
{
    return c <= PBN_XENT_NARROW
        ? PBN_V(softmax_xent_narrow)(z, n, c, labels, dz, scale, row_loss)
        : PBN_V(softmax_xent_wide)(z, n, c, labels, dz, scale, row_loss);
}

/* For rows i < n of probabilities p (n, c) with labels y (in [0, c)):
 *   row_loss[i] := -log(clip(p[i, y_i], eps, 1 - eps))
 *   dp[i, :]    := 0, and -scale / p[i, y_i] at y_i inside the clip range (dp may be NULL)
 * Returns how many rows have argmax(p_i) == y_i (the first maximum; a NaN is never one). */
static ptrdiff_t PBN_V(xent_probs_rows)(const T *p, ptrdiff_t n, ptrdiff_t c,
                                        const ptrdiff_t *labels, T *dp, double scale,
                                        double eps, double *row_loss)
{
    pbn_variant_ran(PBN_LOOP_XENT_PROBS, ISA_ID);
    ptrdiff_t correct = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *pi = p + i * c;
        const ptrdiff_t label = labels[i];
        double q = pi[label];
        if (dp != NULL) {
            T *di = dp + i * c;
            for (ptrdiff_t j = 0; j < c; j++) di[j] = (T)0;
            if (q > eps && q < 1.0 - eps)        /* the clip's gradient is 0 outside it */
                di[label] = (T)(-scale / q);
        }
        q = q < eps ? eps : q > 1.0 - eps ? 1.0 - eps : q;
        row_loss[i] = -log(q);
        ptrdiff_t best = 0;
        T top = pi[0];
        for (ptrdiff_t j = 1; j < c; j++)
            if (pi[j] > top) { top = pi[j]; best = j; }
        correct += best == label;
    }
    return correct;
}

/* y[i, :] := exp(x_i - max x_i) / sum(exp(x_i - max x_i)) for rows i < n, in double with
 * libm's exp (y may be x) */
static void PBN_V(softmax_rows)(const T *x, ptrdiff_t n, ptrdiff_t c, T *y)
{
    pbn_variant_ran(PBN_LOOP_SOFTMAX, ISA_ID);
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *xi = x + i * c;
        T *yi = y + i * c;
        double m = -INFINITY, s = 0.0;
        for (ptrdiff_t j = 0; j < c; j++) m = (double)xi[j] > m ? (double)xi[j] : m;
        for (ptrdiff_t j = 0; j < c; j++) {
            const double e = exp((double)xi[j] - m);
            yi[j] = (T)e;
            s += e;
        }
        s = 1.0 / s;
        for (ptrdiff_t j = 0; j < c; j++) yi[j] = (T)(yi[j] * s);
    }
}

/* dx[i, :] := y_i * (dy_i - <dy_i, y_i>) for rows i < n, the dot product in double, in
 * order (dx may be dy) */
static void PBN_V(softmax_backward_rows)(const T *dy, const T *y, ptrdiff_t n, ptrdiff_t c,
                                         T *dx)
{
    pbn_variant_ran(PBN_LOOP_SOFTMAX_BACKWARD, ISA_ID);
    for (ptrdiff_t i = 0; i < n; i++) {
        const T *dyi = dy + i * c, *yi = y + i * c;
        T *dxi = dx + i * c;
        double dot = 0.0;
        for (ptrdiff_t j = 0; j < c; j++) dot += (double)dyi[j] * yi[j];
        for (ptrdiff_t j = 0; j < c; j++) dxi[j] = (T)(yi[j] * (dyi[j] - dot));
    }
}

static const PBN_V_CAT(pbn_loss_loops, SUF) PBN_V(loss_loops) = {
    PBN_V(exp_span), PBN_V(log1p_span), PBN_V(softmax_xent_rows), PBN_V(xent_probs_rows),
    PBN_V(softmax_rows), PBN_V(softmax_backward_rows),
};
