"""Data-parallel training: measure the gradient sum on this machine, model it past it.

    mpiexec -n 2 python -m pyblasnn.bench.distributed measure [--out FILE.json]
    python -m pyblasnn.bench.distributed model [--measured FILE.json]

``measure`` (under mpiexec) times ``World.sum_`` on one flat float32 buffer of the book
network's 407,050 gradients (+3 slots for the loss and the count, as ``fit`` sends it), and a
training step of the book network at batch 128 on one rank (rank 0, the other ranks idle).

``model`` prints, for p ranks on 10 and 100 Gb/s networks, the time per step

    t(p) = t_step / p + t_sum(p),   t_sum(p) = 2 (p-1)/p * bytes / bandwidth + 2 (p-1) * latency

(compute split evenly over the ranks; the collective as a ring allreduce, which the
all-to-all + all-gather of ``pyblasnn.distributed`` matches in bytes moved) and the speedup
t_step / t(p), for the book network (784-512-10) and a larger one (784-4096-4096-10, whose
step is estimated from the measured one by its FLOPs). "overlap" is the same with the sum
hidden behind the backward pass (two thirds of the step), as gradient buckets do:
t(p) = t_step / (3p) + max(2 t_step / (3p), t_sum(p)).
"""
import argparse
import json
import sys
import time

import numpy as np

BOOK = (784, 512, 10)
LARGE = (784, 4096, 4096, 10)
BATCH = 128
LATENCY_S = 5e-6                 # per message on a cluster network (MPI over RDMA/TCP: 1-20 us)
NETWORKS_GBPS = (10, 100)
RANKS = (2, 4, 8, 16, 32, 64)


def n_params(sizes):
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def _time(fn, repeats=30):
    fn()
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return float(np.median(samples)), float(np.min(samples))


def measure(out=None):
    from pyblasnn import distributed, layers, optimizers, Sequential
    world = distributed.init()
    flat = np.random.default_rng(world.rank).random(n_params(BOOK) + 3, dtype=np.float32)

    def collective():
        world.barrier()
        world.sum_(flat)
    sum_median, sum_min = _time(collective, 50)
    step = None
    if world.is_root:
        rng = np.random.default_rng(0)
        x = rng.random((BATCH * 20, BOOK[0]), dtype=np.float32)
        y = rng.integers(0, BOOK[-1], BATCH * 20)
        m = Sequential([layers.Dense(BOOK[1], activation="relu"),
                        layers.Dense(BOOK[2], activation="softmax")])
        m.compile(optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
        m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, seed=0)
        step = _time(lambda: m.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, seed=0),
                     5)[0] / 20
    world.barrier()
    if world.is_root:
        import pyblasnn
        result = {"ranks": world.size, "floats": int(flat.size),
                  "sum_median_s": sum_median, "sum_min_s": sum_min,
                  "step_s": step, "threads": pyblasnn.get_num_threads()}
        text = json.dumps(result, indent=1)
        print(text)
        if out:
            with open(out, "w") as f:
                f.write(text + "\n")


def ring_sum_s(p, nbytes, gbps, latency=LATENCY_S):
    return 2 * (p - 1) / p * nbytes * 8 / (gbps * 1e9) + 2 * (p - 1) * latency


def table(step_s):
    """Markdown rows: network, link, p, step ms, sum ms, speedup, speedup with overlap."""
    lines = ["| network | link | ranks | compute/step ms | sum ms | speedup | with overlap |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for sizes in (BOOK, LARGE):
        params = n_params(sizes)
        t1 = step_s * params / n_params(BOOK)
        for gbps in NETWORKS_GBPS:
            for p in RANKS:
                s = ring_sum_s(p, params * 4, gbps)
                t = t1 / p + s
                t_overlap = t1 / (3 * p) + max(2 * t1 / (3 * p), s)
                lines.append(f"| {'-'.join(map(str, sizes))} | {gbps} Gb/s | {p} | "
                             f"{t1 / p * 1e3:.3f} | {s * 1e3:.3f} | {t1 / t:.2f}x | "
                             f"{t1 / t_overlap:.2f}x |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m pyblasnn.bench.distributed")
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("measure", help="run under mpiexec: time the gradient sum and a step")
    m.add_argument("--out", default=None)
    t = sub.add_parser("model", help="print the scaling model's table")
    t.add_argument("--measured", default=None, help="a `measure` JSON (its step time)")
    t.add_argument("--step-ms", type=float, default=None,
                   help="compute time of one batch-128 step of the book network, ms")
    args = p.parse_args(argv)
    if args.what == "measure":
        measure(args.out)
        return 0
    step = args.step_ms / 1e3 if args.step_ms else None
    if args.measured:
        with open(args.measured) as f:
            measured = json.load(f)
        step = measured["step_s"]
        p_ = measured["ranks"]
        print(f"measured on this machine: {p_} ranks, sum of {measured['floats']} float32: "
              f"{measured['sum_median_s'] * 1e3:.3f} ms median; one step on one rank "
              f"({measured['threads']} threads): {step * 1e3:.3f} ms")
    if step is None:
        p.error("model: give --measured FILE or --step-ms MS")
    print(table(step))
    return 0


if __name__ == "__main__":
    sys.exit(main())
