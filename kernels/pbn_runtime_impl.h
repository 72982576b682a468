/* Definitions of pbn_runtime.h. Included exactly once per extension module (by the module's
 * generated C file, through _runtime.pxd); the symbols are hidden, so each module has its own
 * copy of the state and the GEMM engine's files link to linalg's. */
#ifndef PBN_RUNTIME_IMPL_H
#define PBN_RUNTIME_IMPL_H
#include "pbn_runtime.h"
#include "openmp_shim.h"
#include <stdlib.h>
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

/* ---- contention back-off (see pbn_runtime.h) ---- */
/* The state is the process's, not the module's: contention is a property of the cores, and
 * every module's parallel regions wake the same OpenMP pool. Each module starts with its
 * own copy and, when imported, adopts the threads module's (pbn_share_backoff), so a
 * contended region seen by the GEMM also sends the element-wise loops to one thread. */
typedef struct {
    int on;
    int shift;                         /* contended probes in a row, capped */
    long long solo_until_us;           /* run on one thread before this time */
    long long team_end_us;             /* when the last team region ended */
    unsigned long long region_ids;
    unsigned long long contended;
} pbn_backoff;
static pbn_backoff pbn_rt_bo_own = {1, 0, 0, 0, 0, 0};
static pbn_backoff *pbn_rt_bo = &pbn_rt_bo_own;
#if defined(_WIN32) && defined(_MSC_VER)
static __declspec(thread) unsigned long long pbn_rt_seen = 0;
#else
static __thread unsigned long long pbn_rt_seen = 0;  /* last region this thread checked */
#endif

void *pbn_backoff_state(void) { return pbn_rt_bo; }

void pbn_share_backoff(void *state)
{
    if (state) pbn_rt_bo = (pbn_backoff *)state;
}

static long long pbn_rt_now_us(void) { return (long long)(omp_get_wtime() * 1e6); }

int pbn_region_begin(pbn_region *r, int nt)
{
    pbn_backoff *bo = pbn_rt_bo;
    r->late_us = 0;
    r->id = 0;
    r->master_done_us = 0;
    r->allow_us = 0;
    if (nt <= 1 || !__atomic_load_n(&bo->on, __ATOMIC_RELAXED)) return nt;
    const long long now = pbn_rt_now_us();
    if (now < __atomic_load_n(&bo->solo_until_us, __ATOMIC_RELAXED)) return 1;
    r->t0_us = now;
    /* the team has been idle long enough to have gone to sleep: waking it is slow, but it
     * is not contention, so this region is not measured, unless it probes the team after a
     * back-off (then with the wake-up allowed for) */
    if (now - __atomic_load_n(&bo->team_end_us, __ATOMIC_RELAXED) > PBN_IDLE_US) {
        if (!__atomic_load_n(&bo->shift, __ATOMIC_RELAXED)) return nt;
        r->allow_us = PBN_WAKE_US;
    }
    r->id = __atomic_add_fetch(&bo->region_ids, 1ULL, __ATOMIC_RELAXED);
    return nt;
}

void pbn_region_check(pbn_region *r)
{
    if (r->id == 0 || pbn_rt_seen == r->id) return;   /* not measured, or checked already */
    pbn_rt_seen = r->id;
    if (omp_get_thread_num() == 0) return;             /* the caller is never late */
    const long long late = pbn_rt_now_us() - r->t0_us;
    long long seen = __atomic_load_n(&r->late_us, __ATOMIC_RELAXED);
    while (late > seen && !__atomic_compare_exchange_n(&r->late_us, &seen, late, 1,
                                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

void pbn_region_done(pbn_region *r)
{
    if (r->id != 0 && omp_get_thread_num() == 0) r->master_done_us = pbn_rt_now_us();
}

void pbn_region_end(pbn_region *r, int nt)
{
    pbn_backoff *bo = pbn_rt_bo;
    if (nt <= 1) return;
    const long long now = pbn_rt_now_us();
    __atomic_store_n(&bo->team_end_us, now, __ATOMIC_RELAXED);
    if (r->id == 0) return;                 /* not measured */
    const long long done = r->master_done_us ? r->master_done_us : now;
    if (pbn_region_contended(__atomic_load_n(&r->late_us, __ATOMIC_RELAXED) - r->allow_us,
                             now - done - r->allow_us, done - r->t0_us)) {
        int k = __atomic_load_n(&bo->shift, __ATOMIC_RELAXED);
        __atomic_store_n(&bo->solo_until_us, now + ((long long)PBN_SOLO_US << k),
                         __ATOMIC_RELAXED);
        if (k < PBN_SOLO_MAX_SHIFT) __atomic_store_n(&bo->shift, k + 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&bo->contended, 1ULL, __ATOMIC_RELAXED);
    } else {
        const int k = __atomic_load_n(&bo->shift, __ATOMIC_RELAXED);
        if (k) __atomic_store_n(&bo->shift, k - 1, __ATOMIC_RELAXED);
    }
}

int pbn_region_contended(long long late_us, long long wait_us, long long work_us)
{
    const long long limit = PBN_LATE_US + (work_us > 0 ? work_us / PBN_SLACK_DIV : 0);
    return late_us > limit || wait_us > limit;
}

void pbn_set_backoff(int on)
{
    pbn_backoff *bo = pbn_rt_bo;
    __atomic_store_n(&bo->on, on != 0, __ATOMIC_RELAXED);
    __atomic_store_n(&bo->solo_until_us, 0LL, __ATOMIC_RELAXED);
    __atomic_store_n(&bo->shift, 0, __ATOMIC_RELAXED);
}

int pbn_backoff_enabled(void) { return __atomic_load_n(&pbn_rt_bo->on, __ATOMIC_RELAXED); }

unsigned long long pbn_contended_regions(void)
{
    return __atomic_load_n(&pbn_rt_bo->contended, __ATOMIC_RELAXED);
}

int pbn_backing_off(void)
{
    return pbn_backoff_enabled()
        && pbn_rt_now_us() < __atomic_load_n(&pbn_rt_bo->solo_until_us, __ATOMIC_RELAXED);
}

static void pbn_rt_read_env(void)
{
    const char *v = getenv("PYBLASNN_THREAD_BACKOFF");
    if (v && v[0] == '0' && v[1] == 0) pbn_rt_bo_own.on = 0;
}

#if !defined(_WIN32)
static void pbn_rt_after_fork_child(void) { pbn_rt_forked = 1; }
static pthread_once_t pbn_rt_once = PTHREAD_ONCE_INIT;
static void pbn_rt_register(void)
{
    pbn_rt_read_env();
    pthread_atfork(NULL, NULL, pbn_rt_after_fork_child);
}
void pbn_runtime_init(void) { pthread_once(&pbn_rt_once, pbn_rt_register); }
#else
void pbn_runtime_init(void) { pbn_rt_read_env(); }
#endif

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif
#endif
