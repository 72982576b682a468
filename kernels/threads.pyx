"""Thread-count queries answered by the OpenMP runtime the kernels are linked against.

Going through the runtime (not a Python-side counter) is what makes ``OMP_NUM_THREADS`` and
``threadpoolctl.threadpool_limits(n, user_api="openmp")`` limit pyblasnn too.
"""
from _openmp cimport (PBN_HAVE_OPENMP, omp_get_max_threads, omp_get_num_procs,
                      omp_set_num_threads)


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(PBN_HAVE_OPENMP)


def max_threads():
    """omp_get_max_threads(): threads a parallel region would use now."""
    return omp_get_max_threads()


def num_procs():
    """omp_get_num_procs(): processors available to this process."""
    return omp_get_num_procs()


def set_max_threads(int n):
    """omp_set_num_threads(n) for the calling thread."""
    omp_set_num_threads(n)
