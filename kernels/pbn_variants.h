/* Loops compiled once per instruction set, picked per call by the ISA in use (pbn_isa.h).
 *
 * A family of loops (the element-wise spans, the loss rows, the optimizer updates) is
 * written once, as a template header of plain C over T (float / double), and compiled for
 * three ISAs: the x86-64 baseline ("portable"), AVX2, and AVX-512 (F/VL/BW/DQ, 512-bit
 * vectors preferred). The compiler vectorises each copy for its ISA. None contracts a * b + c
 * into an FMA (the build uses -std=c11, which implies -ffp-contract=off in GCC, and never
 * -ffast-math), and every reduction is written with a fixed order, so each variant does the
 * same IEEE operations in the same order and all three give the same bits.
 *
 * Use, in a family's header (after every system header it needs):
 *     #define PBN_AVX512_VECTOR_BITS 256      (optional, see below)
 *     #define PBN_TEMPLATE "family_tpl.h"
 *     #include "pbn_variants.h"
 *     #undef PBN_TEMPLATE
 * The template is then included once per (ISA, dtype) with these macros set:
 *     T, SUF      float, f32 / double, f64; PBN_F32 is 1 for float
 *     ISA, ISA_ID portable / avx2 / avx512 and its pbn_isa_t value
 * and names its functions PBN_V(name) (pbn_name_<ISA>_<SUF>). It ends with a table of its
 * loops, PBN_V(fam) of type pbn_fam_<SUF>; PBN_VARIANT_TABLE(pbn_fam, SUF) then gives the
 * family one array of those tables indexed by ISA, pbn_fam_by_isa_<SUF>, which its
 * dispatchers index with pbn_isa().
 * Each variant calls pbn_variant_ran(loop, ISA_ID) when it runs (the proof tests read).
 *
 * The AVX-512 copy prefers 512-bit vectors. A family whose loops stream arrays from L1 / L2
 * defines PBN_AVX512_VECTOR_BITS 256 first: NumPy aligns arrays to 16 bytes only, so a
 * 64-byte load from an input aligned unlike the output straddles two cache lines every
 * time (32-byte loads every other time), and an add of two such arrays ran 10-20% slower
 * with 512-bit vectors than with 256-bit ones, which still get AVX-512's masks.
 *
 * The AVX2 and AVX-512 copies need GCC's target pragmas (x86, GCC); elsewhere only the
 * portable copy is built and every ISA's table entry points at it (PBN_VARIANT_ISAS says
 * which ISAs have their own copy).
 */
#ifndef PBN_VARIANTS_H
#define PBN_VARIANTS_H
#include <stddef.h>
#include <stdint.h>

#include "pbn_isa.h"

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define PBN_VARIANTS_COMPILED 1
#else
#define PBN_VARIANTS_COMPILED 0
#endif
/* Bit i set: ISA i has its own compiled copy of the loops. */
#define PBN_VARIANT_ISAS (PBN_VARIANTS_COMPILED ? 7 : 1)

/* Where a dispatcher splits a span of n elements of `size` bytes written at out: the count
 * before out's next 64-byte boundary (0 for spans under 256 elements, where the second
 * call would cost more than it saves). Calling the loop on [0, head) and then on
 * [head, n) makes the vector loop's stores whole cache lines (and its loads too, from
 * inputs aligned like out): NumPy aligns arrays to 16 bytes only, and with stores that
 * straddle two lines relu on 1e5 floats in L2 took 10.4 us with AVX-512 and 11.8 with AVX2,
 * with aligned ones 7.5 and 7.9 (SSE: 10.3). Only for loops whose elements are
 * independent, so no result depends on where the split falls. */
static inline ptrdiff_t pbn_align_head(const void *out, size_t size, ptrdiff_t n)
{
    if (n < 256) return 0;
    return (ptrdiff_t)(((64 - ((uintptr_t)out & 63)) & 63) / size);
}

#define PBN_V_CAT3_(a, b, c) pbn_##a##_##b##_##c
#define PBN_V_CAT3(a, b, c) PBN_V_CAT3_(a, b, c)
#define PBN_V_CAT_(a, b) a##_##b
#define PBN_V_CAT(a, b) PBN_V_CAT_(a, b)
/* pbn_name_<ISA>_<SUF> inside a template */
#define PBN_V(name) PBN_V_CAT3(name, ISA, SUF)

/* static const fam_SUF *const fam_by_isa_SUF[PBN_ISA_COUNT]: the tables fam_<ISA>_SUF of a
 * family's loops (type fam_SUF), indexed by ISA */
#if PBN_VARIANTS_COMPILED
#define PBN_VARIANT_TABLE(fam, SUF)                                                         \
    static const fam##_##SUF *const fam##_by_isa_##SUF[PBN_ISA_COUNT] = {                  \
        &fam##_portable_##SUF, &fam##_avx2_##SUF, &fam##_avx512_##SUF }
#else
#define PBN_VARIANT_TABLE(fam, SUF)                                                         \
    static const fam##_##SUF *const fam##_by_isa_##SUF[PBN_ISA_COUNT] = {                  \
        &fam##_portable_##SUF, &fam##_portable_##SUF, &fam##_portable_##SUF }
#endif
#endif /* PBN_VARIANTS_H */

/* ---- the instantiation, each time a family includes this file with PBN_TEMPLATE set ---- */
#ifdef PBN_TEMPLATE
#ifndef PBN_AVX512_VECTOR_BITS
#define PBN_AVX512_VECTOR_BITS 512
#endif
#define ISA portable
#define ISA_ID PBN_ISA_PORTABLE
#include "pbn_variant_dtypes.h"
#undef ISA
#undef ISA_ID

#if PBN_VARIANTS_COMPILED
#pragma GCC push_options
#pragma GCC target("avx2")
#define ISA avx2
#define ISA_ID PBN_ISA_AVX2
#include "pbn_variant_dtypes.h"
#undef ISA
#undef ISA_ID
#pragma GCC pop_options

#pragma GCC push_options
#if PBN_AVX512_VECTOR_BITS == 256
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,prefer-vector-width=256")
#else
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,prefer-vector-width=512")
#endif
#define ISA avx512
#define ISA_ID PBN_ISA_AVX512
#include "pbn_variant_dtypes.h"
#undef ISA
#undef ISA_ID
#pragma GCC pop_options
#endif
#undef PBN_AVX512_VECTOR_BITS
#endif
