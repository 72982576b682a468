/* Inner loops of the optimizer updates (kernels/optim.pyx).
 *
 * The loops are written once (optim_spans_tpl.h) and compiled for AVX-512, AVX2 and the
 * baseline (pbn_variants.h); pbn_update_span_<T> picks the variant of the ISA in use
 * (pbn_isa()) at every call. Each update rounds every operation once, in the parameter's
 * dtype, in the same order on every ISA (no FMA contraction: -std=c11), so all variants
 * give the same bits; sqrt is IEEE's correctly rounded square root.
 */
#ifndef PBN_OPTIM_SPANS_H
#define PBN_OPTIM_SPANS_H
#include <math.h>
#include <stddef.h>

#include "pbn_isa.h"

/* The update rules (kernels/optim.pyx declares this enum from here). */
typedef enum {
    PBN_RULE_SGD = 0,
    PBN_RULE_MOMENTUM = 1,
    PBN_RULE_NESTEROV = 2,
    PBN_RULE_RMSPROP = 3,
    PBN_RULE_RMSPROP_MOMENTUM = 4
} pbn_rule;

/* One ISA's update loops for one dtype. */
#define PBN_OPTIM_LOOPS_TYPE(T, SUF)                                                       \
typedef struct {                                                                           \
    void (*sgd)(T *w, const T *g, ptrdiff_t n, T lr);                                      \
    void (*momentum)(T *w, T *v, const T *g, ptrdiff_t n, T lr, T m);                      \
    void (*nesterov)(T *w, T *v, const T *g, ptrdiff_t n, T lr, T m);                      \
    void (*rmsprop)(T *w, T *a, const T *g, ptrdiff_t n, T lr, T rho, T eps);              \
    void (*rmsprop_momentum)(T *w, T *a, T *mom, const T *g, ptrdiff_t n, T lr, T rho,     \
                             T m, T eps);                                                  \
} pbn_optim_loops_##SUF;
PBN_OPTIM_LOOPS_TYPE(float, f32)
PBN_OPTIM_LOOPS_TYPE(double, f64)
#undef PBN_OPTIM_LOOPS_TYPE

#define PBN_TEMPLATE "optim_spans_tpl.h"
#include "pbn_variants.h"
#undef PBN_TEMPLATE
PBN_VARIANT_TABLE(pbn_optim_loops, f32);
PBN_VARIANT_TABLE(pbn_optim_loops, f64);

/* the table of the ISA in use */
#define PBN_OPTIM(SUF) (pbn_optim_loops_by_isa_##SUF[pbn_isa()])

/* One step of `rule` over n elements with the ISA in use: w the parameter, s1 its first
 * state (velocity / accumulator), s2 its second (RMSprop's momentum), g the gradient;
 * hyperparameters already rounded to the dtype. Long spans run in two calls split where w
 * reaches a cache line (pbn_align_head). */
#define PBN_OPTIM_DISPATCH(T, SUF)                                                         \
static inline void pbn_update_loop_##SUF(const pbn_optim_loops_##SUF *k, pbn_rule rule,    \
                                         T *w, T *s1, T *s2, const T *g, ptrdiff_t n,      \
                                         T lr, T m, T rho, T eps)                          \
{                                                                                          \
    switch (rule) {                                                                        \
    case PBN_RULE_SGD:       k->sgd(w, g, n, lr); break;                                   \
    case PBN_RULE_MOMENTUM:  k->momentum(w, s1, g, n, lr, m); break;                       \
    case PBN_RULE_NESTEROV:  k->nesterov(w, s1, g, n, lr, m); break;                       \
    case PBN_RULE_RMSPROP:   k->rmsprop(w, s1, g, n, lr, rho, eps); break;                 \
    default:                 k->rmsprop_momentum(w, s1, s2, g, n, lr, rho, m, eps); break; \
    }                                                                                      \
}                                                                                          \
static inline void pbn_update_span_##SUF(pbn_rule rule, T *w, T *s1, T *s2, const T *g,    \
                                         ptrdiff_t n, T lr, T m, T rho, T eps)             \
{                                                                                          \
    const pbn_optim_loops_##SUF *k = PBN_OPTIM(SUF);                                       \
    const ptrdiff_t h = pbn_align_head(w, sizeof(T), n);                                   \
    if (h) pbn_update_loop_##SUF(k, rule, w, s1, s2, g, h, lr, m, rho, eps);               \
    pbn_update_loop_##SUF(k, rule, w + h, s1 ? s1 + h : NULL, s2 ? s2 + h : NULL, g + h,   \
                          n - h, lr, m, rho, eps);                                         \
}
PBN_OPTIM_DISPATCH(float, f32)
PBN_OPTIM_DISPATCH(double, f64)
#undef PBN_OPTIM_DISPATCH

#endif
