/* The GEMM engine's runtime layer, below every other engine file (gemm.c, the special
 * paths, the micro-kernels call into it; it calls none of them): which instruction set the
 * kernels use, and the per-thread scratch memory.
 *
 * The ISA choice itself (detection, PYBLASNN_ISA, the test switch) is shared with the other
 * kernel modules: ../pbn_isa.h, whose API this header re-exports. */
#ifndef PBN_GEMM_RUNTIME_H
#define PBN_GEMM_RUNTIME_H
#include <stddef.h>

#include "../pbn_isa.h"

/* the AVX2 + FMA (or wider) kernels are in use: pbn_isa() >= PBN_ISA_AVX2 */
int pbn_gemm_use_simd(void);

/* 64-byte aligned scratch of at least `bytes`, one buffer per thread kept between calls,
 * or NULL when out of memory; pbn_scratch_done when the thread is done with it. */
void *pbn_scratch(size_t bytes);
void pbn_scratch_done(void);
/* Packing buffers allocated and not yet freed, over all threads (tests). */
size_t pbn_gemm_scratch_buffers(void);

#endif
