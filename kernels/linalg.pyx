"""Linear-algebra kernels: one GEMM entry point (2-D, general strides, row gather, fused
bias + relu epilogue) and one batched entry point. Everything dot / matmul and their
backward passes need is expressed through these two in pyblasnn.ops; transposes are
strides, never copies. The arithmetic lives in the C engine under kernels/gemm/.
"""
cimport numpy as cnp
from libc.stdlib cimport free, malloc
from cpython.pystate cimport PyThreadState
from _lean cimport lean_threads, release_gil_if, restore_gil
from _runtime cimport backoff_of_module, pbn_set_backoff, share_backoff_of_process
from _runtime cimport counters_of_module, pbn_reset_counters, pbn_runtime_init
from _isa cimport (PBN_ISA_COUNT, init_isa_of_module, isa_code, isa_of_module, pbn_isa,
                  pbn_isa_best, pbn_isa_cpu_list, pbn_isa_env_check, pbn_isa_initial,
                  pbn_isa_name, pbn_isa_supported, set_isa_of_module, simulate_cpu_of_module)

cnp.import_array()
pbn_runtime_init()
share_backoff_of_process()

cdef extern from "gemm/gemm.h" nogil:
    ctypedef Py_ssize_t pbn_int
    void pbn_gemm_f32(pbn_int m, pbn_int n, pbn_int k,
                      const float *A, pbn_int rsa, pbn_int csa, const pbn_int *a_rows,
                      const float *B, pbn_int rsb, pbn_int csb,
                      float *C, pbn_int rsc, pbn_int csc,
                      int accumulate, const float *bias, int relu, int n_threads)
    void pbn_gemm_f64(pbn_int m, pbn_int n, pbn_int k,
                      const double *A, pbn_int rsa, pbn_int csa, const pbn_int *a_rows,
                      const double *B, pbn_int rsb, pbn_int csb,
                      double *C, pbn_int rsc, pbn_int csc,
                      int accumulate, const double *bias, int relu, int n_threads)
    void pbn_gemm_batched_f32(pbn_int batch, pbn_int m, pbn_int n, pbn_int k,
                              const float *A, const pbn_int *a_off, pbn_int rsa, pbn_int csa,
                              const float *B, const pbn_int *b_off, pbn_int rsb, pbn_int csb,
                              float *C, const pbn_int *c_off, pbn_int rsc, pbn_int csc,
                              int n_threads)
    void pbn_gemm_batched_f64(pbn_int batch, pbn_int m, pbn_int n, pbn_int k,
                              const double *A, const pbn_int *a_off, pbn_int rsa, pbn_int csa,
                              const double *B, const pbn_int *b_off, pbn_int rsb, pbn_int csb,
                              double *C, const pbn_int *c_off, pbn_int rsc, pbn_int csc,
                              int n_threads)
    ctypedef struct pbn_sgd_step_f32:
        float *w
        pbn_int rsw
        float *v
        pbn_int rsv
        float lr
        float momentum
        int nesterov
    int pbn_gemm_sgd_f32(pbn_int m, pbn_int n, pbn_int k, const float *A, pbn_int rsa,
                         pbn_int csa, const float *B, pbn_int rsb, pbn_int csb,
                         const pbn_sgd_step_f32 *step, int n_threads)
    const char *pbn_gemm_kernel_name()
    void pbn_gemm_force_portable(int force)
    unsigned long pbn_gemm_sparse_products()
    const char *pbn_gemm_paths()
    void pbn_gemm_block_sizes(int f64, pbn_int out[5])
    double pbn_gemm_parallel_min_flops()
    double pbn_gemv_parallel_min()
    double pbn_sparse_parallel_min()
    size_t pbn_gemm_scratch_buffers()
    int pbn_gemm_block_sizes_isa(int isa, int f64, pbn_int out[5])
    double pbn_peak_gflops(int isa, int f64, int n_threads, double seconds)

# The ISA choice (pbn_isa.h): detected and PYBLASNN_ISA checked at import, a ValueError
# for a name this CPU lacks.
init_isa_of_module()


cdef inline Py_ssize_t elem_stride(cnp.ndarray a, int axis):
    return cnp.PyArray_STRIDE(a, axis) // cnp.PyArray_ITEMSIZE(a)


