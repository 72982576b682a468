"""Element-wise kernels: relu / relu_backward; add, subtract, multiply, divide and maximum
with broadcasting; and the reduction that takes a broadcast gradient back to an operand's
shape.

Every kernel is generic over ``floating`` (float32, float64); the contiguous inner loops are
in elementwise_spans.h, compiled for AVX-512, AVX2 and the baseline and picked per call by
the ISA in use. Inputs arrive validated from pyblasnn.ops: the output is C-contiguous,
inputs are described by element strides (0 on a broadcast axis, negative on a reversed
view). Work is split into fixed index ranges, and each output element is computed by
exactly one thread, so results do not depend on the thread count.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange

from _isa cimport (init_isa_of_module, isa_of_module, pbn_reset_variants, set_isa_of_module,
                  simulate_cpu_of_module, variant_isas_of_module, variants_of_module)
from _runtime cimport backoff_of_module, pbn_set_backoff, share_backoff_of_process
from _runtime cimport (PBN_PARALLEL_MIN_ELEMENTS, PBN_PATH_RELU, PBN_PATH_RELU_BACKWARD,
                       PBN_PATH_BINARY_FLAT, PBN_PATH_BINARY_ROWS, PBN_PATH_MAXIMUM_MASK,
                       PBN_PATH_COLUMN_SUM, PBN_PATH_SCATTER_ADD, PBN_PATH_TAKE_ROWS,
                       counters_of_module, pbn_count, pbn_region, pbn_region_begin,
                       pbn_region_check, pbn_region_done, pbn_region_end, pbn_reset_counters, pbn_runtime_init,
                       pbn_team)

cnp.import_array()
pbn_runtime_init()
share_backoff_of_process()
init_isa_of_module()

# Below this many elements a kernel runs on one thread: the cost of waking the OpenMP team
# (a few microseconds) exceeds the work (measured in bench/, see README "Threads"). One
# definition for every kernel module: PBN_PARALLEL_MIN_ELEMENTS in pbn_runtime.h.
cdef Py_ssize_t PARALLEL_MIN_ELEMENTS = PBN_PARALLEL_MIN_ELEMENTS
# The lean paths keep the GIL below this many elements: releasing and re-taking it costs
# more than a (20, 100) add.
cdef Py_ssize_t RELEASE_GIL_MIN = 32768
# Contiguous work is cut into spans of this many elements for the threads.
cdef Py_ssize_t SPAN = 8192

cdef enum:
    MAX_DIMS = 64  # numpy's own limit on the number of dimensions


cdef inline int threads_for(Py_ssize_t n, int n_threads) noexcept nogil:
    """Team size for n elements: 1 below the threshold, else what pbn_team allows."""
    return pbn_team(n_threads) if n >= PARALLEL_MIN_ELEMENTS else 1


cdef inline int team_for(Py_ssize_t n, int n_threads, Py_ssize_t items) noexcept nogil:
    """threads_for, and no more threads than work items (a thread with nothing to do still
    costs its creation)."""
    cdef int nt = threads_for(n, n_threads)
    return <int>items if items < nt else nt


def path_counters():
    """{path: (calls, parallel entries)} of this module's kernels since the last reset."""
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


def isa():
    """The instruction set whose variant of this module's loops runs now: "avx512", "avx2"
    or "portable" (PYBLASNN_ISA, else the best this CPU has)."""
    return isa_of_module()


def set_isa(name):
    """Run this module's loops in their variant for this instruction set from now on
    (pyblasnn._config.set_isa switches every module). ValueError for an unknown name or one
    this CPU lacks, TypeError for a non-str."""
    set_isa_of_module(name)


def _simulate_cpu(best):
    """Test hook: behave as if this CPU supported at most `best` ("avx2", "portable", ...;
    None: what it really has). The ISA in use drops to `best` if it was above."""
    simulate_cpu_of_module(best)


def variant_isas():
    """The ISAs with their own compiled variant of this module's loops, best first."""
    return variant_isas_of_module()


def variants_ran():
    """{loop: [ISAs whose variant of it ran]} since the last reset_variants() (tests)."""
    return variants_of_module()


def reset_variants():
    pbn_reset_variants()


