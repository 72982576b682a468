"""Fused softmax + sparse categorical cross-entropy kernels.

Forward and backward together: the loss of a row and its gradient row are computed in one
visit (the inner loops over blocks of rows are in loss_spans.h, compiled for AVX-512, AVX2
and the baseline and picked per call by the ISA in use), so training never materialises the
probabilities.

Determinism: rows are independent; each thread writes its rows' losses into ``row_loss`` and
the mean is summed sequentially afterwards, so 1 and N threads give bitwise-equal losses and
gradients. The correct-prediction count is an integer reduction (order-independent).

The memoryview ``def`` wrappers release the GIL and do not validate: ``pyblasnn/fused.py``
proves shapes, dtypes, contiguity and label range first. ``try_sparse_softmax_cross_entropy``
is the lean path: it checks plain arrays in C (labels included) and returns None otherwise.
"""
from cython cimport floating
from cython.parallel cimport prange
from _isa cimport (init_isa_of_module, isa_of_module, pbn_reset_variants, set_isa_of_module,
                  simulate_cpu_of_module, variant_isas_of_module, variants_of_module)
from _runtime cimport backoff_of_module, pbn_set_backoff, share_backoff_of_process
from _runtime cimport (PBN_PARALLEL_MIN_ELEMENTS, PBN_PATH_SOFTMAX_XENT, PBN_PATH_XENT_PROBS,
                       PBN_PATH_SOFTMAX, PBN_PATH_SOFTMAX_BACKWARD, counters_of_module,
                       pbn_count, pbn_region, pbn_region_begin, pbn_region_check,
                       pbn_region_done, pbn_region_end, pbn_reset_counters, pbn_runtime_init, pbn_team)

pbn_runtime_init()
share_backoff_of_process()
init_isa_of_module()

# Below this many logits a parallel region costs more than it saves (one MLP minibatch of
# 128 x 10 stays serial); the one definition is in pbn_runtime.h.
cdef Py_ssize_t PARALLEL_MIN_ELEMENTS = PBN_PARALLEL_MIN_ELEMENTS


cdef inline int _threads_for(Py_ssize_t elements, int n_threads, Py_ssize_t items) noexcept nogil:
    """Team for `elements` of work in `items` independent pieces (rows, blocks of rows)."""
    if n_threads < 1 or elements < PARALLEL_MIN_ELEMENTS:
        return 1
    cdef int nt = pbn_team(n_threads)
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


cdef extern from "loss_spans.h" nogil:
    Py_ssize_t PBN_XENT_WORK
    void pbn_exp_span_f32(const float *x, float *y, Py_ssize_t n)
    void pbn_log1p_span_f32(const float *x, float *y, Py_ssize_t n)
    Py_ssize_t pbn_softmax_xent_rows_f32(const float *z, Py_ssize_t n, Py_ssize_t c,
                                         const Py_ssize_t *labels, float *dz, double scale,
                                         double *row_loss)
    Py_ssize_t pbn_softmax_xent_rows_f64(const double *z, Py_ssize_t n, Py_ssize_t c,
                                         const Py_ssize_t *labels, double *dz, double scale,
                                         double *row_loss)
    Py_ssize_t pbn_xent_probs_rows_f32(const float *p, Py_ssize_t n, Py_ssize_t c,
                                       const Py_ssize_t *labels, float *dp, double scale,
                                       double eps, double *row_loss)
    Py_ssize_t pbn_xent_probs_rows_f64(const double *p, Py_ssize_t n, Py_ssize_t c,
                                       const Py_ssize_t *labels, double *dp, double scale,
                                       double eps, double *row_loss)
    void pbn_softmax_rows_f32(const float *x, Py_ssize_t n, Py_ssize_t c, float *y)
    void pbn_softmax_rows_f64(const double *x, Py_ssize_t n, Py_ssize_t c, double *y)
    void pbn_softmax_backward_rows_f32(const float *dy, const float *y, Py_ssize_t n,
                                       Py_ssize_t c, float *dx)
    void pbn_softmax_backward_rows_f64(const double *dy, const double *y, Py_ssize_t n,
                                       Py_ssize_t c, double *dx)


