/* The element-wise loops over contiguous spans, for one (ISA, dtype): included by
 * elementwise_spans.h through pbn_variants.h, which sets T, SUF, ISA, ISA_ID.
 * Selects are written so the compiler turns them into vector blends (no data-dependent
 * branch: relu_backward on random signs would otherwise mispredict half of its branches).
 * Output may be one of the inputs (in-place), never a partial overlap. */

/* numpy.maximum(a, b): a where a > b or a is NaN, else b (ties -> b, so -0.0 vs 0.0 -> b).
 * Written as x86's max (a > b ? a : b) and then the NaN case, in two statements: that
 * vectorises to one compare and a masked max (one condition a > b || a != a became two
 * compares into mask registers with AVX-512, and a second load of b: up to 20% slower). */
static inline T PBN_V(maximum_of)(T a, T b)
{
    const T m = a > b ? a : b;
    return a != a ? a : m;
}

/* y := maximum(x, 0) exactly as numpy: NaN kept, -0.0 -> +0.0 */
static void PBN_V(relu)(const T *x, T *y, ptrdiff_t n)
{
    pbn_variant_ran(PBN_LOOP_RELU, ISA_ID);
    for (ptrdiff_t i = 0; i < n; i++) y[i] = PBN_V(maximum_of)(x[i], (T)0);
}

/* dx := dy where x > 0 else 0 */
static void PBN_V(relu_backward)(const T *dy, const T *x, T *dx, ptrdiff_t n)
{
    pbn_variant_ran(PBN_LOOP_RELU_BACKWARD, ISA_ID);
    for (ptrdiff_t i = 0; i < n; i++) { T g = dy[i]; dx[i] = x[i] > (T)0 ? g : (T)0; }
}

/* z := a (op) b, three loops per operation: both operands contiguous (vv), y one number
 * (vs: a scalar, or a broadcast column), x one number (sv). EXPR reads a and b. */
#define PBN_EW_BINARY(NAME, LOOP, EXPR)                                                    \
static void PBN_V(NAME)(const T *x, const T *y, T *z, ptrdiff_t n)                         \
{                                                                                          \
    pbn_variant_ran(LOOP, ISA_ID);                                                         \
    for (ptrdiff_t i = 0; i < n; i++) { const T a = x[i], b = y[i]; z[i] = (EXPR); }       \
}                                                                                          \
static void PBN_V(NAME##_vs)(const T *x, T b, T *z, ptrdiff_t n)                           \
{                                                                                          \
    pbn_variant_ran(LOOP, ISA_ID);                                                         \
    for (ptrdiff_t i = 0; i < n; i++) { const T a = x[i]; z[i] = (EXPR); }                 \
}                                                                                          \
static void PBN_V(NAME##_sv)(T a, const T *y, T *z, ptrdiff_t n)                           \
{                                                                                          \
    pbn_variant_ran(LOOP, ISA_ID);                                                         \
    for (ptrdiff_t i = 0; i < n; i++) { const T b = y[i]; z[i] = (EXPR); }                 \
}
PBN_EW_BINARY(add, PBN_LOOP_ADD, a + b)
PBN_EW_BINARY(subtract, PBN_LOOP_SUBTRACT, a - b)
PBN_EW_BINARY(multiply, PBN_LOOP_MULTIPLY, a * b)
/* IEEE: x / 0 is +-inf, 0 / 0 is NaN; never a reciprocal-multiply */
PBN_EW_BINARY(divide, PBN_LOOP_DIVIDE, a / b)
PBN_EW_BINARY(maximum, PBN_LOOP_MAXIMUM, PBN_V(maximum_of)(a, b))
#undef PBN_EW_BINARY

/* dx := dz where maximum(x, y) picked x (x > y or x is NaN), dy := dz elsewhere; x and y
 * with element strides XS, YS (1, or 0 for one broadcast number) */
#define PBN_EW_MAXIMUM_BACKWARD(NAME, XS, YS)                                              \
static void PBN_V(NAME)(const T *x, const T *y, const T *dz, T *dx, T *dy, ptrdiff_t n)    \
{                                                                                          \
    pbn_variant_ran(PBN_LOOP_MAXIMUM_BACKWARD, ISA_ID);                                    \
    for (ptrdiff_t i = 0; i < n; i++) {                                                    \
        const T a = x[(XS) * i], b = y[(YS) * i], g = dz[i];                               \
        const int pick_x = (a > b) | (a != a);                                             \
        dx[i] = pick_x ? g : (T)0;                                                         \
        dy[i] = pick_x ? (T)0 : g;                                                         \
    }                                                                                      \
}
PBN_EW_MAXIMUM_BACKWARD(maximum_backward, 1, 1)
PBN_EW_MAXIMUM_BACKWARD(maximum_backward_vs, 1, 0)
PBN_EW_MAXIMUM_BACKWARD(maximum_backward_sv, 0, 1)
#undef PBN_EW_MAXIMUM_BACKWARD

/* sum of x[0..n): 32 interleaved partial sums, combined pairwise, then the tail in order;
 * a fixed order, so the result depends neither on threads nor on the ISA */
static T PBN_V(sum)(const T *x, ptrdiff_t n)
{
    pbn_variant_ran(PBN_LOOP_SUM, ISA_ID);
    T acc[32] = {0};
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int l = 0; l < 32; l++) acc[l] += x[i + l];
    for (int w = 16; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    T s = acc[0];
    for (; i < n; i++) s += x[i];
    return s;
}

/* the table: binary loops in the order of pbn_binary_op, maximum_backward's as vv, vs, sv */
static const PBN_V_CAT(pbn_ew_loops, SUF) PBN_V(ew_loops) = {
    PBN_V(relu), PBN_V(relu_backward),
    { PBN_V(add), PBN_V(maximum), PBN_V(subtract), PBN_V(multiply), PBN_V(divide) },
    { PBN_V(add_vs), PBN_V(maximum_vs), PBN_V(subtract_vs), PBN_V(multiply_vs),
      PBN_V(divide_vs) },
    { PBN_V(add_sv), PBN_V(maximum_sv), PBN_V(subtract_sv), PBN_V(multiply_sv),
      PBN_V(divide_sv) },
    { PBN_V(maximum_backward), PBN_V(maximum_backward_vs), PBN_V(maximum_backward_sv) },
    PBN_V(sum),
};
