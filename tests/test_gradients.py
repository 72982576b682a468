"""Every f / f_backward pair in pyblasnn.ops against central finite differences (float64).

The pairs are discovered by name, so a new ``*_backward`` without examples here fails
``test_every_backward_has_examples`` instead of going untested.
"""
import numpy as np
import pytest

from pyblasnn import ops

from conftest import central_difference


def _away_from_zero(rng, shape, margin=0.05):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * (margin + np.abs(x)), x)


def _distinct_pair(rng, xs, ys, margin=0.05):
    """x, y whose broadcast values differ by more than margin (maximum is kinked at ties)."""
    x = rng.standard_normal(xs)
    y = rng.standard_normal(ys)
    xb, yb = np.broadcast_arrays(x, y)
    while np.any(np.abs(xb - yb) < margin):
        y = rng.standard_normal(ys)
        xb, yb = np.broadcast_arrays(x, y)
    return x, y


def _randn(*shape):
    return lambda rng: rng.standard_normal(shape)


# name -> list of (case id, builder(rng) -> tuple of forward inputs)
GRAD_CASES = {
    "relu": [
        ("(7,)", lambda rng: (_away_from_zero(rng, (7,)),)),
        ("(3,4,5)", lambda rng: (_away_from_zero(rng, (3, 4, 5)),)),
        ("()", lambda rng: (_away_from_zero(rng, ()),)),
    ],
    "add": [
        ("(32,10)+(10,)", lambda rng: (rng.standard_normal((32, 10)), rng.standard_normal(10))),
        ("(5,1,4)+(3,1)", lambda rng: (rng.standard_normal((5, 1, 4)), rng.standard_normal((3, 1)))),
        ("(4,3)+(4,3)", lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))),
        ("()+(2,3)", lambda rng: (rng.standard_normal(()), rng.standard_normal((2, 3)))),
        ("(2,3,4,5)+(3,1,5)", lambda rng: (rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((3, 1, 5)))),
    ],
    "subtract": [
        ("(32,10)-(10,)", lambda rng: (rng.standard_normal((32, 10)), rng.standard_normal(10))),
        ("(3,)-(4,3)", lambda rng: (rng.standard_normal(3), rng.standard_normal((4, 3)))),
        ("(5,1,4)-(3,1)", lambda rng: (rng.standard_normal((5, 1, 4)), rng.standard_normal((3, 1)))),
        ("(4,3)-(4,3)", lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))),
        ("(2,3)-()", lambda rng: (rng.standard_normal((2, 3)), rng.standard_normal(()))),
    ],
    "multiply": [
        ("(32,10)*(10,)", lambda rng: (rng.standard_normal((32, 10)), rng.standard_normal(10))),
        ("(3,)*(4,3)", lambda rng: (rng.standard_normal(3), rng.standard_normal((4, 3)))),
        ("(5,1,4)*(3,1)", lambda rng: (rng.standard_normal((5, 1, 4)), rng.standard_normal((3, 1)))),
        ("(4,3)*(4,3)", lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((4, 3)))),
        ("()*(2,3)", lambda rng: (rng.standard_normal(()), rng.standard_normal((2, 3)))),
        ("(2,3,4,5)*(3,1,5)", lambda rng: (rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((3, 1, 5)))),
    ],
    "divide": [  # y kept away from 0, where x / y is singular
        ("(32,10)/(10,)", lambda rng: (rng.standard_normal((32, 10)), _away_from_zero(rng, 10, 0.5))),
        ("(3,)/(4,3)", lambda rng: (rng.standard_normal(3), _away_from_zero(rng, (4, 3), 0.5))),
        ("(5,1,4)/(3,1)", lambda rng: (rng.standard_normal((5, 1, 4)), _away_from_zero(rng, (3, 1), 0.5))),
        ("(4,3)/(4,3)", lambda rng: (rng.standard_normal((4, 3)), _away_from_zero(rng, (4, 3), 0.5))),
        ("()/(2,3)", lambda rng: (rng.standard_normal(()), _away_from_zero(rng, (2, 3), 0.5))),
        ("(2,3)/()", lambda rng: (rng.standard_normal((2, 3)), _away_from_zero(rng, (), 0.5))),
    ],
    "maximum": [
        ("(6,)vs(6,)", lambda rng: _distinct_pair(rng, (6,), (6,))),
        ("(4,5)vs(5,)", lambda rng: _distinct_pair(rng, (4, 5), (5,))),
        ("(3,1,4)vs(2,1)", lambda rng: _distinct_pair(rng, (3, 1, 4), (2, 1))),
    ],
    "dot": [
        ("(5,).(5,)", lambda rng: (rng.standard_normal(5), rng.standard_normal(5))),
        ("(3,5).(5,)", lambda rng: (rng.standard_normal((3, 5)), rng.standard_normal(5))),
        ("(5,).(5,2)", lambda rng: (rng.standard_normal(5), rng.standard_normal((5, 2)))),
        ("(3,5).(5,2)", lambda rng: (rng.standard_normal((3, 5)), rng.standard_normal((5, 2)))),
        ("(2,2,3,4).(4,)", lambda rng: (rng.standard_normal((2, 2, 3, 4)), rng.standard_normal(4))),
        ("(2,3,4).(4,2)", lambda rng: (rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 2)))),
        ("(3,4).(2,4,3)", lambda rng: (rng.standard_normal((3, 4)), rng.standard_normal((2, 4, 3)))),
    ],
    "matmul": [
        ("(5,).(5,)", lambda rng: (rng.standard_normal(5), rng.standard_normal(5))),
        ("(3,5)@(5,)", lambda rng: (rng.standard_normal((3, 5)), rng.standard_normal(5))),
        ("(5,)@(2,5,3)", lambda rng: (rng.standard_normal(5), rng.standard_normal((2, 5, 3)))),
        ("(7,6)@(6,9)", lambda rng: (rng.standard_normal((7, 6)), rng.standard_normal((6, 9)))),
        ("(2,3,4)@(2,4,5)", lambda rng: (rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5)))),
        ("(1,3,4)@(2,4,5)", lambda rng: (rng.standard_normal((1, 3, 4)), rng.standard_normal((2, 4, 5)))),
        ("(3,4)@(2,4,5)", lambda rng: (rng.standard_normal((3, 4)), rng.standard_normal((2, 4, 5)))),
        ("(2,3,4)@(4,5)", lambda rng: (rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)))),
        ("(2,1,3,4)@(3,4,2)", lambda rng: (rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((3, 4, 2)))),
        ("(7,13)@(13,17)", lambda rng: (rng.standard_normal((7, 13)), rng.standard_normal((13, 17)))),
    ],
}

