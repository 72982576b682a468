"""Keras-style optimizers updating parameters in place, one fused kernel pass per parameter.

Two ways in: ``apply(params, grads)`` (the training loop: the same list of arrays every step)
and ``apply_gradients(grads_and_vars)`` (Keras / TensorFlow: pairs of gradient and variable, as
``optimizer.apply_gradients(zip(grads, model.weights))`` after a ``GradientTape``). Both keep
one set of state arrays per parameter and count steps in ``iterations``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np

from . import _validation as _v
from . import fused, ops

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "get"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class Optimizer:
    """Base class. ``apply(params, grads)`` / ``apply_gradients(pairs)`` update in place.

    State arrays (one per parameter and slot) are created on the first step (or by
    ``build``) and reused; ``iterations`` counts applied steps. A subclass defines ``slots``,
    ``_update(i, param, grad)`` and, if its step needs them, per-step constants in
    ``_prepare_step()``.
    """

    slots: tuple[str, ...] = ()

    def __init__(self, learning_rate: float) -> None:
        name = type(self).__name__
        self.learning_rate = _v.check_positive_float(name, "learning_rate", learning_rate)
        self.iterations = 0
        self._state: Optional[dict[str, list[np.ndarray]]] = None  # slot -> array per param
        self._shapes: Optional[list[tuple[tuple[int, ...], np.dtype]]] = None
        self._tracked: dict[int, Any] = {}   # id(variable) -> (variable, index, is_array)

    def build(self, params: Sequence[np.ndarray]) -> None:
        """Create zero state for these parameters (called by the first apply)."""
        self._shapes = [(p.shape, p.dtype) for p in params]
        self._state = {slot: [np.zeros_like(p) for p in params] for slot in self.slots}
        self._tracked = {}

    def _check_built(self, params):
        if self._state is None:
            self.build(params)
        elif len(params) != len(self._shapes) or any(
                (p.shape, p.dtype) != s for p, s in zip(params, self._shapes)):
            raise ValueError(f"{type(self).__name__}: parameters changed since the optimizer "
                             f"was built ({len(self._shapes)} -> {len(params)} arrays or "
                             f"different shapes); use a new optimizer")

    def _prepare_step(self):
        """Per-step constants (Adam's bias correction); called before a step's updates."""

    def _update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        """Update parameter ``p`` (the i-th) in place from its gradient ``g``."""
        raise NotImplementedError(f"{type(self).__name__}._update")

    def _update_from_product(self, i: int, p: np.ndarray, a: np.ndarray, b: np.ndarray,
                             workspace: np.ndarray) -> None:
        """Update ``p`` (the i-th) from the gradient ``a @ b``, computed into ``workspace``.
        An optimizer whose update the kernels can fuse with that product overrides this."""
        ops.matmul(a, b, out=workspace)
        self._update(i, p, workspace)

    def apply(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray],
              product: Optional[tuple[int, np.ndarray, np.ndarray]] = None) -> None:
        """Update each params[i] in place from grads[i].

        ``product`` = (i, a, b): the gradient of params[i] is ``a @ b``, not computed yet;
        grads[i] is its workspace. The step is the same as with the product in grads[i]
        (bit for bit), but where the kernels can (SGD on a zero-skipping product) the
        gradient is never stored.
        """
        if len(params) != len(grads):
            raise ValueError(f"{type(self).__name__}.apply: {len(params)} params but "
                             f"{len(grads)} grads")
        self._check_built(params)
        self._prepare_step()
        fused_i = -1 if product is None else product[0]
        for i, (p, g) in enumerate(zip(params, grads)):
            if i == fused_i:
                assert product is not None
                self._update_from_product(i, p, product[1], product[2], g)
            else:
                self._update(i, p, g)
        self.iterations += 1

    # -- apply_gradients: Keras / TensorFlow pairs -------------------------------------------
    def _track(self, var):
        """State for a variable seen for the first time; returns its (var, index, is_array)."""
        is_array = isinstance(var, np.ndarray)
        if not is_array and not hasattr(var, "_parameter"):
            raise TypeError(f"apply_gradients: a variable must be an ndarray or have "
                            f"_parameter(), got {type(var).__name__}")
        p = var if is_array else var._parameter()
        if not isinstance(p, np.ndarray) or p.dtype not in _FLOATS:
            raise TypeError(f"apply_gradients: variables must hold float32 or float64 arrays, "
                            f"got {getattr(p, 'dtype', type(p).__name__)}")
        if not (p.flags.c_contiguous and p.flags.writeable):
            raise ValueError(f"apply_gradients: a variable's array must be C-contiguous and "
                             f"writeable (shape {p.shape})")
        if self._state is None:
            self._state, self._shapes = {slot: [] for slot in self.slots}, []
        self._shapes.append((p.shape, p.dtype))
        for slot in self.slots:
            self._state[slot].append(np.zeros_like(p))
        entry = self._tracked[id(var)] = (var, len(self._shapes) - 1, is_array)
        return entry

    def apply_gradients(self, grads_and_vars: Iterable[tuple[Any, Any]]) -> int:
        """One step from (gradient, variable) pairs; a None gradient skips its variable.

        A variable is an ndarray (updated in place) or an object whose ``_parameter()`` returns
        its live array and whose ``_updated()`` is called after the update. A gradient is an
        ndarray or anything ``np.asarray`` reads (a Tensor's ``numpy()`` is used when present);
        it must have its variable's shape and dtype. Everything is checked before anything is
        updated. Returns ``iterations``.
        """
        tracked = self._tracked
        todo = []
        for pair in grads_and_vars:
            try:
                g, var = pair
            except (TypeError, ValueError):
                raise TypeError(f"apply_gradients: expected (gradient, variable) pairs, got "
                                f"{type(pair).__name__}") from None
            if g is None:
                continue
            entry = tracked.get(id(var))
            if entry is None:
                entry = self._track(var)
            _, i, is_array = entry
            p = var if is_array else var._parameter()
            if type(g) is not np.ndarray:
                to_numpy = getattr(g, "numpy", None)
                try:
                    g = to_numpy() if to_numpy is not None else np.asarray(g)
                except Exception as exc:
                    raise TypeError(f"apply_gradients: gradient could not be read as an "
                                    f"array: {exc}") from None
                if not isinstance(g, np.ndarray):
                    g = np.asarray(g)
            if g.shape != p.shape:
                raise ValueError(f"apply_gradients: gradient shape {g.shape} does not match "
                                 f"its variable's shape {p.shape}")
            if g.dtype != p.dtype:
                raise TypeError(f"apply_gradients: gradient dtype {g.dtype} does not match "
                                f"its variable's dtype {p.dtype}; cast it first")
            assert self._shapes is not None         # _track made them
            if self._shapes[i] != (p.shape, p.dtype):
                raise ValueError(f"apply_gradients: a variable changed shape since its "
                                 f"optimizer state was made ({self._shapes[i][0]} -> {p.shape})")
            if not g.flags.c_contiguous:
                g = np.ascontiguousarray(g)
            todo.append((i, p, g, None if is_array else var))
        if not todo:
            raise ValueError("apply_gradients: no gradients provided for any variable "
                             "(every gradient is None)")
        self._prepare_step()
        for i, p, g, var in todo:
            self._update(i, p, g)
            if var is not None:
                var._updated()
        self.iterations += 1
        return self.iterations

    # -- serialisation (used by Sequential.save / load_model) ------------------------------
    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:
        """{"iterations": int, slot: [arrays]} (empty slots before the first step)."""
        state: dict[str, Any] = {"iterations": self.iterations}
        if self._state is not None:
            state.update({slot: list(arrays) for slot, arrays in self._state.items()})
        return state

    def set_state(self, state: dict[str, Any], params: Sequence[np.ndarray]) -> None:
        """Restore get_state()'s output for these parameters (copies into fresh arrays)."""
        self.iterations = int(state.get("iterations", 0))
        if not any(slot in state for slot in self.slots):
            self._state = None
            return
        self.build(params)
        for slot in self.slots:
            arrays = state.get(slot)
            if arrays is None or len(arrays) != len(params):
                raise ValueError(f"{type(self).__name__}: optimizer state {slot!r} has "
                                 f"{0 if arrays is None else len(arrays)} arrays for "
                                 f"{len(params)} parameters")
            assert self._state is not None
            for dst, src in zip(self._state[slot], arrays):
                if dst.shape != src.shape:
                    raise ValueError(f"{type(self).__name__}: optimizer state {slot!r} shape "
                                     f"{src.shape} does not match parameter {dst.shape}")
                dst[...] = src


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum, Keras' rule:

        momentum == 0:  w = w - learning_rate * g
        momentum  > 0:  v = momentum * v - learning_rate * g;  w = w + v
        nesterov:       v = momentum * v - learning_rate * g;  w = w + momentum * v - learning_rate * g
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(learning_rate)
        self.momentum = _v.check_unit_interval("SGD", "momentum", momentum)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"SGD: nesterov must be a bool, got {nesterov!r}")
        self.nesterov = bool(nesterov)
        self.slots = ("velocity",) if self.momentum > 0 else ()

    def __repr__(self) -> str:
        return (f"SGD(learning_rate={self.learning_rate:g}, momentum={self.momentum:g}, "
                f"nesterov={self.nesterov})")

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "momentum": self.momentum,
                "nesterov": self.nesterov}

    def _update(self, i, p, g):
        if self.momentum > 0:
            fused.sgd_momentum_update(p, self._state["velocity"][i], g, self.learning_rate,
                                      self.momentum, self.nesterov)
        else:
            fused.sgd_update(p, g, self.learning_rate)

    def _update_from_product(self, i, p, a, b, workspace):
        velocity = self._state["velocity"][i] if self.momentum > 0 else None
        fused.matmul_sgd_update(a, b, p, self.learning_rate, self.momentum, velocity,
                                self.nesterov, grad=workspace)


