"""The benchmark cases: per-kernel size sweeps, fused kernels, and the pure-Python rows.

A Case names a kernel row (``kernel``, ``shape``, ``dtype``) and knows how to make its data
(``setup(rng)``) and its competitors for a thread count (``make(data, n_threads)`` ->
``{"pyblasnn": fn, "numpy": fn, ...}``, zero-argument callables, the keys listed in
``competitors``). Each competitor runs in a worker process of its own, which builds the
data from the case's seed (``case_rng``), so all of them get the same operands. Before
timing, every competitor's return value is compared with NumPy's; an optional
``"_values"`` entry (``{competitor: fn}``) gives the values to compare instead, for
competitors whose return value is not the result (in-place updates, preallocated outputs).
pyblasnn functions are looked up by name when a case runs (discover.py), so a kernel that is
not merged yet makes its rows "skipped" and a merged one is picked up without edits here.
"""
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from . import discover

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
#: Operands of case i of a mode come from default_rng([SEED, i]): the same in every worker.
SEED = 12345

#: Sizes per mode. "full" is the recorded benchmark, "quick" the CI smoke run (< 1 min),
#: "tiny" the test suite's run of the quick mode on minimal sizes.
SIZES = {
    "full": dict(
        elementwise=[1_000, 10_000, 100_000, 1_000_000, 10_000_000],
        bcast=[(128, 512), (1024, 1024), (4096, 4096)],
        rank4=((32, 64, 28, 28), (64, 1, 1)),
        dot_vec=[1_000, 100_000, 10_000_000],
        matvec=[256, 1024, 4096],
        square=[16, 32, 64, 128, 256, 512, 1024, 2048],
        square_f64=[1024],
        mlp=True,
        mm_backward=[256, 1024],
        batch_counts=[256, 1024, 4096],
        batch_sizes=[8, 16, 32, 64, 128],
        batched_backward=[(1024, 16), (1024, 64)],
        dense_square=[1024],
        mnist_sparse=True,
        softmax_rows=[128, 10_000],
        book_rounds=1000,
        python_rounds=1000,
        python_sizes=dict(vec=1000, matvec=100, matmul=64),
        heavy_min_flops=1e8,
        heavy_min_elements=10_000_000,
    ),
    "quick": dict(
        elementwise=[1_000, 100_000],
        bcast=[(128, 512)],
        rank4=((4, 16, 14, 14), (16, 1, 1)),
        dot_vec=[1_000, 100_000],
        matvec=[256],
        square=[16, 64, 128],
        square_f64=[128],
        mlp=True,
        mm_backward=[128],
        batch_counts=[256],
        batch_sizes=[8, 32],
        batched_backward=[(256, 8)],
        dense_square=[],
        mnist_sparse=False,
        softmax_rows=[128],
        book_rounds=1000,
        python_rounds=50,
        python_sizes=dict(vec=1000, matvec=50, matmul=24),
        heavy_min_flops=1e8,
        heavy_min_elements=10 ** 9,
    ),
    "tiny": dict(
        elementwise=[1_000],
        bcast=[(16, 32)],
        rank4=((2, 4, 3, 3), (4, 1, 1)),
        dot_vec=[1_000],
        matvec=[32],
        square=[16],
        square_f64=[16],
        mlp=False,
        mm_backward=[16],
        batch_counts=[16],
        batch_sizes=[8],
        batched_backward=[(16, 8)],
        dense_square=[64],
        mnist_sparse=False,
        softmax_rows=[128],
        book_rounds=20,
        python_rounds=2,
        python_sizes=dict(vec=100, matvec=10, matmul=8),
        heavy_min_flops=1e5,
        heavy_min_elements=10 ** 9,
    ),
}

#: The MNIST MLP's parameter shapes (784-512-10): 407,050 parameters.
MLP_PARAM_SHAPES = [(784, 512), (512,), (512, 10), (10,)]


