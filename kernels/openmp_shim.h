/* The only place OpenMP's runtime API is touched. Without OpenMP the same names exist
 * and describe a serial runtime, so every kernel builds and runs either way. */
#ifndef PBN_OPENMP_SHIM_H
#define PBN_OPENMP_SHIM_H
#ifdef _OPENMP
#include <omp.h>
#define PBN_HAVE_OPENMP 1
#else
#define PBN_HAVE_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_procs(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline void omp_set_num_threads(int n) { (void)n; }
static inline double omp_get_wtime(void) { return 0.0; }
#endif
#endif
