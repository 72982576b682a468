# The OpenMP runtime API as seen from Cython; serial stand-ins when built without OpenMP.
cdef extern from "openmp_shim.h" nogil:
    int PBN_HAVE_OPENMP
    int omp_get_max_threads()
    int omp_get_num_procs()
    int omp_get_thread_num()
    int omp_get_num_threads()
    void omp_set_num_threads(int n)
    double omp_get_wtime()