@dataclass
class Case:
    kernel: str          # row name; --only matches it
    shape: str           # human label of the operand shapes
    dtype: str
    group: str           # plot family: elementwise, dot, matmul, batched, fused, book, python
    setup: Callable      # rng -> data (arrays), may raise discover.Unavailable
    make: Callable       # (data, n_threads) -> {competitor: fn, ["_check": fn]}
    size: float = 0.0    # x axis of plots (elements, n of n^3, ...)
    flops: Optional[float] = None   # per call, for GFLOP/s (dot family)
    k: int = 1           # reduction length, sets the comparison tolerance
    heavy: bool = False  # timed at every thread count of the scaling list
    section: str = "kernels"
    note: str = ""
    extra: dict = field(default_factory=dict)
    competitors: tuple = ("pyblasnn", "numpy")   # keys of make()'s dict, in timing order


def case_rng(index):
    """The random generator case `index` of all_cases(mode) builds its operands from."""
    return np.random.default_rng([SEED, index])


def _uniform(rng, shape, dtype, low=-1.0, high=1.0):
    """Random array of dtype in [low, high) without a float64 temporary for float32."""
    x = rng.random(shape, dtype=np.dtype(dtype).type)
    x *= (high - low)
    x += low
    return x


def _dot_operand(rng, shape, dtype):
    # mostly positive so long float32 sums are well conditioned (a tolerance can be tight)
    return _uniform(rng, shape, dtype, -0.5, 1.0)


def _fmt(shape):
    return "(" + ",".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _K(name):
    return discover.function(name)


# --------------------------------------------------------------------- element-wise
def _elementwise(sz):
    cases = []
    for n in sz["elementwise"]:
        heavy = n >= sz["heavy_min_elements"]
        shape = (n,)

        def setup_unary(rng, shape=shape):
            return _uniform(rng, shape, F32), _uniform(rng, shape, F32)

        def make_relu(d, nt):
            relu = _K("relu")
            x, _ = d
            return {"pyblasnn": lambda: relu(x, n_threads=nt), "numpy": lambda: np.maximum(x, 0)}

        def make_relu_b(d, nt):
            relu_backward = _K("relu_backward")
            dy, x = d
            return {"pyblasnn": lambda: relu_backward(dy, x, n_threads=nt),
                    "numpy": lambda: dy * (x > 0)}

        def make_add(d, nt):
            add = _K("add")
            x, y = d
            return {"pyblasnn": lambda: add(x, y, n_threads=nt), "numpy": lambda: x + y}

        def make_max(d, nt):
            maximum = _K("maximum")
            x, y = d
            return {"pyblasnn": lambda: maximum(x, y, n_threads=nt),
                    "numpy": lambda: np.maximum(x, y)}

        def make_max_b(d, nt):
            maximum_backward = _K("maximum_backward")
            x, y = d
            dz = y  # any array of the shape will do as the upstream gradient

            def ref():
                m = (x > y) | np.isnan(x)  # ties go to y: maximum returns y there
                return dz * m, dz * ~m
            return {"pyblasnn": lambda: maximum_backward(dz, x, y, n_threads=nt), "numpy": ref}

        for kernel, make in (("relu", make_relu), ("relu_backward", make_relu_b),
                             ("add", make_add), ("maximum", make_max),
                             ("maximum_backward", make_max_b)):
            cases.append(Case(kernel, _fmt(shape), "float32", "elementwise", setup_unary, make,
                              size=n, heavy=heavy))
    # broadcasting add and its backward (bias add / bias gradient), plus a rank-4 case
    bshapes = [((n, d), (d,)) for n, d in sz["bcast"]] + [sz["rank4"]]
    for xs, ys in bshapes:
        def setup_b(rng, xs=xs, ys=ys):
            return _uniform(rng, xs, F32), _uniform(rng, ys, F32)

        def make_add_b(d, nt):
            add = _K("add")
            x, y = d
            return {"pyblasnn": lambda: add(x, y, n_threads=nt), "numpy": lambda: x + y}

        def make_add_back(d, nt, xs=xs, ys=ys):
            add_backward = _K("add_backward")
            dz, _ = d
            axes = tuple(range(len(xs) - len(ys))) + tuple(
                len(xs) - len(ys) + i for i, s in enumerate(ys) if s == 1 and xs[len(xs) - len(ys) + i] != 1)
            return {"pyblasnn": lambda: add_backward(dz, xs, ys, n_threads=nt),
                    "numpy": lambda: (dz, dz.sum(axis=axes).reshape(ys))}

        size = int(np.prod(xs))
        label = f"{_fmt(xs)}+{_fmt(ys)}"
        rows = size // int(np.prod(ys))
        cases.append(Case("add_bcast", label, "float32", "elementwise", setup_b, make_add_b,
                          size=size))
        cases.append(Case("add_backward", label, "float32", "elementwise", setup_b, make_add_back,
                          size=size, k=rows,
                          note="NumPy: dx = dz (no copy), dy = dz.sum(broadcast axes)"))
    return cases


