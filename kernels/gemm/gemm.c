/* pyblasnn GEMM engine: public entry points (gemm.h), the path choices, the block-size
 * table as numbers. The blocked driver is gemm_driver.h (instantiated below per dtype and
 * register tile); the micro-kernels are in gemm_avx2.c and gemm_avx512.c (one template,
 * gemm_ukr_tpl.h); the ISA in use comes from kernels/pbn_isa.h (through gemm_runtime.h), the
 * scratch memory from gemm_runtime.c. */
#include <stdlib.h>
#include "gemm_internal.h"
#include "gemv.h"
#include "../openmp_shim.h"
#include "../pbn_runtime.h"

/* ---- run-time choices (the ISA itself is chosen in kernels/pbn_isa.h) ---- */
/* Kept for the tests written before set_isa: force = 1 selects the portable ISA, 0 the
 * one chosen at first use (PYBLASNN_ISA or the best this CPU has). */
void pbn_gemm_force_portable(int force) { pbn_isa_set(force ? PBN_ISA_PORTABLE : pbn_isa_initial()); }

const char *pbn_gemm_kernel_name(void)
{
    switch (pbn_isa()) {
    case PBN_ISA_AVX512: return "avx512 12x32 f32 / 12x16 f64";
    case PBN_ISA_AVX2: return "avx2+fma 6x16 f32 / 6x8 f64";
    default: return "portable";
    }
}

const char *pbn_gemm_paths(void)
{
    switch (pbn_isa()) {
    case PBN_ISA_AVX512:
        return "packed and unpacked (small/skinny) GEMM: avx512 12x32 f32 / 12x16 f64 "
               "micro-kernels (masked edges); small-n dot (f32, n <= 16, two columns per zmm); "
               "matrix-vector (avx512 loops); batched tiny row groups (avx512; f32 n = 8 on "
               "its avx2 kernel); zero-skipping sparse A (f32, <= 30% nonzero, vcompressps)";
    case PBN_ISA_AVX2:
        return "packed and unpacked (small/skinny) GEMM: avx2 6x16 f32 / 6x8 f64 "
               "micro-kernels; small-n dot (f32, n <= 16); matrix-vector; batched tiny row "
               "groups (n = 8..64 f32, 8..32 f64); zero-skipping sparse A (f32, <= 30% nonzero)";
    default:
        return "portable: packed micro-kernels in C; matrix-vector; batched C loops";
    }
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

/* ---- driver instances: one per (dtype, register tile) of the table in gemm_internal.h ---- */
#define DEFINE_ARGS(T, DT)                                                      \
typedef struct {                                                                \
    pbn_int m, n, k;                                                            \
    const T *A; pbn_int rsa, csa; const pbn_int *a_rows;                        \
    const T *B; pbn_int rsb, csb;                                               \
    T *C; pbn_int rsc, csc;                                                     \
    int accumulate; const T *bias; int relu;                                    \
} args_##DT;
DEFINE_ARGS(float, f32)
DEFINE_ARGS(double, f64)

#define T float
#define DT f32
#define SFX f32_6x16
#define MR PBN_AVX2_MR_F32
#define NR PBN_AVX2_NR_F32
#define KC PBN_KC_F32
#define MC PBN_AVX2_MC_F32
#define NC PBN_AVX2_NC_F32
#define UKR_T pbn_ukr_f32
#include "gemm_driver.h"   /* undefines its parameters at the end */

#define T float
#define DT f32
#define SFX f32_12x32
#define MR PBN_AVX512_MR_F32
#define NR PBN_AVX512_NR_F32
#define KC PBN_KC_F32
#define MC PBN_AVX512_MC_F32
#define NC PBN_AVX512_NC_F32
#define UKR_T pbn_ukr_f32
#include "gemm_driver.h"

#define T double
#define DT f64
#define SFX f64_6x8
#define MR PBN_AVX2_MR_F64
#define NR PBN_AVX2_NR_F64
#define KC PBN_KC_F64
#define MC PBN_AVX2_MC_F64
#define NC PBN_AVX2_NC_F64
#define UKR_T pbn_ukr_f64
#include "gemm_driver.h"

#define T double
#define DT f64
#define SFX f64_12x16
#define MR PBN_AVX512_MR_F64
#define NR PBN_AVX512_NR_F64
#define KC PBN_KC_F64
#define MC PBN_AVX512_MC_F64
#define NC PBN_AVX512_NC_F64
#define UKR_T pbn_ukr_f64
#include "gemm_driver.h"

/* The packed engine of the ISA in use (read once per call, so a concurrent set_isa never
 * mixes two tiles in one product). */
static void gemm_f32(const args_f32 *g, int n_threads)
{
    switch (pbn_isa()) {
    case PBN_ISA_AVX512: gemm_f32_12x32(g, n_threads, pbn_sgemm_avx512_12x32); break;
    case PBN_ISA_AVX2: gemm_f32_6x16(g, n_threads, pbn_sgemm_avx2_6x16); break;
    default: gemm_f32_6x16(g, n_threads, ukr_portable_f32_6x16); break;
    }
}

static void gemm_f64(const args_f64 *g, int n_threads)
{
    switch (pbn_isa()) {
    case PBN_ISA_AVX512: gemm_f64_12x16(g, n_threads, pbn_dgemm_avx512_12x16); break;
    case PBN_ISA_AVX2: gemm_f64_6x8(g, n_threads, pbn_dgemm_avx2_6x8); break;
    default: gemm_f64_6x8(g, n_threads, ukr_portable_f64_6x8); break;
    }
}

#define DEFINE_BATCHED_DISPATCH(T, DT, BIG, SMALL, UKR_BIG, UKR_SMALL)                        \
static void gemm_batched_##DT(pbn_int batch, pbn_int m, pbn_int n, pbn_int k,                 \
        const T *A, const pbn_int *a_off, pbn_int rsa, pbn_int csa,                           \
        const T *B, const pbn_int *b_off, pbn_int rsb, pbn_int csb,                           \
        T *C, const pbn_int *c_off, pbn_int rsc, pbn_int csc, int n_threads)                  \
{                                                                                             \
    switch (pbn_isa()) {                                                                      \
    case PBN_ISA_AVX512:                                                                      \
        gemm_batched_##BIG(batch, m, n, k, A, a_off, rsa, csa, B, b_off, rsb, csb, C, c_off,  \
                           rsc, csc, n_threads, UKR_BIG); break;                              \
    case PBN_ISA_AVX2:                                                                        \
        gemm_batched_##SMALL(batch, m, n, k, A, a_off, rsa, csa, B, b_off, rsb, csb, C, c_off,\
                             rsc, csc, n_threads, UKR_SMALL); break;                          \
    default:                                                                                  \
        gemm_batched_##SMALL(batch, m, n, k, A, a_off, rsa, csa, B, b_off, rsb, csb, C, c_off,\
                             rsc, csc, n_threads, ukr_portable_##SMALL); break;               \
    }                                                                                         \
}
DEFINE_BATCHED_DISPATCH(float, f32, f32_12x32, f32_6x16, pbn_sgemm_avx512_12x32, pbn_sgemm_avx2_6x16)
DEFINE_BATCHED_DISPATCH(double, f64, f64_12x16, f64_6x8, pbn_dgemm_avx512_12x16, pbn_dgemm_avx2_6x8)

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
                            accumulate, bias, relu, NULL, n_threads))
        return;  /* A mostly zeros (an MNIST batch): skip them (gemm_sparse.c) */
    if (pbn_dot_gemm_f32(m, n, k, A, rsa, csa, a_rows, B, rsb, csb, C, rsc, csc,
                         accumulate, bias, relu, n_threads))
        return;  /* n <= 16: dot products along k (gemm_dot.c) */
    args_f32 g = { m, n, k, A, rsa, csa, a_rows, B, rsb, csb, C, rsc, csc,
                   accumulate, bias, relu };
    gemm_f32(&g, n_threads);
}

