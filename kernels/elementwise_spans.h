/* Contiguous inner loops of the element-wise kernels (kernels/elementwise.pyx).
 *
 * The loops are written once (elementwise_spans_tpl.h) and compiled for AVX-512, AVX2 and
 * the baseline (pbn_variants.h); the functions below pick the variant of the ISA in use
 * (pbn_isa(): PYBLASNN_ISA, or the best the CPU has) at every call. Output may be one
 * of the inputs (in-place), never a partial overlap (pyblasnn.ops guarantees that).
 *
 * Arithmetic is plain IEEE: each +, -, *, / rounds once, exactly as NumPy's loops do, on
 * every ISA. That holds because the build never enables contraction (-std=c11 implies
 * -ffp-contract=off in GCC) nor -ffast-math / -freciprocal-math; tests/test_elementwise.py
 * and tests/test_isa_loops.py check the bits.
 */
#ifndef PBN_ELEMENTWISE_SPANS_H
#define PBN_ELEMENTWISE_SPANS_H
#include <stddef.h>

#include "pbn_isa.h"

/* The binary operations of the broadcasting kernel (kernels/elementwise.pyx declares this
 * enum from here, so C and Cython share one set of codes). */
typedef enum {
    PBN_OP_ADD = 0,
    PBN_OP_MAXIMUM = 1,
    PBN_OP_SUBTRACT = 2,
    PBN_OP_MULTIPLY = 3,
    PBN_OP_DIVIDE = 4,
    PBN_N_OPS = 5
} pbn_binary_op;

/* One ISA's element-wise loops for one dtype. */
#define PBN_EW_LOOPS_TYPE(T, SUF)                                                          \
typedef struct {                                                                           \
    void (*relu)(const T *x, T *y, ptrdiff_t n);                                           \
    void (*relu_backward)(const T *dy, const T *x, T *dx, ptrdiff_t n);                    \
    void (*binary[PBN_N_OPS])(const T *x, const T *y, T *z, ptrdiff_t n);                  \
    void (*binary_vs[PBN_N_OPS])(const T *x, T y, T *z, ptrdiff_t n);                      \
    void (*binary_sv[PBN_N_OPS])(T x, const T *y, T *z, ptrdiff_t n);                      \
    void (*maximum_backward[3])(const T *x, const T *y, const T *dz, T *dx, T *dy,         \
                                ptrdiff_t n);                                              \
    T (*sum)(const T *x, ptrdiff_t n);                                                     \
} pbn_ew_loops_##SUF;
PBN_EW_LOOPS_TYPE(float, f32)
PBN_EW_LOOPS_TYPE(double, f64)
#undef PBN_EW_LOOPS_TYPE

/* streaming loops: 256-bit vectors in the AVX-512 copy too (see pbn_variants.h) */
#define PBN_AVX512_VECTOR_BITS 256
#define PBN_TEMPLATE "elementwise_spans_tpl.h"
#include "pbn_variants.h"
#undef PBN_TEMPLATE
PBN_VARIANT_TABLE(pbn_ew_loops, f32);
PBN_VARIANT_TABLE(pbn_ew_loops, f64);

/* the table of the ISA in use */
#define PBN_EW(SUF) (pbn_ew_loops_by_isa_##SUF[pbn_isa()])

/* The loops of the ISA in use, by the names elementwise.pyx calls. Long spans run in two
 * calls split where the output reaches a cache line (pbn_align_head). */