# ------------------------------------------------------------------------- dot family
def _dots(sz):
    cases = []
    for n in sz["dot_vec"]:
        def setup(rng, n=n):
            return _dot_operand(rng, (n,), F32), _dot_operand(rng, (n,), F32)

        def make(d, nt):
            dot = _K("dot")
            x, y = d
            return {"pyblasnn": lambda: dot(x, y, n_threads=nt), "numpy": lambda: np.dot(x, y)}
        cases.append(Case("dot_vec", _fmt((n,)) + "." + _fmt((n,)), "float32", "dot", setup, make,
                          size=n, flops=2.0 * n, k=n, heavy=n >= sz["heavy_min_elements"]))
    for m in sz["matvec"]:
        def setup(rng, m=m):
            return _dot_operand(rng, (m, m), F32), _dot_operand(rng, (m,), F32)

        def make(d, nt):
            dot = _K("dot")
            a, v = d
            return {"pyblasnn": lambda: dot(a, v, n_threads=nt), "numpy": lambda: np.dot(a, v)}

        def make_b(d, nt):
            dot_backward = _K("dot_backward")
            a, v = d
            dz = a[0]
            return {"pyblasnn": lambda: dot_backward(dz, a, v, n_threads=nt),
                    "numpy": lambda: (np.outer(dz, v), dz @ a)}
        cases.append(Case("dot_matvec", f"({m},{m}).({m},)", "float32", "dot", setup, make,
                          size=m, flops=2.0 * m * m, k=m,
                          heavy=2.0 * m * m * 8 >= sz["heavy_min_flops"]))
        cases.append(Case("dot_backward", f"({m},{m}).({m},)", "float32", "dot", setup, make_b,
                          size=m, flops=4.0 * m * m, k=m))
    return cases


def _mm_setup(m, k, n, dtype, transpose_a=False, transpose_b=False):
    def setup(rng):
        a = _dot_operand(rng, (k, m) if transpose_a else (m, k), dtype)
        b = _dot_operand(rng, (n, k) if transpose_b else (k, n), dtype)
        return (a.T if transpose_a else a), (b.T if transpose_b else b)
    return setup


def _make_matmul(d, nt):
    matmul = _K("matmul")
    a, b = d
    return {"pyblasnn": lambda: matmul(a, b, n_threads=nt), "numpy": lambda: np.matmul(a, b)}


def _make_matmul_backward(d, nt):
    matmul_backward = _K("matmul_backward")
    a, b = d
    dc = np.ascontiguousarray(np.matmul(a, b))
    bt, at = np.swapaxes(b, -1, -2), np.swapaxes(a, -1, -2)
    return {"pyblasnn": lambda: matmul_backward(dc, a, b, n_threads=nt),
            "numpy": lambda: (np.matmul(dc, bt), np.matmul(at, dc))}


