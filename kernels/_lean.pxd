# Checks for the lean call-overhead paths (the try_* functions of the kernel modules).
# pyblasnn's Python functions try those first: exact ndarrays of one float dtype, aligned and
# C-contiguous, with a matching writeable `out` are computed after these few C-level checks;
# anything else returns None from try_* and takes the fully validated Python path.
cimport numpy as cnp
from cpython.long cimport PyLong_AsLongAndOverflow
from cpython.pystate cimport PyThreadState
from _runtime cimport PBN_MAX_THREADS, pbn_default_team, pbn_team

cdef extern from "Python.h":
    PyThreadState *PyEval_SaveThread()
    void PyEval_RestoreThread(PyThreadState *state)


cdef inline bint plain_array(object a, int typenum):
    """a is an exact, aligned, C-contiguous ndarray of dtype typenum."""
    if type(a) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_IS_C_CONTIGUOUS(arr)
            and cnp.PyArray_ISALIGNED(arr))


cdef inline int float_typenum(object a):
    """NPY_FLOAT32 / NPY_FLOAT64 for an exact ndarray of that dtype, else -1."""
    if type(a) is not cnp.ndarray:
        return -1
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    return t if t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64 else -1


cdef inline bint same_shape(cnp.ndarray a, cnp.ndarray b):
    cdef int d, nd = cnp.PyArray_NDIM(a)
    if cnp.PyArray_NDIM(b) != nd:
        return False
    for d in range(nd):
        if cnp.PyArray_DIM(a, d) != cnp.PyArray_DIM(b, d):
            return False
    return True


cdef inline bint disjoint_contiguous(cnp.ndarray a, cnp.ndarray b):
    """Two C-contiguous arrays share no byte."""
    cdef char *p = <char *>cnp.PyArray_DATA(a)
    cdef char *q = <char *>cnp.PyArray_DATA(b)
    return p + cnp.PyArray_NBYTES(a) <= q or q + cnp.PyArray_NBYTES(b) <= p


cdef inline bint safe_output(cnp.ndarray out, cnp.ndarray a):
    """Writing out element by element cannot clobber a value of a not yet read."""
    if cnp.PyArray_DATA(out) == cnp.PyArray_DATA(a) and same_shape(out, a):
        return True
    return disjoint_contiguous(out, a)


cdef inline bint writeable_match(object out, cnp.ndarray like, int typenum):
    """out is a plain, writeable array of like's shape and dtype typenum."""
    return (plain_array(out, typenum) and same_shape(<cnp.ndarray>out, like)
            and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out))


cdef inline object lean_output(object out, cnp.ndarray like, int t):
    """A new array shaped like `like`, or `out` when it is a writeable plain match; else None."""
    if out is None:
        return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(like), cnp.PyArray_DIMS(like), t, 0)
    return out if writeable_match(out, like, t) else None


cdef inline int lean_threads(object n):
    """Thread count of a lean call: None -> the default (pbn_default_team), an int in
    1..PBN_MAX_THREADS as given (through pbn_team: 1 in a forked child); 0 for anything
    else, which the validated path resolves (-1) or rejects with its message."""
    cdef int overflow = 0
    cdef long v
    if n is None:
        return pbn_default_team()
    if type(n) is int:
        v = PyLong_AsLongAndOverflow(n, &overflow)    # C-level: no Python comparisons
        if overflow == 0 and 0 < v <= PBN_MAX_THREADS:
            return pbn_team(<int>v)
    return 0


cdef inline PyThreadState *release_gil_if(bint big):
    """Release the GIL for big work only: for small arrays releasing and re-taking it costs
    more than the work. Between this and restore_gil only nogil C code may run."""
    return PyEval_SaveThread() if big else NULL


cdef inline void restore_gil(PyThreadState *state):
    if state != NULL:
        PyEval_RestoreThread(state)
