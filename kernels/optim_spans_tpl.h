/* The optimizer updates over contiguous spans, for one (ISA, dtype): included by
 * optim_spans.h through pbn_variants.h, which sets T, SUF, PBN_F32, ISA, ISA_ID.
 * Branch-free loops the compiler vectorises. g[i] is read once, into a local, before any
 * state or w[i] is written: g may be one of the updated arrays itself (an exact alias;
 * partial overlaps are refused by the validation). */

#if PBN_F32
#define PBN_SQRT sqrtf
#else
#define PBN_SQRT sqrt
#endif

/* w := w - lr * g */
static void PBN_V(sgd)(T *w, const T *g, ptrdiff_t n, T lr)
{
    pbn_variant_ran(PBN_LOOP_SGD, ISA_ID);
    for (ptrdiff_t i = 0; i < n; i++) w[i] = w[i] - lr * g[i];
}

/* v := m*v - lr*g;  w := w + v */
static void PBN_V(momentum)(T *w, T *v, const T *g, ptrdiff_t n, T lr, T m)
{
    pbn_variant_ran(PBN_LOOP_MOMENTUM, ISA_ID);
    for (ptrdiff_t i = 0; i < n; i++) {
        const T gi = g[i], vi = m * v[i] - lr * gi;
        v[i] = vi;
        w[i] = w[i] + vi;
    }
}

/* v := m*v - lr*g;  w := w + (m*v - lr*g) */
static void PBN_V(nesterov)(T *w, T *v, const T *g, ptrdiff_t n, T lr, T m)
{
    pbn_variant_ran(PBN_LOOP_NESTEROV, ISA_ID);
    for (ptrdiff_t i = 0; i < n; i++) {
        const T gi = g[i], vi = m * v[i] - lr * gi;
        v[i] = vi;
        w[i] = w[i] + (m * vi - lr * gi);
    }
}

/* a := rho*a + (1-rho)*g^2;  w := w - lr*g / (sqrt(a) + eps)   (sqrt correctly rounded) */
static void PBN_V(rmsprop)(T *w, T *a, const T *g, ptrdiff_t n, T lr, T rho, T eps)
{
    pbn_variant_ran(PBN_LOOP_RMSPROP, ISA_ID);
    const T one_minus_rho = (T)1 - rho;
    for (ptrdiff_t i = 0; i < n; i++) {
        const T gi = g[i], ai = rho * a[i] + one_minus_rho * gi * gi;
        a[i] = ai;
        w[i] = w[i] - lr * gi / (PBN_SQRT(ai) + eps);
    }
}

/* a := rho*a + (1-rho)*g^2;  mom := m*mom + lr*g / (sqrt(a) + eps);  w := w - mom */
static void PBN_V(rmsprop_momentum)(T *w, T *a, T *mom, const T *g, ptrdiff_t n, T lr, T rho,
                                    T m, T eps)
{
    pbn_variant_ran(PBN_LOOP_RMSPROP_MOMENTUM, ISA_ID);
    const T one_minus_rho = (T)1 - rho;
    for (ptrdiff_t i = 0; i < n; i++) {
        const T gi = g[i], ai = rho * a[i] + one_minus_rho * gi * gi;
        a[i] = ai;
        const T di = m * mom[i] + lr * gi / (PBN_SQRT(ai) + eps);
        mom[i] = di;
        w[i] = w[i] - di;
    }
}
#undef PBN_SQRT

static const PBN_V_CAT(pbn_optim_loops, SUF) PBN_V(optim_loops) = {
    PBN_V(sgd), PBN_V(momentum), PBN_V(nesterov), PBN_V(rmsprop), PBN_V(rmsprop_momentum),
};
