/* pyblasnn GEMM engine: public entry points (gemm.h), run-time kernel choice, block sizes.
 * The blocked driver is gemm_driver.h (instantiated below for float and double); the
 * AVX2 + FMA micro-kernels are in gemm_avx2.c. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include "gemm_internal.h"
#include "gemv.h"
#include "../openmp_shim.h"
#include "../pbn_runtime.h"

/* ---- run-time choices ---- */
static int force_portable = 0;
void pbn_gemm_force_portable(int force) { force_portable = force != 0; }

static int pbn_use_simd(void) { return !force_portable && pbn_cpu_has_avx2_fma(); }
int pbn_gemm_use_simd(void) { return pbn_use_simd(); }

const char *pbn_gemm_kernel_name(void)
{
    return pbn_use_simd() ? "avx2+fma 6x16 f32 / 6x8 f64" : "portable";
}

const char *pbn_gemm_paths(void)
{
    return pbn_use_simd()
        ? "packed 6x16 / 6x8 micro-kernels; matrix-vector; small-n dot (f32); batched "
          "row groups (n = 8..64 f32, 8..32 f64); zero-skipping sparse A (f32, <= 30% nonzero)"
        : "portable: packed micro-kernels in C; matrix-vector; batched C loops";
}

/* Below this many flops the call runs on one thread (fork/join costs more than it saves).
 * Measured on the 2-core Zen 3 box (Python API, min of 9, load ~1.7): 1 vs 2 threads
 * 64^3 (0.52 MFLOP) 24.2 vs 20.2 us, 96^3 44.6 vs 37.4, 128^3 60.4 vs 43.8, and the dot
 * path (128,512)@(512,10) 46.0 vs 36.2 us; two threads still win at 0.5 MFLOP, so the
 * threshold stays at 2 * 64^3. When the other core is busy (another process), a
 * 2-thread call can be several times slower than 1 thread whatever the threshold: the
 * contention back-off (pbn_runtime.h) then runs the calls on one thread for a while. */
#define PBN_PARALLEL_MIN_FLOPS (2.0 * 64 * 64 * 64)
double pbn_gemm_parallel_min_flops(void) { return PBN_PARALLEL_MIN_FLOPS; }

/* Pack A (MR-row panels) or let the micro-kernel read A in place (BLIS "sup" idea)?
 * A packed element is reused once per NR columns of C, so for few column panels the
 * packing copy costs more than contiguous loads save. Depends on shapes only. */
static int pbn_choose_pack_a(pbn_int m, pbn_int n, pbn_int k)
{
    (void)m; (void)k;
    return n > 64;
}

/* Let the micro-kernel read full NR-column slivers of B in place (unit column stride
 * only) instead of packing them: worth it when B is small and read by few row tiles. */
static int pbn_choose_read_b(pbn_int m, pbn_int n, pbn_int k)
{
    (void)k;
    return n <= 64 || m <= 12;  /* m <= 12: each B panel is read by at most two row tiles */
}

/* Solve C^T = B^T A^T instead (n small, m large): the register tile is 6 x 16, so n = 10
 * fills 10/16 of it but m' = 10 fills 10/12. Worth it when A has unit row stride
 * (A = h.T, the dW = h.T @ dy of a narrow layer): then B^T's role is played by A read in
 * place with unit column stride, and nothing large is packed. The bias is per column of C
 * and the row gather per row of A, so calls with either keep the normal path. Every
 * product is still summed in the same KC slices in p order (a * b == b * a exactly), so
 * the choice, made from shapes and strides only, never changes with the thread count. */
static int pbn_choose_swap(pbn_int m, pbn_int n, pbn_int k, pbn_int rsa, pbn_int csa,
                           const void *a_rows, const void *bias)
{
    (void)k;
    return n < 16 && m >= 2 * n && m >= 32 && rsa == 1 && csa != 1 && !a_rows && !bias;
}

/* 64-byte aligned packing scratch, one buffer per thread kept between calls.
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

/* Aligned scratch of at least `bytes` for the calling thread, or NULL when out of memory. */
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

/* Call when the thread is done with the scratch of pbn_scratch. */
void pbn_scratch_done(void)
{
    pbn_scratch_slot *s = pbn_scratch_slot_of_thread(0);
    if (s && s->cap > PBN_SCRATCH_KEEP) {
        __atomic_fetch_sub(&pbn_scratch_live, 1, __ATOMIC_RELAXED);
        free(s->mem); s->mem = NULL; s->cap = 0;
    }
}