def gemm(cnp.ndarray a, cnp.ndarray b, cnp.ndarray c, bint accumulate=False,
         cnp.ndarray bias=None, bint relu=False, cnp.ndarray rows=None, int n_threads=1):
    """C := [C +] A[rows] @ B (+ bias) (relu) for 2-D arrays of one float dtype.

    a: (m_a, k) any strides; rows: None or intp (m,) indices into a's rows;
    b: (k, n) any strides; c: (m, n) any strides, not overlapping a or b;
    bias: None or contiguous (n,).
    """
    cdef pbn_int m = cnp.PyArray_DIM(c, 0), n = cnp.PyArray_DIM(c, 1)
    cdef pbn_int k = cnp.PyArray_DIM(a, 1)
    cdef pbn_int rsa = elem_stride(a, 0), csa = elem_stride(a, 1)
    cdef pbn_int rsb = elem_stride(b, 0), csb = elem_stride(b, 1)
    cdef pbn_int rsc = elem_stride(c, 0), csc = elem_stride(c, 1)
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef void *pc = cnp.PyArray_DATA(c)
    cdef void *pbias = NULL if bias is None else cnp.PyArray_DATA(bias)
    cdef pbn_int *prows = NULL if rows is None else <pbn_int *>cnp.PyArray_DATA(rows)
    if cnp.PyArray_TYPE(c) == cnp.NPY_FLOAT32:
        with nogil:
            pbn_gemm_f32(m, n, k, <float *>pa, rsa, csa, prows, <float *>pb, rsb, csb,
                         <float *>pc, rsc, csc, accumulate, <float *>pbias, relu, n_threads)
    else:
        with nogil:
            pbn_gemm_f64(m, n, k, <double *>pa, rsa, csa, prows, <double *>pb, rsb, csb,
                         <double *>pc, rsc, csc, accumulate, <double *>pbias, relu, n_threads)


def gemm_sgd(cnp.ndarray a, cnp.ndarray b, cnp.ndarray w, cnp.ndarray v, double learning_rate,
             double momentum, bint nesterov, int n_threads=1):
    """W (and V) := one SGD step from G = A @ B without storing G (pbn_gemm_sgd_f32); True
    when done, False when the product does not qualify (nothing written).

    a: (m, k), b: (k, n) float32, any strides; w, v: (m, n) float32 with unit column stride
    (v None: plain SGD), overlapping nothing. The hyperparameters are rounded to float32,
    as the optimizer loops round them.
    """
    cdef pbn_sgd_step_f32 step
    cdef pbn_int m = cnp.PyArray_DIM(w, 0), n = cnp.PyArray_DIM(w, 1)
    cdef pbn_int k = cnp.PyArray_DIM(a, 1)
    cdef pbn_int rsa = elem_stride(a, 0), csa = elem_stride(a, 1)
    cdef pbn_int rsb = elem_stride(b, 0), csb = elem_stride(b, 1)
    cdef const float *pa = <const float *>cnp.PyArray_DATA(a)
    cdef const float *pb = <const float *>cnp.PyArray_DATA(b)
    cdef int done
    step.w = <float *>cnp.PyArray_DATA(w)
    step.rsw = elem_stride(w, 0)
    step.v = NULL if v is None else <float *>cnp.PyArray_DATA(v)
    step.rsv = 0 if v is None else elem_stride(v, 0)
    step.lr = <float>learning_rate
    step.momentum = <float>momentum
    step.nesterov = nesterov
    with nogil:
        done = pbn_gemm_sgd_f32(m, n, k, pa, rsa, csa, pb, rsb, csb, &step, n_threads)
    return done != 0


