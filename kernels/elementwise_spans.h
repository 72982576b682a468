/* Contiguous inner loops of the element-wise kernels, written so the compiler turns every
 * select into a vector blend (no data-dependent branch: relu_backward on random signs
 * would otherwise mispredict half of its branches).
 *
 * Each loop is also compiled for AVX2 (simd_clones.h). Output may be one
 * of the inputs (in-place), never a partial overlap (pyblasnn.ops guarantees that).
 *
 * Arithmetic is plain IEEE: each +, -, *, / rounds once, exactly as NumPy's loops do. That
 * holds because the build never enables contraction (-std=c11 implies -ffp-contract=off
 * in GCC) nor -ffast-math / -freciprocal-math; tests/test_elementwise.py checks the bits.
 */
#ifndef PBN_ELEMENTWISE_SPANS_H
#define PBN_ELEMENTWISE_SPANS_H
#include <stddef.h>

#include "simd_clones.h"

/* The binary operations of the broadcasting kernel (kernels/elementwise.pyx declares this
 * enum from here, so C and Cython share one set of codes). */
typedef enum {
    PBN_OP_ADD = 0,
    PBN_OP_MAXIMUM = 1,
    PBN_OP_SUBTRACT = 2,
    PBN_OP_MULTIPLY = 3,
    PBN_OP_DIVIDE = 4
} pbn_binary_op;

#define PBN_DEFINE_SPANS(T, SUF)                                                          \
/* y := maximum(x, 0) exactly as numpy: NaN kept, -0.0 -> +0.0 */                            \
PBN_SIMD_CLONES static void pbn_relu_span_##SUF(const T *x, T *y, ptrdiff_t n)            \
{                                                                                         \
    for (ptrdiff_t i = 0; i < n; i++) { T v = x[i]; y[i] = (v > (T)0 || v != v) ? v : (T)0; }         \
}                                                                                         \
/* dx := dy where x > 0 else 0 */                                                         \
PBN_SIMD_CLONES static void pbn_relu_backward_span_##SUF(const T *dy, const T *x, T *dx,  \
                                                         ptrdiff_t n)                     \
{                                                                                         \
    for (ptrdiff_t i = 0; i < n; i++) { T g = dy[i]; dx[i] = x[i] > (T)0 ? g : (T)0; }    \
}                                                                                         \
/* z := x + y */                                                                          \
PBN_SIMD_CLONES static void pbn_add_span_##SUF(const T *x, const T *y, T *z, ptrdiff_t n) \
{                                                                                         \
    for (ptrdiff_t i = 0; i < n; i++) z[i] = x[i] + y[i];                                 \
}                                                                                         \
/* z := x - y */                                                                          \
PBN_SIMD_CLONES static void pbn_subtract_span_##SUF(const T *x, const T *y, T *z,         \
                                                    ptrdiff_t n)                          \
{                                                                                         \
    for (ptrdiff_t i = 0; i < n; i++) z[i] = x[i] - y[i];                                 \
}                                                                                         \
/* z := x * y */                                                                          \
PBN_SIMD_CLONES static void pbn_multiply_span_##SUF(const T *x, const T *y, T *z,         \
                                                    ptrdiff_t n)                          \
{                                                                                         \
    for (ptrdiff_t i = 0; i < n; i++) z[i] = x[i] * y[i];                                 \
}                                                                                         \
/* z := x / y (IEEE: x / 0 is +-inf, 0 / 0 is NaN; never a reciprocal-multiply) */       \
PBN_SIMD_CLONES static void pbn_divide_span_##SUF(const T *x, const T *y, T *z,           \
                                                  ptrdiff_t n)                            \
{                                                                                         \
    for (ptrdiff_t i = 0; i < n; i++) z[i] = x[i] / y[i];                                 \
}                                                                                         \
/* dx := dz where maximum(x, y) picked x (x > y or x is NaN), dy := dz elsewhere */       \
PBN_SIMD_CLONES static void pbn_maximum_backward_span_##SUF(const T *x, const T *y,       \
                                                            const T *dz, T *dx, T *dy,    \
                                                            ptrdiff_t n)                  \
{                                                                                         \
    for (ptrdiff_t i = 0; i < n; i++) {                                                   \
        T a = x[i], b = y[i], g = dz[i];                                                  \
        int pick_x = (a > b) | (a != a);                                                  \
        dx[i] = pick_x ? g : (T)0;                                                        \
        dy[i] = pick_x ? (T)0 : g;                                                        \
    }                                                                                     \
}                                                                                         \
/* sum of x[0..n): 32 interleaved partial sums (four AVX2 chains), combined pairwise;   \
 * a fixed order, so the result never depends on threads */                              \
PBN_SIMD_CLONES static T pbn_sum_span_##SUF(const T *x, ptrdiff_t n)                      \
{                                                                                         \
    T acc[32] = {0};                                                                      \
    ptrdiff_t i = 0;                                                                      \
    for (; i + 32 <= n; i += 32)                                                          \
        for (int l = 0; l < 32; l++) acc[l] += x[i + l];                                  \
    for (int w = 16; w >= 1; w /= 2)                                                      \
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];                                 \
    T s = acc[0];                                                                         \
    for (; i < n; i++) s += x[i];                                                         \
    return s;                                                                             \
}                                                                                         \
/* z := maximum(x, y) exactly as numpy: x where x > y or x is NaN, else y (ties -> y) */              \
PBN_SIMD_CLONES static void pbn_maximum_span_##SUF(const T *x, const T *y, T *z,          \
                                                   ptrdiff_t n)                           \
{                                                                                         \
    for (ptrdiff_t i = 0; i < n; i++) {                                                   \
        T a = x[i], b = y[i]; z[i] = (a > b || a != a) ? a : b; }                        \
}                                                                                         \
/* z := x (op) y over contiguous x, y, z: one of the span loops above */                  \
static inline void pbn_binary_span_##SUF(pbn_binary_op op, const T *x, const T *y, T *z,  \
                                         ptrdiff_t n)                                     \
{                                                                                         \
    switch (op) {                                                                         \
    case PBN_OP_ADD:      pbn_add_span_##SUF(x, y, z, n); break;                          \
    case PBN_OP_SUBTRACT: pbn_subtract_span_##SUF(x, y, z, n); break;                     \
    case PBN_OP_MULTIPLY: pbn_multiply_span_##SUF(x, y, z, n); break;                     \
    case PBN_OP_DIVIDE:   pbn_divide_span_##SUF(x, y, z, n); break;                       \
    default:              pbn_maximum_span_##SUF(x, y, z, n); break;                      \
    }                                                                                     \
}

PBN_DEFINE_SPANS(float, f32)
PBN_DEFINE_SPANS(double, f64)

#endif