int pbn_gemm_sgd_f32(pbn_int m, pbn_int n, pbn_int k, const float *A, pbn_int rsa,
                     pbn_int csa, const float *B, pbn_int rsb, pbn_int csb,
                     const pbn_sgd_step_f32 *step, int n_threads)
{
    if (m < 2 || n < 2) return 0;   /* the matrix-vector path's shapes: never zero-skipping */
    return pbn_sparse_gemm_f32(m, n, k, A, rsa, csa, NULL, B, rsb, csb, NULL, 0, 1, 0, NULL, 0,
                               step, pbn_team(n_threads));
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

/* The table of gemm_internal.h, as numbers: MR, NR, KC, MC, NC of an ISA's packed engine. */
static const pbn_int pbn_blocks[PBN_ISA_COUNT][2][5] = {
    [PBN_ISA_PORTABLE] = {
        { PBN_AVX2_MR_F32, PBN_AVX2_NR_F32, PBN_KC_F32, PBN_AVX2_MC_F32, PBN_AVX2_NC_F32 },
        { PBN_AVX2_MR_F64, PBN_AVX2_NR_F64, PBN_KC_F64, PBN_AVX2_MC_F64, PBN_AVX2_NC_F64 } },
    [PBN_ISA_AVX2] = {
        { PBN_AVX2_MR_F32, PBN_AVX2_NR_F32, PBN_KC_F32, PBN_AVX2_MC_F32, PBN_AVX2_NC_F32 },
        { PBN_AVX2_MR_F64, PBN_AVX2_NR_F64, PBN_KC_F64, PBN_AVX2_MC_F64, PBN_AVX2_NC_F64 } },
    [PBN_ISA_AVX512] = {
        { PBN_AVX512_MR_F32, PBN_AVX512_NR_F32, PBN_KC_F32, PBN_AVX512_MC_F32, PBN_AVX512_NC_F32 },
        { PBN_AVX512_MR_F64, PBN_AVX512_NR_F64, PBN_KC_F64, PBN_AVX512_MC_F64, PBN_AVX512_NC_F64 } },
};

int pbn_gemm_block_sizes_isa(int isa, int f64, pbn_int out[5])
{
    if (isa < 0 || isa >= PBN_ISA_COUNT) return -1;
    for (int i = 0; i < 5; i++) out[i] = pbn_blocks[isa][f64 != 0][i];
    return 0;
}

void pbn_gemm_block_sizes(int f64, pbn_int out[5]) { pbn_gemm_block_sizes_isa(pbn_isa(), f64, out); }