def gemm_batched(cnp.ndarray a, cnp.ndarray a_off, cnp.ndarray b, cnp.ndarray b_off,
                 cnp.ndarray c, cnp.ndarray c_off, int n_threads=1):
    """C_i := A_i @ B_i for i < len(c_off), the matrices at element offsets *_off.

    a, b, c: arrays whose last two axes are the (m, k), (k, n), (m, n) matrices (any
    strides there); *_off: intp element offsets of each batch's matrix from the data pointer.
    """
    cdef pbn_int batch = cnp.PyArray_DIM(c_off, 0)
    cdef int nd_a = cnp.PyArray_NDIM(a), nd_b = cnp.PyArray_NDIM(b), nd_c = cnp.PyArray_NDIM(c)
    cdef pbn_int m = cnp.PyArray_DIM(c, nd_c - 2), n = cnp.PyArray_DIM(c, nd_c - 1)
    cdef pbn_int k = cnp.PyArray_DIM(a, nd_a - 1)
    cdef pbn_int rsa = elem_stride(a, nd_a - 2), csa = elem_stride(a, nd_a - 1)
    cdef pbn_int rsb = elem_stride(b, nd_b - 2), csb = elem_stride(b, nd_b - 1)
    cdef pbn_int rsc = elem_stride(c, nd_c - 2), csc = elem_stride(c, nd_c - 1)
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef void *pc = cnp.PyArray_DATA(c)
    cdef pbn_int *oa = <pbn_int *>cnp.PyArray_DATA(a_off)
    cdef pbn_int *ob = <pbn_int *>cnp.PyArray_DATA(b_off)
    cdef pbn_int *oc = <pbn_int *>cnp.PyArray_DATA(c_off)
    if cnp.PyArray_TYPE(c) == cnp.NPY_FLOAT32:
        with nogil:
            pbn_gemm_batched_f32(batch, m, n, k, <float *>pa, oa, rsa, csa,
                                 <float *>pb, ob, rsb, csb, <float *>pc, oc, rsc, csc,
                                 n_threads)
    else:
        with nogil:
            pbn_gemm_batched_f64(batch, m, n, k, <double *>pa, oa, rsa, csa,
                                 <double *>pb, ob, rsb, csb, <double *>pc, oc, rsc, csc,
                                 n_threads)


def kernel_name():
    """The GEMM micro-kernel path chosen at run time for this CPU."""
    return pbn_gemm_kernel_name().decode()


def gemm_paths():
    """The GEMM engine's code paths in use on this CPU, in words."""
    return pbn_gemm_paths().decode()


def sparse_products():
    """How many float32 products took the zero-skipping path so far (for tests)."""
    return pbn_gemm_sparse_products()


def block_sizes(isa=None):
    """{dtype name: {"MR", "NR", "KC", "MC", "NC"}}: the packed engine's register tile and
    cache blocks for an ISA ("avx512", "avx2", "portable"; default: the one in use), as
    compiled (tests derive their edge-straddling shapes from these)."""
    cdef pbn_int out[5]
    cdef int code = pbn_isa() if isa is None else isa_code(isa, "block_sizes")
    res = {}
    for f64, name in ((0, "float32"), (1, "float64")):
        pbn_gemm_block_sizes_isa(code, f64, out)
        res[name] = dict(zip(("MR", "NR", "KC", "MC", "NC"), [out[i] for i in range(5)]))
    return res


def block_table():
    """{isa: block_sizes(isa)} for every ISA the engine has (supported here or not)."""
    return {pbn_isa_name(i).decode(): block_sizes(pbn_isa_name(i).decode())
            for i in range(PBN_ISA_COUNT)}


def parallel_thresholds():
    """{"gemm_flops": 2 m n k, "gemv_elements": rows * k, "sparse_mnk": m n k} below
    which a product runs on one thread."""
    return {"gemm_flops": pbn_gemm_parallel_min_flops(),
            "gemv_elements": pbn_gemv_parallel_min(),
            "sparse_mnk": pbn_sparse_parallel_min()}


def scratch_buffers():
    """Packing buffers currently allocated, over all threads (freed at thread exit)."""
    return pbn_gemm_scratch_buffers()


def path_counters():
    """{path: (calls, parallel entries)} of the GEMM engine's paths since the last reset."""
    return counters_of_module()


def reset_path_counters():
    pbn_reset_counters()


def backoff_state():
    """{enabled, contended_regions, backing_off}: the contention back-off (one state for the
    process, shared by every kernel module)."""
    return backoff_of_module()


def set_backoff(bint on):
    """Turn the contention back-off on or off for every kernel module (one shared state),
    forgetting its history."""
    pbn_set_backoff(on)


