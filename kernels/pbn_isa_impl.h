/* Definitions of pbn_isa.h. Included exactly once per extension module (by the module's
 * generated C file, through _isa.pxd); the symbols are hidden, so each module has its own
 * copy of the choice and the GEMM engine's files link to linalg's. */
#ifndef PBN_ISA_IMPL_H
#define PBN_ISA_IMPL_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pbn_isa.h"
#if !defined(_WIN32)
#include <pthread.h>
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define PBN_ISA_X86 1
#include <cpuid.h>
#else
#define PBN_ISA_X86 0
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

static const char *const pbn_isa_names[PBN_ISA_COUNT] = { "portable", "avx2", "avx512" };

const char *pbn_isa_name(int isa)
{
    return isa >= 0 && isa < PBN_ISA_COUNT ? pbn_isa_names[isa] : "unknown";
}

int pbn_isa_parse(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < PBN_ISA_COUNT; i++)
        if (strcmp(name, pbn_isa_names[i]) == 0) return i;
    return -1;
}

#if PBN_ISA_X86
/* XCR0: which register state the OS saves on a context switch (0 when XGETBV is absent). */
static uint64_t pbn_xcr0(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 27))) return 0;              /* OSXSAVE: the OS enabled XSAVE / XGETBV */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static int pbn_detect(void)
{
    __builtin_cpu_init();
    const uint64_t xcr0 = pbn_xcr0();
    const uint64_t ymm = (1u << 1) | (1u << 2);                       /* SSE, AVX state */
    const uint64_t zmm = ymm | (1u << 5) | (1u << 6) | (1u << 7);     /* + opmask, ZMM_Hi256, Hi16_ZMM */
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                     && (xcr0 & ymm) == ymm;
    const int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                       && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
                       && (xcr0 & zmm) == zmm;
    return avx512 ? PBN_ISA_AVX512 : avx2 ? PBN_ISA_AVX2 : PBN_ISA_PORTABLE;
}
#else
static int pbn_detect(void) { return PBN_ISA_PORTABLE; }
#endif

static int pbn_detected = PBN_ISA_PORTABLE;
static int pbn_cap = PBN_ISA_COUNT - 1;          /* test hook: pretend the CPU has at most this */
static int pbn_current = PBN_ISA_PORTABLE;       /* read by every kernel call: relaxed atomics */
static int pbn_initial = PBN_ISA_PORTABLE;       /* the choice made at import */
static char pbn_env_error[256];

static int pbn_best_now(void)
{
    const int cap = __atomic_load_n(&pbn_cap, __ATOMIC_RELAXED);
    return pbn_detected < cap ? pbn_detected : cap;
}

static void pbn_list(int best, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = best; i >= 0 && len < n; i--)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", i == best ? "" : ", ", pbn_isa_names[i]);
}

static int pbn_env_check(int best, const char *value, char *err, size_t n)
{
    char cpu[64];
    pbn_list(best, cpu, sizeof cpu);
    const int want = pbn_isa_parse(value);
    if (want < 0) {
        snprintf(err, n, "PYBLASNN_ISA=%.40s is not one of avx512, avx2, portable (this CPU has: %s)",
                 value, cpu);
        return -1;
    }
    if (want > best) {
        snprintf(err, n, "PYBLASNN_ISA=%s: this CPU (or its OS) does not support %s; it has: %s",
                 value, value, cpu);
        return -1;
    }
    return want;
}

int pbn_isa_env_check(const char *value, char *err, size_t n)
{
    return pbn_env_check(pbn_isa_best(), value, err, n);
}

static void pbn_isa_read_cpu_and_env(void)
{
    pbn_detected = pbn_detect();
    int isa = pbn_detected;
    const char *env = getenv("PYBLASNN_ISA");
    if (env && *env) {
        const int want = pbn_env_check(pbn_detected, env, pbn_env_error, sizeof pbn_env_error);
        if (want >= 0) isa = want;
    }
    pbn_initial = isa;
    __atomic_store_n(&pbn_current, isa, __ATOMIC_RELAXED);
}

#if !defined(_WIN32)
static pthread_once_t pbn_isa_once = PTHREAD_ONCE_INIT;
void pbn_isa_init(void) { pthread_once(&pbn_isa_once, pbn_isa_read_cpu_and_env); }
#else
static int pbn_isa_done = 0;   /* called at import, under the GIL */
void pbn_isa_init(void)
{
    if (!pbn_isa_done) { pbn_isa_read_cpu_and_env(); pbn_isa_done = 1; }
}
#endif

int pbn_isa_initial(void)
{
    pbn_isa_init();
    const int best = pbn_best_now();
    return pbn_initial < best ? pbn_initial : best;
}

int pbn_isa_best(void) { pbn_isa_init(); return pbn_best_now(); }
int pbn_isa_supported(int isa) { return isa >= 0 && isa <= pbn_isa_best(); }

const char *pbn_isa_cpu_list(void)
{
    static char list[PBN_ISA_COUNT][64];
    const int best = pbn_isa_best();
    if (!list[best][0]) pbn_list(best, list[best], sizeof list[best]);
    return list[best];
}

const char *pbn_isa_env_error(void)
{
    pbn_isa_init();
    return pbn_env_error[0] ? pbn_env_error : NULL;
}

/* pbn_isa_init has run by the time any kernel is called (module import); before it, the
 * portable ISA, which every CPU runs. */
int pbn_isa(void) { return __atomic_load_n(&pbn_current, __ATOMIC_RELAXED); }

int pbn_isa_set(int isa)
{
    if (!pbn_isa_supported(isa)) return -1;
    __atomic_store_n(&pbn_current, isa, __ATOMIC_RELAXED);
    return 0;
}

void pbn_isa_simulate_cpu(int best)
{
    pbn_isa_init();
    __atomic_store_n(&pbn_cap, best < 0 || best >= PBN_ISA_COUNT ? PBN_ISA_COUNT - 1 : best,
                     __ATOMIC_RELAXED);
    const int now = pbn_best_now();
    if (__atomic_load_n(&pbn_current, __ATOMIC_RELAXED) > now)
        __atomic_store_n(&pbn_current, now, __ATOMIC_RELAXED);
}

/* ---- which variants ran ---- */
static unsigned char pbn_variant_bits[PBN_N_LOOPS];

static const char *const pbn_loop_names[PBN_N_LOOPS] = {
    "relu", "relu_backward", "add", "subtract", "multiply", "divide", "maximum",
    "maximum_backward", "sum", "exp", "log1p", "softmax_xent", "xent_probs", "softmax",
    "softmax_backward", "sgd", "momentum", "nesterov", "rmsprop", "rmsprop_momentum",
};

void pbn_variant_ran(int loop, int isa)
{
    const unsigned char bit = (unsigned char)(1u << isa);
    if (!(__atomic_load_n(&pbn_variant_bits[loop], __ATOMIC_RELAXED) & bit))
        __atomic_fetch_or(&pbn_variant_bits[loop], bit, __ATOMIC_RELAXED);
}

unsigned pbn_variants_ran(int loop)
{
    return __atomic_load_n(&pbn_variant_bits[loop], __ATOMIC_RELAXED);
}

const char *pbn_loop_name(int loop) { return pbn_loop_names[loop]; }

void pbn_reset_variants(void)
{
    for (int l = 0; l < PBN_N_LOOPS; l++)
        __atomic_store_n(&pbn_variant_bits[l], (unsigned char)0, __ATOMIC_RELAXED);
}

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#endif
