"""Every gradient rule of pyblasnn.autodiff.rules against central finite differences (float64).

A rule registered without examples here fails ``test_every_rule_has_examples``.
"""
import numpy as np
import pytest

from pyblasnn.autodiff import rules

from conftest import central_difference


def _n(*shape):
    return lambda rng: rng.standard_normal(shape)


def _away(*shape, margin=0.05):
    def build(rng):
        x = rng.standard_normal(shape)
        return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * (margin + np.abs(x)), x)
    return build


def _pos(*shape):
    return lambda rng: 0.5 + rng.random(shape)


def _distinct(xs, ys):
    def build(rng):
        while True:
            x, y = rng.standard_normal(xs), rng.standard_normal(ys)
            a, b = np.broadcast_arrays(x, y)
            if np.all(np.abs(a - b) > 0.05):
                return x, y
    return build


LABELS = np.array([2, 0, 3, 3, 1])

# rule -> [(case id, builder(rng) -> inputs (arrays; None = not differentiated), attrs)]
CASES = {
    "relu": [("(4,5)", lambda r: (_away(4, 5)(r),), {})],
    "sigmoid": [("(3,4)", lambda r: (_n(3, 4)(r) * 3,), {})],
    "tanh": [("(3,4)", lambda r: (_n(3, 4)(r),), {})],
    "softmax": [("(4,6)", lambda r: (_n(4, 6)(r),), {}),
                ("(2,3,4) axis 1", lambda r: (_n(2, 3, 4)(r),), {"axis": 1})],
    "identity": [("(3,)", lambda r: (_n(3)(r),), {})],
    "add": [("(32,10)+(10,)", lambda r: (_n(32, 10)(r), _n(10)(r)), {}),
            ("(5,1,4)+(3,1)", lambda r: (_n(5, 1, 4)(r), _n(3, 1)(r)), {}),
            ("()+(2,3)", lambda r: (_n()(r), _n(2, 3)(r)), {})],
    "subtract": [("(4,3)-(3,)", lambda r: (_n(4, 3)(r), _n(3)(r)), {}),
                 ("(3,1)-(1,4)", lambda r: (_n(3, 1)(r), _n(1, 4)(r)), {})],
    "multiply": [("(4,3)*(3,)", lambda r: (_n(4, 3)(r), _n(3)(r)), {}),
                 ("()*(2,2)", lambda r: (_n()(r), _n(2, 2)(r)), {})],
    "divide": [("(4,3)/(3,)", lambda r: (_n(4, 3)(r), _pos(3)(r)), {}),
               ("(2,2)/()", lambda r: (_n(2, 2)(r), _pos()(r)), {})],
    "maximum": [("(4,5)vs(5,)", lambda r: _distinct((4, 5), (5,))(r), {})],
    "negative": [("(3,2)", lambda r: (_n(3, 2)(r),), {})],
    "square": [("(3,2)", lambda r: (_n(3, 2)(r),), {})],
    "power": [("(3,2)**3", lambda r: (_n(3, 2)(r),), {"exponent": 3}),
              ("(4,)**0.5", lambda r: (_pos(4)(r),), {"exponent": 0.5})],
    "matmul": [("(7,6)@(6,9)", lambda r: (_n(7, 6)(r), _n(6, 9)(r)), {}),
               ("(2,3,4)@(4,5)", lambda r: (_n(2, 3, 4)(r), _n(4, 5)(r)), {}),
               ("(5,)@(5,)", lambda r: (_n(5)(r), _n(5)(r)), {})],
    "dense": [("relu", lambda r: (_n(6, 5)(r), _n(5, 4)(r), _n(4)(r)), {"activation": "relu"}),
              ("tanh", lambda r: (_n(6, 5)(r), _n(5, 4)(r), _n(4)(r)), {"activation": "tanh"}),
              ("softmax", lambda r: (_n(6, 5)(r), _n(5, 4)(r), _n(4)(r)),
               {"activation": "softmax"}),
              ("linear no bias", lambda r: (_n(3, 5)(r), _n(5, 2)(r)), {})],
    "reduce_sum": [("all", lambda r: (_n(3, 4)(r),), {}),
                   ("axis 0 keepdims", lambda r: (_n(3, 4)(r),), {"axis": 0, "keepdims": True}),
                   ("axis (0,2)", lambda r: (_n(2, 3, 4)(r),), {"axis": (0, 2)})],
    "reduce_mean": [("all", lambda r: (_n(3, 4)(r),), {}),
                    ("axis -1", lambda r: (_n(3, 4)(r),), {"axis": -1})],
    "reshape": [("(3,4)->(2,6)", lambda r: (_n(3, 4)(r),), {"shape": (2, 6)})],
    "transpose": [("(2,3,4) perm", lambda r: (_n(2, 3, 4)(r),), {"perm": (2, 0, 1)})],
    "getitem": [("slice", lambda r: (_n(5, 4)(r),), {"key": (slice(1, 4), 2)}),
                ("repeated index", lambda r: (_n(5, 3)(r),), {"key": np.array([0, 2, 0])})],
    "sparse_categorical_crossentropy": [
        ("logits", lambda r: (None, _n(5, 4)(r)), {"from_logits": True}),
        ("probs", lambda r: (None, 0.1 + r.random((5, 4))), {"from_logits": False}),
    ],
}