def _matmuls(sz):
    cases = []
    hf = sz["heavy_min_flops"]
    for n in sz["square"]:
        f = 2.0 * n ** 3
        cases.append(Case("matmul", f"({n},{n})@({n},{n})", "float32", "matmul",
                          _mm_setup(n, n, n, F32), _make_matmul, size=n, flops=f, k=n,
                          heavy=f >= hf, extra={"square": True}))
    for n in sz["square_f64"]:
        f = 2.0 * n ** 3
        cases.append(Case("matmul", f"({n},{n})@({n},{n})", "float64", "matmul",
                          _mm_setup(n, n, n, F64), _make_matmul, size=n, flops=f, k=n,
                          heavy=f >= hf, extra={"square": True}))
    if sz["mlp"]:
        # the MLP's GEMMs: forward layer 1, dW1 = x.T @ dh, forward layer 2, dh = dy @ W2.T
        mlp = [(128, 784, 512, False, False, "(128,784)@(784,512)", "layer-1 forward"),
               (784, 128, 512, True, False, "(784,128)@(128,512)", "dW1 = x.T @ dh (x.T a view)"),
               (128, 512, 10, False, False, "(128,512)@(512,10)", "layer-2 forward"),
               (128, 10, 512, False, True, "(128,10)@(10,512)", "dh = dy @ W2.T (W2.T a view)")]
        for m, k, n, ta, tb, label, note in mlp:
            f = 2.0 * m * k * n
            cases.append(Case("matmul", label + (" T" if ta or tb else ""), "float32", "matmul",
                              _mm_setup(m, k, n, F32, ta, tb), _make_matmul, size=m * k * n,
                              flops=f, k=k, heavy=f >= hf, note=note, extra={"mlp": True}))
    for n in sz["mm_backward"]:
        f = 4.0 * n ** 3
        cases.append(Case("matmul_backward", f"({n},{n})@({n},{n})", "float32", "matmul",
                          _mm_setup(n, n, n, F32), _make_matmul_backward, size=n, flops=f, k=n,
                          heavy=f >= hf))
    if sz["mlp"]:
        for m, k, n in ((128, 784, 512), (128, 512, 10)):
            f = 4.0 * m * k * n
            cases.append(Case("matmul_backward", f"({m},{k})@({k},{n})", "float32", "matmul",
                              _mm_setup(m, k, n, F32), _make_matmul_backward, size=m * k * n,
                              flops=f, k=max(m, k, n), heavy=f >= hf))
    for count in sz["batch_counts"]:
        for n in sz["batch_sizes"]:
            f = 2.0 * count * n ** 3

            def setup(rng, count=count, n=n):
                return (_dot_operand(rng, (count, n, n), F32), _dot_operand(rng, (count, n, n), F32))
            cases.append(Case("matmul_batched", f"{count}x({n},{n})@({n},{n})", "float32",
                              "batched", setup, _make_matmul, size=n, flops=f, k=n,
                              heavy=count == max(sz["batch_counts"]) and f >= hf,
                              extra={"batch": count}))
    for count, n in sz["batched_backward"]:
        f = 4.0 * count * n ** 3

        def setup(rng, count=count, n=n):
            return (_dot_operand(rng, (count, n, n), F32), _dot_operand(rng, (count, n, n), F32))
        cases.append(Case("matmul_batched_backward", f"{count}x({n},{n})@({n},{n})", "float32",
                          "batched", setup, _make_matmul_backward, size=n, flops=f, k=n,
                          extra={"batch": count}))
    return cases


