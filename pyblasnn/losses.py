"""Keras-style losses: ``SparseCategoricalCrossentropy`` on the fused loss kernels."""
from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _validation as _v
from . import fused
from .autodiff import functions as _autodiff_functions

__all__ = ["Loss", "SparseCategoricalCrossentropy", "sparse_categorical_crossentropy", "get"]


class Loss:
    """Base class: ``loss(y_true, y_pred)`` returns the mean loss as a float."""

    name = "loss"
    from_logits = False

    def get_config(self) -> dict[str, Any]:
        return {}

    def fuses(self, activation: Optional[str]) -> bool:
        """True when this loss can take the input of ``activation`` (the model's last one)
        instead of its output, computing both in one fused pass. Asked once, at compile."""
        return False


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy between integer labels and predicted class scores.

    ``from_logits=False``: ``y_pred`` holds probabilities; loss = mean(-log(clip(p[label],
    1e-7, 1 - 1e-7))). ``from_logits=True``: ``y_pred`` holds logits; loss = mean(
    logsumexp(z) - z[label]), computed stably. When a model's last layer is
    ``Dense(..., activation="softmax")`` and ``from_logits=False``, the model hands this loss
    the pre-softmax logits instead (``fuses``, asked at compile), so softmax and loss are
    computed together and the gradient is (p - onehot) / n, exactly as for from_logits=True.
    """

    name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def __repr__(self) -> str:
        return f"SparseCategoricalCrossentropy(from_logits={self.from_logits})"

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits}

    def fuses(self, activation: Optional[str]) -> bool:
        """A final softmax is folded into the loss unless the model already outputs logits."""
        return activation == "softmax" and not self.from_logits

    def __call__(self, y_true: ArrayLike, y_pred: ArrayLike) -> float:
        y_pred = np.asarray(y_pred)
        if y_pred.dtype not in (np.float32, np.float64):
            y_pred = y_pred.astype(np.float32)
        if y_pred.ndim != 2:
            raise ValueError(f"{self.name}: y_pred must be 2-D (samples, classes), got shape "
                             f"{y_pred.shape}")
        y_pred = np.ascontiguousarray(y_pred)
        labels = _v.as_sparse_labels(self.name, y_true, y_pred.shape[0], y_pred.shape[1])
        loss, _ = self.compute(y_pred, labels, logits=self.from_logits)
        return loss

    def compute(self, y_pred: np.ndarray, labels: np.ndarray,
                grad_out: Optional[np.ndarray] = None, row_loss: Optional[np.ndarray] = None,
                logits: bool = False) -> tuple[float, int]:
        """(mean loss, n_correct) of one batch; fills grad_out = dL/dy_pred if given.

        ``logits``: y_pred are logits (fused softmax + cross-entropy kernel), else probabilities.
        """
        if logits:
            return fused.sparse_softmax_cross_entropy(y_pred, labels, out=grad_out,
                                                      row_loss=row_loss)
        return fused.sparse_cross_entropy(y_pred, labels, out=grad_out, row_loss=row_loss)


# Keras' functional form: per-sample losses (a Tensor, recorded by a GradientTape), e.g.
# ``tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, predictions))``
sparse_categorical_crossentropy = _autodiff_functions.sparse_categorical_crossentropy


_LOSSES: dict[str, type[Loss]] = {"sparse_categorical_crossentropy": SparseCategoricalCrossentropy}


def get(identifier: Union[str, Loss, type[Loss]]) -> Loss:
    """A loss instance from a name or an instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in _LOSSES:
        return _LOSSES[identifier]()
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    raise ValueError(f"compile: unknown loss {identifier!r}; expected one of {sorted(_LOSSES)} "
                     f"or a pyblasnn.losses.Loss instance")


def from_config(name: str, config: dict[str, Any]) -> Loss:
    return _LOSSES[name](**config)