def test_every_rule_has_examples():
    assert set(rules.RULES) == set(CASES), (
        f"rules: {sorted(rules.RULES)}; with examples: {sorted(CASES)}")


def _inputs(name, build, rng):
    inputs = build(rng)
    if name == "sparse_categorical_crossentropy":
        inputs = (LABELS,) + tuple(inputs[1:])
    return tuple(np.asarray(x, np.float64) if x is not None and not (
        name == "sparse_categorical_crossentropy" and i == 0) else x
        for i, x in enumerate(inputs))


ALL = [(n, cid, b, a) for n in sorted(CASES) for cid, b, a in CASES[n]]


@pytest.mark.parametrize("name,cid,build,attrs", ALL, ids=[f"{n}-{c}" for n, c, _, _ in ALL])
def test_vjp_matches_finite_differences(name, cid, build, attrs, rng):
    r = rules.RULES[name]
    inputs = _inputs(name, build, rng)
    value, saved = r.forward(*inputs, **attrs)
    w = rng.standard_normal(np.shape(value))        # L = sum(w * f(inputs)): dL/dvalue = w
    differentiable = [i for i, x in enumerate(inputs)
                      if x is not None and np.asarray(x).dtype == np.float64]
    needs = [i in differentiable for i in range(len(inputs))]
    grads = r.vjp(w, saved, needs)
    assert len(grads) == len(inputs)
    for i in differentiable:
        g = np.asarray(grads[i])
        assert g.shape == np.shape(inputs[i]), f"gradient {i}: {g.shape} vs {np.shape(inputs[i])}"

        def loss(xi, i=i):
            args = list(inputs)
            args[i] = xi
            return float(np.sum(w * r.forward(*args, **attrs)[0]))

        numeric = central_difference(loss, inputs[i])
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{name} ({cid}): gradient of input {i}")


def test_needs_false_skips_the_gradient(rng):
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    value, saved = rules.RULES["matmul"].forward(a, b)
    da, db = rules.RULES["matmul"].vjp(np.ones_like(value), saved, [False, True])
    assert da is None and db.shape == b.shape


def test_vjp_writes_into_out_buffers(rng):
    x, k, b = rng.standard_normal((6, 5)), rng.standard_normal((5, 4)), rng.standard_normal(4)
    y, saved = rules.dense_forward(x, k, b, "relu")
    bufs = (np.empty_like(x), np.empty_like(k), np.empty_like(b))
    g = rng.standard_normal(y.shape)
    ref = rules.RULES["dense"].vjp(g.copy(), saved, (True, True, True))
    got = rules.dense_vjp(g.copy(), saved, (True, True, True), out=bufs)
    for buf, res, expected in zip(bufs, got, ref):
        assert res is buf
        np.testing.assert_array_equal(res, expected)


def test_dense_forward_fuses_relu_bitwise_with_separate_ops(rng):
    """dense = relu(x @ kernel + bias) exactly (the bias + relu epilogue rounds the same)."""
    from pyblasnn import ops
    x, k, b = (rng.standard_normal(s).astype(np.float32) for s in ((9, 7), (7, 5), (5,)))
    y, _ = rules.dense_forward(x, k, b, "relu")
    np.testing.assert_array_equal(y, ops.relu(ops.add(ops.matmul(x, k), b)))


def test_mean_cross_entropy_gradient_is_the_fused_kernels_bits(rng):
    """reduce_mean's uniform gradient lets the loss rule hand back the fused kernel's
    dlogits = (p - onehot) / n unchanged: the bits the Keras-style step uses."""
    from pyblasnn import fused
    logits = rng.standard_normal((5, 4)).astype(np.float32)
    ce = rules.RULES["sparse_categorical_crossentropy"]
    mean = rules.RULES["reduce_mean"]
    losses, saved = ce.forward(LABELS, logits, from_logits=True)
    _, msaved = mean.forward(losses)
    (g,) = mean.vjp(np.float32(1), msaved, [True])
    _, dlogits = ce.vjp(g, saved, [False, True])
    expected = np.empty_like(logits)
    fused.sparse_softmax_cross_entropy(logits, LABELS, out=expected)
    np.testing.assert_array_equal(dlogits, expected)