size_t pbn_gemm_scratch_buffers(void) { return __atomic_load_n(&pbn_scratch_live, __ATOMIC_RELAXED); }

/* ---- float ---- */
#define T float
#define SFX f32
#define MR PBN_MR_F32
#define NR PBN_NR_F32
/* KC 384 (was 256): 3 k slices instead of 4 for the MLP's k = 784 (fewer passes over C);
 * measured 0-9% faster on (128,784)@(784,512) over three interleaved A/B rounds, within
 * noise on 1024^3 / 1536^3, 1 thread. */
#define KC 384
#define MC 144
#define NC 4080
#define UKR_T pbn_ukr_f32
#define TINY_WIDTH PBN_TINY_WIDTH_F32
#define ukr_simd_f32 pbn_ukr_avx2_f32
#include "gemm_driver.h"   /* undefines its parameters at the end */

/* ---- double ---- */
#define T double
#define SFX f64
#define MR PBN_MR_F64
#define NR PBN_NR_F64
#define KC 256
#define MC 72
#define NC 4080
#define UKR_T pbn_ukr_f64
#define TINY_WIDTH PBN_TINY_WIDTH_F64
#define ukr_simd_f64 pbn_ukr_avx2_f64
#include "gemm_driver.h"   /* undefines its parameters at the end */

/* ---- float, small n: one dot product per C element, vectorised along k ----
 * For n <= 16 with A rows contiguous in k (the n = 10 output layer's forward pass
 * (128,512)@(512,10)) the 6 x 16 broadcast kernel wastes 6/16 of every FMA; dot products
 * along k use every lane. B^T is read in place when B's rows have unit stride (B = W.T),
 * else packed once (n x k, tiny). Threads take blocks of 3 rows; each element's sum order
 * depends on k only, so the result is bitwise the same for any thread count. */
static int pbn_choose_dot(pbn_int m, pbn_int n, pbn_int k, pbn_int csa)
{
    (void)m;
    return n <= 16 && k >= 64 && csa == 1;
}

static void pbn_dot_rows_f32(const args_f32 *g, const float *bt, pbn_int ldb,
                             pbn_int blk_lo, pbn_int blk_hi)
{
    float out[12];
    const float *a[3];
    for (pbn_int blk = blk_lo; blk < blk_hi; blk++) {
        const pbn_int i0 = blk * 3;
        const int mr = (int)(g->m - i0 < 3 ? g->m - i0 : 3);
        for (int r = 0; r < 3; r++) {
            pbn_int row = i0 + (r < mr ? r : 0);
            if (g->a_rows) row = g->a_rows[row];
            a[r] = g->A + row * g->rsa;
        }
        for (pbn_int j0 = 0; j0 < g->n; j0 += 4) {
            const int nb = (int)(g->n - j0 < 4 ? g->n - j0 : 4);
            pbn_dot3x4_avx2_f32(g->k, a, bt + j0 * ldb, ldb, nb, out);
            for (int r = 0; r < mr; r++)
                for (int j = 0; j < nb; j++) {
                    float *cp = g->C + (i0 + r) * g->rsc + (j0 + j) * g->csc;
                    float s = out[r * 4 + j];
                    if (g->accumulate) s = *cp + s;
                    if (g->bias) s = s + g->bias[j0 + j];
                    if (g->relu) s = s < 0 ? 0.0f : s;
                    *cp = s;
                }
        }
    }
}

/* Returns 0 (nothing done) when the scratch for B^T cannot be allocated. */
static int gemm_dot_f32(const args_f32 *g, int n_threads)
{
    if (g->m <= 0 || g->n <= 0) return 1;
    const float *bt = g->B;
    pbn_int ldb = g->csb;
    if (g->rsb != 1) {
        float *p = (float *)pbn_scratch((size_t)g->n * (size_t)g->k * sizeof(float));
        if (!p) return 0;
        for (pbn_int q = 0; q < g->k; q++)
            for (pbn_int j = 0; j < g->n; j++) p[j * g->k + q] = g->B[q * g->rsb + j * g->csb];
        bt = p; ldb = g->k;
    }
    const pbn_int nblk = (g->m + 2) / 3;
    const double flops = 2.0 * (double)g->m * (double)g->n * (double)g->k;
    int nt = n_threads < 1 ? 1 : n_threads;
    if (flops < PBN_PARALLEL_MIN_FLOPS) nt = 1;
    if (nt > nblk) nt = (int)nblk;
    pbn_region reg;
    nt = pbn_region_begin(&reg, nt);
    pbn_count(PBN_PATH_GEMM_DOT, nt);
    if (nt == 1) {
        pbn_dot_rows_f32(g, bt, ldb, 0, nblk);
    } else {
        _Pragma("omp parallel for num_threads(nt) schedule(static)")
        for (int t = 0; t < nt; t++) {
            pbn_region_check(&reg);
            pbn_dot_rows_f32(g, bt, ldb, nblk * t / nt, nblk * (t + 1) / nt);
            pbn_region_done(&reg);
        }
        pbn_region_end(&reg, nt);
    }
    if (g->rsb != 1) pbn_scratch_done();
    return 1;
}

