/* The GEMM engine's runtime layer, below every other engine file (gemm.c, the special
 * paths, the micro-kernels call into it; it calls none of them): which instruction set the
 * kernels use, and the per-thread scratch memory.
 *
 * ISA choice, made once at first use:
 *   the best the CPU supports: avx512 (avx512f + bw + vl + dq, and the OS saves the zmm /
 *   opmask state: OSXSAVE and XCR0 bits 1, 2, 5, 6, 7), else avx2 (avx2 + fma, and the OS
 *   saves ymm state: XCR0 bits 1, 2), else portable;
 *   overridden by PYBLASNN_ISA=avx512|avx2|portable in the environment (read once, at the
 *   first use): a name the CPU lacks, or an unknown name, is refused (pbn_isa_env_error says
 *   why; the Python module raises ValueError at import) and the detected ISA is kept;
 *   changed at run time by pbn_isa_set (tests), which refuses an ISA the CPU lacks.
 * No kernel of an ISA the CPU lacks is ever called, so nothing dies of SIGILL. */
#ifndef PBN_GEMM_RUNTIME_H
#define PBN_GEMM_RUNTIME_H
#include <stddef.h>

typedef enum { PBN_ISA_PORTABLE = 0, PBN_ISA_AVX2 = 1, PBN_ISA_AVX512 = 2, PBN_ISA_COUNT = 3 } pbn_isa_t;

/* "portable", "avx2", "avx512" */
const char *pbn_isa_name(int isa);
/* the ISA index of a name, or -1 */
int pbn_isa_parse(const char *name);
/* the best ISA this CPU and OS support (detected once) */
int pbn_isa_best(void);
/* 1 if the CPU and OS can run kernels of this ISA */
int pbn_isa_supported(int isa);
/* the ISA chosen at first use (PYBLASNN_ISA or the best), within a simulated CPU's */
int pbn_isa_initial(void);
/* the ISA in use now */
int pbn_isa(void);
/* Use this ISA from now on: 0 on success, -1 (and nothing changes) when unsupported. */
int pbn_isa_set(int isa);
/* NULL, or why PYBLASNN_ISA was refused (a sentence naming the variable and the CPU's ISAs) */
const char *pbn_isa_env_error(void);
/* the CPU's supported ISAs in words, e.g. "avx512, avx2, portable" */
const char *pbn_isa_cpu_list(void);
/* The check PYBLASNN_ISA's value gets: its ISA, or -1 with the reason in err. */
int pbn_isa_env_check(const char *value, char *err, size_t n);
/* Test hook: behave as if the CPU supported at most `best` (-1: what it really has); the
 * ISA in use drops to it if it was above. Lets a test on an AVX-512 machine check that
 * forcing an ISA the CPU lacks is refused. */
void pbn_isa_simulate_cpu(int best);

/* the AVX2 + FMA (or wider) kernels are in use: pbn_isa() >= PBN_ISA_AVX2 */
int pbn_gemm_use_simd(void);

/* 64-byte aligned scratch of at least `bytes`, one buffer per thread kept between calls,
 * or NULL when out of memory; pbn_scratch_done when the thread is done with it. */
void *pbn_scratch(size_t bytes);
void pbn_scratch_done(void);
/* Packing buffers allocated and not yet freed, over all threads (tests). */
size_t pbn_gemm_scratch_buffers(void);

#endif