#define PBN_EW_DISPATCH(T, SUF)                                                            \
/* y := maximum(x, 0), NaN kept */                                                         \
static inline void pbn_relu_span_##SUF(const T *x, T *y, ptrdiff_t n)                      \
{                                                                                          \
    const pbn_ew_loops_##SUF *k = PBN_EW(SUF);                                             \
    const ptrdiff_t h = pbn_align_head(y, sizeof(T), n);                                   \
    if (h) k->relu(x, y, h);                                                               \
    k->relu(x + h, y + h, n - h);                                                          \
}                                                                                          \
/* dx := dy where x > 0 else 0 */                                                          \
static inline void pbn_relu_backward_span_##SUF(const T *dy, const T *x, T *dx,            \
                                                ptrdiff_t n)                               \
{                                                                                          \
    const pbn_ew_loops_##SUF *k = PBN_EW(SUF);                                             \
    const ptrdiff_t h = pbn_align_head(dx, sizeof(T), n);                                  \
    if (h) k->relu_backward(dy, x, dx, h);                                                 \
    k->relu_backward(dy + h, x + h, dx + h, n - h);                                        \
}                                                                                          \
/* z := x (op) y over contiguous x, y, z */                                                \
static inline void pbn_binary_span_##SUF(pbn_binary_op op, const T *x, const T *y, T *z,   \
                                         ptrdiff_t n)                                      \
{                                                                                          \
    void (*loop)(const T *, const T *, T *, ptrdiff_t) = PBN_EW(SUF)->binary[op];          \
    const ptrdiff_t h = pbn_align_head(z, sizeof(T), n);                                   \
    if (h) loop(x, y, z, h);                                                               \
    loop(x + h, y + h, z + h, n - h);                                                      \
}                                                                                          \
/* z := x + y */                                                                           \
static inline void pbn_add_span_##SUF(const T *x, const T *y, T *z, ptrdiff_t n)           \
{ pbn_binary_span_##SUF(PBN_OP_ADD, x, y, z, n); }                                         \
/* z := x (op) y over contiguous x, z and one number y */                                  \
static inline void pbn_binary_span_vs_##SUF(pbn_binary_op op, const T *x, T y, T *z,       \
                                            ptrdiff_t n)                                   \
{                                                                                          \
    void (*loop)(const T *, T, T *, ptrdiff_t) = PBN_EW(SUF)->binary_vs[op];               \
    const ptrdiff_t h = pbn_align_head(z, sizeof(T), n);                                   \
    if (h) loop(x, y, z, h);                                                               \
    loop(x + h, y, z + h, n - h);                                                          \
}                                                                                          \
/* z := x (op) y over one number x and contiguous y, z */                                  \
static inline void pbn_binary_span_sv_##SUF(pbn_binary_op op, T x, const T *y, T *z,       \
                                            ptrdiff_t n)                                   \
{                                                                                          \
    void (*loop)(T, const T *, T *, ptrdiff_t) = PBN_EW(SUF)->binary_sv[op];               \
    const ptrdiff_t h = pbn_align_head(z, sizeof(T), n);                                   \
    if (h) loop(x, y, z, h);                                                               \
    loop(x, y + h, z + h, n - h);                                                          \
}                                                                                          \
/* dx := dz where maximum picked x, dy := dz elsewhere, for x and y of element strides sx,  \
 * sy that are 1, or 0 for one number; returns 0 (and does nothing) for other strides */  \
static inline int pbn_maximum_backward_span_##SUF(const T *x, ptrdiff_t sx, const T *y,    \
                                                  ptrdiff_t sy, const T *dz, T *dx, T *dy, \
                                                  ptrdiff_t n)                             \
{                                                                                          \
    const int k = sx == 1 ? (sy == 1 ? 0 : sy == 0 ? 1 : -1) : sx == 0 && sy == 1 ? 2 : -1; \
    if (k < 0) return 0;                                                                   \
    void (*loop)(const T *, const T *, const T *, T *, T *, ptrdiff_t) =                   \
        PBN_EW(SUF)->maximum_backward[k];                                                  \
    const ptrdiff_t h = pbn_align_head(dx, sizeof(T), n);                                  \
    if (h) loop(x, y, dz, dx, dy, h);                                                      \
    loop(x + h * sx, y + h * sy, dz + h, dx + h, dy + h, n - h);                           \
    return 1;                                                                              \
}                                                                                          \
/* sum of x[0..n) in a fixed order (never split: the order is the loop's) */               \
static inline T pbn_sum_span_##SUF(const T *x, ptrdiff_t n)                                \
{ return PBN_EW(SUF)->sum(x, n); }                                                         \
/* z[r, :] := x[r*rsx + i*sx] (op) y[r*rsy + i*sy] over i < cols, for rows r < rows of a   \
 * C-contiguous z, with sx, sy each 1 or 0 (one number), not both 0: a bias row, a column  \
 * or an outer broadcast; the loop is picked once for all rows (short rows are common:     \
 * (128, 10) + (10,)). Returns 0 (and does nothing) for other strides. */                  \
