/* Inner loops of the loss kernels (kernels/loss.pyx).
 *
 * pbn_exp_span_f32 is a branch-free float32 exp that the compiler vectorises (and compiles
 * for AVX2 too, simd_clones.h): libm's scalar expf was most of the softmax's time. Both
 * clones do the same IEEE operations in the same order, so results are bitwise identical
 * on every machine path.
 *
 * pbn_softmax_xent_rows_<T> runs the fused softmax + cross-entropy over rows through an
 * L1-sized scratch block: (1) row max, argmax test, shifted logits; (2) one exp over the
 * whole block; (3) row sums (in double), log1p(sum - 1) in T (pbn_log1p_span_f32 for
 * float32), loss, gradient.
 */
#ifndef PBN_LOSS_SPANS_H
#define PBN_LOSS_SPANS_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "simd_clones.h"

static inline uint32_t pbn_f32_bits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
static inline float pbn_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }

/* y := exp(x), float32, within 2 ulp of the correctly rounded result (tests measure it).
 * x = k ln2 + r with k = round(x / ln2), |r| <= ln2 / 2 (ln2 split in two parts so k ln2 is
 * exact); exp(r) = 1 + r + r^2 P(r), P of degree 5 (the Cephes expf coefficients);
 * exp(x) = exp(r) 2^k1 2^k2 with k1 + k2 = k, so subnormal results are rounded once and
 * overflow gives inf. NaN propagates; x < -104 gives 0, x > 89 gives inf. */
PBN_SIMD_CLONES static void pbn_exp_span_f32(const float *x, float *y, ptrdiff_t n)
{
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
static inline float pbn_log_core_f32(float x)
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
PBN_SIMD_CLONES static void pbn_log1p_span_f32(const float *x, float *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const float t = x[i], u = 1.0f + t;
        const float r = pbn_log_core_f32(u) + (t - (u - 1.0f)) / u;
        y[i] = (pbn_f32_bits(t) & 0x7f800000u) == 0x7f800000u ? t : r;
    }
}

/* y := log(1 + x), float64 (libm) */
static void pbn_log1p_span_f64(const double *x, double *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = log1p(x[i]);
}

/* y := exp(x), float64 (libm) */
static void pbn_exp_span_f64(const double *x, double *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = exp(x[i]);
}

/* Scratch elements per block: 8 KiB (float32) / 16 KiB (float64), in L1 next to the rows. */
#define PBN_XENT_WORK 2048
/* Up to this many classes a block of PBN_XENT_ROWS rows is transposed, so that every
 * per-row step (max, argmax, sum, scale) runs with the vector lanes across rows: a row of
 * 10 logits is too short to vectorise along, and its serial max and sum chains were most of
 * the time. Wider rows are processed one row at a time. */
#define PBN_XENT_NARROW 16
#define PBN_XENT_ROWS (PBN_XENT_WORK / PBN_XENT_NARROW)

/* For rows i < n of logits z (n, c) with labels y (each in [0, c), checked by the caller):
 *   row_loss[i] := log(sum_j exp(z_ij - m_i)) - (z_iy - m_i),   m_i = max_j z_ij
 *   dz[i, :]   := (softmax(z_i) - onehot(y_i)) * scale          (skipped when dz is NULL)
 * Returns how many rows have argmax(z_i) == y_i (numpy's argmax: first maximum, NaN first),
 * or -1 when a row is too long for the scratch block and malloc fails.
 * Both layouts do the same operations per element in the same order (sums over j = 0..c-1),
 * so the results do not depend on the block a row falls in. */
