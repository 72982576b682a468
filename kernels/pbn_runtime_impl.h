/* Definitions of pbn_runtime.h. Included exactly once per extension module (by the module's
 * generated C file, through _runtime.pxd); the symbols are hidden, so each module has its own
 * copy of the state and the GEMM engine's files link to linalg's. */
#ifndef PBN_RUNTIME_IMPL_H
#define PBN_RUNTIME_IMPL_H
#include "pbn_runtime.h"
#include "openmp_shim.h"
#if !defined(_WIN32)
#include <pthread.h>
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

static volatile int pbn_rt_forked = 0;
static unsigned long long pbn_rt_calls[PBN_N_PATHS];
static unsigned long long pbn_rt_parallel[PBN_N_PATHS];

static const char *const pbn_rt_names[PBN_N_PATHS] = {
    "gemm.gemv", "gemm.sparse", "gemm.dot", "gemm.packed", "gemm.swap", "gemm.batched",
    "gemm.batched_tiny", "relu", "relu_backward", "binary.flat", "binary.rows",
    "maximum_mask", "column_sum", "scatter_add", "take_rows", "softmax_xent",
    "xent_probs", "softmax", "softmax_backward", "optim.update",
};

int pbn_team(int requested)
{
    if (pbn_rt_forked || requested < 1) return 1;
    return requested > PBN_MAX_THREADS ? PBN_MAX_THREADS : requested;
}

int pbn_default_team(void) { return pbn_team(omp_get_max_threads()); }

int pbn_forked_child(void) { return pbn_rt_forked; }

void pbn_count(pbn_path path, int team)
{
    __atomic_fetch_add(&pbn_rt_calls[path], 1ULL, __ATOMIC_RELAXED);
    if (team > 1) __atomic_fetch_add(&pbn_rt_parallel[path], 1ULL, __ATOMIC_RELAXED);
}

unsigned long long pbn_path_calls(int path)
{
    return __atomic_load_n(&pbn_rt_calls[path], __ATOMIC_RELAXED);
}

unsigned long long pbn_path_parallel(int path)
{
    return __atomic_load_n(&pbn_rt_parallel[path], __ATOMIC_RELAXED);
}

const char *pbn_path_name(int path) { return pbn_rt_names[path]; }

void pbn_reset_counters(void)
{
    for (int p = 0; p < PBN_N_PATHS; p++) {
        __atomic_store_n(&pbn_rt_calls[p], 0ULL, __ATOMIC_RELAXED);
        __atomic_store_n(&pbn_rt_parallel[p], 0ULL, __ATOMIC_RELAXED);
    }
}

#if !defined(_WIN32)
static void pbn_rt_after_fork_child(void) { pbn_rt_forked = 1; }
static pthread_once_t pbn_rt_once = PTHREAD_ONCE_INIT;
static void pbn_rt_register(void) { pthread_atfork(NULL, NULL, pbn_rt_after_fork_child); }
void pbn_runtime_init(void) { pthread_once(&pbn_rt_once, pbn_rt_register); }
#else
void pbn_runtime_init(void) {}
#endif

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#endif
