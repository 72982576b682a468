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
 *
 * Contention back-off (pbn_region_*): on a loaded machine (another CPU-bound process, or a
 * second library's spinning thread pool such as OpenBLAS's) a team member is often not
 * running when a parallel region starts, or is preempted in it, and the region's end
 * barrier then waits up to a scheduler time slice (milliseconds) for it: 2-thread training
 * ran 2-10x slower than on 1 thread. Each parallel region therefore notes its start time;
 * every team member other than the caller notes, in its first work item, how late it
 * started, and the caller notes when it finished its own last item. A member that started
 * late, or an end-of-region wait, by more than PBN_LATE_US plus 1/PBN_SLACK_DIV of the
 * caller's own work time marks the region contended (pbn_region_contended; the slack keeps
 * the ordinary imbalance of a long region, a few hundred microseconds in a 100 ms product,
 * from counting); every kernel then runs on one thread for PBN_SOLO_US << k microseconds
 * (k = contended regions in a row, at most PBN_SOLO_MAX_SHIFT) and then tries the team
 * again; an uncontended region lowers k by one. This state is the process's (one copy, shared by
 * every kernel module): a region the GEMM finds contended sends the element-wise loops to
 * one thread too, and one probe of the team serves them all. The first region after the
 * team sat idle (PBN_IDLE_US; the process's first region too) is not measured, its members
 * being asleep, not busy elsewhere, unless it is the probe that ends a back-off (then
 * PBN_WAKE_US more is allowed). Results never change: every kernel splits its work into
 * output blocks whose values do not depend on the thread count, so 1 and N threads give
 * bitwise-identical results. A few clock reads per parallel region, none on one thread.
 * PYBLASNN_THREAD_BACKOFF=0 in the environment (read at import) or
 * pbn_set_backoff(0) turns it off.
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

/* Contention back-off: a team member that starts more than PBN_LATE_US (+ the work time /
 * PBN_SLACK_DIV) after its region, or a caller that waits that long at its end, marks the
 * region contended (waking a spinning pool thread takes ~1-5 us, a sleeping one ~50-100 us
 * on the 2-core VM; a descheduled one a time slice, 1-10 ms); kernels then run on one
 * thread for PBN_SOLO_US << k us, k <= PBN_SOLO_MAX_SHIFT (20 ms .. 1.3 s). Without the
 * slack, a 2048^3 product on 2 threads (an end wait of ~1% of 50 ms) backed off after its
 * first call and then ran on one thread. */
#define PBN_LATE_US 150
#define PBN_SLACK_DIV 8
#define PBN_SOLO_US 20000
#define PBN_SOLO_MAX_SHIFT 6
/* A region that starts more than PBN_IDLE_US after the last team region ended is
 * not measured: the pool threads have stopped spinning and sleep (pyblasnn's default
 * GOMP_SPINCOUNT spins about a millisecond), and waking them takes longer than PBN_LATE_US
 * on a quiet machine too. Measured, a call after a 0.12 s pause marked 7 of 10 regions
 * contended and halved a 2-thread product's speed for the next second. */
#define PBN_IDLE_US 1000
/* Except after a back-off: the team slept because the kernels ran on one thread, and the
 * region that tries it again is the probe that decides whether to go on backing off. It is
 * measured, with PBN_WAKE_US more allowed for waking the team (about 50-100 us on a quiet
 * 2-core VM; a descheduled member is a time slice late, milliseconds). Not measuring it
 * made every probe two regions long: under a busy process, 2-thread epochs ran 12% over
 * 1-thread ones. */
#define PBN_WAKE_US 1000

/* One parallel region's record, on the calling thread's stack. */
typedef struct {
    long long t0_us;          /* start time (omp_get_wtime, us) */
    unsigned long long id;    /* unique per measured region */
    long long master_done_us; /* when the calling thread finished its last work item */
    long long late_us;        /* how late the latest team member started */
    long long allow_us;       /* extra lateness allowed (PBN_WAKE_US for a probe) */
} pbn_region;

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
/* Team for a parallel region of nt threads: 1 while the process backs off after a
 * contended region, else nt; starts the region's record. Call pbn_region_end after. */
int pbn_region_begin(pbn_region *r, int nt);
/* Inside the region, at the start of every work item (cheap after a thread's first). */
void pbn_region_check(pbn_region *r);
/* Inside the region, at the end of every work item: the caller notes the time. */
void pbn_region_done(pbn_region *r);
/* After the region: back off if it was contended (pbn_region_contended), else forget
 * earlier contention. */
void pbn_region_end(pbn_region *r, int nt);
/* The rule pbn_region_end applies: 1 when a member started late_us late or the caller
 * waited wait_us at the end, after work_us of its own work, beyond the slack above. */
int pbn_region_contended(long long late_us, long long wait_us, long long work_us);
void pbn_set_backoff(int on);
int pbn_backoff_enabled(void);
/* Contended regions seen, and 1 while the kernels run on one thread because of one. */
unsigned long long pbn_contended_regions(void);
int pbn_backing_off(void);
/* The back-off state this module uses (its own until pbn_share_backoff), and adopting
 * another module's: the kernel modules adopt the threads module's when imported, so the
 * process has one back-off state. */
void *pbn_backoff_state(void);
void pbn_share_backoff(void *state);
/* Register the fork handler (idempotent); each module calls it when it is imported. */
void pbn_runtime_init(void);
#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
