"""``GradientTape``: records rule applications on watched tensors and walks them backwards.

Recording: ``apply(rule, inputs, attrs)`` runs ``rule.forward`` on the inputs' arrays and,
for every tape that is recording in this thread, appends a node when one of the inputs is
watched by that tape (a trainable ``Variable``, a tensor passed to ``tape.watch``, or the
output of a node the tape recorded). Nodes are appended in execution order, so the tape is a
topologically sorted list and the backward pass is one loop over it in reverse: no
recursion (a 10,000-op chain is fine), and only the nodes between the sources and the
target are differentiated.
"""
import threading

import numpy as np

from .. import ops
from .tensor import Tensor, Variable, as_value

__all__ = ["GradientTape", "apply", "stop_recording"]

_local = threading.local()


def _active():
    tapes = getattr(_local, "tapes", None)
    if tapes is None:
        tapes = _local.tapes = []
    return tapes


class _Node:
    """One recorded op: its rule, inputs, output, what the vjp needs and variable versions."""

    __slots__ = ("rule", "inputs", "output", "saved", "versions")

    def __init__(self, rule, inputs, output, saved, versions):
        self.rule, self.inputs, self.output = rule, inputs, output
        self.saved, self.versions = saved, versions


def apply(rule, inputs, attrs=None):
    """Run ``rule`` on ``inputs`` (tensors, arrays, Python scalars) and record it on every
    recording tape that watches one of the inputs. Returns the output ``Tensor``."""
    values = [x._value if isinstance(x, Tensor) else x for x in inputs]
    value, saved = rule.forward(*values, **attrs) if attrs else rule.forward(*values)
    if rule.returns_view:       # a view of a variable would change with it: snapshot it
        for x in inputs:
            if isinstance(x, Variable) and np.may_share_memory(value, x._value):
                value = np.array(value, copy=True)
                break
    out = Tensor._wrap(value)
    tapes = getattr(_local, "tapes", None)
    if tapes:
        for tape in tapes:
            if tape._recording:
                tape._record(rule, inputs, out, saved)
    return out


class stop_recording:
    """``with tape.stop_recording():`` — ops inside are not recorded by any tape."""

    def __init__(self, tape):
        self._tape = tape

    def __enter__(self):
        self._was = self._tape._recording
        self._tape._recording = False

    def __exit__(self, *exc):
        self._tape._recording = self._was
        return False


def _flatten(sources, path="sources"):
    """(flat list of leaves, rebuild(list) -> same nesting) for a tensor or nested lists."""
    if isinstance(sources, (list, tuple)):
        parts = [_flatten(s) for s in sources]
        flat = [leaf for leaves, _ in parts for leaf in leaves]
        kind = type(sources)

        def rebuild(values):
            out, i = [], 0
            for leaves, sub in parts:
                out.append(sub(values[i:i + len(leaves)]))
                i += len(leaves)
            return kind(out) if kind is tuple else out
        return flat, rebuild
    if isinstance(sources, dict):
        keys = list(sources)
        flat, rebuild_values = _flatten([sources[k] for k in keys])
        return flat, lambda values: dict(zip(keys, rebuild_values(values)))
    return [sources], lambda values: values[0]