# How each backward is called: by default backward(dz, *inputs); add_backward and
# subtract_backward take shapes.
BACKWARD_ARGS = {"add": lambda inputs: tuple(np.shape(x) for x in inputs),
                 "subtract": lambda inputs: tuple(np.shape(x) for x in inputs)}


def _pairs():
    return sorted(name for name in ops.__all__ if hasattr(ops, name + "_backward"))


def test_every_backward_has_examples():
    found = _pairs()
    assert found, "no forward/backward pairs found in pyblasnn.ops"
    assert set(found) == set(GRAD_CASES), (
        f"pairs in ops: {found}; with gradient examples: {sorted(GRAD_CASES)}")
    assert {"relu", "add", "subtract", "multiply", "divide", "maximum", "dot", "matmul"} <= set(found)


CASES = [(name, cid, build) for name in sorted(GRAD_CASES) for cid, build in GRAD_CASES[name]]


@pytest.mark.parametrize("name,cid,build", CASES, ids=[f"{n}-{c}" for n, c, _ in CASES])
def test_backward_matches_finite_differences(name, cid, build, rng):
    forward = getattr(ops, name)
    backward = getattr(ops, name + "_backward")
    inputs = tuple(np.asarray(x, np.float64) for x in build(rng))
    z = forward(*inputs)
    w = rng.standard_normal(np.shape(z))  # L = sum(w * f(inputs)), so dL/dz = w

    extra = BACKWARD_ARGS.get(name, lambda inp: inp)(inputs)
    grads = backward(w, *extra)
    if not isinstance(grads, tuple):
        grads = (grads,)
    assert len(grads) == len(inputs), f"{name}_backward returned {len(grads)} gradients"

    for i, (x, g) in enumerate(zip(inputs, grads)):
        assert isinstance(g, np.ndarray) and g.dtype == np.float64
        assert g.shape == x.shape, f"gradient {i} has shape {g.shape}, input has {x.shape}"

        def loss(xi, i=i):
            args = list(inputs)
            args[i] = xi
            return float(np.sum(w * forward(*args)))

        numeric = central_difference(loss, x)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{name}_backward, gradient of input {i} ({cid})")
