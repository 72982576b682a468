/* pyblasnn GEMM engine: the contract between the Cython wrappers and the C kernels.
 *
 * Operands use general element strides, so transposed, Fortran-ordered, sliced and
 * negatively strided views are read in place (transposition is handled when packing):
 *   A is m x k, element (i, p) at A[row(i) * rsa + p * csa], row(i) = a_rows ? a_rows[i] : i
 *   B is k x n, element (p, j) at B[p * rsb + j * csb]
 *   C is m x n, element (i, j) at C[i * rsc + j * csc]
 *
 *   C := (accumulate ? C : 0) + A @ B;  then C[i, j] += bias[j] if bias;  then C := max(C, 0) if relu
 *
 * a_rows gathers rows of A (a shuffled minibatch) without copying them.
 * C must not overlap A or B. m, n or k may be 0 (k == 0 gives C := accumulate ? C : 0, + epilogue).
 * Determinism: the order in which products are summed into any C element depends only on
 * (m, n, k) and the selected code path, never on n_threads, so 1 and N threads agree bitwise;
 * nor on the ISA between avx512 and avx2 (same k slices, one FMA chain per element in p
 * order, same epilogue), so those two agree bitwise as well. The portable path need not.
 */
#ifndef PBN_GEMM_H
#define PBN_GEMM_H
#include <stddef.h>

typedef ptrdiff_t pbn_int;

void pbn_gemm_f32(pbn_int m, pbn_int n, pbn_int k,
                  const float *A, pbn_int rsa, pbn_int csa, const pbn_int *a_rows,
                  const float *B, pbn_int rsb, pbn_int csb,
                  float *C, pbn_int rsc, pbn_int csc,
                  int accumulate, const float *bias, int relu, int n_threads);

void pbn_gemm_f64(pbn_int m, pbn_int n, pbn_int k,
                  const double *A, pbn_int rsa, pbn_int csa, const pbn_int *a_rows,
                  const double *B, pbn_int rsb, pbn_int csb,
                  double *C, pbn_int rsc, pbn_int csc,
                  int accumulate, const double *bias, int relu, int n_threads);

/* batch independent products C_b := A_b @ B_b, b = 0..batch-1, where A_b = A + a_off[b],
 * B_b = B + b_off[b], C_b = C + c_off[b] (element offsets; A_b / B_b may repeat for
 * broadcast batch dimensions, the C_b must be disjoint). Parallel over the batch. */
void pbn_gemm_batched_f32(pbn_int batch, pbn_int m, pbn_int n, pbn_int k,
                          const float *A, const pbn_int *a_off, pbn_int rsa, pbn_int csa,
                          const float *B, const pbn_int *b_off, pbn_int rsb, pbn_int csb,
                          float *C, const pbn_int *c_off, pbn_int rsc, pbn_int csc,
                          int n_threads);

void pbn_gemm_batched_f64(pbn_int batch, pbn_int m, pbn_int n, pbn_int k,
                          const double *A, const pbn_int *a_off, pbn_int rsa, pbn_int csa,
                          const double *B, const pbn_int *b_off, pbn_int rsb, pbn_int csb,
                          double *C, const pbn_int *c_off, pbn_int rsc, pbn_int csc,
                          int n_threads);

/* One optimizer step fused into a product (gemm_sparse.c): G = A @ B (m x n, A and B as in
 * pbn_gemm_f32, no row gather) is not stored; each element g of it updates W, and V when
 * given, in place with the arithmetic of the optimizer loops (kernels/optim_spans_tpl.h):
 *   v NULL:    w := w - lr g
 *   momentum:  v := m v - lr g;  w := w + v       (nesterov: w := w + (m v - lr g))
 * W and V are m x n with unit column stride, row strides rsw / rsv, and overlap nothing
 * else. G is the zero-skipping product's, so this is taken only where that path is: it
 * returns 1 when done and 0, having written nothing, when the product does not qualify
 * (A not sparse enough, B not finite, no SIMD, ...); the caller then computes G with
 * pbn_gemm_f32 and runs the optimizer loop, and gets the same bits. The sparse GEMM's
 * write of G (m n floats) and the optimizer's read of it are saved. */
typedef struct {
    float *w; pbn_int rsw;
    float *v; pbn_int rsv;            /* NULL: plain SGD */
    float lr, momentum;
    int nesterov;
} pbn_sgd_step_f32;

int pbn_gemm_sgd_f32(pbn_int m, pbn_int n, pbn_int k, const float *A, pbn_int rsa,
                     pbn_int csa, const float *B, pbn_int rsb, pbn_int csb,
                     const pbn_sgd_step_f32 *step, int n_threads);

/* Name of the micro-kernel path in use (the ISA of gemm_runtime.h), e.g. "avx512 12x32 f32 /
 * 12x16 f64", "avx2+fma 6x16 f32 / 6x8 f64" or "portable". */
const char *pbn_gemm_kernel_name(void);

/* The GEMM engine's paths in use on this CPU, in words (pyblasnn.show_config). */
const char *pbn_gemm_paths(void);

/* How many products took the zero-skipping path (gemm_sparse.c) in this process. */
unsigned long pbn_gemm_sparse_products(void);

/* The register tile and cache blocks of the packed engine for float32 (f64 = 0) or float64:
 * out = {MR, NR, KC, MC, NC}, for the ISA in use (pbn_gemm_block_sizes) or a given one
 * (returns -1 for an unknown ISA index). The one source of these numbers for tests and
 * show_config. */
void pbn_gemm_block_sizes(int f64, pbn_int out[5]);
int pbn_gemm_block_sizes_isa(int isa, int f64, pbn_int out[5]);

/* Flops (2 m n k) below which a product runs on one thread; rows * k below which a
 * matrix-vector product does. */
double pbn_gemm_parallel_min_flops(void);
double pbn_gemv_parallel_min(void);
double pbn_sparse_parallel_min(void);   /* m n k, zero-skipping path */

/* Packing buffers allocated and not yet freed, over all threads (tests: they are freed
 * when their thread exits). */
size_t pbn_gemm_scratch_buffers(void);

/* Measured peak rate in GFLOP/s of n_threads threads running FMA chains on the given ISA's
 * widest vectors for about `seconds` (peak.c); -1 for an ISA the CPU lacks or bad arguments.
 * At most PBN_MAX_PEAK_THREADS threads. */
#define PBN_MAX_PEAK_THREADS 1024
double pbn_peak_gflops(int isa, int f64, int n_threads, double seconds);

/* 1 to force the portable path (tests compare it with the SIMD path), 0 for the ISA chosen
 * at first use; the general switch is pbn_isa_set (gemm_runtime.h). */
void pbn_gemm_force_portable(int force);

#endif
