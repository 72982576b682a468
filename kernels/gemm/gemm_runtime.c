/* The GEMM engine's runtime layer (see gemm_runtime.h): the per-thread scratch memory (the
 * ISA choice is ../pbn_isa_impl.h, compiled into linalg). Calls nothing else in the engine. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include "gemm_runtime.h"

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
