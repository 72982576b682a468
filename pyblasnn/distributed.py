"""Data-parallel training over MPI (``mpi4py``; ``pip install -e ".[mpi]"``).

Every MPI rank holds a full replica of the model. Each global batch (the same seeded shuffle
on every rank) is split into ``size`` contiguous shares, rank r taking the r-th; after the
backward pass each rank scales its gradients by n_r / n (its share of the batch) into one
flat buffer, the buffer is summed over the ranks in one collective, and every rank applies
the same optimizer update to the same summed gradient::

    g = sum_r (n_r / n) * g_r,     g_r = mean over rank r's n_r samples of dL/dw

which is the gradient of the mean loss over the whole batch of n samples.

Guarantees. The sum is computed in a fixed order (rank 0 + rank 1 + ... for every element,
whatever the MPI library's own reduction order would be): every rank computes the same bits,
so the replicas stay bitwise identical after every step, and a run with a fixed number of
ranks is reproducible bit for bit. On one rank the result is bit for bit that of ``fit``
without ``distributed``. With p ranks the result equals the 1-process result up to rounding
(the scaled sum is a different order of the same additions).

The collective is bandwidth-optimal (each rank sends and receives 2 (p-1)/p of the buffer, as
a ring allreduce): an all-to-all gives rank r every rank's r-th chunk, which it sums in rank
order, and an all-gather hands the summed chunks to every rank.

Use::

    from pyblasnn import distributed
    distributed.init()                       # threads per rank: cores / ranks on the host
    model.fit(x, y, batch_size=128, epochs=5, distributed=True)
    model.evaluate(x_test, y_test, distributed=True)   # each rank scores its share
    model.save("model.npz")                  # rank 0 writes (atomically), the others wait

and for the GradientTape loop, two lines::

    images, labels = distributed.shard(images), distributed.shard(labels)
    gradients = distributed.allreduce_gradients(tape.gradient(loss, weights), len(images))

Faults: after ``init()`` an uncaught exception on any rank prints its traceback and aborts
the whole job (``MPI_Abort``), so no rank is left waiting in a collective.
"""
import os
import sys
import traceback

import numpy as np

__all__ = ["World", "init", "world", "rank", "size", "is_root", "shard", "share_bounds",
           "allreduce_gradients", "barrier"]

_WORLD = None


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            "pyblasnn.distributed needs mpi4py and an MPI library: "
            "pip install -e \".[mpi]\" (mpi4py and MPICH from PyPI), then run with "
            "mpiexec -n 2 python ...") from exc
    return MPI


def share_bounds(start, stop, size, rank):
    """[lo, hi) of rank ``rank``'s contiguous share of samples [start, stop): shares differ by
    at most one sample, the first ones larger; a rank gets none when stop - start < size."""
    n = stop - start
    return start + (n * rank) // size, start + (n * (rank + 1)) // size


class World:
    """The ranks of one MPI communicator, with the fixed-order sum the trainer uses."""

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self._buffers = {}

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size})"

    @property
    def is_root(self):
        return self.rank == 0

    def share(self, start, stop):
        """[lo, hi) of this rank's share of samples [start, stop)."""
        return share_bounds(start, stop, self.size, self.rank)

    def barrier(self):
        self.comm.Barrier()

    def _chunks(self, n):
        bounds = [(n * r) // self.size for r in range(self.size + 1)]
        return np.diff(bounds), np.asarray(bounds[:-1])

    def sum_(self, flat):
        """flat := sum over ranks of every rank's ``flat`` (1-D, contiguous, float32/64),
        in place, added in rank order 0, 1, ..., p-1 for each element on every rank."""
        if self.size == 1:
            return flat
        MPI = _mpi()
        if flat.ndim != 1 or not flat.flags.c_contiguous or flat.dtype.kind != "f":
            raise ValueError("distributed.sum_: flat must be a contiguous 1-D float array")
        counts, displs = self._chunks(flat.size)
        mine = int(counts[self.rank])
        key = (flat.dtype.str, flat.size)
        recv = self._buffers.get(key)
        if recv is None:
            recv = self._buffers[key] = np.empty((self.size, max(mine, 1)), flat.dtype)
        mpi_type = MPI.FLOAT if flat.dtype == np.float32 else MPI.DOUBLE
        # rank r receives every rank's r-th chunk: row i of recv is rank i's
        self.comm.Alltoallv(
            [flat, (counts, displs), mpi_type],
            [recv, ([mine] * self.size, [i * recv.shape[1] for i in range(self.size)]),
             mpi_type])
        acc = flat[displs[self.rank]:displs[self.rank] + mine]
        np.copyto(acc, recv[0, :mine])
        for i in range(1, self.size):           # the fixed order: rank 0 + 1 + ... + p-1
            np.add(acc, recv[i, :mine], out=acc)
        self.comm.Allgatherv(MPI.IN_PLACE, [flat, (counts, displs), mpi_type])
        return flat

    def sum_values(self, values):
        """Python floats summed over the ranks in rank order (the same result everywhere)."""
        if self.size == 1:
            return list(values)
        every = self.comm.allgather(list(values))
        total = list(every[0])
        for other in every[1:]:
            total = [a + b for a, b in zip(total, other)]
        return total

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)