#define PBN_DEFINE_SOFTMAX_XENT(T, SUF)                                                      \
PBN_SIMD_CLONES static ptrdiff_t pbn_softmax_xent_narrow_##SUF(const T *z, ptrdiff_t n, ptrdiff_t c,          \
                                              const ptrdiff_t *labels, T *dz, double scale,  \
                                              double *row_loss)                              \
{                                                                                            \
    T w[PBN_XENT_WORK], m[PBN_XENT_ROWS], first[PBN_XENT_ROWS];                              \
    double s[PBN_XENT_ROWS];                                                                 \
    ptrdiff_t correct = 0;                                                                   \
    for (ptrdiff_t r0 = 0; r0 < n; r0 += PBN_XENT_ROWS) {                                    \
        const ptrdiff_t R = n - r0 < PBN_XENT_ROWS ? n - r0 : PBN_XENT_ROWS;                 \
        const T *zb = z + r0 * c;                                                            \
        const ptrdiff_t *yb = labels + r0;                                                   \
        for (ptrdiff_t j = 0; j < c; j++)                   /* w[j, i] := z[i, j] */         \
            for (ptrdiff_t i = 0; i < R; i++) w[j * R + i] = zb[i * c + j];                  \
        for (ptrdiff_t i = 0; i < R; i++) m[i] = w[i];                                       \
        for (ptrdiff_t j = 1; j < c; j++)                   /* NaN-propagating max */        \
            for (ptrdiff_t i = 0; i < R; i++) {                                              \
                T v = w[j * R + i];                                                          \
                m[i] = (m[i] != m[i] || v <= m[i]) ? m[i] : v;                               \
            }                                                                                \
        for (ptrdiff_t i = 0; i < R; i++) first[i] = (T)c;                                   \
        for (ptrdiff_t j = c; j-- > 0;)                     /* first index of the max */     \
            for (ptrdiff_t i = 0; i < R; i++) {                                              \
                T v = w[j * R + i];                                                          \
                first[i] = (v == m[i] || (m[i] != m[i] && v != v)) ? (T)j : first[i];        \
            }                                                                                \
        for (ptrdiff_t i = 0; i < R; i++) {                                                  \
            correct += first[i] == (T)yb[i];                                                 \
            row_loss[r0 + i] = (double)m[i] - (double)zb[i * c + yb[i]];                     \
        }                                                                                    \
        for (ptrdiff_t j = 0; j < c; j++)                                                    \
            for (ptrdiff_t i = 0; i < R; i++) w[j * R + i] = w[j * R + i] - m[i];            \
        pbn_exp_span_##SUF(w, w, R * c);                                                     \
        for (ptrdiff_t i = 0; i < R; i++) s[i] = 0.0;                                        \
        for (ptrdiff_t j = 0; j < c; j++)                                                    \
            for (ptrdiff_t i = 0; i < R; i++) s[i] += (double)w[j * R + i];                  \
        for (ptrdiff_t i = 0; i < R; i++) m[i] = (T)(s[i] - 1.0);  /* log1p(sum - 1) in T */ \
        pbn_log1p_span_##SUF(m, m, R);                                                       \
        for (ptrdiff_t i = 0; i < R; i++) row_loss[r0 + i] += (double)m[i];                  \
        if (dz == NULL) continue;                                                            \
        for (ptrdiff_t i = 0; i < R; i++) s[i] = scale / s[i];                               \
        T *db = dz + r0 * c;                                                                 \
        for (ptrdiff_t j = 0; j < c; j++)                                                    \
            for (ptrdiff_t i = 0; i < R; i++) db[i * c + j] = (T)(w[j * R + i] * s[i]);      \
        for (ptrdiff_t i = 0; i < R; i++) db[i * c + yb[i]] = (T)(db[i * c + yb[i]] - scale);\
    }                                                                                        \
    return correct;                                                                          \
}                                                                                            \
                                                                                             \
static ptrdiff_t pbn_softmax_xent_wide_##SUF(const T *z, ptrdiff_t n, ptrdiff_t c,            \
                                            const ptrdiff_t *labels, T *dz, double scale,    \
                                            double *row_loss)                                \
{                                                                                            \
    T stack_work[PBN_XENT_WORK];                                                             \
    T *w = c <= PBN_XENT_WORK ? stack_work : (T *)malloc((size_t)c * sizeof(T));             \
    if (w == NULL) return -1;                                                                \
    ptrdiff_t correct = 0;                                                                   \
    for (ptrdiff_t i = 0; i < n; i++) {                                                      \
        const T *zi = z + i * c;                                                             \
        T m = zi[0];                                                                         \
        for (ptrdiff_t j = 1; j < c; j++) m = (m != m || zi[j] <= m) ? m : zi[j];            \
        ptrdiff_t first = c;                                                                 \
        for (ptrdiff_t j = c; j-- > 0;)                                                      \
            first = (zi[j] == m || (m != m && zi[j] != zi[j])) ? j : first;                  \
        correct += first == labels[i];                                                       \
        row_loss[i] = (double)m - (double)zi[labels[i]];                                     \
        for (ptrdiff_t j = 0; j < c; j++) w[j] = zi[j] - m;                                  \
        pbn_exp_span_##SUF(w, w, c);                                                         \
        double s = 0.0;                                                                      \
        for (ptrdiff_t j = 0; j < c; j++) s += (double)w[j];                                 \
        T log_s = (T)(s - 1.0);                                                              \
        pbn_log1p_span_##SUF(&log_s, &log_s, 1);                                             \
        row_loss[i] += (double)log_s;                                                        \
        if (dz == NULL) continue;                                                            \
        T *di = dz + i * c;                                                                  \
        double inv_s = scale / s;                                                            \
        for (ptrdiff_t j = 0; j < c; j++) di[j] = (T)(w[j] * inv_s);                         \
        di[labels[i]] = (T)(di[labels[i]] - scale);                                          \
    }                                                                                        \
    if (w != stack_work) free(w);                                                            \
    return correct;                                                                          \
}                                                                                            \
                                                                                             \
static ptrdiff_t pbn_softmax_xent_rows_##SUF(const T *z, ptrdiff_t n, ptrdiff_t c,            \
                                            const ptrdiff_t *labels, T *dz, double scale,    \
                                            double *row_loss)                                \
{                                                                                            \
    return c <= PBN_XENT_NARROW                                                              \
        ? pbn_softmax_xent_narrow_##SUF(z, n, c, labels, dz, scale, row_loss)                \
        : pbn_softmax_xent_wide_##SUF(z, n, c, labels, dz, scale, row_loss);                 \
}

PBN_DEFINE_SOFTMAX_XENT(float, f32)
PBN_DEFINE_SOFTMAX_XENT(double, f64)

#endif
