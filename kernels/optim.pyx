"""Fused in-place optimizer updates: one pass over each parameter and its state.

Each element's update is independent, so the result is identical for any thread count.
Hyperparameters are rounded to the parameter's dtype first, so a float32 model is updated
in float32 arithmetic, as Keras does.

Every update is a span function (optim_spans.h: a branch-free loop the compiler vectorises,
compiled for AVX-512, AVX2 and the baseline and picked per call by the ISA in use; option
branches are taken once per span, outside the loop) run on one thread for small
parameters, or over fixed spans by the OpenMP team.

The ``def`` wrappers release the GIL and do not validate: ``pyblasnn/fused.py`` proves that
parameter, gradient and state arrays are C-contiguous, of one dtype and of one size (or the
``try_`` entry points check plain arrays in C and return None for anything else).
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isfinite

from cpython.pystate cimport PyThreadState
from _isa cimport (init_isa_of_module, isa_of_module, pbn_reset_variants, set_isa_of_module,
                  simulate_cpu_of_module, variant_isas_of_module, variants_of_module)
from _runtime cimport backoff_of_module, pbn_set_backoff, share_backoff_of_process
from _runtime cimport (PBN_PARALLEL_MIN_ELEMENTS, PBN_PATH_OPTIM_UPDATE, counters_of_module,
                       pbn_count, pbn_region, pbn_region_begin, pbn_region_check,
                       pbn_region_done, pbn_region_end, pbn_reset_counters, pbn_runtime_init, pbn_team)
from _lean cimport (disjoint_contiguous, lean_threads, plain_array, release_gil_if, restore_gil,
                   same_shape, safe_output)

cnp.import_array()
pbn_runtime_init()
share_backoff_of_process()
init_isa_of_module()

# Below this many elements an update stays on one thread (the 512 x 10 kernel and every
# bias of the book's model; the 784 x 512 kernel is split). One definition: pbn_runtime.h.
cdef Py_ssize_t PARALLEL_MIN_ELEMENTS = PBN_PARALLEL_MIN_ELEMENTS


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


# Parallel work is cut into spans of this many elements.
cdef Py_ssize_t SPAN = 8192

cdef extern from "optim_spans.h" nogil:
    # the update rules (codes shared with C: pbn_rule in optim_spans.h)
    ctypedef enum Rule "pbn_rule":
        RULE_SGD "PBN_RULE_SGD"
        RULE_MOMENTUM "PBN_RULE_MOMENTUM"
        RULE_NESTEROV "PBN_RULE_NESTEROV"
        RULE_RMSPROP "PBN_RULE_RMSPROP"
        RULE_RMSPROP_MOMENTUM "PBN_RULE_RMSPROP_MOMENTUM"
    void pbn_update_span_f32(Rule rule, float *w, float *s1, float *s2, const float *g,
                             Py_ssize_t n, float lr, float m, float rho, float eps)
    void pbn_update_span_f64(Rule rule, double *w, double *s1, double *s2, const double *g,
                             Py_ssize_t n, double lr, double m, double rho, double eps)

cdef struct Hyper:
    double lr, momentum, rho, eps


cdef inline void _update_span(Rule rule, floating* w, floating* s1, floating* s2,
                              const floating* g, Py_ssize_t n, Hyper h) noexcept nogil:
    """One step of rule over a span (optim_spans.h), hyperparameters rounded to the dtype:
    SGD  w := w - lr*g;  momentum  v := m*v - lr*g, w := w + v  (nesterov: w := w + m*v - lr*g);
    RMSprop  a := rho*a + (1-rho)*g^2, d := lr*g / (sqrt(a) + eps), w := w - d, or with
    momentum  mom := m*mom + d, w := w - mom"""
    if floating is float:
        pbn_update_span_f32(rule, w, s1, s2, g, n, <float>h.lr, <float>h.momentum,
                            <float>h.rho, <float>h.eps)
    else:
        pbn_update_span_f64(rule, w, s1, s2, g, n, h.lr, h.momentum, h.rho, h.eps)


cdef void _update(Rule rule, floating* w, floating* s1, floating* s2, const floating* g,
                  Py_ssize_t n, Hyper h, int n_threads) noexcept nogil:
    """One optimizer step over n elements   OUT w, s1, s2 (state, may be NULL); IN g"""
    cdef Py_ssize_t b, lo, n_spans = (n + SPAN - 1) // SPAN
    cdef int nt = 1 if n < PARALLEL_MIN_ELEMENTS else pbn_team(n_threads)
    if nt > n_spans:
        nt = <int>n_spans
    cdef pbn_region reg
    nt = pbn_region_begin(&reg, nt)
    pbn_count(PBN_PATH_OPTIM_UPDATE, nt)
    if nt < 2:
        _update_span(rule, w, s1, s2, g, n, h)
        return
    for b in prange(n_spans, nogil=True, schedule="static", num_threads=nt):
        pbn_region_check(&reg)
        lo = b * SPAN
        _update_span(rule, w + lo, s1 + lo if s1 != NULL else NULL,
                     s2 + lo if s2 != NULL else NULL, g + lo, min(SPAN, n - lo), h)
        pbn_region_done(&reg)
    pbn_region_end(&reg, nt)


# ---------------------------------------------------------------------------------------
# Python-facing wrappers: release the GIL, no validation (see pyblasnn/fused.py).
# Arrays are passed flattened (1-D C-contiguous views of the parameters).

def sgd(floating[::1] w, const floating[::1] g, double learning_rate, int n_threads):
    """w -= learning_rate * g, in place."""
    cdef Hyper h = Hyper(learning_rate, 0.0, 0.0, 0.0)
    if w.shape[0]:
        with nogil:
            _update(RULE_SGD, &w[0], <floating*>NULL, <floating*>NULL, &g[0], w.shape[0], h,
                    n_threads)


def sgd_momentum(floating[::1] w, floating[::1] v, const floating[::1] g, double learning_rate,
                 double momentum, bint nesterov, int n_threads):
    """v = momentum*v - learning_rate*g; w += v (nesterov: w += momentum*v - lr*g), in place."""
    cdef Hyper h = Hyper(learning_rate, momentum, 0.0, 0.0)
    if w.shape[0]:
        with nogil:
            _update(RULE_NESTEROV if nesterov else RULE_MOMENTUM, &w[0], &v[0],
                    <floating*>NULL, &g[0], w.shape[0], h, n_threads)


def rmsprop(floating[::1] w, floating[::1] a, floating[::1] mom, const floating[::1] g,
            double learning_rate, double rho, double momentum, double epsilon, int n_threads):
    """a = rho*a + (1-rho)*g**2; w -= lr*g/(sqrt(a)+eps) (through mom when mom is not None)."""
    cdef Hyper h = Hyper(learning_rate, momentum, rho, epsilon)
    cdef floating* mom_ptr = NULL
    if w.shape[0] == 0:
        return
    if mom is not None:
        mom_ptr = &mom[0]
    with nogil:
        _update(RULE_RMSPROP if mom is None else RULE_RMSPROP_MOMENTUM, &w[0], &a[0], mom_ptr,
                &g[0], w.shape[0], h, n_threads)


# ----------------------------------------------------------------- lean call-overhead path
# pyblasnn.fused tries these first (see _lean.pxd): plain arrays of one float dtype and one
# shape, param and state writeable and disjoint, grad disjoint from them or one of them, and
# hyperparameters that are Python floats in range. Anything else returns None and takes
# the validated path, which raises the error message.

cdef inline bint _lean_arrays(int t, object w, object s1, object s2, object g):
    """w, g and the states that are not None form a valid in-place update of dtype t."""
    arrays = (w, s1, s2, g)
    cdef int i, j
    for i in range(4):
        a = arrays[i]
        if a is None:
            continue
        if not plain_array(a, t) or not same_shape(<cnp.ndarray>a, <cnp.ndarray>w):
            return False
        if i < 3 and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a):
            return False
        for j in range(i):          # updated arrays are disjoint; grad may also be one of them
            if arrays[j] is None:
                continue
            if i < 3 and not disjoint_contiguous(<cnp.ndarray>arrays[j], <cnp.ndarray>a):
                return False
            if i == 3 and not safe_output(<cnp.ndarray>arrays[j], <cnp.ndarray>a):
                return False
    return True


cdef inline bint _in_range(object x, double lo, double hi, bint hi_open):
    """x is a Python float with lo <= x <= hi (x < hi when hi_open)."""
    if type(x) is not float:
        return False
    cdef double v = <double>x
    return isfinite(v) and v >= lo and (v < hi if hi_open else v <= hi)


cdef object _lean_update(Rule rule, object w, object s1, object s2, object g, Hyper h,
                         object threads):
    cdef int n_threads = lean_threads(threads)
    if n_threads == 0 or type(w) is not cnp.ndarray:
        return None
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>w)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or not _lean_arrays(t, w, s1, s2, g):
        return None
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>w)
    cdef void* pw = cnp.PyArray_DATA(<cnp.ndarray>w)
    cdef void* pg = cnp.PyArray_DATA(<cnp.ndarray>g)
    cdef void* p1 = NULL if s1 is None else cnp.PyArray_DATA(<cnp.ndarray>s1)
    cdef void* p2 = NULL if s2 is None else cnp.PyArray_DATA(<cnp.ndarray>s2)
    cdef PyThreadState *gil = release_gil_if(n >= PARALLEL_MIN_ELEMENTS)
    if t == cnp.NPY_FLOAT32:
        _update(rule, <float*>pw, <float*>p1, <float*>p2, <const float*>pg, n, h, n_threads)
    else:
        _update(rule, <double*>pw, <double*>p1, <double*>p2, <const double*>pg, n, h, n_threads)
    restore_gil(gil)
    return True


def try_sgd_momentum(object w, object v, object g, object learning_rate, object momentum,
                     bint nesterov, object n_threads):
    """sgd_momentum on the lean path (True), else None."""
    if not _in_range(learning_rate, 0.0, 1e308, False) or not _in_range(momentum, 0.0, 1.0, True):
        return None
    cdef Hyper h = Hyper(<double>learning_rate, <double>momentum, 0.0, 0.0)
    return _lean_update(RULE_NESTEROV if nesterov else RULE_MOMENTUM, w, v, None, g, h,
                        n_threads)


def try_sgd(object w, object g, object learning_rate, object n_threads):
    """sgd on the lean path (True), else None."""
    if not _in_range(learning_rate, 0.0, 1e308, False):
        return None
    cdef Hyper h = Hyper(<double>learning_rate, 0.0, 0.0, 0.0)
    return _lean_update(RULE_SGD, w, None, None, g, h, n_threads)


def try_rmsprop(object w, object a, object mom, object g, object learning_rate, object rho,
                object momentum, object epsilon, object n_threads):
    """rmsprop on the lean path (True), else None (mom is used only when momentum > 0)."""
    if not (_in_range(learning_rate, 0.0, 1e308, False) and _in_range(rho, 0.0, 1.0, True)
            and _in_range(momentum, 0.0, 1.0, True) and _in_range(epsilon, 0.0, 1e308, False)
            and <double>epsilon > 0.0):
        return None
    cdef Hyper h = Hyper(<double>learning_rate, <double>momentum, <double>rho, <double>epsilon)
    if h.momentum > 0.0:
        if mom is None:
            return None
        return _lean_update(RULE_RMSPROP_MOMENTUM, w, a, mom, g, h, n_threads)
    return _lean_update(RULE_RMSPROP, w, a, None, g, h, n_threads)