cdef inline Py_ssize_t _rows_per_task(Py_ssize_t c) noexcept nogil:
    """Rows of c classes given to a thread at a time: about PBN_XENT_WORK elements, so each
    call of a row loop (through the ISA's table) has a block of rows to amortise it."""
    return max(1, PBN_XENT_WORK // c)


cdef inline Py_ssize_t _softmax_xent_rows(const floating* z, Py_ssize_t n, Py_ssize_t c,
                                          const Py_ssize_t* labels, floating* dz, double scale,
                                          double* row_loss) noexcept nogil:
    if floating is float:
        return pbn_softmax_xent_rows_f32(z, n, c, labels, dz, scale, row_loss)
    else:
        return pbn_softmax_xent_rows_f64(z, n, c, labels, dz, scale, row_loss)


cdef double _sparse_softmax_xent(const floating* logits, Py_ssize_t n, Py_ssize_t c,
                                 const Py_ssize_t* labels, floating* dlogits,
                                 double* row_loss, Py_ssize_t* n_correct,
                                 int n_threads) noexcept nogil:
    """mean_i(logsumexp(Z_i) - Z_i[y_i]);  dZ := (softmax(Z) - onehot(y)) / n
    IN logits (n, c), labels (n,) in [0, c); OUT dlogits (n, c) or NULL, row_loss (n,),
    n_correct (count of argmax(Z_i) == y_i, or -1 if scratch memory ran out)."""
    cdef Py_ssize_t b, r0, got
    cdef Py_ssize_t correct = 0, failed = 0
    cdef double total = 0.0
    cdef double scale = 1.0 / n
    cdef Py_ssize_t rows = _rows_per_task(c)   # one scratch block per task
    cdef pbn_region reg
    cdef int nt = pbn_region_begin(&reg, _threads_for(n * c, n_threads, (n + rows - 1) // rows))
    pbn_count(PBN_PATH_SOFTMAX_XENT, nt)
    if nt == 1:
        correct = _softmax_xent_rows(logits, n, c, labels, dlogits, scale, row_loss)
        failed = correct < 0
    else:
        for b in prange((n + rows - 1) // rows, nogil=True, schedule="static", num_threads=nt):
            pbn_region_check(&reg)
            r0 = b * rows
            got = _softmax_xent_rows(logits + r0 * c, min(rows, n - r0), c, labels + r0,
                                     dlogits + r0 * c if dlogits != NULL else NULL, scale,
                                     row_loss + r0)
            if got < 0:
                failed += 1
            else:
                correct += got
            pbn_region_done(&reg)
        pbn_region_end(&reg, nt)
    if failed:
        n_correct[0] = -1
        return 0.0
    for b in range(n):                       # sequential: same sum for any thread count
        total += row_loss[b]
    n_correct[0] = correct
    return total * scale


cdef inline Py_ssize_t _xent_probs_rows(const floating* p, Py_ssize_t n, Py_ssize_t c,
                                        const Py_ssize_t* labels, floating* dp, double scale,
                                        double eps, double* row_loss) noexcept nogil:
    if floating is float:
        return pbn_xent_probs_rows_f32(p, n, c, labels, dp, scale, eps, row_loss)
    else:
        return pbn_xent_probs_rows_f64(p, n, c, labels, dp, scale, eps, row_loss)


cdef double _sparse_xent_probs(const floating* probs, Py_ssize_t n, Py_ssize_t c,
                               const Py_ssize_t* labels, floating* dprobs, double* row_loss,
                               double eps, Py_ssize_t* n_correct,
                               int n_threads) noexcept nogil:
    """mean_i(-log(clip(P_i[y_i], eps, 1 - eps)));  dP[i, y_i] := -1 / (n P_i[y_i]) inside the
    clip range, every other dP := 0
    IN probs (n, c), labels (n,); OUT dprobs (n, c) or NULL, row_loss (n,), n_correct."""
    cdef Py_ssize_t i, b, r0
    cdef Py_ssize_t correct = 0
    cdef double total = 0.0
    cdef double scale = 1.0 / n if n > 0 else 0.0
    cdef Py_ssize_t rows = _rows_per_task(c), n_tasks = (n + rows - 1) // rows
    cdef pbn_region reg
    cdef int nt = pbn_region_begin(&reg, _threads_for(n * c, n_threads, n_tasks))
    pbn_count(PBN_PATH_XENT_PROBS, nt)
    if nt == 1:
        correct = _xent_probs_rows(probs, n, c, labels, dprobs, scale, eps, row_loss)
    else:
        for b in prange(n_tasks, nogil=True, schedule="static", num_threads=nt):
            pbn_region_check(&reg)
            r0 = b * rows
            correct += _xent_probs_rows(probs + r0 * c, min(rows, n - r0), c, labels + r0,
                                        dprobs + r0 * c if dprobs != NULL else NULL, scale,
                                        eps, row_loss + r0)
            pbn_region_done(&reg)
        pbn_region_end(&reg, nt)
    for i in range(n):
        total += row_loss[i]
    n_correct[0] = correct
    return total * scale


cdef inline void _softmax_rows(const floating* x, Py_ssize_t n, Py_ssize_t c,
                               floating* y) noexcept nogil:
    if floating is float:
        pbn_softmax_rows_f32(x, n, c, y)
    else:
        pbn_softmax_rows_f64(x, n, c, y)


cdef void _softmax(const floating* x, Py_ssize_t n, Py_ssize_t c, floating* y,
                   int n_threads) noexcept nogil:
    """Y_i := exp(X_i - max X_i) / sum(exp(X_i - max X_i))   IN x (n, c); OUT y (n, c), may be x"""
    cdef Py_ssize_t b, r0, rows = _rows_per_task(c), n_tasks = (n + rows - 1) // rows
    cdef pbn_region reg
    cdef int nt = pbn_region_begin(&reg, _threads_for(n * c, n_threads, n_tasks))
    pbn_count(PBN_PATH_SOFTMAX, nt)
    if nt == 1:
        _softmax_rows(x, n, c, y)
        return
    for b in prange(n_tasks, nogil=True, schedule="static", num_threads=nt):
        pbn_region_check(&reg)
        r0 = b * rows
        _softmax_rows(x + r0 * c, min(rows, n - r0), c, y + r0 * c)
        pbn_region_done(&reg)
    pbn_region_end(&reg, nt)


cdef inline void _softmax_backward_rows(const floating* dy, const floating* y, Py_ssize_t n,
                                        Py_ssize_t c, floating* dx) noexcept nogil:
    if floating is float:
        pbn_softmax_backward_rows_f32(dy, y, n, c, dx)
    else:
        pbn_softmax_backward_rows_f64(dy, y, n, c, dx)


cdef void _softmax_backward(const floating* dy, const floating* y, Py_ssize_t n, Py_ssize_t c,
                            floating* dx, int n_threads) noexcept nogil:
    """dX_i := Y_i * (dY_i - <dY_i, Y_i>)   IN dy, y (n, c); OUT dx (n, c), may be dy"""
    cdef Py_ssize_t b, r0, rows = _rows_per_task(c), n_tasks = (n + rows - 1) // rows
    cdef pbn_region reg
    cdef int nt = pbn_region_begin(&reg, _threads_for(n * c, n_threads, n_tasks))
    pbn_count(PBN_PATH_SOFTMAX_BACKWARD, nt)
    if nt == 1:
        _softmax_backward_rows(dy, y, n, c, dx)
        return
    for b in prange(n_tasks, nogil=True, schedule="static", num_threads=nt):
        pbn_region_check(&reg)
        r0 = b * rows
        _softmax_backward_rows(dy + r0 * c, y + r0 * c, min(rows, n - r0), c, dx + r0 * c)
        pbn_region_done(&reg)
    pbn_region_end(&reg, nt)


# ---------------------------------------------------------------------------------------
# Python-facing wrappers: release the GIL, no validation (see pyblasnn/fused.py).

def sparse_softmax_cross_entropy(const floating[:, ::1] logits, const Py_ssize_t[::1] labels,
                                 floating[:, ::1] dlogits, double[::1] row_loss,
                                 int n_threads):
    """Return (mean loss, n_correct); fills dlogits (unless None) and row_loss."""
    cdef Py_ssize_t n = logits.shape[0], c = logits.shape[1]
    cdef Py_ssize_t correct = 0
    cdef double loss = 0.0
    cdef floating* dz = NULL
    if n == 0:
        return 0.0, 0
    if dlogits is not None:
        dz = &dlogits[0, 0]
    with nogil:
        loss = _sparse_softmax_xent(&logits[0, 0], n, c, &labels[0], dz, &row_loss[0],
                                    &correct, n_threads)
    if correct < 0:
        raise MemoryError(f"sparse_softmax_cross_entropy: no memory for a row of {c} classes")
    return loss, correct


def sparse_cross_entropy_probs(const floating[:, ::1] probs, const Py_ssize_t[::1] labels,
                               floating[:, ::1] dprobs, double[::1] row_loss, double eps,
                               int n_threads):
    """Return (mean loss, n_correct); fills dprobs (unless None) and row_loss."""
    cdef Py_ssize_t n = probs.shape[0], c = probs.shape[1]
    cdef Py_ssize_t correct = 0
    cdef double loss = 0.0
    cdef floating* dp = NULL
    if n == 0:
        return 0.0, 0
    if dprobs is not None:
        dp = &dprobs[0, 0]
    with nogil:
        loss = _sparse_xent_probs(&probs[0, 0], n, c, &labels[0], dp, &row_loss[0], eps,
                                  &correct, n_threads)
    return loss, correct


def softmax(const floating[:, ::1] x, floating[:, ::1] out, int n_threads):
    """out := softmax(x) along the last axis (out may be x)."""
    if x.shape[0] == 0 or x.shape[1] == 0:
        return
    with nogil:
        _softmax(&x[0, 0], x.shape[0], x.shape[1], &out[0, 0], n_threads)


def softmax_backward(const floating[:, ::1] dy, const floating[:, ::1] y,
                     floating[:, ::1] out, int n_threads):
    """out := y * (dy - sum(dy * y, axis=-1, keepdims=True)) (out may be dy)."""
    if y.shape[0] == 0 or y.shape[1] == 0:
        return
    with nogil:
        _softmax_backward(&dy[0, 0], &y[0, 0], y.shape[0], y.shape[1], &out[0, 0], n_threads)


# ----------------------------------------------------------------- lean call-overhead path
# pyblasnn.fused tries this first (see _lean.pxd): it computes for plain arrays — float
# logits (n, c) with n, c > 0, intp labels (n,) all in [0, c), an optional writeable dlogits
# `out` and float64 `row_loss` disjoint from the inputs — and returns None for anything
# else, which then takes the validated path (and gets its error message there).
cimport numpy as cnp
from libc.stdlib cimport free, malloc
from cpython.pystate cimport PyThreadState
from _lean cimport (disjoint_contiguous, float_typenum, lean_threads, plain_array, release_gil_if,
                   restore_gil, same_shape, writeable_match)

cnp.import_array()


cdef inline bint labels_in_range(const Py_ssize_t* labels, Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t i
    cdef bint ok = True
    for i in range(n):
        ok &= <size_t>labels[i] < <size_t>c     # negative labels wrap to huge values
    return ok


def try_sparse_softmax_cross_entropy(object logits, object labels, object out, object row_loss,
                                     object threads):
    """(mean loss, n_correct) on the lean path, else None."""
    cdef int n_threads = lean_threads(threads)
    if n_threads == 0:
        return None
    cdef int t = float_typenum(logits)
    if t < 0 or not plain_array(logits, t) or not plain_array(labels, cnp.NPY_INTP):
        return None
    cdef cnp.ndarray z = <cnp.ndarray>logits, y = <cnp.ndarray>labels
    if cnp.PyArray_NDIM(z) != 2 or cnp.PyArray_NDIM(y) != 1:
        return None
    cdef Py_ssize_t n = cnp.PyArray_DIM(z, 0), c = cnp.PyArray_DIM(z, 1)
    if n == 0 or c == 0 or cnp.PyArray_DIM(y, 0) != n:
        return None
    cdef void* dz = NULL
    if out is not None:
        if not writeable_match(out, z, t) or not disjoint_contiguous(<cnp.ndarray>out, z) \
                or not disjoint_contiguous(<cnp.ndarray>out, y):
            return None
        dz = cnp.PyArray_DATA(<cnp.ndarray>out)
    cdef double* losses
    if row_loss is not None:
        if not plain_array(row_loss, cnp.NPY_FLOAT64) or cnp.PyArray_NDIM(<cnp.ndarray>row_loss) != 1 \
                or cnp.PyArray_DIM(<cnp.ndarray>row_loss, 0) != n \
                or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>row_loss) \
                or not disjoint_contiguous(<cnp.ndarray>row_loss, z) \
                or not disjoint_contiguous(<cnp.ndarray>row_loss, y) \
                or (out is not None and not disjoint_contiguous(<cnp.ndarray>row_loss, <cnp.ndarray>out)):
            return None
    cdef const Py_ssize_t* lab = <const Py_ssize_t*>cnp.PyArray_DATA(y)
    if not labels_in_range(lab, n, c):
        return None
    if row_loss is not None:
        losses = <double*>cnp.PyArray_DATA(<cnp.ndarray>row_loss)
    else:
        losses = <double*>malloc(n * sizeof(double))
        if losses == NULL:
            return None
    cdef Py_ssize_t correct = 0
    cdef double loss
    cdef PyThreadState *gil = release_gil_if(n * c >= PARALLEL_MIN_ELEMENTS)
    if t == cnp.NPY_FLOAT32:
        loss = _sparse_softmax_xent(<const float*>cnp.PyArray_DATA(z), n, c, lab,
                                    <float*>dz, losses, &correct, n_threads)
    else:
        loss = _sparse_softmax_xent(<const double*>cnp.PyArray_DATA(z), n, c, lab,
                                    <double*>dz, losses, &correct, n_threads)
    restore_gil(gil)
    if row_loss is None:
        free(losses)
    if correct < 0:
        return None
    return loss, correct


def exp_float32(const float[::1] x, float[::1] out):
    """out := exp(x) with the float32 exp the softmax kernels use (a test hook)."""
    if x.shape[0]:
        with nogil:
            pbn_exp_span_f32(&x[0], &out[0], x.shape[0])


def log1p_float32(const float[::1] x, float[::1] out):
    """out := log(1 + x) with the float32 log1p the softmax kernels use (a test hook; x >= 0)."""
    if x.shape[0]:
        with nogil:
            pbn_log1p_span_f32(&x[0], &out[0], x.shape[0])
