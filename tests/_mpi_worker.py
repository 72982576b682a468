"""Run under ``mpiexec -n P`` by tests/test_distributed.py: one scenario per argv[1]; rank 0
writes what the test checks to argv[2] (an .npz)."""
import sys

import numpy as np

import pyblasnn
from pyblasnn import distributed, layers


def data(n=1001, features=20, classes=5):
    rng = np.random.default_rng(0)
    return rng.random((n, features), dtype=np.float32), rng.integers(0, classes, n)


def model(optimizer="sgd"):
    m = pyblasnn.Sequential([layers.Dense(32, activation="relu"),
                             layers.Dense(5, activation="softmax")])
    opt = (pyblasnn.optimizers.SGD(0.1, momentum=0.9) if optimizer == "sgd"
           else pyblasnn.optimizers.RMSprop(0.001))
    m.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def main(scenario, out):
    world = distributed.init(threads=1)
    x, y = data()
    if scenario == "fit":
        # 1001 samples in batches of 100: the last global batch has 1 sample, so one rank
        # has none in that step
        m = model()
        h = m.fit(x, y, batch_size=100, epochs=3, seed=1, verbose=0, distributed=True,
                  validation_data=(x[:301], y[:301]))
        mine = m.get_weights()
        every = world.comm.gather(mine, root=0)
        ev = m.evaluate(x, y, batch_size=64, verbose=0, distributed=True)
        m.save(out + ".model.npz")
        if world.is_root:
            same = all(all(np.array_equal(a, b) for a, b in zip(every[0], w)) for w in every)
            np.savez(out, same=same, loss=np.array(h.history["loss"]),
                     val_loss=np.array(h.history["val_loss"]), ev=np.array(ev),
                     **{f"w{i}": w for i, w in enumerate(mine)})
    elif scenario == "tape":
        w = pyblasnn.Variable(np.linspace(-1, 1, 20 * 5, dtype=np.float32).reshape(20, 5))
        xs, ys = distributed.shard(x[:97]), distributed.shard(y[:97])
        with pyblasnn.GradientTape() as tape:
            loss = pyblasnn.reduce_mean(pyblasnn.keras.losses.sparse_categorical_crossentropy(
                ys, pyblasnn.nn.softmax(pyblasnn.matmul(xs, w))))
        g, = distributed.allreduce_gradients(tape.gradient(loss, [w]), len(xs))
        every = world.comm.gather(g.numpy(), root=0)
        if world.is_root:
            np.savez(out, g=g.numpy(), same=all(np.array_equal(every[0], e) for e in every))
    elif scenario == "fail":
        if world.rank == world.size - 1:
            raise RuntimeError("rank failure on purpose")
        world.barrier()                     # without the abort, this waits forever
    else:
        raise SystemExit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
