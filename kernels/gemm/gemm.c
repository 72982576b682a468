/* pyblasnn GEMM engine: public entry points (gemm.h), run-time kernel choice, block sizes.
 * The blocked driver is gemm_driver.h (instantiated below for float and double); the
 * AVX2 + FMA micro-kernels are in gemm_avx2.c. */
#include <stdint.h>
#include <stdlib.h>
#include "gemm_internal.h"
#include "../openmp_shim.h"

/* ---- run-time choices ---- */
static int force_portable = 0;
void pbn_gemm_force_portable(int force) { force_portable = force != 0; }

static int pbn_use_simd(void) { return !force_portable && pbn_cpu_has_avx2_fma(); }

const char *pbn_gemm_kernel_name(void)
{
    return pbn_use_simd() ? "avx2+fma 6x16 f32 / 6x8 f64" : "portable";
}

/* Below this many flops the call runs on one thread (fork/join costs more than it saves). */
#define PBN_PARALLEL_MIN_FLOPS (2.0 * 64 * 64 * 64)

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
    (void)m; (void)k;
    return n <= 64;
}

/* 64-byte aligned scratch: pbn_alloc over-allocates, pbn_align rounds the pointer up. */
static void *pbn_alloc(size_t bytes) { return malloc(bytes + 64); }
static void *pbn_align(void *p) { return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

/* ---- float ---- */
#define T float
#define SFX f32
#define MR PBN_MR_F32
#define NR PBN_NR_F32
#define KC 256
#define MC 144
#define NC 4080
#define UKR_T pbn_ukr_f32
#define ukr_simd_f32 pbn_ukr_avx2_f32
#include "gemm_driver.h"
#undef T
#undef SFX
#undef MR
#undef NR
#undef KC
#undef MC
#undef NC
#undef UKR_T

/* ---- double ---- */
#define T double
#define SFX f64
#define MR PBN_MR_F64
#define NR PBN_NR_F64
#define KC 256
#define MC 72
#define NC 4080
#define UKR_T pbn_ukr_f64
#define ukr_simd_f64 pbn_ukr_avx2_f64
#include "gemm_driver.h"
#undef T
#undef SFX
#undef MR
#undef NR
#undef KC
#undef MC
#undef NC
#undef UKR_T

/* ---- public API ---- */
void pbn_gemm_f32(pbn_int m, pbn_int n, pbn_int k,
                  const float *A, pbn_int rsa, pbn_int csa, const pbn_int *a_rows,
                  const float *B, pbn_int rsb, pbn_int csb,
                  float *C, pbn_int rsc, pbn_int csc,
                  int accumulate, const float *bias, int relu, int n_threads)
{
    args_f32 g = { m, n, k, A, rsa, csa, a_rows, B, rsb, csb, C, rsc, csc,
                   accumulate, bias, relu };
    gemm_f32(&g, n_threads);
}

void pbn_gemm_f64(pbn_int m, pbn_int n, pbn_int k,
                  const double *A, pbn_int rsa, pbn_int csa, const pbn_int *a_rows,
                  const double *B, pbn_int rsb, pbn_int csb,
                  double *C, pbn_int rsc, pbn_int csc,
                  int accumulate, const double *bias, int relu, int n_threads)
{
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
    gemm_batched_f32(batch, m, n, k, A, a_off, rsa, csa, B, b_off, rsb, csb,
                     C, c_off, rsc, csc, n_threads);
}

void pbn_gemm_batched_f64(pbn_int batch, pbn_int m, pbn_int n, pbn_int k,
                          const double *A, const pbn_int *a_off, pbn_int rsa, pbn_int csa,
                          const double *B, const pbn_int *b_off, pbn_int rsb, pbn_int csb,
                          double *C, const pbn_int *c_off, pbn_int rsc, pbn_int csc,
                          int n_threads)
{
    gemm_batched_f64(batch, m, n, k, A, a_off, rsa, csa, B, b_off, rsb, csb,
                     C, c_off, rsc, csc, n_threads);
}