class RMSprop(Optimizer):
    """RMSprop (Keras defaults):

        a = rho * a + (1 - rho) * g**2
        momentum == 0:  w = w - learning_rate * g / (sqrt(a) + epsilon)
        momentum  > 0:  m = momentum * m + learning_rate * g / (sqrt(a) + epsilon);  w = w - m
    """

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-07) -> None:
        super().__init__(learning_rate)
        self.rho = _v.check_unit_interval("RMSprop", "rho", rho)
        self.momentum = _v.check_unit_interval("RMSprop", "momentum", momentum)
        self.epsilon = _v.check_positive_float("RMSprop", "epsilon", epsilon)
        self.slots = ("accumulator", "momentum") if self.momentum > 0 else ("accumulator",)

    def __repr__(self) -> str:
        return (f"RMSprop(learning_rate={self.learning_rate:g}, rho={self.rho:g}, "
                f"momentum={self.momentum:g}, epsilon={self.epsilon:g})")

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "rho": self.rho,
                "momentum": self.momentum, "epsilon": self.epsilon}

    def _update(self, i, p, g):
        mom = self._state["momentum"][i] if self.momentum > 0 else None
        fused.rmsprop_update(p, self._state["accumulator"][i], g, self.learning_rate,
                             self.rho, self.epsilon, momentum=self.momentum,
                             momentum_buffer=mom)