# ---------------------------------------------------------------------------------- relu
cdef extern from "elementwise_spans.h" nogil:
    void pbn_relu_span_f32(const float *x, float *y, Py_ssize_t n)
    void pbn_relu_span_f64(const double *x, double *y, Py_ssize_t n)
    void pbn_relu_backward_span_f32(const float *dy, const float *x, float *dx, Py_ssize_t n)
    void pbn_relu_backward_span_f64(const double *dy, const double *x, double *dx, Py_ssize_t n)
    void pbn_add_span_f32(const float *x, const float *y, float *z, Py_ssize_t n)
    void pbn_add_span_f64(const double *x, const double *y, double *z, Py_ssize_t n)
    void pbn_maximum_span_f32(const float *x, const float *y, float *z, Py_ssize_t n)
    void pbn_maximum_span_f64(const double *x, const double *y, double *z, Py_ssize_t n)
    float pbn_sum_span_f32(const float *x, Py_ssize_t n)
    # the binary operations (codes shared with C: pbn_binary_op in elementwise_spans.h)
    ctypedef enum BinaryOp "pbn_binary_op":
        OP_ADD "PBN_OP_ADD"
        OP_MAXIMUM "PBN_OP_MAXIMUM"
        OP_SUBTRACT "PBN_OP_SUBTRACT"
        OP_MULTIPLY "PBN_OP_MULTIPLY"
        OP_DIVIDE "PBN_OP_DIVIDE"
    void pbn_binary_span_f32(BinaryOp op, const float *x, const float *y, float *z,
                             Py_ssize_t n)
    void pbn_binary_span_f64(BinaryOp op, const double *x, const double *y, double *z,
                             Py_ssize_t n)
    void pbn_binary_span_vs_f32(BinaryOp op, const float *x, float y, float *z, Py_ssize_t n)
    void pbn_binary_span_vs_f64(BinaryOp op, const double *x, double y, double *z,
                                Py_ssize_t n)
    void pbn_binary_span_sv_f32(BinaryOp op, float x, const float *y, float *z, Py_ssize_t n)
    void pbn_binary_span_sv_f64(BinaryOp op, double x, const double *y, double *z,
                                Py_ssize_t n)
    bint pbn_maximum_backward_span_f32(const float *x, Py_ssize_t sx, const float *y,
                                       Py_ssize_t sy, const float *dz, float *dx, float *dy,
                                       Py_ssize_t n)
    bint pbn_maximum_backward_span_f64(const double *x, Py_ssize_t sx, const double *y,
                                       Py_ssize_t sy, const double *dz, double *dx,
                                       double *dy, Py_ssize_t n)
    double pbn_sum_span_f64(const double *x, Py_ssize_t n)
    bint pbn_binary_rows_f32(BinaryOp op, const float *x, Py_ssize_t rsx, Py_ssize_t sx,
                             const float *y, Py_ssize_t rsy, Py_ssize_t sy, float *z,
                             Py_ssize_t rows, Py_ssize_t cols)
    bint pbn_binary_rows_f64(BinaryOp op, const double *x, Py_ssize_t rsx, Py_ssize_t sx,
                             const double *y, Py_ssize_t rsy, Py_ssize_t sy, double *z,
                             Py_ssize_t rows, Py_ssize_t cols)
    void pbn_add_rows_f32(const float *a, Py_ssize_t lda, Py_ssize_t rows, float *acc,
                          Py_ssize_t w)
    void pbn_add_rows_f64(const double *a, Py_ssize_t lda, Py_ssize_t rows, double *acc,
                          Py_ssize_t w)