/* ---- public API ---- */
void pbn_gemm_f32(pbn_int m, pbn_int n, pbn_int k,
                  const float *A, pbn_int rsa, pbn_int csa, const pbn_int *a_rows,
                  const float *B, pbn_int rsb, pbn_int csb,
                  float *C, pbn_int rsc, pbn_int csc,
                  int accumulate, const float *bias, int relu, int n_threads)
{
    n_threads = pbn_team(n_threads);
    if (pbn_gemv_f32(m, n, k, A, rsa, csa, a_rows, B, rsb, csb, C, rsc, csc,
                     accumulate, bias, relu, n_threads))
        return;  /* one row or one column of C: the matrix-vector path (gemv.c) */
    if (pbn_sparse_gemm_f32(m, n, k, A, rsa, csa, a_rows, B, rsb, csb, C, rsc, csc,
                            accumulate, bias, relu, n_threads))
        return;  /* A mostly zeros (an MNIST batch): skip them (gemm_sparse.c) */
    args_f32 g = { m, n, k, A, rsa, csa, a_rows, B, rsb, csb, C, rsc, csc,
                   accumulate, bias, relu };
    if (pbn_choose_dot(m, n, k, csa) && pbn_use_simd() && gemm_dot_f32(&g, n_threads)) return;
    gemm_f32(&g, n_threads);
}

void pbn_gemm_f64(pbn_int m, pbn_int n, pbn_int k,
                  const double *A, pbn_int rsa, pbn_int csa, const pbn_int *a_rows,
                  const double *B, pbn_int rsb, pbn_int csb,
                  double *C, pbn_int rsc, pbn_int csc,
                  int accumulate, const double *bias, int relu, int n_threads)
{
    n_threads = pbn_team(n_threads);
    if (pbn_gemv_f64(m, n, k, A, rsa, csa, a_rows, B, rsb, csb, C, rsc, csc,
                     accumulate, bias, relu, n_threads))
        return;  /* one row or one column of C: the matrix-vector path (gemv.c) */
    args_f64 g = { m, n, k, A, rsa, csa, a_rows, B, rsb, csb, C, rsc, csc,
                   accumulate, bias, relu };
    gemm_f64(&g, n_threads);
}

void pbn_gemm_batched_f32(pbn_int batch, pbn_int m, pbn_int n, pbn_int k,
                          const float *A, const pbn_int *a_off, pbn_int rsa, pbn_int csa,
                          const float *B, const pbn_int *b_off, pbn_int rsb, pbn_int csb,
                          float *C, const pbn_int *c_off, pbn_int rsc, pbn_int csc,
                          int n_threads)
{
    n_threads = pbn_team(n_threads);
    gemm_batched_f32(batch, m, n, k, A, a_off, rsa, csa, B, b_off, rsb, csb,
                     C, c_off, rsc, csc, n_threads);
}

void pbn_gemm_batched_f64(pbn_int batch, pbn_int m, pbn_int n, pbn_int k,
                          const double *A, const pbn_int *a_off, pbn_int rsa, pbn_int csa,
                          const double *B, const pbn_int *b_off, pbn_int rsb, pbn_int csb,
                          double *C, const pbn_int *c_off, pbn_int rsc, pbn_int csc,
                          int n_threads)
{
    n_threads = pbn_team(n_threads);
    gemm_batched_f64(batch, m, n, k, A, a_off, rsa, csa, B, b_off, rsb, csb,
                     C, c_off, rsc, csc, n_threads);
}

void pbn_gemm_block_sizes(int f64, pbn_int out[5])
{
    if (f64) block_sizes_f64(out); else block_sizes_f32(out);
}