static inline int pbn_binary_rows_##SUF(pbn_binary_op op, const T *x, ptrdiff_t rsx,       \
                                        ptrdiff_t sx, const T *y, ptrdiff_t rsy,           \
                                        ptrdiff_t sy, T *z, ptrdiff_t rows, ptrdiff_t cols) \
{                                                                                          \
    const pbn_ew_loops_##SUF *k = PBN_EW(SUF);                                             \
    if (sx == 1 && sy == 1) {                                                              \
        void (*loop)(const T *, const T *, T *, ptrdiff_t) = k->binary[op];                \
        for (ptrdiff_t r = 0; r < rows; r++, x += rsx, y += rsy, z += cols) {              \
            const ptrdiff_t h = pbn_align_head(z, sizeof(T), cols);                        \
            if (h) loop(x, y, z, h);                                                       \
            loop(x + h, y + h, z + h, cols - h);                                           \
        }                                                                                  \
    } else if (sx == 1 && sy == 0) {                                                       \
        void (*loop)(const T *, T, T *, ptrdiff_t) = k->binary_vs[op];                     \
        for (ptrdiff_t r = 0; r < rows; r++, x += rsx, y += rsy, z += cols) {              \
            const ptrdiff_t h = pbn_align_head(z, sizeof(T), cols);                        \
            if (h) loop(x, *y, z, h);                                                      \
            loop(x + h, *y, z + h, cols - h);                                              \
        }                                                                                  \
    } else if (sx == 0 && sy == 1) {                                                       \
        void (*loop)(T, const T *, T *, ptrdiff_t) = k->binary_sv[op];                     \
        for (ptrdiff_t r = 0; r < rows; r++, x += rsx, y += rsy, z += cols) {              \
            const ptrdiff_t h = pbn_align_head(z, sizeof(T), cols);                        \
            if (h) loop(*x, y, z, h);                                                      \
            loop(*x, y + h, z + h, cols - h);                                              \
        }                                                                                  \
    } else {                                                                               \
        return 0;                                                                          \
    }                                                                                      \
    return 1;                                                                              \
}                                                                                          \
/* acc[j] += a[i*lda + j] for j < w, rows i = 0, 1, ... rows-1 added in that order (a      \
 * block of column sums), the add loop picked once for all rows */                         \
static inline void pbn_add_rows_##SUF(const T *a, ptrdiff_t lda, ptrdiff_t rows, T *acc,   \
                                      ptrdiff_t w)                                         \
{                                                                                          \
    void (*loop)(const T *, const T *, T *, ptrdiff_t) = PBN_EW(SUF)->binary[PBN_OP_ADD];  \
    const ptrdiff_t h = pbn_align_head(acc, sizeof(T), w);                                 \
    for (ptrdiff_t i = 0; i < rows; i++, a += lda) {                                       \
        if (h) loop(acc, a, acc, h);                                                       \
        loop(acc + h, a + h, acc + h, w - h);                                              \
    }                                                                                      \
}
PBN_EW_DISPATCH(float, f32)
PBN_EW_DISPATCH(double, f64)
#undef PBN_EW_DISPATCH

#endif