class Adam(Optimizer):
    """Adam (Keras defaults and rule), with t = iterations + 1:

        lr_t = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        w = w - lr_t * m / (sqrt(v) + epsilon)

    No fused kernel exists for it: the update is in-place NumPy arithmetic through one scratch
    array per parameter (nothing is allocated per step).
    """

    slots = ("momentum", "velocity")

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-07) -> None:
        super().__init__(learning_rate)
        self.beta_1 = _v.check_unit_interval("Adam", "beta_1", beta_1)
        self.beta_2 = _v.check_unit_interval("Adam", "beta_2", beta_2)
        self.epsilon = _v.check_positive_float("Adam", "epsilon", epsilon)
        self._scratch: dict[Any, np.ndarray] = {}
        self._lr_t: Optional[float] = None

    def __repr__(self) -> str:
        return (f"Adam(learning_rate={self.learning_rate:g}, beta_1={self.beta_1:g}, "
                f"beta_2={self.beta_2:g}, epsilon={self.epsilon:g})")

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon}

    def _prepare_step(self):
        t = self.iterations + 1
        self._lr_t = (self.learning_rate * math.sqrt(1.0 - self.beta_2 ** t)
                      / (1.0 - self.beta_1 ** t))

    def _update(self, i, p, g):
        m, v = self._state["momentum"][i], self._state["velocity"][i]
        tmp = self._scratch.get(i)
        if tmp is None or tmp.shape != p.shape or tmp.dtype != p.dtype:
            tmp = self._scratch[i] = np.empty_like(p)
        f = p.dtype.type
        np.multiply(g, f(1.0 - self.beta_1), out=tmp)      # m = b1 m + (1 - b1) g
        m *= f(self.beta_1)
        m += tmp
        np.multiply(g, g, out=tmp)                          # v = b2 v + (1 - b2) g^2
        tmp *= f(1.0 - self.beta_2)
        v *= f(self.beta_2)
        v += tmp
        np.sqrt(v, out=tmp)                                 # w -= lr_t m / (sqrt(v) + eps)
        tmp += f(self.epsilon)
        np.divide(m, tmp, out=tmp)
        tmp *= f(self._lr_t)
        p -= tmp


_OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam}


def get(identifier: Union[str, Optimizer]) -> Optimizer:
    """An optimizer from a name ("sgd", "rmsprop", "adam"; Keras defaults) or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _OPTIMIZERS:
        return _OPTIMIZERS[identifier.lower()]()
    raise ValueError(f"compile: unknown optimizer {identifier!r}; expected one of "
                     f"{sorted(_OPTIMIZERS)} or a pyblasnn.optimizers.Optimizer instance")


def from_config(class_name: str, config: dict[str, Any]) -> Optimizer:
    classes = {cls.__name__: cls for cls in _OPTIMIZERS.values()}
    if class_name not in classes:
        raise ValueError(f"unknown optimizer class {class_name!r} in saved model")
    return classes[class_name](**config)
