/* Part of pbn_variants.h: include PBN_TEMPLATE for float and for double, with the ISA the
 * includer set. */
#define T float
#define SUF f32
#define PBN_F32 1
#include PBN_TEMPLATE
#undef T
#undef SUF
#undef PBN_F32

#define T double
#define SUF f64
#define PBN_F32 0
#include PBN_TEMPLATE
#undef T
#undef SUF
#undef PBN_F32
