"""Keras-style metrics: "accuracy" (sparse categorical accuracy)."""
import numpy as np

from . import _validation as _v

__all__ = ["SparseCategoricalAccuracy", "sparse_categorical_accuracy", "get"]


def sparse_categorical_accuracy(y_true, y_pred):
    """Fraction of rows whose argmax(y_pred) equals the integer label."""
    y_pred = np.asarray(y_pred)
    if y_pred.ndim != 2:
        raise ValueError(f"accuracy: y_pred must be 2-D (samples, classes), got shape "
                         f"{y_pred.shape}")
    labels = _v.as_sparse_labels("accuracy", y_true, y_pred.shape[0])
    if labels.size == 0:
        return 0.0
    return float(np.mean(np.argmax(y_pred, axis=1) == labels))


class SparseCategoricalAccuracy:
    """Running accuracy: ``update_state(y_true, y_pred)``, ``result()``, ``reset_state()``.

    Inside ``Sequential.fit`` the counts come straight from the fused loss kernel (argmax of
    the logits, which is the argmax of softmax), so this costs no extra pass.
    """

    def __init__(self, name="accuracy"):
        self.name = name
        self.reset_state()

    def __repr__(self):
        return f"SparseCategoricalAccuracy(name={self.name!r})"

    def reset_state(self):
        self.correct = 0
        self.count = 0

    def update_counts(self, correct, count):
        self.correct += int(correct)
        self.count += int(count)

    def update_state(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        n = y_pred.shape[0] if y_pred.ndim else 0
        self.update_counts(round(sparse_categorical_accuracy(y_true, y_pred) * n), n)

    def result(self):
        return self.correct / self.count if self.count else 0.0


_ALIASES = ("accuracy", "acc", "sparse_categorical_accuracy")


def get(identifier):
    """A metric instance from "accuracy" (also "acc", "sparse_categorical_accuracy")."""
    if isinstance(identifier, SparseCategoricalAccuracy):
        return identifier
    if isinstance(identifier, str) and identifier in _ALIASES:
        return SparseCategoricalAccuracy(name=identifier)
    raise ValueError(f"compile: unknown metric {identifier!r}; supported: {list(_ALIASES)}")
