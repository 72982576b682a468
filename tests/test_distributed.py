"""pyblasnn.distributed: data-parallel training over MPI.

The MPI tests start ``mpiexec -n 2`` on tests/_mpi_worker.py and skip, saying why, when
mpi4py or mpiexec is missing (``pip install -e ".[mpi]"``); PYBLASNN_REQUIRE_MPI=1 (CI sets
it) turns that skip into a failure. The rest need no MPI.
"""
import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import pyblasnn
from pyblasnn import callbacks
from pyblasnn.distributed import share_bounds

sys.path.insert(0, os.path.dirname(__file__))
import _mpi_worker as worker  # noqa: E402

HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
MPIEXEC = shutil.which("mpiexec") or shutil.which("mpirun")
if os.environ.get("PYBLASNN_REQUIRE_MPI") == "1" and not (HAVE_MPI4PY and MPIEXEC):
    raise RuntimeError("PYBLASNN_REQUIRE_MPI=1 but mpi4py or mpiexec is missing")
needs_mpi4py = pytest.mark.skipif(not HAVE_MPI4PY, reason="mpi4py is not installed "
                                  "(pip install -e \".[mpi]\")")
needs_mpiexec = pytest.mark.skipif(not (HAVE_MPI4PY and MPIEXEC), reason="mpi4py or mpiexec "
                                   "is not installed (pip install -e \".[mpi]\")")


@pytest.mark.parametrize("n", [0, 1, 2, 7, 100, 101])
@pytest.mark.parametrize("p", [1, 2, 3, 8])
def test_shares_tile_the_batch_and_differ_by_at_most_one(n, p):
    bounds = [share_bounds(5, 5 + n, p, r) for r in range(p)]
    assert bounds[0][0] == 5 and bounds[-1][1] == 5 + n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == n


def _fit(m, **kw):
    x, y = worker.data()
    return m.fit(x, y, batch_size=100, seed=1, verbose=0, **kw)


@needs_mpi4py
def test_one_rank_is_bitwise_the_plain_fit():
    a, b = worker.model(), worker.model()
    ha, hb = _fit(a, epochs=2), _fit(b, epochs=2, distributed=True)
    assert ha.history == hb.history
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def test_resume_from_a_checkpoint_ends_where_the_full_run_ends(tmp_path):
    """ModelCheckpoint after every epoch; load it and fit(initial_epoch=2): the weights and
    the last epoch's logs are those of the uninterrupted 3-epoch run, bit for bit."""
    full = worker.model("rmsprop")
    h_full = _fit(full, epochs=3)
    first = worker.model("rmsprop")
    ckpt = str(tmp_path / "ckpt-{epoch}.npz")
    _fit(first, epochs=2, callbacks=[callbacks.ModelCheckpoint(ckpt)])
    assert sorted(os.listdir(tmp_path)) == ["ckpt-1.npz", "ckpt-2.npz"]
    resumed = pyblasnn.models.load_model(ckpt.format(epoch=2))
    h = _fit(resumed, epochs=3, initial_epoch=2)
    assert h.epoch == [2] and h.history["loss"] == h_full.history["loss"][2:]
    assert all(np.array_equal(u, v) for u, v in zip(full.get_weights(), resumed.get_weights()))


def test_bad_arguments():
    m = worker.model()
    with pytest.raises(ValueError, match="fit: initial_epoch must be an int in"):
        _fit(m, epochs=2, initial_epoch=3)
    with pytest.raises(TypeError, match="fit: distributed must be a bool"):
        _fit(m, epochs=1, distributed="yes")
    with pytest.raises(TypeError, match="ModelCheckpoint: filepath must be a path"):
        callbacks.ModelCheckpoint(3)


def _mpiexec(scenario, out, timeout=180):
    # the worker imports the pyblasnn under test, wherever it is installed
    env = dict(os.environ, OMP_NUM_THREADS="1")
    here = os.path.dirname(os.path.dirname(os.path.abspath(pyblasnn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return subprocess.run([MPIEXEC, "-n", "2", sys.executable, worker.__file__, scenario,
                           str(out)], capture_output=True, text=True, timeout=timeout, env=env)


def _mpiexec_ok(scenario, out):
    """Run a scenario on 2 ranks, check it succeeded, return rank 0's results."""
    run = _mpiexec(scenario, out)
    assert run.returncode == 0, run.stderr[-3000:]
    return np.load(out)


@needs_mpiexec
def test_two_ranks_identical_replicas_close_to_one_process(tmp_path):
    out = tmp_path / "fit.npz"
    r = _mpiexec_ok("fit", out)
    assert bool(r["same"]), "the replicas' weights differ between ranks"
    single = worker.model()
    x, y = worker.data()
    h = single.fit(x, y, batch_size=100, epochs=3, seed=1, verbose=0,
                   validation_data=(x[:301], y[:301]))
    for i, w in enumerate(single.get_weights()):
        np.testing.assert_allclose(r[f"w{i}"], w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r["loss"], h.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(r["val_loss"], h.history["val_loss"], rtol=1e-5)
    # evaluate over both ranks' shares is the whole set's evaluation (of rank 0's weights)
    single.set_weights([r[f"w{i}"] for i in range(len(single.weights))])
    np.testing.assert_allclose(r["ev"], single.evaluate(x, y, batch_size=64, verbose=0),
                               rtol=1e-6)
    saved = pyblasnn.models.load_model(str(out) + ".model.npz")   # rank 0 wrote it
    assert all(np.array_equal(a, r[f"w{i}"]) for i, a in enumerate(saved.get_weights()))
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


@needs_mpiexec
def test_two_runs_are_bitwise_reproducible(tmp_path):
    ra, rb = _mpiexec_ok("fit", tmp_path / "a.npz"), _mpiexec_ok("fit", tmp_path / "b.npz")
    assert all(np.array_equal(ra[k], rb[k]) for k in ra.files)


@needs_mpiexec
def test_tape_gradients_allreduced_are_the_whole_batch_gradient(tmp_path):
    r = _mpiexec_ok("tape", tmp_path / "tape.npz")
    assert bool(r["same"])
    x, y = worker.data()
    w = pyblasnn.Variable(np.linspace(-1, 1, 100, dtype=np.float32).reshape(20, 5))
    with pyblasnn.GradientTape() as tape:   # 97 samples: shares of 48 and 49
        loss = pyblasnn.reduce_mean(pyblasnn.keras.losses.sparse_categorical_crossentropy(
            y[:97], pyblasnn.nn.softmax(pyblasnn.matmul(x[:97], w))))
    np.testing.assert_allclose(r["g"], tape.gradient(loss, [w])[0].numpy(), rtol=1e-5,
                               atol=1e-7)


@needs_mpiexec
def test_an_exception_on_one_rank_aborts_the_job(tmp_path):
    run = _mpiexec("fail", tmp_path / "x.npz", timeout=120)   # a hang fails the timeout
    assert run.returncode != 0
    assert "rank failure on purpose" in run.stderr
    assert "aborting every rank" in run.stderr