def force_portable(bint force):
    """Force the portable (non-SIMD) GEMM path (True), or go back to the ISA chosen at
    import (False: PYBLASNN_ISA or the best this CPU has); for tests that compare the two.
    set_isa is the general switch."""
    set_isa("portable" if force else default_isa())


def isa():
    """The instruction set the GEMM engine uses now: "avx512", "avx2" or "portable"."""
    return isa_of_module()


def default_isa():
    """The instruction set chosen at import: PYBLASNN_ISA if set, else best_isa()."""
    return pbn_isa_name(pbn_isa_initial()).decode()


def best_isa():
    """The best instruction set this CPU (and its OS) supports."""
    return pbn_isa_name(pbn_isa_best()).decode()


def peak_gflops(isa=None, dtype="float32", n_threads=1, seconds=0.2):
    """Measured peak GFLOP/s of n_threads threads running independent FMA chains on the
    widest vectors of `isa` (default: the one in use) for about `seconds`: the yardstick the
    benchmark divides a GEMM's rate by. ValueError for an ISA this CPU lacks."""
    cdef int code = pbn_isa() if isa is None else isa_code(isa, "peak_gflops")
    if not pbn_isa_supported(code):
        raise ValueError(f"peak_gflops: this CPU (or its OS) does not support {isa!r}; it has: "
                         f"{pbn_isa_cpu_list().decode()}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"peak_gflops: dtype must be 'float32' or 'float64', got {dtype!r}")
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"peak_gflops: n_threads must be a positive int, got {n_threads!r}")
    if not seconds > 0:
        raise ValueError(f"peak_gflops: seconds must be positive, got {seconds!r}")
    cdef int f64 = dtype == "float64", nt = n_threads
    cdef double secs = seconds, rate
    with nogil:
        rate = pbn_peak_gflops(code, f64, nt, secs)
    return rate


def supported_isas():
    """The instruction sets this CPU can run, best first (always ends with "portable")."""
    return [pbn_isa_name(i).decode() for i in range(pbn_isa_best(), -1, -1)]


def set_isa(name):
    """Use the GEMM kernels of this instruction set from now on (tests; PYBLASNN_ISA is the
    user's switch, pyblasnn._config.set_isa switches every kernel module). ValueError for an
    unknown name or one this CPU lacks."""
    set_isa_of_module(name)


def _simulate_cpu(best):
    """Test hook: behave as if this CPU supported at most `best` ("avx2", "portable", ...;
    None: what it really has). The ISA in use drops to `best` if it was above."""
    simulate_cpu_of_module(best)


def _isa_env_error(value):
    """The message PYBLASNN_ISA=value gets at import on this (possibly simulated) CPU, or
    None when the value would be accepted."""
    cdef char err[256]
    if pbn_isa_env_check(value.encode(), err, sizeof(err)) >= 0:
        return None
    return err.decode()


# ----------------------------------------------------------------- lean call-overhead path
# pyblasnn.ops tries this first for products of exact 1-D / 2-D ndarrays of one float dtype
# (any strides that are whole elements, transposed views included) with an `out` that is
# absent or a writeable C-contiguous match not overlapping a or b, and a thread count that
# is None or a positive int. Anything else returns None and takes the fully validated path,
# which raises the error messages; this one never raises.

cdef inline bint plain_operand(object a, int typenum, int min_ndim):
    """a is an exact, aligned ndarray of dtype typenum with min_ndim..2 dimensions and
    whole-element strides."""
    if type(a) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(arr)
    cdef int nd = cnp.PyArray_NDIM(arr), d
    if cnp.PyArray_TYPE(arr) != typenum or nd < min_ndim or nd > 2 or not cnp.PyArray_ISALIGNED(arr):
        return False
    for d in range(nd):
        if cnp.PyArray_STRIDE(arr, d) % item != 0:
            return False
    return True


cdef inline void byte_bounds(cnp.ndarray a, char **lo, char **hi):
    """[lo, hi) spans every byte a's elements occupy."""
    cdef char *p = <char *>cnp.PyArray_DATA(a)
    cdef Py_ssize_t low = 0, high = cnp.PyArray_ITEMSIZE(a), ext
    cdef int d
    for d in range(cnp.PyArray_NDIM(a)):
        ext = (cnp.PyArray_DIM(a, d) - 1) * cnp.PyArray_STRIDE(a, d)
        if ext < 0:
            low += ext
        else:
            high += ext
    lo[0] = p + low
    hi[0] = p + high


