/* Which instruction set (ISA) the kernels use, and a record of which ISA's variant of each
 * element-wise, loss and optimizer loop ran. Declarations shared by every kernel module and
 * by the C GEMM engine; definitions: pbn_isa_impl.h, compiled once into each extension
 * module (through _isa.pxd), so each module holds its own copy of the choice.
 *
 * ISA choice, made when a module is imported (pbn_isa_init):
 *   the best the CPU supports: avx512 (avx512f + bw + vl + dq, and the OS saves the zmm /
 *   opmask state: OSXSAVE and XCR0 bits 1, 2, 5, 6, 7), else avx2 (avx2 + fma, and the OS
 *   saves ymm state: XCR0 bits 1, 2), else portable;
 *   overridden by PYBLASNN_ISA=avx512|avx2|portable in the environment: a name the CPU
 *   lacks, or an unknown name, is refused (pbn_isa_env_error says why; every kernel module
 *   raises ValueError at import) and the detected ISA is kept;
 *   changed at run time by pbn_isa_set (tests), which refuses an ISA the CPU lacks.
 * Every module reads the same CPU and the same variable, so all make the same choice; the
 * run-time switch that keeps them together is pyblasnn._config.set_isa (it calls each
 * module's set_isa). No code of an ISA the CPU lacks is ever called, so nothing dies of
 * SIGILL.
 *
 * Variant record: every compiled variant of a loop (pbn_variants.h) calls pbn_variant_ran
 * with its loop and its ISA when it runs; pbn_variants_ran(loop) is the set of ISAs whose
 * variant of that loop ran since pbn_reset_variants. Tests use it to prove that forcing an
 * ISA really ran that ISA's code. One load and a predictable branch per call of a loop (a
 * span of up to 8192 elements, or a row); the shared byte is written only when its set
 * grows.
 */
#ifndef PBN_ISA_H
#define PBN_ISA_H
#include <stddef.h>

typedef enum { PBN_ISA_PORTABLE = 0, PBN_ISA_AVX2 = 1, PBN_ISA_AVX512 = 2, PBN_ISA_COUNT = 3 } pbn_isa_t;

/* The loops compiled once per ISA (element-wise, loss and optimizer kernels). */
typedef enum {
    PBN_LOOP_RELU,
    PBN_LOOP_RELU_BACKWARD,
    PBN_LOOP_ADD,
    PBN_LOOP_SUBTRACT,
    PBN_LOOP_MULTIPLY,
    PBN_LOOP_DIVIDE,
    PBN_LOOP_MAXIMUM,
    PBN_LOOP_MAXIMUM_BACKWARD,
    PBN_LOOP_SUM,
    PBN_LOOP_EXP,
    PBN_LOOP_LOG1P,
    PBN_LOOP_SOFTMAX_XENT,
    PBN_LOOP_XENT_PROBS,
    PBN_LOOP_SOFTMAX,
    PBN_LOOP_SOFTMAX_BACKWARD,
    PBN_LOOP_SGD,
    PBN_LOOP_MOMENTUM,
    PBN_LOOP_NESTEROV,
    PBN_LOOP_RMSPROP,
    PBN_LOOP_RMSPROP_MOMENTUM,
    PBN_N_LOOPS
} pbn_loop;

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif
/* Detect the CPU and read PYBLASNN_ISA (once; every other call returns at once). Each
 * module calls it when it is imported; the queries below call it too. */
void pbn_isa_init(void);
/* "portable", "avx2", "avx512" */
const char *pbn_isa_name(int isa);
/* the ISA index of a name, or -1 */
int pbn_isa_parse(const char *name);
/* the best ISA this CPU and OS support (detected once) */
int pbn_isa_best(void);
/* 1 if the CPU and OS can run code of this ISA */
int pbn_isa_supported(int isa);
/* the ISA chosen at import (PYBLASNN_ISA or the best), within a simulated CPU's */
int pbn_isa_initial(void);
/* the ISA in use now (a relaxed load: cheap enough to call per loop) */
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

/* The variant of `loop` for `isa` is running (called by the variant itself). */
void pbn_variant_ran(int loop, int isa);
/* Bit i set: the variant of `loop` for ISA i ran since the last reset. */
unsigned pbn_variants_ran(int loop);
const char *pbn_loop_name(int loop);
void pbn_reset_variants(void);
#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