def _flat_views(arrays, dtype, extra=0):
    """(flat, views): one zeroed 1-D buffer of every array's elements (+ ``extra`` slots) and
    a view into it shaped like each array, in order: the layout sent in one collective."""
    ends = np.cumsum([a.size for a in arrays], dtype=np.intp)
    flat = np.zeros(int(ends[-1] if len(arrays) else 0) + extra, dtype)
    starts = ends - [a.size for a in arrays]
    return flat, [flat[lo:hi].reshape(a.shape) for a, lo, hi in zip(arrays, starts, ends)]


class GradientReducer:
    """The trainer's side: scale the local gradients into one flat buffer (with the batch's
    loss sum, as a float pair, and its correct count), sum it over the ranks in one
    collective, hand back views of the sum. On one rank it hands back what it was given."""

    def __init__(self, world, grads):
        self.world = world
        self.flat, self.views = _flat_views(grads, grads[0].dtype if grads else np.float32,
                                            extra=3)

    def reduce(self, grads, loss, correct, local_n, global_n):
        """(summed gradient views, mean loss over the global batch, correct count).
        ``grads`` None: this rank had no samples, or stopped before its backward pass
        (non-finite loss); it contributes zeros (and its loss)."""
        if self.world.size == 1:
            return grads if grads is not None else self.views, loss, correct
        flat, views = self.flat, self.views
        if grads is None:
            flat[:-3] = 0
        else:
            weight = flat.dtype.type(local_n / global_n)
            for g, v in zip(grads, views):
                np.multiply(g, weight, out=v)
        # the loss sum as hi + lo in the buffer's dtype: float32 keeps ~48 bits that way
        total = loss * local_n if local_n else 0.0
        flat[-3] = total
        flat[-2] = total - float(flat[-3])
        flat[-1] = correct
        self.world.sum_(flat)
        loss = (float(flat[-3]) + float(flat[-2])) / global_n
        return views, loss, int(round(float(flat[-1])))


def _abort_on_uncaught(world):
    previous = sys.excepthook

    def hook(kind, value, tb):
        sys.stderr.write(f"pyblasnn.distributed: rank {world.rank} of {world.size} failed; "
                         f"aborting every rank\n")
        traceback.print_exception(kind, value, tb)
        sys.stderr.flush()
        sys.stdout.flush()
        if world.size > 1:
            _mpi().COMM_WORLD.Abort(1)
        previous(kind, value, tb)
    sys.excepthook = hook


def _ranks_on_this_host(comm):
    MPI = _mpi()
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return local.Get_size()
    finally:
        local.Free()


def init(comm=None, threads="auto"):
    """Join the MPI job (once; later calls return the same ``World``).

    ``threads="auto"``: kernel threads per rank = this host's cores / its ranks (at least 1),
    unless ``OMP_NUM_THREADS`` is set; an int sets it; None leaves it alone. Installs the
    abort-on-uncaught-exception hook."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    MPI = _mpi()
    _WORLD = world_ = World(comm if comm is not None else MPI.COMM_WORLD)
    from ._config import set_num_threads
    if threads == "auto":
        if not os.environ.get("OMP_NUM_THREADS"):
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
                else (os.cpu_count() or 1)
            set_num_threads(max(1, cores // _ranks_on_this_host(world_.comm)))
    elif threads is not None:
        set_num_threads(threads)
    _abort_on_uncaught(world_)
    return world_


def world():
    """The ``World`` joined by ``init()`` (joined now when mpi4py is there)."""
    return _WORLD if _WORLD is not None else init()


def active():
    """The joined World when there is more than one rank, else None (no MPI import)."""
    return _WORLD if _WORLD is not None and _WORLD.size > 1 else None


def rank():
    return world().rank


def size():
    return world().size


def is_root():
    return world().is_root


def barrier():
    world().barrier()


def shard(batch):
    """This rank's contiguous share of ``batch`` (an array, a Tensor, anything sliceable
    along its first axis): rows share_bounds(0, len(batch), size, rank)."""
    w = world()
    lo, hi = w.share(0, len(batch))
    return batch[lo:hi]


def allreduce_gradients(gradients, count=None):
    """sum over ranks of w_r * g_r for a list of gradients (NumPy arrays or Tensors, the
    same shapes on every rank), in one fixed-order collective; returns the same kinds.

    ``count``: this rank's number of samples; then w_r = count_r / sum(count), the gradient
    of the mean loss over every rank's samples. Without it w_r = 1 / size (equal shares)."""
    from .autodiff.tensor import Tensor
    w = world()
    arrays = [g.numpy() if isinstance(g, Tensor) else np.asarray(g) for g in gradients]
    if not arrays:
        return []
    if count is None:
        weight, total = 1.0 / w.size, None
    else:
        if isinstance(count, bool) or int(count) != count or count < 0:
            raise ValueError(f"allreduce_gradients: count must be a sample count >= 0, "
                             f"got {count!r}")
        total = w.sum_values([float(count)])[0]
        if total == 0:
            raise ValueError("allreduce_gradients: no rank has samples (every count is 0)")
        weight = count / total
    dtype = np.result_type(*arrays)
    flat, views = _flat_views(arrays, dtype)
    for a, v in zip(arrays, views):
        np.multiply(a, dtype.type(weight), out=v)
    w.sum_(flat)
    out = [v.astype(a.dtype, copy=False) for a, v in zip(arrays, views)]
    return [Tensor._wrap(o) if isinstance(g, Tensor) else o for g, o in zip(gradients, out)]