cdef inline bint disjoint(cnp.ndarray a, cnp.ndarray b):
    cdef char *alo
    cdef char *ahi
    cdef char *blo
    cdef char *bhi
    if cnp.PyArray_SIZE(a) == 0 or cnp.PyArray_SIZE(b) == 0:
        return True
    byte_bounds(a, &alo, &ahi)
    byte_bounds(b, &blo, &bhi)
    return ahi <= blo or bhi <= alo


cdef object lean_batched(object a, object b, object out, int t, int n_threads):
    """a @ b for two 3-D float arrays with the same batch size (no broadcasting) and no
    `out`, or None: the batch's offsets are built here instead of in pyblasnn.ops."""
    if out is not None or type(b) is not cnp.ndarray or cnp.PyArray_TYPE(<cnp.ndarray>b) != t:
        return None
    cdef cnp.ndarray aa = <cnp.ndarray>a, ba = <cnp.ndarray>b, c
    if (cnp.PyArray_NDIM(ba) != 3 or not cnp.PyArray_ISALIGNED(aa) or not cnp.PyArray_ISALIGNED(ba)
            or cnp.PyArray_DIM(ba, 0) != cnp.PyArray_DIM(aa, 0)
            or cnp.PyArray_DIM(ba, 1) != cnp.PyArray_DIM(aa, 2)):
        return None
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(aa)
    cdef int d
    for d in range(3):
        if cnp.PyArray_STRIDE(aa, d) % item != 0 or cnp.PyArray_STRIDE(ba, d) % item != 0:
            return None
    cdef pbn_int batch = cnp.PyArray_DIM(aa, 0), m = cnp.PyArray_DIM(aa, 1)
    cdef pbn_int k = cnp.PyArray_DIM(aa, 2), n = cnp.PyArray_DIM(ba, 2)
    cdef cnp.npy_intp dims[3]
    dims[0] = batch
    dims[1] = m
    dims[2] = n
    c = cnp.PyArray_EMPTY(3, dims, t, 0)
    if cnp.PyArray_SIZE(c) == 0:
        return c
    cdef pbn_int *off = <pbn_int *>malloc(3 * batch * sizeof(pbn_int))
    if off == NULL:
        return None
    cdef pbn_int i, sa = cnp.PyArray_STRIDE(aa, 0) // item, sb = cnp.PyArray_STRIDE(ba, 0) // item
    for i in range(batch):
        off[i] = i * sa
        off[batch + i] = i * sb
        off[2 * batch + i] = i * m * n
    cdef void *pa = cnp.PyArray_DATA(aa)
    cdef void *pb = cnp.PyArray_DATA(ba)
    cdef void *pc = cnp.PyArray_DATA(c)
    cdef pbn_int rsa = cnp.PyArray_STRIDE(aa, 1) // item, csa = cnp.PyArray_STRIDE(aa, 2) // item
    cdef pbn_int rsb = cnp.PyArray_STRIDE(ba, 1) // item, csb = cnp.PyArray_STRIDE(ba, 2) // item
    cdef PyThreadState *gil = release_gil_if(<double>batch * m * n * k >= 32768.0)
    if t == cnp.NPY_FLOAT32:
        pbn_gemm_batched_f32(batch, m, n, k, <float *>pa, off, rsa, csa, <float *>pb, off + batch,
                             rsb, csb, <float *>pc, off + 2 * batch, n, 1, n_threads)
    else:
        pbn_gemm_batched_f64(batch, m, n, k, <double *>pa, off, rsa, csa, <double *>pb,
                             off + batch, rsb, csb, <double *>pc, off + 2 * batch, n, 1,
                             n_threads)
    restore_gil(gil)
    free(off)
    return c


