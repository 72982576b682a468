"""The MNIST MLP (784-512-10, ReLU, softmax cross-entropy, SGD momentum) in plain NumPy.

The end-to-end baseline: what a careful NumPy user writes for the training step of
*Deep Learning with Python* ch.2 — float32 throughout, BLAS for the three GEMMs per layer,
Glorot-uniform weights, zero biases, the Keras momentum rule ``v = m*v - lr*g; w += v``.
"""
import numpy as np


def glorot_uniform(rng, fan_in, fan_out, dtype=np.float32):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype)


def init_params(rng, sizes=(784, 512, 10), dtype=np.float32):
    """[W1, b1, W2, b2, ...] with Glorot-uniform kernels and zero biases."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params += [glorot_uniform(rng, fan_in, fan_out, dtype), np.zeros(fan_out, dtype)]
    return params


class NumpyMLP:
    """Two-layer MLP trained with mini-batch SGD + momentum, all in NumPy."""

    name = "numpy"

    def __init__(self, x_train, y_train, batch_size=128, learning_rate=0.01, momentum=0.9,
                 seed=0, params=None):
        self.x = x_train
        self.y = np.asarray(y_train, np.intp)
        self.batch_size = batch_size
        self.lr = np.float32(learning_rate)
        self.momentum = np.float32(momentum)
        self.rng = np.random.default_rng(seed)
        self.params = [p.copy() for p in params] if params is not None else init_params(self.rng)
        self.velocity = [np.zeros_like(p) for p in self.params]

    def forward(self, x):
        w1, b1, w2, b2 = self.params
        h = x @ w1
        h += b1
        a = np.maximum(h, 0, out=h)
        logits = a @ w2
        logits += b2
        return a, logits

    def step(self, xb, yb):
        """One SGD-momentum step on a minibatch; returns the batch's mean loss."""
        w1, b1, w2, b2 = self.params
        n = xb.shape[0]
        a, logits = self.forward(xb)
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        r = np.arange(n)
        loss = float(np.mean(np.log(s[:, 0]) - z[r, yb]))
        dz = e / s
        dz[r, yb] -= 1
        dz /= n
        dw2 = a.T @ dz
        db2 = dz.sum(axis=0)
        da = dz @ w2.T
        da *= a > 0
        dw1 = xb.T @ da
        db1 = da.sum(axis=0)
        for w, v, g in zip(self.params, self.velocity, (dw1, db1, dw2, db2)):
            v *= self.momentum
            v -= self.lr * g
            w += v
        return loss

    def epoch(self, x=None, y=None):
        """One pass over (x, y) (default: the training set) in shuffled minibatches."""
        x = self.x if x is None else x
        y = self.y if y is None else np.asarray(y, np.intp)
        order = self.rng.permutation(x.shape[0])
        loss = 0.0
        for start in range(0, x.shape[0], self.batch_size):
            idx = order[start:start + self.batch_size]
            loss = self.step(x[idx], y[idx])
        return loss

    def accuracy(self, x, y):
        _, logits = self.forward(x)
        return float(np.mean(logits.argmax(axis=1) == np.asarray(y)))