class GradientTape:
    """Record operations for automatic differentiation (TensorFlow's ``tf.GradientTape``).

    >>> x = pyblasnn.Variable(0.)
    >>> with pyblasnn.GradientTape() as tape:
    ...     y = 2 * x + 3
    >>> tape.gradient(y, x)                     # dy/dx
    <pyblasnn.Tensor: shape=(), dtype=float32, numpy=2.0>

    Trainable variables are watched when used (``watch_accessed_variables=True``); other
    tensors with ``tape.watch(t)``. ``gradient(target, sources)`` returns gradients in the
    structure of ``sources`` (None for a source the target does not depend on); a
    non-persistent tape allows one ``gradient`` call and then releases what it recorded.
    """

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self.persistent = bool(persistent)
        self.watch_accessed_variables = bool(watch_accessed_variables)
        self._nodes = []
        self._tracked = {}          # id(tensor) -> tensor: watched or produced by a node
        self._recording = False
        self._used = False
        self._entered = False

    def __repr__(self):
        return (f"GradientTape(persistent={self.persistent}, recorded_ops={len(self._nodes)}, "
                f"recording={self._recording})")

    def __enter__(self):
        if self._entered:
            raise RuntimeError("GradientTape: this tape is already in use; a tape can be "
                               "entered once (make a new GradientTape)")
        self._entered = True
        self._recording = True
        _active().append(self)
        return self

    def __exit__(self, *exc):
        self._recording = False
        tapes = _active()
        if self in tapes:
            tapes.remove(self)
        return False

    def stop_recording(self):
        """Context manager: ops run inside are not recorded."""
        return stop_recording(self)

    def reset(self):
        """Forget everything recorded so far (the tape keeps recording)."""
        self._nodes.clear()
        self._tracked.clear()

    # -- recording ----------------------------------------------------------------------
    def watch(self, tensor):
        """Watch a tensor (or nested list of tensors) so gradients can be taken for it."""
        for t in _flatten(tensor)[0]:
            if not isinstance(t, Tensor):
                raise TypeError(f"GradientTape.watch: expects pyblasnn tensors or variables, "
                                f"got {type(t).__name__}; convert with pyblasnn.constant(x)")
            if t.dtype.kind != "f":
                raise TypeError(f"GradientTape.watch: a tensor of dtype {t.dtype} cannot be "
                                f"differentiated; use float32 or float64")
            self._tracked[id(t)] = t

    def watched_variables(self):
        """The variables this tape has watched, in order of first use."""
        return [t for t in self._tracked.values() if isinstance(t, Variable)]

    def _tracks(self, x):
        if id(x) in self._tracked:
            return True
        if (self.watch_accessed_variables and isinstance(x, Variable) and x.trainable):
            self._tracked[id(x)] = x
            return True
        return False

    def _record(self, rule, inputs, out, saved):
        if self._used and not self.persistent:
            return
        watched = False
        for x in inputs:
            if isinstance(x, Tensor) and self._tracks(x):
                watched = True
        if not watched:
            return
        versions = tuple(x._version if isinstance(x, Variable) else None for x in inputs)
        self._nodes.append(_Node(rule, tuple(inputs), out, saved, versions))
        self._tracked[id(out)] = out

    # -- gradients ----------------------------------------------------------------------
    def gradient(self, target, sources, output_gradients=None,
                 unconnected_gradients="none"):
        """d(target)/d(sources), in the structure of ``sources``.

        ``target``: a tensor (a non-scalar target is summed, as TensorFlow does) or a list
        of tensors (their sum). ``output_gradients``: the upstream gradient of target (same
        shape), default ones. ``unconnected_gradients``: "none" (None for a source that the
        target does not depend on) or "zero" (zeros of the source's shape).
        """
        op = "GradientTape.gradient"
        if self._used and not self.persistent:
            raise RuntimeError(f"{op}: a non-persistent GradientTape can compute gradients "
                               f"only once; use GradientTape(persistent=True) to call "
                               f"gradient() several times")
        if unconnected_gradients not in ("none", "zero"):
            raise ValueError(f"{op}: unconnected_gradients must be 'none' or 'zero', got "
                             f"{unconnected_gradients!r}")
        flat_sources, rebuild = _flatten(sources)
        for s in flat_sources:
            if not isinstance(s, Tensor):
                raise TypeError(f"{op}: sources must be pyblasnn Variables or watched "
                                f"tensors, got {type(s).__name__}")
        multi = isinstance(target, (list, tuple))
        targets = list(target) if multi else [target]
        seeds = self._seeds(op, targets, output_gradients, multi)
        grads = self._backward(seeds, flat_sources)
        if not self.persistent:
            self._used = True
            self._nodes = []
            self._tracked = {}
        result = []
        for s in flat_sources:
            g = grads.get(id(s))
            if g is None:
                g = np.zeros(s.shape, s.dtype) if unconnected_gradients == "zero" else None
            elif g.dtype != s.dtype or not g.flags.c_contiguous or g.base is not None \
                    and not g.flags.writeable:
                g = np.ascontiguousarray(g, dtype=s.dtype)
            result.append(None if g is None else Tensor._wrap(g))
        return rebuild(result)

    def _seeds(self, op, targets, output_gradients, multi):
        seeds = {}
        if output_gradients is None:
            ogs = [None] * len(targets)
        elif multi:
            ogs = list(output_gradients)
        else:
            ogs = [output_gradients]
        if len(ogs) != len(targets):
            raise ValueError(f"{op}: {len(ogs)} output_gradients for {len(targets)} targets")
        for t, og in zip(targets, ogs):
            if not isinstance(t, Tensor):
                raise TypeError(f"{op}: target must be a pyblasnn tensor computed under the "
                                f"tape, got {type(t).__name__}")
            if t.dtype.kind != "f":
                raise TypeError(f"{op}: target has dtype {t.dtype}; only float tensors can "
                                f"be differentiated")
            if og is None:
                g = np.ones(t.shape, t.dtype)
            else:
                g = np.asarray(as_value(og), dtype=t.dtype)
                if g.shape != t.shape:
                    raise ValueError(f"{op}: output_gradients has shape {g.shape}, the "
                                     f"target has shape {t.shape}")
            prev = seeds.get(id(t))
            seeds[id(t)] = g if prev is None else ops.add(prev, g)
        return seeds

    def _backward(self, seeds, sources):
        """Reverse walk over the recorded nodes; returns {id(tensor): gradient array}."""
        op = "GradientTape.gradient"
        nodes = self._nodes
        # forward sweep: which tensors depend on a source (only those get gradients)
        depends = {id(s) for s in sources if id(s) in self._tracked}   # watched only
        needs_of = [None] * len(nodes)
        for i, node in enumerate(nodes):
            needs = [id(x) in depends for x in node.inputs]
            if any(needs):
                needs_of[i] = needs
                depends.add(id(node.output))
        grads = dict(seeds)
        for i in range(len(nodes) - 1, -1, -1):
            needs = needs_of[i]
            if needs is None:
                continue
            node = nodes[i]
            g = grads.get(id(node.output))
            if g is None:
                continue
            for x, version in zip(node.inputs, node.versions):
                if version is not None and x._version != version:
                    raise RuntimeError(
                        f"{op}: variable {x.name!r} was modified (assign/optimizer step) "
                        f"after the tape used it in {node.rule.name}; compute the gradients "
                        f"before updating the variables")
            input_grads = node.rule.vjp(g, node.saved, needs)
            for x, need, gx in zip(node.inputs, needs, input_grads):
                if not need or gx is None:
                    continue
                key = id(x)
                prev = grads.get(key)
                if prev is None:
                    grads[key] = gx
                else:   # a value used several times: its gradients add up
                    grads[key] = ops.add(prev, gx)
        return grads