# ------------------------------------------------------------------------------ fused
def _dense_cases(sz):
    cases = []
    shapes = ([(128, 784, 512)] if sz["mlp"] else []) + [(n, n, n) for n in sz["dense_square"]]
    for m, k, n in shapes:
        f = 2.0 * m * k * n

        def setup(rng, m=m, k=k, n=n):
            return (_dot_operand(rng, (m, k), F32), _dot_operand(rng, (k, n), F32),
                    _uniform(rng, (n,), F32))

        def make(d, nt):
            dense = _K("dense")
            x, w, b = d
            return {"pyblasnn": lambda: dense(x, w, b, activation="relu", n_threads=nt),
                    "numpy": lambda: np.maximum(x @ w + b, 0)}
        cases.append(Case("dense_relu", f"relu(({m},{k})@({k},{n})+b)", "float32", "fused",
                          setup, make, size=m * k * n, flops=f, k=k, heavy=f >= sz["heavy_min_flops"]))
    if sz["mlp"]:
        # the training step's first layer on a shuffled minibatch: gather fused into the GEMM
        rows_total, m, k, n = 60_000, 128, 784, 512

        def setup(rng):
            return (_uniform(rng, (rows_total, k), F32, 0.0, 1.0), _dot_operand(rng, (k, n), F32),
                    _uniform(rng, (n,), F32), rng.permutation(rows_total)[:m].astype(np.intp))

        def make(d, nt):
            dense = _K("dense")
            x, w, b, idx = d
            return {"pyblasnn": lambda: dense(x, w, b, activation="relu", rows=idx, n_threads=nt),
                    "numpy": lambda: np.maximum(x[idx] @ w + b, 0)}
        cases.append(Case("dense_relu_rows", f"relu(x[idx]@({k},{n})+b) idx:{m} of {rows_total}",
                          "float32", "fused", setup, make, size=m * k * n, flops=2.0 * m * k * n,
                          k=k, heavy=True))
    return cases


# ------------------------------------------------------------- zero-skipping on MNIST
def _mnist_sparse_cases(sz):
    """The training step's two first-layer products on a real shuffled MNIST batch (81% of
    the pixels are 0), where pyblasnn's zero-skipping path runs: against NumPy's dense BLAS
    and scipy.sparse (the batch converted to CSR in every call, as a training loop would)."""
    if not sz["mnist_sparse"]:
        return []
    m, k, n = 128, 784, 512

    def setup(rng):
        from .epoch import load_mnist
        x = load_mnist()[0]
        xb = np.ascontiguousarray(x[rng.permutation(x.shape[0])[:m]])
        return xb, _dot_operand(rng, (k, n), F32), _dot_operand(rng, (m, n), F32)

    def scipy_sparse():
        try:
            import scipy.sparse as sp
        except ImportError:
            raise discover.Unavailable("scipy is not installed") from None
        return sp

    def make_forward(d, nt):
        matmul = _K("matmul")
        xb, w, _ = d
        sp = scipy_sparse()
        return {"pyblasnn": lambda: matmul(xb, w, n_threads=nt), "numpy": lambda: xb @ w,
                "scipy": lambda: np.asarray(sp.csr_matrix(xb) @ w)}

    def make_weight_grad(d, nt):
        matmul = _K("matmul")
        xb, _, dh = d
        xt = xb.T
        sp = scipy_sparse()
        return {"pyblasnn": lambda: matmul(xt, dh, n_threads=nt), "numpy": lambda: xt @ dh,
                "scipy": lambda: np.asarray(sp.csr_matrix(xt) @ dh)}
    f = 2.0 * m * k * n
    return [Case("matmul_mnist", f"x[idx]@({k},{n}) MNIST batch {m}", "float32", "matmul",
                 setup, make_forward, size=m * k * n, flops=f, k=k, heavy=True,
                 competitors=_SPARSE_COMPETITORS),
            Case("matmul_mnist", f"x[idx].T@({m},{n}) MNIST batch {m}", "float32", "matmul",
                 setup, make_weight_grad, size=m * k * n, flops=f, k=m, heavy=True,
                 competitors=_SPARSE_COMPETITORS)]


#: The zero-skipping rows also time scipy.sparse (CSR x dense), in a worker of its own.
_SPARSE_COMPETITORS = ("pyblasnn", "numpy", "scipy")