cdef inline void relu_span(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    """y := max(x, 0); NaN propagates as in numpy.maximum(x, 0)"""
    if floating is float:
        pbn_relu_span_f32(x, y, n)
    else:
        pbn_relu_span_f64(x, y, n)


cdef void relu_kernel(const floating *x,   # IN  (n,)
                      floating *y,         # OUT (n,), may be x itself
                      Py_ssize_t n, int n_threads) noexcept nogil:
    """y := max(x, 0)"""
    cdef Py_ssize_t s, n_spans = (n + SPAN - 1) // SPAN
    cdef pbn_region reg
    cdef int nt = pbn_region_begin(&reg, team_for(n, n_threads, n_spans))
    pbn_count(PBN_PATH_RELU, nt)
    if nt <= 1:  # no OpenMP region: it costs ~1 us even on 1 thread
        relu_span(x, y, n)
        return
    for s in prange(n_spans, schedule="static", num_threads=nt):
        pbn_region_check(&reg)
        relu_span(x + s * SPAN, y + s * SPAN, min(SPAN, n - s * SPAN))
        pbn_region_done(&reg)
    pbn_region_end(&reg, nt)


cdef inline void relu_backward_span(const floating *dy, const floating *x, floating *dx,
                                    Py_ssize_t n) noexcept nogil:
    """dx := dy * (x > 0)"""
    if floating is float:
        pbn_relu_backward_span_f32(dy, x, dx, n)
    else:
        pbn_relu_backward_span_f64(dy, x, dx, n)


cdef void relu_backward_kernel(const floating *dy,   # IN  (n,) upstream gradient
                               const floating *x,    # IN  (n,) relu input (or output)
                               floating *dx,         # OUT (n,), may be dy itself
                               Py_ssize_t n, int n_threads) noexcept nogil:
    """dx := dy where x > 0 else 0"""
    cdef Py_ssize_t s, n_spans = (n + SPAN - 1) // SPAN
    cdef pbn_region reg
    cdef int nt = pbn_region_begin(&reg, team_for(n, n_threads, n_spans))
    pbn_count(PBN_PATH_RELU_BACKWARD, nt)
    if nt <= 1:
        relu_backward_span(dy, x, dx, n)
        return
    for s in prange(n_spans, schedule="static", num_threads=nt):
        pbn_region_check(&reg)
        relu_backward_span(dy + s * SPAN, x + s * SPAN, dx + s * SPAN,
                           min(SPAN, n - s * SPAN))
        pbn_region_done(&reg)
    pbn_region_end(&reg, nt)


def relu_into(cnp.ndarray x, cnp.ndarray y, int n_threads):
    """y := max(x, 0) over contiguous arrays of one float dtype."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *py = cnp.PyArray_DATA(y)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            relu_kernel(<float *>px, <float *>py, n, n_threads)
    else:
        with nogil:
            relu_kernel(<double *>px, <double *>py, n, n_threads)


def relu_backward_into(cnp.ndarray dy, cnp.ndarray x, cnp.ndarray dx, int n_threads):
    """dx := dy * (x > 0) over contiguous arrays of one float dtype."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef void *pdy = cnp.PyArray_DATA(dy)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *pdx = cnp.PyArray_DATA(dx)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            relu_backward_kernel(<float *>pdy, <float *>px, <float *>pdx, n, n_threads)
    else:
        with nogil:
            relu_backward_kernel(<double *>pdy, <double *>px, <double *>pdx, n, n_threads)


# --------------------------------------- add / subtract / multiply / divide / maximum (binary)
# Python-level codes of the binary operations, for pyblasnn.ops (same values as BinaryOp).
BINARY_OPS = {"add": OP_ADD, "subtract": OP_SUBTRACT, "multiply": OP_MULTIPLY,
              "divide": OP_DIVIDE, "maximum": OP_MAXIMUM}


cdef inline floating apply_op(BinaryOp op, floating a, floating b) noexcept nogil:
    """a (op) b, one IEEE rounding (cdivision: a / 0 is +-inf or NaN, never an exception)"""
    if op == OP_ADD:
        return a + b
    if op == OP_SUBTRACT:
        return a - b
    if op == OP_MULTIPLY:
        return a * b
    if op == OP_DIVIDE:
        return a / b
    # numpy.maximum: the first NaN wins, otherwise the larger; ties return b (-0.0 vs 0.0)
    return a if (a > b or a != a) else b


cdef inline void binary_row(BinaryOp op, const floating *x, Py_ssize_t sx,
                            const floating *y, Py_ssize_t sy,
                            floating *z, Py_ssize_t n) noexcept nogil:
    """z[i] := x[i*sx] op y[i*sy] for i < n; the contiguous and one-number patterns run
    the span loops of the ISA in use (elementwise_spans.h), other strides a plain loop

    A broadcast operand (stride 0) is read once: ops guarantees z does not overlap it."""
    cdef Py_ssize_t i
    if sx == 1 and sy == 1:
        if floating is float:
            pbn_binary_span_f32(op, x, y, z, n)
        else:
            pbn_binary_span_f64(op, x, y, z, n)
    elif sx == 1 and sy == 0:
        if floating is float:
            pbn_binary_span_vs_f32(op, x, y[0], z, n)
        else:
            pbn_binary_span_vs_f64(op, x, y[0], z, n)
    elif sx == 0 and sy == 1:
        if floating is float:
            pbn_binary_span_sv_f32(op, x[0], y, z, n)
        else:
            pbn_binary_span_sv_f64(op, x[0], y, z, n)
    else:
        for i in range(n):
            z[i] = apply_op(op, x[i * sx], y[i * sy])


cdef void binary_kernel(BinaryOp op, int ndim,
                        const Py_ssize_t *shape,   # IN (ndim,) output shape, coalesced
                        const floating *x, const Py_ssize_t *xs,  # IN x and its element strides
                        const floating *y, const Py_ssize_t *ys,  # IN y and its element strides
                        floating *z,               # OUT C-contiguous, prod(shape) elements
                        int n_threads) noexcept nogil:
    """z := x op y with numpy broadcasting (broadcast axes have stride 0)"""
    cdef Py_ssize_t inner = shape[ndim - 1], n_rows = 1, r, t, n_spans = (inner + SPAN - 1) // SPAN
    cdef int d, nt
    for d in range(ndim - 1):
        n_rows *= shape[d]
    cdef pbn_region reg
    nt = pbn_region_begin(&reg, team_for(n_rows * inner, n_threads,
                                         n_spans if n_rows == 1 else n_rows))
    pbn_count(PBN_PATH_BINARY_FLAT if n_rows == 1 else PBN_PATH_BINARY_ROWS, nt)
    if nt <= 1:
        binary_rows(op, ndim, shape, x, xs, y, ys, z, 0, n_rows)
        return
    if n_rows == 1:  # one contiguous run: split it into spans for the threads
        for r in prange(n_spans, schedule="static", num_threads=nt):
            pbn_region_check(&reg)
            binary_row(op, x + r * SPAN * xs[ndim - 1], xs[ndim - 1],
                       y + r * SPAN * ys[ndim - 1], ys[ndim - 1],
                       z + r * SPAN, min(SPAN, inner - r * SPAN))
            pbn_region_done(&reg)
    else:  # one block of whole rows per thread: the row loop's set-up is paid once per thread
        for t in prange(nt, schedule="static", num_threads=nt):
            pbn_region_check(&reg)
            binary_rows(op, ndim, shape, x, xs, y, ys, z, n_rows * t // nt,
                        n_rows * (t + 1) // nt)
            pbn_region_done(&reg)
    pbn_region_end(&reg, nt)


cdef inline bint binary_rows_2d(BinaryOp op, const floating *x, Py_ssize_t rsx, Py_ssize_t sx,
                                const floating *y, Py_ssize_t rsy, Py_ssize_t sy,
                                floating *z, Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    """rows of a 2-D z := x op y on the span loops (one pick for all rows) when the inner
    strides are 1 or 0; False (nothing done) otherwise"""
    if floating is float:
        return pbn_binary_rows_f32(op, x, rsx, sx, y, rsy, sy, z, rows, cols)
    else:
        return pbn_binary_rows_f64(op, x, rsx, sx, y, rsy, sy, z, rows, cols)


cdef void binary_rows(BinaryOp op, int ndim, const Py_ssize_t *shape,
                      const floating *x, const Py_ssize_t *xs,
                      const floating *y, const Py_ssize_t *ys,
                      floating *z, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """rows r0..r1-1 (over all axes but the last) of z := x op y"""
    cdef Py_ssize_t inner = shape[ndim - 1], r, rest, off_x, off_y, idx
    cdef int d
    if ndim == 2 and binary_rows_2d(op, x + r0 * xs[0], xs[0], xs[1], y + r0 * ys[0], ys[0],
                                    ys[1], z + r0 * inner, r1 - r0, inner):
        return
    for r in range(r0, r1):
        rest = r
        off_x = 0
        off_y = 0
        for d in range(ndim - 2, -1, -1):
            idx = rest % shape[d]
            rest = rest // shape[d]
            off_x += idx * xs[d]
            off_y += idx * ys[d]
        binary_row(op, x + off_x, xs[ndim - 1], y + off_y, ys[ndim - 1], z + r * inner, inner)


cdef struct BroadcastLayout:
    Py_ssize_t shape[MAX_DIMS]   # output shape (coalesced axes)
    Py_ssize_t xs[MAX_DIMS]      # x's element strides, 0 on broadcast axes
    Py_ssize_t ys[MAX_DIMS]      # y's element strides, 0 on broadcast axes


cdef int fill_layout(BroadcastLayout *L, shape, x_strides, y_strides) except -1:
    """Copy a coalesced layout from Python sequences; returns its number of axes."""
    cdef int ndim = len(shape), d
    if not 0 < ndim <= MAX_DIMS or len(x_strides) != ndim or len(y_strides) != ndim:
        raise ValueError(f"broadcast layout: bad number of axes {ndim}")
    for d in range(ndim):
        L.shape[d] = shape[d]
        L.xs[d] = x_strides[d]
        L.ys[d] = y_strides[d]
    return ndim


def binary(int op, shape, x_strides, y_strides, cnp.ndarray x, cnp.ndarray y,
           cnp.ndarray z, int n_threads):
    """z := x (op) y; shape and strides (in elements) are the coalesced broadcast layout."""
    cdef BroadcastLayout L
    cdef int ndim = fill_layout(&L, shape, x_strides, y_strides)
    cdef Py_ssize_t *c_shape = L.shape
    cdef Py_ssize_t *c_xs = L.xs
    cdef Py_ssize_t *c_ys = L.ys
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef void *pz = cnp.PyArray_DATA(z)
    cdef BinaryOp bop = <BinaryOp>op
    if cnp.PyArray_TYPE(z) == cnp.NPY_FLOAT32:
        with nogil:
            binary_kernel(bop, ndim, c_shape, <float *>px, c_xs, <float *>py, c_ys,
                          <float *>pz, n_threads)
    else:
        with nogil:
            binary_kernel(bop, ndim, c_shape, <double *>px, c_xs, <double *>py, c_ys,
                          <double *>pz, n_threads)


# ------------------------------------------------------- maximum_backward (gradient routing)
cdef inline bint maximum_backward_span(const floating *x, Py_ssize_t sx, const floating *y,
                                       Py_ssize_t sy, const floating *dz, floating *dx,
                                       floating *dy, Py_ssize_t n) noexcept nogil:
    """One row of maximum_mask_kernel on the span loops of the ISA in use when x's and y's
    strides are 1 or 0 (a broadcast number); False (nothing done) for other strides"""
    if floating is float:
        return pbn_maximum_backward_span_f32(x, sx, y, sy, dz, dx, dy, n)
    else:
        return pbn_maximum_backward_span_f64(x, sx, y, sy, dz, dx, dy, n)


cdef void maximum_mask_kernel(int ndim, const Py_ssize_t *shape,
                              const floating *x, const Py_ssize_t *xs,
                              const floating *y, const Py_ssize_t *ys,
                              const floating *dz,      # IN  C-contiguous upstream gradient
                              floating *dx_full,       # OUT C-contiguous, dz where x wins
                              floating *dy_full,       # OUT C-contiguous, dz where y wins
                              int n_threads) noexcept nogil:
    """dx_full := dz where maximum picked x (x > y or x is NaN), dy_full := dz elsewhere"""
    cdef Py_ssize_t inner = shape[ndim - 1], n_rows = 1, r, rest, off_x, off_y, idx, i
    cdef const floating *xr
    cdef const floating *yr
    cdef floating a, b
    cdef int d, nt
    for d in range(ndim - 1):
        n_rows *= shape[d]
    cdef pbn_region reg
    nt = pbn_region_begin(&reg, team_for(n_rows * inner, n_threads, n_rows))
    pbn_count(PBN_PATH_MAXIMUM_MASK, nt)
    for r in prange(n_rows, schedule="static", num_threads=nt):
        pbn_region_check(&reg)
        rest = r
        off_x = 0
        off_y = 0
        for d in range(ndim - 2, -1, -1):
            idx = rest % shape[d]
            rest = rest // shape[d]
            off_x = off_x + idx * xs[d]
            off_y = off_y + idx * ys[d]
        xr = x + off_x
        yr = y + off_y
        if not maximum_backward_span(xr, xs[ndim - 1], yr, ys[ndim - 1], dz + r * inner,
                                     dx_full + r * inner, dy_full + r * inner, inner):
            for i in range(inner):
                a = xr[i * xs[ndim - 1]]
                b = yr[i * ys[ndim - 1]]
                if a > b or a != a:
                    dx_full[r * inner + i] = dz[r * inner + i]
                    dy_full[r * inner + i] = 0
                else:
                    dx_full[r * inner + i] = 0
                    dy_full[r * inner + i] = dz[r * inner + i]
        pbn_region_done(&reg)
    pbn_region_end(&reg, nt)


def maximum_mask(shape, x_strides, y_strides, cnp.ndarray x, cnp.ndarray y,
                 cnp.ndarray dz, cnp.ndarray dx_full, cnp.ndarray dy_full, int n_threads):
    """Route dz to whichever of x, y maximum() picked, in the broadcast shape."""
    cdef BroadcastLayout L
    cdef int ndim = fill_layout(&L, shape, x_strides, y_strides)
    cdef Py_ssize_t *c_shape = L.shape
    cdef Py_ssize_t *c_xs = L.xs
    cdef Py_ssize_t *c_ys = L.ys
    cdef void *px = cnp.PyArray_DATA(x)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef void *pdz = cnp.PyArray_DATA(dz)
    cdef void *pdx = cnp.PyArray_DATA(dx_full)
    cdef void *pdy = cnp.PyArray_DATA(dy_full)
    if cnp.PyArray_TYPE(dz) == cnp.NPY_FLOAT32:
        with nogil:
            maximum_mask_kernel(ndim, c_shape, <float *>px, c_xs, <float *>py, c_ys,
                                <float *>pdz, <float *>pdx, <float *>pdy, n_threads)
    else:
        with nogil:
            maximum_mask_kernel(ndim, c_shape, <double *>px, c_xs, <double *>py, c_ys,
                                <double *>pdz, <double *>pdx, <double *>pdy, n_threads)


# ------------------------------------------------------ sum_to_shape (broadcast reduction)
cdef inline void add_into(floating *acc, const floating *x, Py_ssize_t n) noexcept nogil:
    """acc[j] += x[j] for j < n (vectorised)"""
    if floating is float:
        pbn_add_span_f32(acc, x, acc, n)
    else:
        pbn_add_span_f64(acc, x, acc, n)


cdef inline void add_rows(const floating *a, Py_ssize_t lda, Py_ssize_t rows, floating *acc,
                          Py_ssize_t w) noexcept nogil:
    """acc[j] += a[i*lda + j] for j < w, rows i added in order 0..rows-1"""
    if floating is float:
        pbn_add_rows_f32(a, lda, rows, acc, w)
    else:
        pbn_add_rows_f64(a, lda, rows, acc, w)


cdef inline floating sum_of(const floating *x, Py_ssize_t n) noexcept nogil:
    """sum of x[0..n) in a fixed order"""
    if floating is float:
        return pbn_sum_span_f32(x, n)
    else:
        return pbn_sum_span_f64(x, n)


cdef void column_sum_kernel(const floating *a,   # IN  (rows, cols) C-contiguous
                            floating *out,       # OUT (cols,)
                            Py_ssize_t rows, Py_ssize_t cols, int n_threads) noexcept nogil:
    """out[j] := sum_i a[i, j], rows added in order 0..rows-1 (one thread per column block)

    Blocks are as wide as an even split over the threads allows (256..4096 columns): each
    row is then read in long contiguous runs, and the block's sums stay in L1."""
    cdef int nt = threads_for(rows * cols, n_threads)
    cdef Py_ssize_t block = (cols + nt - 1) // nt
    block = min(4096, max(256, (block + 15) // 16 * 16))
    cdef Py_ssize_t n_blocks = (cols + block - 1) // block, b, i, j0, w
    if n_blocks < nt:
        nt = <int>n_blocks
    cdef pbn_region reg
    nt = pbn_region_begin(&reg, nt)
    pbn_count(PBN_PATH_COLUMN_SUM, nt)
    for b in prange(n_blocks, schedule="static", num_threads=nt):
        pbn_region_check(&reg)
        j0 = b * block
        w = min(block, cols - j0)
        for i in range(w):
            out[j0 + i] = a[j0 + i] if rows > 0 else 0
        if rows > 1:
            add_rows(a + cols + j0, cols, rows - 1, out + j0, w)
        pbn_region_done(&reg)
    pbn_region_end(&reg, nt)


cdef void scatter_add_kernel(int ndim, const Py_ssize_t *shape,
                             const floating *a,          # IN  C-contiguous, prod(shape)
                             floating *out,              # OUT zeroed, addressed by out_strides
                             const Py_ssize_t *out_strides) noexcept nogil:
    """out[sum_d i_d * out_strides[d]] += a[i] over every index i of shape, row by row.

    The axes are coalesced, so the last one is either summed away (out stride 0: the row is
    reduced to one number) or kept (out stride 1: the row is added element-wise).
    """
    cdef Py_ssize_t index[MAX_DIMS]
    cdef Py_ssize_t inner = shape[ndim - 1], n_rows = 1, r, off = 0
    cdef bint reduce_inner = out_strides[ndim - 1] == 0
    cdef int d
    pbn_count(PBN_PATH_SCATTER_ADD, 1)
    for d in range(ndim - 1):
        n_rows *= shape[d]
        index[d] = 0
    for r in range(n_rows):
        if reduce_inner:
            out[off] += sum_of(a + r * inner, inner)
        else:
            add_into(out + off, a + r * inner, inner)
        d = ndim - 2
        while d >= 0:
            index[d] += 1
            off += out_strides[d]
            if index[d] < shape[d]:
                break
            off -= index[d] * out_strides[d]
            index[d] = 0
            d -= 1


def column_sum(cnp.ndarray a, cnp.ndarray out, int n_threads):
    """out := a.sum(axis=0) for a C-contiguous 2-D array."""
    cdef Py_ssize_t rows = cnp.PyArray_DIM(a, 0), cols = cnp.PyArray_DIM(a, 1)
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *po = cnp.PyArray_DATA(out)
    if cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32:
        with nogil:
            column_sum_kernel(<float *>pa, <float *>po, rows, cols, n_threads)
    else:
        with nogil:
            column_sum_kernel(<double *>pa, <double *>po, rows, cols, n_threads)


def scatter_add(shape, out_strides, cnp.ndarray a, cnp.ndarray out):
    """out (zeroed, C-contiguous) += a summed over the axes where out_strides is 0."""
    cdef int ndim = len(shape), d
    cdef Py_ssize_t c_shape[MAX_DIMS]
    cdef Py_ssize_t c_os[MAX_DIMS]
    for d in range(ndim):
        c_shape[d] = shape[d]
        c_os[d] = out_strides[d]
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *po = cnp.PyArray_DATA(out)
    if cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32:
        with nogil:
            scatter_add_kernel(ndim, c_shape, <float *>pa, <float *>po, c_os)
    else:
        with nogil:
            scatter_add_kernel(ndim, c_shape, <double *>pa, <double *>po, c_os)


# ----------------------------------------------------------------------------- take_rows
cdef void take_rows_kernel(const floating *x, Py_ssize_t row_stride,  # IN (rows, cols) rows contiguous
                           const Py_ssize_t *indices, Py_ssize_t n,   # IN (n,) validated row indices
                           floating *out, Py_ssize_t cols,            # OUT (n, cols)
                           int n_threads) noexcept nogil:
    """out[i, :] := x[indices[i], :]"""
    cdef Py_ssize_t i, j
    cdef const floating *src
    cdef pbn_region reg
    cdef int nt = pbn_region_begin(&reg, team_for(n * cols, n_threads, n))
    pbn_count(PBN_PATH_TAKE_ROWS, nt)
    for i in prange(n, schedule="static", num_threads=nt):
        pbn_region_check(&reg)
        src = x + indices[i] * row_stride
        for j in range(cols):
            out[i * cols + j] = src[j]
        pbn_region_done(&reg)
    pbn_region_end(&reg, nt)


def take_rows(cnp.ndarray x, cnp.ndarray indices, cnp.ndarray out, int n_threads):
    """out := x[indices] for x with contiguous rows and intp indices already in range."""
    cdef Py_ssize_t n = cnp.PyArray_DIM(indices, 0), cols = cnp.PyArray_DIM(out, 1)
    cdef Py_ssize_t row_stride = cnp.PyArray_STRIDE(x, 0) // cnp.PyArray_ITEMSIZE(x)
    cdef void *px = cnp.PyArray_DATA(x)
    cdef Py_ssize_t *pi = <Py_ssize_t *>cnp.PyArray_DATA(indices)
    cdef void *po = cnp.PyArray_DATA(out)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        with nogil:
            take_rows_kernel(<float *>px, row_stride, pi, n, <float *>po, cols, n_threads)
    else:
        with nogil:
            take_rows_kernel(<double *>px, row_stride, pi, n, <double *>po, cols, n_threads)


# ----------------------------------------------------------------- lean call-overhead path
# pyblasnn.ops tries these first. For the common calls — exact ndarrays of one float dtype,
# C-contiguous, same shape (or a row vector broadcast along the last axis, as a bias, or a
# Python float or int as the other operand of a binary op), and an `out` that is absent or
# a matching C-contiguous array that is either disjoint from the inputs or one of them
# exactly — they compute after a few C-level checks. For anything
# else (a thread count other than None or a positive int included) they return None and
# ops takes the fully validated path. They never raise.
from cpython.pystate cimport PyThreadState
from _lean cimport (disjoint_contiguous, float_typenum, lean_output, lean_threads, plain_array,
                   release_gil_if, restore_gil, safe_output, same_shape)


cpdef object try_relu(object x, object out, object threads):
    """relu(x) on the lean path, else None."""
    cdef int n_threads = lean_threads(threads)
    cdef PyThreadState *gil
    if n_threads == 0:
        return None
    cdef int t = float_typenum(x)
    if t < 0 or not plain_array(x, t):
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x
    res = lean_output(out, xa, t)
    if res is None or not safe_output(<cnp.ndarray>res, xa):
        return None
    cdef cnp.ndarray y = <cnp.ndarray>res
    cdef Py_ssize_t n = cnp.PyArray_SIZE(xa)
    if t == cnp.NPY_FLOAT32:
        gil = release_gil_if(n >= RELEASE_GIL_MIN)
        relu_kernel(<float *>cnp.PyArray_DATA(xa), <float *>cnp.PyArray_DATA(y), n, n_threads)
        restore_gil(gil)
    else:
        gil = release_gil_if(n >= RELEASE_GIL_MIN)
        relu_kernel(<double *>cnp.PyArray_DATA(xa), <double *>cnp.PyArray_DATA(y), n,
                    n_threads)
        restore_gil(gil)
    return y


cpdef object try_relu_backward(object dy, object x, object out, object threads):
    """relu_backward(dy, x) on the lean path, else None."""
    cdef int n_threads = lean_threads(threads)
    cdef PyThreadState *gil
    if n_threads == 0:
        return None
    cdef int t = float_typenum(x)
    if t < 0 or not plain_array(x, t) or not plain_array(dy, t):
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x, dya = <cnp.ndarray>dy
    if not same_shape(xa, dya):
        return None
    res = lean_output(out, xa, t)
    if res is None or not safe_output(<cnp.ndarray>res, xa) or not safe_output(<cnp.ndarray>res, dya):
        return None
    cdef cnp.ndarray dx = <cnp.ndarray>res
    cdef Py_ssize_t n = cnp.PyArray_SIZE(xa)
    if t == cnp.NPY_FLOAT32:
        gil = release_gil_if(n >= RELEASE_GIL_MIN)
        relu_backward_kernel(<float *>cnp.PyArray_DATA(dya), <float *>cnp.PyArray_DATA(xa),
                             <float *>cnp.PyArray_DATA(dx), n, n_threads)
        restore_gil(gil)
    else:
        gil = release_gil_if(n >= RELEASE_GIL_MIN)
        relu_backward_kernel(<double *>cnp.PyArray_DATA(dya), <double *>cnp.PyArray_DATA(xa),
                             <double *>cnp.PyArray_DATA(dx), n, n_threads)
        restore_gil(gil)
    return dx


cdef inline bint lean_scalar(object v):
    """v is a Python float, or an int that a double holds exactly (then converting it to the
    array's dtype rounds once, as NumPy's weak scalar does)."""
    if type(v) is float:
        return True
    return type(v) is int and -9007199254740992 <= v <= 9007199254740992


cpdef object try_binary(int op, object x, object y, object out, object threads):
    """x (op) y on the lean path: same shape, y a row broadcast along x's last axis, or one
    operand a Python float or int (weak: it takes the array's dtype, as in NumPy)."""
    cdef int n_threads = lean_threads(threads)
    cdef PyThreadState *gil
    if n_threads == 0:
        return None
    cdef bint x_scalar = lean_scalar(x), y_scalar = lean_scalar(y)
    if x_scalar and y_scalar:
        return None
    cdef object arr = y if x_scalar else x
    cdef int t = float_typenum(arr)
    if t < 0 or not plain_array(arr, t):
        return None
    if not (x_scalar or y_scalar) and not plain_array(y, t):
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>arr, ya = <cnp.ndarray>arr
    cdef BroadcastLayout L
    cdef int ndim
    cdef Py_ssize_t n = cnp.PyArray_SIZE(xa), d
    # a Python scalar operand, converted to the array's dtype as NumPy does (round to nearest)
    cdef double scalar64 = 0.0
    cdef float scalar32 = 0.0
    if x_scalar or y_scalar:
        scalar64 = <double>(x if x_scalar else y)
        scalar32 = <float>scalar64
        ndim = 1
        L.shape[0] = n
        L.xs[0] = 0 if x_scalar else 1
        L.ys[0] = 0 if y_scalar else 1
    else:
        ya = <cnp.ndarray>y
        if same_shape(xa, ya):
            ndim = 1
            L.shape[0] = n
            L.xs[0] = 1
            L.ys[0] = 1
        elif (cnp.PyArray_NDIM(ya) == 1 and cnp.PyArray_NDIM(xa) >= 2
              and cnp.PyArray_DIM(ya, 0) == cnp.PyArray_DIM(xa, cnp.PyArray_NDIM(xa) - 1)
              and cnp.PyArray_DIM(ya, 0) > 1 and n > 0):
            d = cnp.PyArray_DIM(ya, 0)
            ndim = 2
            L.shape[0] = n // d
            L.shape[1] = d
            L.xs[0] = d
            L.xs[1] = 1
            L.ys[0] = 0
            L.ys[1] = 1
        else:
            return None
    res = lean_output(out, xa, t)
    if res is None:
        return None
    cdef cnp.ndarray z = <cnp.ndarray>res
    if not safe_output(z, xa) or not safe_output(z, ya):  # a broadcast row must be disjoint
        return None
    if n == 0:
        return z
    cdef BinaryOp bop = <BinaryOp>op
    cdef void *px = cnp.PyArray_DATA(xa)
    cdef void *py = cnp.PyArray_DATA(ya)
    cdef void *ps = <void *>&scalar32 if t == cnp.NPY_FLOAT32 else <void *>&scalar64
    if x_scalar:
        px = ps
    elif y_scalar:
        py = ps
    gil = release_gil_if(n >= RELEASE_GIL_MIN)
    if t == cnp.NPY_FLOAT32:
        binary_kernel(bop, ndim, L.shape, <float *>px, L.xs, <float *>py, L.ys,
                      <float *>cnp.PyArray_DATA(z), n_threads)
    else:
        binary_kernel(bop, ndim, L.shape, <double *>px, L.xs, <double *>py, L.ys,
                      <double *>cnp.PyArray_DATA(z), n_threads)
    restore_gil(gil)
    return z


cpdef object try_column_sum(object dz, object shape, object out, object threads):
    """sum_to_shape(dz, (d,)) for a plain 2-D float dz (n, d), n > 0: its column sums, into
    out (a plain writeable (d,) array disjoint from dz) or a new array; else None."""
    cdef int n_threads = lean_threads(threads)
    if n_threads == 0 or type(shape) is not tuple or len(<tuple>shape) != 1:
        return None
    cdef int t = float_typenum(dz)
    if t < 0 or not plain_array(dz, t) or cnp.PyArray_NDIM(<cnp.ndarray>dz) != 2:
        return None
    cdef cnp.ndarray a = <cnp.ndarray>dz
    cdef Py_ssize_t rows = cnp.PyArray_DIM(a, 0), cols = cnp.PyArray_DIM(a, 1)
    cdef object d = (<tuple>shape)[0]
    if type(d) is not int or d != cols or rows == 0:
        return None
    cdef cnp.npy_intp dims[1]
    dims[0] = cols
    cdef cnp.ndarray res
    if out is None:
        res = cnp.PyArray_EMPTY(1, dims, t, 0)
    else:
        if not plain_array(out, t) or cnp.PyArray_NDIM(<cnp.ndarray>out) != 1 \
                or cnp.PyArray_DIM(<cnp.ndarray>out, 0) != cols \
                or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out):
            return None
        res = <cnp.ndarray>out
        if not disjoint_contiguous(res, a):
            return None
    cdef PyThreadState *gil = release_gil_if(rows * cols >= RELEASE_GIL_MIN)
    if t == cnp.NPY_FLOAT32:
        column_sum_kernel(<float *>cnp.PyArray_DATA(a), <float *>cnp.PyArray_DATA(res), rows,
                          cols, n_threads)
    else:
        column_sum_kernel(<double *>cnp.PyArray_DATA(a), <double *>cnp.PyArray_DATA(res), rows,
                          cols, n_threads)
    restore_gil(gil)
    return res


# --------------------------------------------------------------------------- front doors
# pyblasnn.ops.relu / relu_backward / add / subtract / multiply / divide / maximum are these
# functions: the lean path is tried at C level, and anything it declines goes to the
# validated Python implementation that pyblasnn.ops registers (validation stays in Python,
# see pyblasnn/_validation.py).
# This saves a Python frame per call: ~0.1 us, a sixth of a (20, 100) add.
cdef dict _validated = {}


def register_validated(**implementations):
    """Set the validated implementations (name -> function(*args, out, n_threads))."""
    _validated.update(implementations)


def relu(x, out=None, n_threads=None):
    """y = maximum(x, 0) element-wise, bit for bit as NumPy (NaN propagates, -0.0 -> 0.0)."""
    y = try_relu(x, out, n_threads)
    return y if y is not None else _validated["relu"](x, out, n_threads)


def relu_backward(dy, x, out=None, n_threads=None):
    """dx = dy * (x > 0): the gradient of relu at x. dy and x have the same shape."""
    dx = try_relu_backward(dy, x, out, n_threads)
    return dx if dx is not None else _validated["relu_backward"](dy, x, out, n_threads)


def add(x, y, out=None, n_threads=None):
    """z = x + y with NumPy broadcasting, e.g. (32, 10) + (10,) -> (32, 10)."""
    z = try_binary(OP_ADD, x, y, out, n_threads)
    return z if z is not None else _validated["add"](x, y, out, n_threads)


def subtract(x, y, out=None, n_threads=None):
    """z = x - y with NumPy broadcasting, bit for bit as numpy.subtract."""
    z = try_binary(OP_SUBTRACT, x, y, out, n_threads)
    return z if z is not None else _validated["subtract"](x, y, out, n_threads)


def multiply(x, y, out=None, n_threads=None):
    """z = x * y with NumPy broadcasting, bit for bit as numpy.multiply."""
    z = try_binary(OP_MULTIPLY, x, y, out, n_threads)
    return z if z is not None else _validated["multiply"](x, y, out, n_threads)


def divide(x, y, out=None, n_threads=None):
    """z = x / y with NumPy broadcasting, bit for bit as numpy.divide (x / 0 -> +-inf or NaN)."""
    z = try_binary(OP_DIVIDE, x, y, out, n_threads)
    return z if z is not None else _validated["divide"](x, y, out, n_threads)


def maximum(x, y, out=None, n_threads=None):
    """z = numpy.maximum(x, y) with broadcasting; NaN in either operand propagates."""
    z = try_binary(OP_MAXIMUM, x, y, out, n_threads)
    return z if z is not None else _validated["maximum"](x, y, out, n_threads)
