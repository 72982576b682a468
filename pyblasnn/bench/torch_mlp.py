"""The same MNIST MLP in PyTorch (CPU), for the end-to-end comparison.

Optional: ``import_torch()`` raises discover.Unavailable when torch is not installed, and the
epoch table says so. Same model, initial weights (copied from the NumPy trainer's), batch
size, learning rate and momentum; threads via torch.set_num_threads.
"""
import numpy as np

from .discover import Unavailable


def import_torch():
    try:
        import torch
    except ImportError as exc:
        raise Unavailable(f"torch not importable ({exc}); `pip install torch` to add this row") \
            from None
    return torch


class TorchMLP:
    name = "pytorch"

    def __init__(self, x_train, y_train, params, batch_size=128, learning_rate=0.01,
                 momentum=0.9, seed=0, n_threads=None):
        torch = self.torch = import_torch()
        if n_threads:
            torch.set_num_threads(n_threads)
        torch.manual_seed(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.x = torch.from_numpy(np.ascontiguousarray(x_train, np.float32))
        self.y = torch.from_numpy(np.asarray(y_train, np.int64))
        w1, b1, w2, b2 = params
        self.model = torch.nn.Sequential(torch.nn.Linear(w1.shape[0], w1.shape[1]),
                                         torch.nn.ReLU(),
                                         torch.nn.Linear(w2.shape[0], w2.shape[1]))
        with torch.no_grad():  # Linear stores (out, in): the transposed kernel
            self.model[0].weight.copy_(torch.from_numpy(w1.T.copy()))
            self.model[0].bias.copy_(torch.from_numpy(b1))
            self.model[2].weight.copy_(torch.from_numpy(w2.T.copy()))
            self.model[2].bias.copy_(torch.from_numpy(b2))
        # torch's momentum (v = m*v + g; w -= lr*v) equals Keras' for a constant lr
        self.opt = torch.optim.SGD(self.model.parameters(), lr=learning_rate, momentum=momentum)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.batch_size = batch_size

    def epoch(self, x=None, y=None):
        torch = self.torch
        x = self.x if x is None else torch.from_numpy(np.ascontiguousarray(x, np.float32))
        y = self.y if y is None else torch.from_numpy(np.asarray(y, np.int64))
        order = torch.randperm(x.shape[0], generator=self.gen)
        loss = None
        for start in range(0, x.shape[0], self.batch_size):
            idx = order[start:start + self.batch_size]
            logits = self.model(x[idx])
            loss = self.loss_fn(logits, y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return loss.item() if loss is not None else 0.0

    def accuracy(self, x, y):
        torch = self.torch
        with torch.no_grad():
            logits = self.model(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
        return float((logits.argmax(dim=1).numpy() == np.asarray(y)).mean())
