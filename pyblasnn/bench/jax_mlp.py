"""The same MNIST MLP in JAX (CPU), a whole epoch as one ``jax.jit`` of a ``lax.scan``.

Optional: ``import_jax()`` raises discover.Unavailable when jax is not installed, and the
epoch table says so. Same model (784-512 relu-10 softmax, sparse categorical cross-entropy),
initial weights, batch size, learning rate, momentum (the Keras rule ``v = m*v - lr*g;
w += v``) and shuffles as the NumPy trainer (``default_rng(seed).permutation`` per epoch),
float32 throughout. One epoch is one compiled call: the shuffled indices go in, each scan
step gathers its minibatch and takes an SGD step, and a last partial batch is one more step
in the same function. The epoch over the training set is compiled when the trainer is
built, so no timed epoch includes compilation.

Threads: XLA's CPU backend has no per-call thread count; for ``n_threads=1`` the worker
process sets ``XLA_FLAGS`` (one intra-op thread, no multi-threaded Eigen) before jax is
imported, otherwise XLA uses every core.
"""
import os
import sys

import numpy as np

from .discover import Unavailable

SINGLE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def import_jax(n_threads=None):
    """jax, on the CPU, limited to one thread when asked and still possible."""
    if n_threads == 1 and "jax" not in sys.modules:
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {SINGLE_THREAD_FLAGS}"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import jax
    except ImportError as exc:
        raise Unavailable(f"jax not importable ({exc}); `pip install jax` to add this row") \
            from None
    return jax


def _compiled_functions(jax, batch_size, learning_rate, momentum):
    """(epoch, predict), jit-compiled: epoch(params, velocity, x, y, order) -> (params,
    velocity, last batch loss); predict(params, x) -> logits."""
    jnp = jax.numpy

    def predict(params, x):
        w1, b1, w2, b2 = params
        return jnp.maximum(x @ w1 + b1, 0) @ w2 + b2

    def loss(params, x, y):
        log_p = jax.nn.log_softmax(predict(params, x))
        return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))

    loss_and_grad = jax.value_and_grad(loss)

    def epoch(params, velocity, x, y, order):
        def step(carry, idx):
            params, velocity = carry
            value, grads = loss_and_grad(params, x[idx], y[idx])
            velocity = [momentum * v - learning_rate * g for v, g in zip(velocity, grads)]
            params = [p + v for p, v in zip(params, velocity)]
            return (params, velocity), value

        full = order.shape[0] // batch_size * batch_size
        carry, losses = jax.lax.scan(step, (params, velocity),
                                     order[:full].reshape(-1, batch_size))
        last = losses[-1] if full else jnp.float32(0)
        if full < order.shape[0]:
            carry, last = step(carry, order[full:])
        return carry[0], carry[1], last

    return jax.jit(epoch), jax.jit(predict)


class JaxMLP:
    name = "jax"

    def __init__(self, x_train, y_train, params, batch_size=128, learning_rate=0.01,
                 momentum=0.9, seed=0, n_threads=None):
        jax = self.jax = import_jax(n_threads)
        jnp = jax.numpy
        self.x = jnp.asarray(x_train, jnp.float32)
        self.y = jnp.asarray(y_train, jnp.int32)
        self.params = [jnp.asarray(p, jnp.float32) for p in params]
        self.velocity = [jnp.zeros_like(p) for p in self.params]
        self.rng = np.random.default_rng(seed)
        self._epoch, self._predict = _compiled_functions(jax, batch_size,
                                                         np.float32(learning_rate),
                                                         np.float32(momentum))
        order = np.arange(x_train.shape[0], dtype=np.int32)
        self._train_epoch = self._epoch.lower(self.params, self.velocity, self.x, self.y,
                                              order).compile()

    def epoch(self, x=None, y=None):
        """One pass in shuffled minibatches (default: the training set, precompiled)."""
        if x is None:
            run, x, y = self._train_epoch, self.x, self.y
        else:
            run = self._epoch
            x, y = self.jax.numpy.asarray(x, np.float32), self.jax.numpy.asarray(y, np.int32)
        order = self.rng.permutation(x.shape[0]).astype(np.int32)
        self.params, self.velocity, loss = self.jax.block_until_ready(
            run(self.params, self.velocity, x, y, order))   # the epoch's time includes the work
        return float(loss)

    def accuracy(self, x, y):
        logits = self._predict(self.params, self.jax.numpy.asarray(x, np.float32))
        return float(np.mean(np.asarray(logits).argmax(axis=1) == np.asarray(y)))