def numpy_softmax_cross_entropy(logits, labels, with_grad=True):
    """Plain NumPy sparse softmax cross-entropy: (mean loss, dlogits or None)."""
    n = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    r = np.arange(n)
    loss = float(np.mean(np.log(s[:, 0]) - z[r, labels]))
    if not with_grad:
        return loss, None
    p = e / s
    p[r, labels] -= 1
    p /= n
    return loss, p


def _softmax_cases(sz):
    cases = []
    for n in sz["softmax_rows"]:
        def setup(rng, n=n):
            return (_uniform(rng, (n, 10), F32, -4.0, 4.0),
                    rng.integers(0, 10, n).astype(np.intp))

        def make(d, nt):
            sce = discover.fused("sparse_softmax_cross_entropy")
            logits, labels = d
            dl = np.empty_like(logits)

            def values():
                loss, _ = sce(logits, labels, out=dl, n_threads=nt)
                return np.float64(loss), dl.copy()

            def ref_values():
                loss, grad = numpy_softmax_cross_entropy(logits, labels)
                return np.float64(loss), grad
            return {"pyblasnn": lambda: sce(logits, labels, out=dl, n_threads=nt),
                    "numpy": lambda: numpy_softmax_cross_entropy(logits, labels),
                    "_values": {"pyblasnn": values, "numpy": ref_values}}

        def make_fwd(d, nt):
            sce = discover.fused("sparse_softmax_cross_entropy")
            logits, labels = d
            return {"pyblasnn": lambda: sce(logits, labels, n_threads=nt),
                    "numpy": lambda: numpy_softmax_cross_entropy(logits, labels, False),
                    "_values": {
                        "pyblasnn": lambda: np.float64(sce(logits, labels, n_threads=nt)[0]),
                        "numpy": lambda: np.float64(
                            numpy_softmax_cross_entropy(logits, labels, False)[0])}}
        cases.append(Case("softmax_ce_forward", f"({n},10) loss", "float32", "fused", setup,
                          make_fwd, size=n * 10, k=10))
        cases.append(Case("softmax_ce", f"({n},10) loss+dlogits", "float32", "fused", setup,
                          make, size=n * 10, k=10,
                          note="pyblasnn writes dlogits into a preallocated buffer"))
    return cases


def _sgd_case():
    lr, mom = 0.01, 0.9
    total = sum(int(np.prod(s)) for s in MLP_PARAM_SHAPES)

    def setup(rng):
        return [(_uniform(rng, s, F32, -0.1, 0.1), _uniform(rng, s, F32, -0.01, 0.01),
                 _uniform(rng, s, F32, -0.1, 0.1)) for s in MLP_PARAM_SHAPES]

    def numpy_step(state):
        for w, v, g in state:
            v *= mom
            v -= lr * g
            w += v

    def make(d, nt):
        upd = discover.fused("sgd_momentum_update")

        def pyblasnn_step(state):
            for w, v, g in state:
                upd(w, v, g, lr, mom, n_threads=nt)

        def one_step(step):
            """w and v of every array after one step from the case's starting state."""
            state = [(w.copy(), v.copy(), g) for w, v, g in d]
            step(state)
            return [a for w, v, _ in state for a in (w, v)]
        mine = [(w.copy(), v.copy(), g) for w, v, g in d]
        theirs = [(w.copy(), v.copy(), g) for w, v, g in d]
        return {"pyblasnn": lambda: pyblasnn_step(mine), "numpy": lambda: numpy_step(theirs),
                "_values": {"pyblasnn": lambda: one_step(pyblasnn_step),
                            "numpy": lambda: one_step(numpy_step)}}
    return Case("sgd_momentum", f"{total:,} params (4 arrays)", "float32", "fused", setup, make,
                size=total, note="NumPy: v *= m; v -= lr*g; w += v per array")


