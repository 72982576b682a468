"""Keras-style optimizers updating parameters in place, one fused kernel pass per parameter."""
import numpy as np

from . import _validation as _v
from . import fused

__all__ = ["Optimizer", "SGD", "RMSprop", "get"]


class Optimizer:
    """Base class. ``apply(params, grads)`` updates every parameter in place.

    State arrays (one per parameter and slot) are created on the first ``apply`` (or by
    ``build``) and reused; ``iterations`` counts applied steps.
    """

    slots = ()

    def __init__(self, learning_rate):
        name = type(self).__name__
        self.learning_rate = _v.check_positive_float(name, "learning_rate", learning_rate)
        self.iterations = 0
        self._state = None          # {slot: [array per parameter]}
        self._shapes = None

    def build(self, params):
        """Create zero state for these parameters (called by the first apply)."""
        self._shapes = [(p.shape, p.dtype) for p in params]
        self._state = {slot: [np.zeros_like(p) for p in params] for slot in self.slots}

    def _check_built(self, params):
        if self._state is None:
            self.build(params)
        elif len(params) != len(self._shapes) or any(
                (p.shape, p.dtype) != s for p, s in zip(params, self._shapes)):
            raise ValueError(f"{type(self).__name__}: parameters changed since the optimizer "
                             f"was built ({len(self._shapes)} -> {len(params)} arrays or "
                             f"different shapes); use a new optimizer")

    def apply(self, params, grads):
        """Update each params[i] in place from grads[i]."""
        if len(params) != len(grads):
            raise ValueError(f"{type(self).__name__}.apply: {len(params)} params but "
                             f"{len(grads)} grads")
        self._check_built(params)
        for i, (p, g) in enumerate(zip(params, grads)):
            self._update(i, p, g)
        self.iterations += 1

    # -- serialisation (used by Sequential.save / load_model) ------------------------------
    def get_config(self):
        raise NotImplementedError

    def get_state(self):
        """{"iterations": int, slot: [arrays]} (empty slots before the first step)."""
        state = {"iterations": self.iterations}
        if self._state is not None:
            state.update({slot: list(arrays) for slot, arrays in self._state.items()})
        return state

    def set_state(self, state, params):
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

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        self.momentum = _v.check_unit_interval("SGD", "momentum", momentum)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"SGD: nesterov must be a bool, got {nesterov!r}")
        self.nesterov = bool(nesterov)
        self.slots = ("velocity",) if self.momentum > 0 else ()

    def __repr__(self):
        return (f"SGD(learning_rate={self.learning_rate:g}, momentum={self.momentum:g}, "
                f"nesterov={self.nesterov})")

    def get_config(self):
        return {"learning_rate": self.learning_rate, "momentum": self.momentum,
                "nesterov": self.nesterov}

    def _update(self, i, p, g):
        if self.momentum > 0:
            fused.sgd_momentum_update(p, self._state["velocity"][i], g, self.learning_rate,
                                      self.momentum, self.nesterov)
        else:
            fused.sgd_update(p, g, self.learning_rate)


class RMSprop(Optimizer):
    """RMSprop (Keras defaults):

        a = rho * a + (1 - rho) * g**2
        momentum == 0:  w = w - learning_rate * g / (sqrt(a) + epsilon)
        momentum  > 0:  m = momentum * m + learning_rate * g / (sqrt(a) + epsilon);  w = w - m
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-07):
        super().__init__(learning_rate)
        self.rho = _v.check_unit_interval("RMSprop", "rho", rho)
        self.momentum = _v.check_unit_interval("RMSprop", "momentum", momentum)
        self.epsilon = _v.check_positive_float("RMSprop", "epsilon", epsilon)
        self.slots = ("accumulator", "momentum") if self.momentum > 0 else ("accumulator",)

    def __repr__(self):
        return (f"RMSprop(learning_rate={self.learning_rate:g}, rho={self.rho:g}, "
                f"momentum={self.momentum:g}, epsilon={self.epsilon:g})")

    def get_config(self):
        return {"learning_rate": self.learning_rate, "rho": self.rho,
                "momentum": self.momentum, "epsilon": self.epsilon}

    def _update(self, i, p, g):
        mom = self._state["momentum"][i] if self.momentum > 0 else None
        fused.rmsprop_update(p, self._state["accumulator"][i], g, self.learning_rate,
                             self.rho, self.epsilon, momentum=self.momentum,
                             momentum_buffer=mom)


_OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop}


def get(identifier):
    """An optimizer from a name ("sgd", "rmsprop", Keras defaults) or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _OPTIMIZERS:
        return _OPTIMIZERS[identifier.lower()]()
    raise ValueError(f"compile: unknown optimizer {identifier!r}; expected one of "
                     f"{sorted(_OPTIMIZERS)} or a pyblasnn.optimizers.Optimizer instance")


def from_config(class_name, config):
    classes = {cls.__name__: cls for cls in _OPTIMIZERS.values()}
    if class_name not in classes:
        raise ValueError(f"unknown optimizer class {class_name!r} in saved model")
    return classes[class_name](**config)
