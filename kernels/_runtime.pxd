# The kernels' thread policy and path counters (pbn_runtime.h). Cimporting this module
# compiles the runtime's definitions into the importing extension module, once.
from cpython.pycapsule cimport PyCapsule_GetPointer

cdef extern from "pbn_runtime_impl.h":
    pass

cdef extern from "pbn_runtime.h" nogil:
    enum: PBN_MAX_THREADS
    enum: PBN_PARALLEL_MIN_ELEMENTS
    ctypedef enum pbn_path:
        PBN_PATH_GEMM_GEMV
        PBN_PATH_GEMM_SPARSE
        PBN_PATH_GEMM_DOT
        PBN_PATH_GEMM_PACKED
        PBN_PATH_GEMM_SWAP
        PBN_PATH_GEMM_BATCHED
        PBN_PATH_GEMM_BATCHED_TINY
        PBN_PATH_RELU
        PBN_PATH_RELU_BACKWARD
        PBN_PATH_BINARY_FLAT
        PBN_PATH_BINARY_ROWS
        PBN_PATH_MAXIMUM_MASK
        PBN_PATH_COLUMN_SUM
        PBN_PATH_SCATTER_ADD
        PBN_PATH_TAKE_ROWS
        PBN_PATH_SOFTMAX_XENT
        PBN_PATH_XENT_PROBS
        PBN_PATH_SOFTMAX
        PBN_PATH_SOFTMAX_BACKWARD
        PBN_PATH_OPTIM_UPDATE
        PBN_N_PATHS
    enum: PBN_LATE_US
    enum: PBN_SLACK_DIV
    enum: PBN_IDLE_US
    enum: PBN_WAKE_US
    enum: PBN_SOLO_US
    enum: PBN_SOLO_MAX_SHIFT
    ctypedef struct pbn_region:
        long long t0_us
        unsigned long long id
        long long master_done_us
        long long late_us
        long long allow_us
    int pbn_region_begin(pbn_region *r, int nt)
    void pbn_region_check(pbn_region *r)
    void pbn_region_done(pbn_region *r)
    void pbn_region_end(pbn_region *r, int nt)
    int pbn_region_contended(long long late_us, long long wait_us, long long work_us)
    void pbn_set_backoff(int on)
    int pbn_backoff_enabled()
    unsigned long long pbn_contended_regions()
    int pbn_backing_off()
    int pbn_team(int requested)
    int pbn_default_team()
    int pbn_forked_child()
    void pbn_count(pbn_path path, int team)
    unsigned long long pbn_path_calls(int path)
    unsigned long long pbn_path_parallel(int path)
    const char *pbn_path_name(int path)
    void pbn_reset_counters()
    void pbn_runtime_init()
    void *pbn_backoff_state()
    void pbn_share_backoff(void *state)


cdef inline dict counters_of_module():
    """{path name: (calls, parallel entries)} for the paths this module counted."""
    cdef int p
    cdef dict res = {}
    for p in range(<int>PBN_N_PATHS):
        if pbn_path_calls(p):
            res[pbn_path_name(p).decode()] = (pbn_path_calls(p), pbn_path_parallel(p))
    return res


cdef inline dict backoff_of_module():
    """The contention back-off state (the process's, pbn_runtime.h)."""
    return {"enabled": bool(pbn_backoff_enabled()),
            "contended_regions": pbn_contended_regions(),
            "backing_off": bool(pbn_backing_off())}


cdef inline void share_backoff_of_process() except *:
    """Adopt the threads module's back-off state (the process's one copy, pbn_runtime.h)."""
    from pyblasnn._kernels import threads
    pbn_share_backoff(PyCapsule_GetPointer(threads.backoff_capsule(), b"pyblasnn.backoff"))