# ------------------------------------------------------------------- the book's benchmark
def book_case(rounds, section="kernels", python_rounds=None):
    """DLwP ch.2: ``rounds`` x (z = x + y; z = relu(z)) on (20, 100) float64."""
    def setup(rng):
        return rng.random((20, 100)), rng.random((20, 100))

    def make(d, nt):
        add, relu = _K("add"), _K("relu")
        x, y = d

        def mine():
            for _ in range(rounds):
                z = add(x, y, n_threads=nt)
                z = relu(z, n_threads=nt)
            return z

        def theirs():
            for _ in range(rounds):
                z = x + y
                z = np.maximum(z, 0.)
            return z
        fns = {"pyblasnn": mine, "numpy": theirs}
        if section == "pure_python":
            naive, _ = discover.naive_module()

            def python():
                for _ in range(python_rounds):
                    z = naive.naive_add(x, y)
                    z = naive.naive_relu(z)
                return z
            fns = {"python": python, **fns}
        return fns
    label = f"{rounds} x (20,100)"
    note = "book (DLwP ch.2, 1000 rounds): pure Python 2.45 s, NumPy 0.02 s"
    if section == "pure_python" and python_rounds != rounds:
        note += f"; pure Python timed on {python_rounds} rounds, scaled x{rounds // python_rounds}"
    competitors = ("python", "pyblasnn", "numpy") if section == "pure_python" else (
        "pyblasnn", "numpy")
    return Case("book_add_relu", label, "float64", "book", setup, make, size=rounds,
                section=section, note=note, competitors=competitors,
                extra={"rounds": rounds, "python_rounds": python_rounds or rounds})


def _python_cases(sz):
    """Pure-Python loops of the book, only on sizes where they finish in seconds."""
    ps = sz["python_sizes"]
    cases = [book_case(1000, "pure_python", sz["python_rounds"])]

    def three(name, label, setup, call_naive, call_np, call_pb, flops=None, k=1):
        def make(d, nt):
            naive, _ = discover.naive_module()
            pb = _K(call_pb[0])
            return {"python": lambda: call_naive(naive, *d), "numpy": lambda: call_np(*d),
                    "pyblasnn": lambda: pb(*d, n_threads=nt)}
        cases.append(Case(name, label, "float64", "python", setup, make, flops=flops, k=k,
                          section="pure_python", competitors=("python", "numpy", "pyblasnn")))

    n = ps["vec"]
    three("naive_vector_dot", f"({n},).({n},)", lambda rng, n=n: (rng.random(n), rng.random(n)),
          lambda m, x, y: np.float64(m.naive_vector_dot(x, y)), np.dot, ("dot",),
          flops=2.0 * n, k=n)
    n = ps["matvec"]
    three("naive_matrix_vector_dot", f"({n},{n}).({n},)",
          lambda rng, n=n: (rng.random((n, n)), rng.random(n)),
          lambda m, x, y: m.naive_matrix_vector_dot(x, y), np.dot, ("dot",),
          flops=2.0 * n * n, k=n)
    n = ps["matmul"]
    three("naive_matrix_dot", f"({n},{n})@({n},{n})",
          lambda rng, n=n: (rng.random((n, n)), rng.random((n, n))),
          lambda m, x, y: m.naive_matrix_dot(x, y), np.dot, ("dot",), flops=2.0 * n ** 3, k=n)
    three("naive_add_matrix_and_vector", "(20,100)+(100,)",
          lambda rng: (rng.random((20, 100)), rng.random(100)),
          lambda m, x, y: m.naive_add_matrix_and_vector(x, y), np.add, ("add",))
    return cases


def all_cases(mode="full"):
    """Every Case of a mode, in table order."""
    sz = SIZES[mode]
    return (_elementwise(sz) + _dots(sz) + _matmuls(sz) + _dense_cases(sz)
            + _mnist_sparse_cases(sz) + _softmax_cases(sz)
            + [_sgd_case(), book_case(sz["book_rounds"])] + _python_cases(sz))