def try_gemm(object a, object b, object out, object bias, bint relu, object threads,
             bint vectors=False, bint batched=False):
    """act(a @ b + bias) for plain 2-D operands on the lean path, else None.

    With vectors, a and b may also be 1-D, with the semantics numpy.dot and numpy.matmul
    share there: (d,) . (d,) -> scalar, (m, d) . (d,) -> (m,), (d,) . (d, n) -> (n,).
    With batched, two 3-D operands with one batch size are multiplied as numpy.matmul does
    (a stack of products; no bias, relu or out).
    """
    cdef int n_threads = lean_threads(threads)
    if n_threads == 0 or type(a) is not cnp.ndarray:
        return None
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    cdef int min_ndim = 1 if vectors else 2
    if batched and bias is None and not relu and cnp.PyArray_NDIM(<cnp.ndarray>a) == 3:
        return lean_batched(a, b, out, t, n_threads)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or not plain_operand(a, t, min_ndim) \
            or not plain_operand(b, t, min_ndim):
        return None
    cdef cnp.ndarray aa = <cnp.ndarray>a, ba = <cnp.ndarray>b, c
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(aa)
    cdef bint a_mat = cnp.PyArray_NDIM(aa) == 2, b_mat = cnp.PyArray_NDIM(ba) == 2
    # A is m x k, B is k x n; a vector operand is one row of A / one column of B
    cdef pbn_int m = cnp.PyArray_DIM(aa, 0) if a_mat else 1
    cdef pbn_int k = cnp.PyArray_DIM(aa, 1) if a_mat else cnp.PyArray_DIM(aa, 0)
    cdef pbn_int n = cnp.PyArray_DIM(ba, 1) if b_mat else 1
    cdef pbn_int csa = cnp.PyArray_STRIDE(aa, 1 if a_mat else 0) // item
    cdef pbn_int rsa = cnp.PyArray_STRIDE(aa, 0) // item if a_mat else k * csa
    cdef pbn_int rsb = cnp.PyArray_STRIDE(ba, 0) // item
    cdef pbn_int csb = cnp.PyArray_STRIDE(ba, 1) // item if b_mat else 1
    if cnp.PyArray_DIM(ba, 0) != k:
        return None
    cdef cnp.npy_intp dims[2]
    cdef int nd = 0
    if a_mat:
        dims[nd] = m
        nd += 1
    if b_mat:
        dims[nd] = n
        nd += 1
    if bias is not None:
        if (not b_mat or type(bias) is not cnp.ndarray or cnp.PyArray_TYPE(<cnp.ndarray>bias) != t
                or cnp.PyArray_NDIM(<cnp.ndarray>bias) != 1
                or cnp.PyArray_DIM(<cnp.ndarray>bias, 0) != n
                or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>bias)
                or not cnp.PyArray_ISALIGNED(<cnp.ndarray>bias)):
            return None
    if out is None:
        c = cnp.PyArray_EMPTY(nd, dims, t, 0)
    else:
        if (nd == 0 or type(out) is not cnp.ndarray or cnp.PyArray_TYPE(<cnp.ndarray>out) != t
                or cnp.PyArray_NDIM(<cnp.ndarray>out) != nd
                or cnp.PyArray_DIM(<cnp.ndarray>out, 0) != dims[0]
                or (nd == 2 and cnp.PyArray_DIM(<cnp.ndarray>out, 1) != dims[1])
                or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>out)
                or not cnp.PyArray_ISALIGNED(<cnp.ndarray>out)
                or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out)):
            return None
        c = <cnp.ndarray>out
        if not disjoint(c, aa) or not disjoint(c, ba) or (
                bias is not None and not disjoint(c, <cnp.ndarray>bias)):
            return None
    cdef void *pa = cnp.PyArray_DATA(aa)
    cdef void *pb = cnp.PyArray_DATA(ba)
    cdef void *pc = cnp.PyArray_DATA(c)
    cdef void *pbias = NULL if bias is None else cnp.PyArray_DATA(<cnp.ndarray>bias)
    cdef PyThreadState *gil = release_gil_if(<double>m * n * k >= 32768.0)
    if t == cnp.NPY_FLOAT32:
        pbn_gemm_f32(m, n, k, <float *>pa, rsa, csa, NULL, <float *>pb, rsb, csb,
                     <float *>pc, n, 1, False, <float *>pbias, relu, n_threads)
    else:
        pbn_gemm_f64(m, n, k, <double *>pa, rsa, csa, NULL, <double *>pb, rsb, csb,
                     <double *>pc, n, 1, False, <double *>pbias, relu, n_threads)
    restore_gil(gil)
    return c[()] if nd == 0 else c
