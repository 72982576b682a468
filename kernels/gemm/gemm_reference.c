/* Straightforward GEMM behind gemm.h: a placeholder for the packed engine.
 * Parallel over rows of C; each C element sums p = 0..k-1 in order (thread-count invariant). */
#include "gemm.h"
#include "../openmp_shim.h"

static int force_portable = 0;
void pbn_gemm_force_portable(int force) { force_portable = force; }
const char *pbn_gemm_kernel_name(void) { return "reference"; }

#define DEFINE_GEMM(NAME, T)                                                              \
static void NAME##_serial(pbn_int m, pbn_int n, pbn_int k,                                \
        const T *A, pbn_int rsa, pbn_int csa, const pbn_int *a_rows,                      \
        const T *B, pbn_int rsb, pbn_int csb, T *C, pbn_int rsc, pbn_int csc,             \
        int accumulate, const T *bias, int relu, pbn_int i0, pbn_int i1)                  \
{                                                                                         \
    for (pbn_int i = i0; i < i1; i++) {                                                   \
        const T *a = A + (a_rows ? a_rows[i] : i) * rsa;                                  \
        for (pbn_int j = 0; j < n; j++) {                                                 \
            T s = accumulate ? C[i * rsc + j * csc] : (T)0;                               \
            for (pbn_int p = 0; p < k; p++) s += a[p * csa] * B[p * rsb + j * csb];       \
            if (bias) s += bias[j];                                                       \
            if (relu && s < 0) s = 0;                                                     \
            C[i * rsc + j * csc] = s;                                                     \
        }                                                                                 \
    }                                                                                     \
}                                                                                         \
void NAME(pbn_int m, pbn_int n, pbn_int k,                                                \
        const T *A, pbn_int rsa, pbn_int csa, const pbn_int *a_rows,                      \
        const T *B, pbn_int rsb, pbn_int csb, T *C, pbn_int rsc, pbn_int csc,             \
        int accumulate, const T *bias, int relu, int n_threads)                           \
{                                                                                         \
    if (n_threads < 1 || (double)m * n * k < 65536.0) n_threads = 1;                      \
    pbn_int chunk = (m + n_threads - 1) / (n_threads > 0 ? n_threads : 1);                \
    _Pragma("omp parallel for num_threads(n_threads) schedule(static)")                   \
    for (int t = 0; t < n_threads; t++) {                                                 \
        pbn_int i0 = t * chunk, i1 = i0 + chunk < m ? i0 + chunk : m;                     \
        if (i0 < i1) NAME##_serial(m, n, k, A, rsa, csa, a_rows, B, rsb, csb, C, rsc, csc,\
                                   accumulate, bias, relu, i0, i1);                       \
    }                                                                                     \
}                                                                                         \
void NAME##_batched_impl(pbn_int batch, pbn_int m, pbn_int n, pbn_int k,                  \
        const T *A, const pbn_int *a_off, pbn_int rsa, pbn_int csa,                       \
        const T *B, const pbn_int *b_off, pbn_int rsb, pbn_int csb,                       \
        T *C, const pbn_int *c_off, pbn_int rsc, pbn_int csc, int n_threads)              \
{                                                                                         \
    if (n_threads < 1) n_threads = 1;                                                     \
    _Pragma("omp parallel for num_threads(n_threads) schedule(static)")                   \
    for (pbn_int b = 0; b < batch; b++)                                                   \
        NAME##_serial(m, n, k, A + a_off[b], rsa, csa, NULL, B + b_off[b], rsb, csb,      \
                      C + c_off[b], rsc, csc, 0, NULL, 0, 0, m);                          \
}

DEFINE_GEMM(pbn_gemm_f32, float)
DEFINE_GEMM(pbn_gemm_f64, double)

void pbn_gemm_batched_f32(pbn_int batch, pbn_int m, pbn_int n, pbn_int k,
        const float *A, const pbn_int *a_off, pbn_int rsa, pbn_int csa,
        const float *B, const pbn_int *b_off, pbn_int rsb, pbn_int csb,
        float *C, const pbn_int *c_off, pbn_int rsc, pbn_int csc, int n_threads)
{ pbn_gemm_f32_batched_impl(batch, m, n, k, A, a_off, rsa, csa, B, b_off, rsb, csb, C, c_off, rsc, csc, n_threads); }

void pbn_gemm_batched_f64(pbn_int batch, pbn_int m, pbn_int n, pbn_int k,
        const double *A, const pbn_int *a_off, pbn_int rsa, pbn_int csa,
        const double *B, const pbn_int *b_off, pbn_int rsb, pbn_int csb,
        double *C, const pbn_int *c_off, pbn_int rsc, pbn_int csc, int n_threads)
{ pbn_gemm_f64_batched_impl(batch, m, n, k, A, a_off, rsa, csa, B, b_off, rsb, csb, C, c_off, rsc, csc, n_threads); }
