/* The kernels' thread policy and path counters: declarations shared by every kernel module
 * and by the C GEMM engine. Definitions: pbn_runtime_impl.h, compiled once into each
 * extension module (through _runtime.pxd), so each module has its own copy of the state.
 *
 * Thread policy (pbn_team): every kernel asks pbn_team(n) how many threads it may use.
 *   - never more than PBN_MAX_THREADS (the bound pyblasnn's n_threads= arguments and
 *     set_num_threads are checked against; it is the one definition of that bound);
 *   - 1 in a child created by fork(): the OpenMP runtime's thread pool does not survive a
 *     fork, and a parallel region of more than one thread in the child waits forever for
 *     pool threads that do not exist there. A pthread_atfork child handler, registered when
 *     the module is loaded, sets the flag; a forked child then runs every kernel serially
 *     (PyTorch does the same). Processes started by spawn / forkserver are not forked
 *     children of a process that used threads, and keep their threads.
 *
 * Path counters (pbn_count): one call counter and one "entered a parallel region with more
 * than one thread" counter per kernel path, so tests can prove that a path and its
 * parallel region were reached. A relaxed atomic add per kernel call; never per element.
 */
#ifndef PBN_RUNTIME_H
#define PBN_RUNTIME_H

/* Upper bound on any thread count. 1024 is above the hardware threads of the largest
 * current x86 servers (2 sockets x 192 cores x 2 SMT = 768) and far below where libgomp
 * breaks down (60,000 threads abort the process, 200,000 crash it; 10,000 make a 1e5-element
 * relu take a second to create its team); a fixed number keeps the same program valid on
 * every machine, which a multiple of the processor count would not. */
#define PBN_MAX_THREADS 1024

/* Below this many elements an element-wise, loss or optimizer kernel runs on one thread:
 * waking the OpenMP team (a few microseconds) costs more than the work (bench/; PyTorch
 * uses 32,768 as well). */
#define PBN_PARALLEL_MIN_ELEMENTS 32768

typedef enum {
    PBN_PATH_GEMM_GEMV,          /* one row or one column of C (gemv.c) */
    PBN_PATH_GEMM_SPARSE,        /* zero-skipping float32 A (gemm_sparse.c) */
    PBN_PATH_GEMM_DOT,           /* float32 small-n dot products (gemm.c) */
    PBN_PATH_GEMM_PACKED,        /* blocked driver (gemm_driver.h) */
    PBN_PATH_GEMM_SWAP,          /* blocked driver on C^T = B^T A^T */
    PBN_PATH_GEMM_BATCHED,       /* batched products, blocked body */
    PBN_PATH_GEMM_BATCHED_TINY,  /* batched small products without packing (gemm_tiny.c) */
    PBN_PATH_RELU,
    PBN_PATH_RELU_BACKWARD,
    PBN_PATH_BINARY_FLAT,        /* binary op over one contiguous run of the output */
    PBN_PATH_BINARY_ROWS,        /* binary op row by row (broadcast / strided operands) */
    PBN_PATH_MAXIMUM_MASK,       /* maximum_backward's routing */
    PBN_PATH_COLUMN_SUM,         /* (n, d) -> (d,) reduction */
    PBN_PATH_SCATTER_ADD,        /* general broadcast reduction (serial) */
    PBN_PATH_TAKE_ROWS,
    PBN_PATH_SOFTMAX_XENT,
    PBN_PATH_XENT_PROBS,
    PBN_PATH_SOFTMAX,
    PBN_PATH_SOFTMAX_BACKWARD,
    PBN_PATH_OPTIM_UPDATE,
    PBN_N_PATHS
} pbn_path;

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif
/* Threads a kernel may use when asked for `requested`: 1 in a forked child, else requested
 * clamped to [1, PBN_MAX_THREADS]. */
int pbn_team(int requested);
/* The default thread count (n_threads=None): the OpenMP runtime's omp_get_max_threads()
 * (OMP_NUM_THREADS, omp_set_num_threads, threadpoolctl), through pbn_team. */
int pbn_default_team(void);
/* 1 in a child created by fork() after this module was loaded. */
int pbn_forked_child(void);
/* Count one call of path, and one parallel entry when team > 1. */
void pbn_count(pbn_path path, int team);
unsigned long long pbn_path_calls(int path);
unsigned long long pbn_path_parallel(int path);
const char *pbn_path_name(int path);
void pbn_reset_counters(void);
/* Register the fork handler (idempotent); each module calls it when it is imported. */
void pbn_runtime_init(void);
#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
