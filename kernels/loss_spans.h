/* Inner loops of the loss kernels (kernels/loss.pyx).
 *
 * The loops are written once (loss_spans_tpl.h) and compiled for AVX-512, AVX2 and the
 * baseline (pbn_variants.h); the functions below pick the variant of the ISA in use
 * (pbn_isa()) at every call. Every variant does the same IEEE operations in the same order,
 * so results are bitwise identical on every ISA.
 *
 * pbn_exp_span_f32 is a branch-free float32 exp that the compiler vectorises: libm's scalar
 * expf was most of the softmax's time. float64 uses libm's exp and log1p.
 *
 * pbn_softmax_xent_rows_<T> runs the fused softmax + cross-entropy over rows through an
 * L1-sized scratch block: (1) row max, argmax test, shifted logits; (2) one exp over the
 * whole block; (3) row sums (in double), log1p(sum - 1) in T (pbn_log1p_span_f32 for
 * float32), loss, gradient. The probabilities' cross-entropy, the softmax and its backward
 * (pbn_xent_probs_rows, pbn_softmax_rows, pbn_softmax_backward_rows) work row by row.
 */
#ifndef PBN_LOSS_SPANS_H
#define PBN_LOSS_SPANS_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pbn_isa.h"

static inline uint32_t pbn_f32_bits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
static inline float pbn_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }

/* Scratch elements per block: 8 KiB (float32) / 16 KiB (float64), in L1 next to the rows. */
#define PBN_XENT_WORK 2048
/* Up to this many classes a block of PBN_XENT_ROWS rows is transposed, so that every
 * per-row step (max, argmax, sum, scale) runs with the vector lanes across rows: a row of
 * 10 logits is too short to vectorise along, and its serial max and sum chains were most of
 * the time. Wider rows are processed one row at a time. */
#define PBN_XENT_NARROW 16
#define PBN_XENT_ROWS (PBN_XENT_WORK / PBN_XENT_NARROW)

/* One ISA's loss loops for one dtype. */
#define PBN_LOSS_LOOPS_TYPE(T, SUF)                                                        \
typedef struct {                                                                           \
    void (*exp_span)(const T *x, T *y, ptrdiff_t n);                                       \
    void (*log1p_span)(const T *x, T *y, ptrdiff_t n);                                     \
    ptrdiff_t (*softmax_xent_rows)(const T *z, ptrdiff_t n, ptrdiff_t c,                   \
                                   const ptrdiff_t *labels, T *dz, double scale,           \
                                   double *row_loss);                                      \
    ptrdiff_t (*xent_probs_rows)(const T *p, ptrdiff_t n, ptrdiff_t c,                     \
                                 const ptrdiff_t *labels, T *dp, double scale, double eps, \
                                 double *row_loss);                                        \
    void (*softmax_rows)(const T *x, ptrdiff_t n, ptrdiff_t c, T *y);                      \
    void (*softmax_backward_rows)(const T *dy, const T *y, ptrdiff_t n, ptrdiff_t c,       \
                                  T *dx);                                                  \
} pbn_loss_loops_##SUF;
PBN_LOSS_LOOPS_TYPE(float, f32)
PBN_LOSS_LOOPS_TYPE(double, f64)
#undef PBN_LOSS_LOOPS_TYPE

#define PBN_TEMPLATE "loss_spans_tpl.h"
#include "pbn_variants.h"
#undef PBN_TEMPLATE
PBN_VARIANT_TABLE(pbn_loss_loops, f32);
PBN_VARIANT_TABLE(pbn_loss_loops, f64);

/* the table of the ISA in use */
#define PBN_LOSS(SUF) (pbn_loss_loops_by_isa_##SUF[pbn_isa()])

/* The loops of the ISA in use, by the names loss.pyx calls:
 *   pbn_exp_span:   y := exp(x);  pbn_log1p_span: y := log(1 + x), x >= 0
 *   pbn_softmax_xent_rows: for rows i < n of logits z (n, c) with labels y (each in [0, c),
 *     checked by the caller)
 *       row_loss[i] := log(sum_j exp(z_ij - m_i)) - (z_iy - m_i),   m_i = max_j z_ij
 *       dz[i, :]    := (softmax(z_i) - onehot(y_i)) * scale         (skipped when dz is NULL)
 *     and returns how many rows have argmax(z_i) == y_i (numpy's argmax: first maximum, NaN
 *     first), or -1 when a row is too long for the scratch block and malloc fails. Both
 *     layouts do the same operations per element in the same order (sums over j = 0..c-1),
 *     so the results do not depend on the block a row falls in.
 *   pbn_xent_probs_rows: row_loss[i] := -log(clip(p[i, y_i], eps, 1 - eps)), dp (or NULL)
 *     its gradient times scale; returns how many rows have argmax(p_i) == y_i
 *   pbn_softmax_rows:          y := softmax(x) along rows (y may be x)
 *   pbn_softmax_backward_rows: dx := y * (dy - <dy, y>) along rows (dx may be dy) */
#define PBN_LOSS_DISPATCH(T, SUF)                                                          \
static inline void pbn_exp_span_##SUF(const T *x, T *y, ptrdiff_t n)                       \
{ PBN_LOSS(SUF)->exp_span(x, y, n); }                                                      \
static inline void pbn_log1p_span_##SUF(const T *x, T *y, ptrdiff_t n)                     \
{ PBN_LOSS(SUF)->log1p_span(x, y, n); }                                                    \
static inline ptrdiff_t pbn_softmax_xent_rows_##SUF(const T *z, ptrdiff_t n, ptrdiff_t c,  \
                                                    const ptrdiff_t *labels, T *dz,        \
                                                    double scale, double *row_loss)        \
{ return PBN_LOSS(SUF)->softmax_xent_rows(z, n, c, labels, dz, scale,                      \
                                                            row_loss); }                   \
static inline ptrdiff_t pbn_xent_probs_rows_##SUF(const T *p, ptrdiff_t n, ptrdiff_t c,    \
                                                  const ptrdiff_t *labels, T *dp,          \
                                                  double scale, double eps,                \
                                                  double *row_loss)                        \
{ return PBN_LOSS(SUF)->xent_probs_rows(p, n, c, labels, dp, scale, eps,                   \
                                                          row_loss); }                     \
static inline void pbn_softmax_rows_##SUF(const T *x, ptrdiff_t n, ptrdiff_t c, T *y)      \
{ PBN_LOSS(SUF)->softmax_rows(x, n, c, y); }                                               \
static inline void pbn_softmax_backward_rows_##SUF(const T *dy, const T *y, ptrdiff_t n,   \
                                                   ptrdiff_t c, T *dx)                     \
{ PBN_LOSS(SUF)->softmax_backward_rows(dy, y, n, c, dx); }
PBN_LOSS_DISPATCH(float, f32)
PBN_LOSS_DISPATCH(double, f64)
#undef PBN_LOSS_DISPATCH

#endif
