/* The GEMM engine's runtime layer (see gemm_runtime.h): ISA detection and choice, and the
 * per-thread scratch memory. Calls nothing else in the engine. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gemm_runtime.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define PBN_X86 1
#include <cpuid.h>
#else
#define PBN_X86 0
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

#if PBN_X86
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
static int pbn_current = PBN_ISA_PORTABLE;       /* read by every product: relaxed atomics */
static int pbn_initial = PBN_ISA_PORTABLE;       /* the choice made at first use */
static char pbn_env_error[256];
static pthread_once_t pbn_isa_once = PTHREAD_ONCE_INIT;

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

static void pbn_isa_init(void)
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

int pbn_isa_initial(void)
{
    pthread_once(&pbn_isa_once, pbn_isa_init);
    const int best = pbn_best_now();
    return pbn_initial < best ? pbn_initial : best;
}

int pbn_isa_best(void) { pthread_once(&pbn_isa_once, pbn_isa_init); return pbn_best_now(); }
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
    pthread_once(&pbn_isa_once, pbn_isa_init);
    return pbn_env_error[0] ? pbn_env_error : NULL;
}

int pbn_isa(void)
{
    pthread_once(&pbn_isa_once, pbn_isa_init);
    return __atomic_load_n(&pbn_current, __ATOMIC_RELAXED);
}

int pbn_isa_set(int isa)
{
    if (!pbn_isa_supported(isa)) return -1;
    __atomic_store_n(&pbn_current, isa, __ATOMIC_RELAXED);
    return 0;
}

void pbn_isa_simulate_cpu(int best)
{
    pthread_once(&pbn_isa_once, pbn_isa_init);
    __atomic_store_n(&pbn_cap, best < 0 || best >= PBN_ISA_COUNT ? PBN_ISA_COUNT - 1 : best,
                     __ATOMIC_RELAXED);
    const int now = pbn_best_now();
    if (__atomic_load_n(&pbn_current, __ATOMIC_RELAXED) > now)
        __atomic_store_n(&pbn_current, now, __ATOMIC_RELAXED);
}

int pbn_gemm_use_simd(void) { return pbn_isa() >= PBN_ISA_AVX2; }

/* ---- scratch memory ----
 * 64-byte aligned packing scratch, one buffer per thread kept between calls.
 * A fresh malloc of a few hundred KiB per call is served by mmap, and the page faults on
 * first touch cost ~3% of a (128,784)@(784,512) product; OpenMP's pool threads and the
 * calling thread are long-lived, so a per-thread buffer that only grows removes that.
 * Thread-safe because each thread owns its buffer; nothing in the engine recurses, so
 * one buffer per thread is enough. Buffers above PBN_SCRATCH_KEEP bytes are not kept
 * (pbn_scratch_done frees them) so a single huge product does not pin memory.
 * The buffer hangs off a pthread key whose destructor frees it when the thread exits
 * (short-lived Python threads, the pool threads of an OpenMP team that goes away): a bare
 * _Thread_local pointer would leak up to PBN_SCRATCH_KEEP bytes per thread that ever ran
 * a product. */
#define PBN_SCRATCH_KEEP ((size_t)16 << 20)
typedef struct { void *mem; size_t cap; } pbn_scratch_slot;
static pthread_key_t pbn_scratch_key;
static int pbn_scratch_key_ok = 0;
static pthread_once_t pbn_scratch_once = PTHREAD_ONCE_INIT;
static size_t pbn_scratch_live = 0;   /* buffers allocated and not yet freed (tests) */

static void pbn_scratch_free_slot(void *p)
{
    pbn_scratch_slot *s = (pbn_scratch_slot *)p;
    if (s->mem) __atomic_fetch_sub(&pbn_scratch_live, 1, __ATOMIC_RELAXED);
    free(s->mem);
    free(s);
}

static void pbn_scratch_make_key(void)
{
    pbn_scratch_key_ok = pthread_key_create(&pbn_scratch_key, pbn_scratch_free_slot) == 0;
}

static void *pbn_align(void *p) { return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

static pbn_scratch_slot *pbn_scratch_slot_of_thread(int create)
{
    pthread_once(&pbn_scratch_once, pbn_scratch_make_key);
    if (!pbn_scratch_key_ok) return NULL;
    pbn_scratch_slot *s = (pbn_scratch_slot *)pthread_getspecific(pbn_scratch_key);
    if (!s && create) {
        s = (pbn_scratch_slot *)calloc(1, sizeof *s);
        if (s && pthread_setspecific(pbn_scratch_key, s) != 0) { free(s); s = NULL; }
    }
    return s;
}

void *pbn_scratch(size_t bytes)
{
    pbn_scratch_slot *s = pbn_scratch_slot_of_thread(1);
    if (!s) return NULL;
    if (bytes > s->cap || !s->mem) {
        if (s->mem) __atomic_fetch_sub(&pbn_scratch_live, 1, __ATOMIC_RELAXED);
        free(s->mem);
        s->mem = malloc(bytes + 64);
        s->cap = s->mem ? bytes : 0;
        if (!s->mem) return NULL;
        __atomic_fetch_add(&pbn_scratch_live, 1, __ATOMIC_RELAXED);
    }
    return pbn_align(s->mem);
}

void pbn_scratch_done(void)
{
    pbn_scratch_slot *s = pbn_scratch_slot_of_thread(0);
    if (s && s->cap > PBN_SCRATCH_KEEP) {
        __atomic_fetch_sub(&pbn_scratch_live, 1, __ATOMIC_RELAXED);
        free(s->mem); s->mem = NULL; s->cap = 0;
    }
}

size_t pbn_gemm_scratch_buffers(void) { return __atomic_load_n(&pbn_scratch_live, __ATOMIC_RELAXED); }
