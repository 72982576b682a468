"""The benchmark harness works and its figures are checked — no timing is asserted here.

Runs ``python -m pyblasnn.bench`` in its quick mode on tiny sizes (``--tiny``) and checks the
table, the JSON and the markdown it produced; a deliberately wrong kernel must make its row
FAILED and the exit code non-zero, and a worker process that crashes or hangs must give a
FAILED row with the reason. Faults and fake data reach the worker processes through
``workers.INIT`` and the hooks in _bench_hooks.py.
"""
import json
import os

import numpy as np
import pytest

import _bench_hooks
from pyblasnn.bench import cases, epoch, harness, report, workers
from pyblasnn.bench.check import assert_close
from pyblasnn.bench.numpy_mlp import NumpyMLP, init_params

COLUMNS = ["kernel", "shape", "dtype", "threads", "pyblasnn ms", "NumPy ms", "x NumPy", "GFLOP/s",
           "% peak"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = harness.main(["--tiny", "--no-epoch", "--no-plots", "--out", str(out)])
    data = json.loads((out / "quick.json").read_text())
    return rc, data, buf.getvalue(), (out / "quick.md").read_text(), out


def test_tiny_run_succeeds_and_writes_json(tiny_run):
    rc, data, _, _, out = tiny_run
    assert rc == 0
    assert data["failed"] == 0
    assert data["mode"] == "tiny"
    assert not list(out.glob("*.tmp")), "atomic write left a temporary file behind"
    m = data["machine"]
    for key in ("cpu_model", "cores", "simd", "python", "numpy", "blas", "pyblasnn", "compiler",
                "date", "env"):
        assert key in m
    assert set(m["env"]) >= {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}
    assert m["pyblasnn"].get("gemm_kernel")


def test_every_case_has_a_row_with_consistent_figures(tiny_run):
    _, data, _, _, _ = tiny_run
    rows = data["rows"]
    expected = {c.kernel for c in cases.all_cases("tiny")}
    assert expected <= {r["kernel"] for r in rows}
    for r in rows:
        assert r["status"] in ("ok", "skipped"), r
        if r["status"] == "skipped":
            assert r["reason"]
            continue
        assert {"pyblasnn", "numpy"} <= set(r["times"])
        for stats in r["times"].values():
            assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"]
            assert stats["loops"] >= 1 and stats["repeats"] >= 1
        t = {k: v["median_ms"] for k, v in r["times"].items()}
        assert r["x_numpy"] == pytest.approx(t["numpy"] / t["pyblasnn"])
        if r.get("flops"):
            assert r["gflops"]["pyblasnn"] == pytest.approx(r["flops"] / t["pyblasnn"] / 1e6)
    # the kernels that exist on every branch are never skipped
    for k in ("relu", "add", "add_bcast", "matmul", "matmul_batched", "dot_vec", "book_add_relu"):
        assert any(r["kernel"] == k and r["status"] == "ok" for r in rows), k
    python_rows = [r for r in rows if r["section"] == "pure_python"]
    assert python_rows and all("python" in r["times"] for r in python_rows if r["status"] == "ok")


def test_table_and_markdown(tiny_run):
    _, data, text, md, _ = tiny_run
    header = next(line for line in text.splitlines() if line.startswith("kernel "))
    assert [c.strip() for c in header.split("|")][:len(COLUMNS)] == COLUMNS
    assert "| " + " | ".join(COLUMNS) in md
    ok = [r for r in data["rows"] if r["status"] == "ok" and r["section"] == "kernels"]
    md_rows = [line for line in md.splitlines() if line.startswith("| relu |")]
    assert md_rows and len(md_rows) == sum(r["kernel"] == "relu" for r in ok)


def test_each_library_is_timed_in_a_worker_process_of_its_own(tiny_run):
    """Every timed row names the worker process of each competitor: none is the harness's
    own process, no two competitors of a row share one, and each competitor keeps its
    worker for the whole run (started once, not per row or sample)."""
    _, data, text, md, _ = tiny_run
    assert data["settings"]["separate_processes"] is True
    assert "processes: each library timed in a worker process of its own" in md
    assert "processes: each library" in text
    pids = {}
    for r in data["rows"]:
        if r["status"] != "ok":
            continue
        assert set(r["workers"]) == set(r["times"]), r["kernel"]
        assert os.getpid() not in r["workers"].values()
        assert len(set(r["workers"].values())) == len(r["workers"]), r["workers"]
        for who, pid in r["workers"].items():
            pids.setdefault(who, set()).add(pid)
    assert {"pyblasnn", "numpy", "python"} <= set(pids)
    assert all(len(p) == 1 for p in pids.values()), pids
    # the BLAS record comes from inside the NumPy worker
    m = data["machine"]
    assert m["blas_from"] == f"numpy worker (pid {next(iter(pids['numpy']))})"
    assert any(b.get("user_api") == "blas" and "architecture" in b for b in m["blas"])


def test_isa_measured_peak_and_share_of_peak(tiny_run):
    _, data, text, md, _ = tiny_run
    m = data["machine"]
    from pyblasnn._kernels import linalg
    assert m["isa"] == linalg.isa()
    threads = {str(t) for t in [1] + data["settings"]["threads"]}
    for dtype in ("float32", "float64"):
        assert set(m["measured_peak_gflops"][dtype]) == threads
        assert all(v > 0 for v in m["measured_peak_gflops"][dtype].values())
    assert m["peak_fp32_gflops"] is None or m["peak_fp32_gflops"] > 0   # theoretical, kept
    assert "measured FMA peak" in md
    dots = [r for r in data["rows"] if r["section"] == "kernels" and r["status"] == "ok"
            and r.get("flops")]
    assert {r["dtype"] for r in dots} == {"float32", "float64"}
    for r in dots:
        peak = m["measured_peak_gflops"][r["dtype"]][str(r["threads"])]
        assert r["peak_gflops"] == peak
        assert r["pct_peak"] == pytest.approx(100 * r["gflops"]["pyblasnn"] / peak)
    assert not any("pct_peak" in r for r in data["rows"] if not r.get("flops"))
    matmul = next(line for line in md.splitlines() if line.startswith("| matmul |"))
    assert matmul.split("|")[COLUMNS.index("% peak") + 1].strip().endswith("%")


def test_wrong_kernel_is_failed_and_exit_code_nonzero(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(workers, "INIT", _bench_hooks.wrong_relu)
    rc = harness.main(["--tiny", "--only", "relu", "--no-epoch", "--no-plots",
                       "--out", str(tmp_path)])
    assert rc == 1
    data = json.loads((tmp_path / "partial.json").read_text())
    relu = [r for r in data["rows"] if r["kernel"] == "relu"]
    assert relu and all(r["status"] == "FAILED" and "relu" not in r["times"] for r in relu)
    assert "FAILED relu" in capsys.readouterr().out
    # relu_backward matched --only too and is still right
    assert all(r["status"] == "ok" for r in data["rows"] if r["kernel"] == "relu_backward")


@pytest.mark.parametrize("hook, why", [(_bench_hooks.crashing_relu, "died (exit code 3)"),
                                       (_bench_hooks.hanging_relu, "no answer within 6 s")])
def test_a_worker_that_crashes_or_hangs_gives_a_failed_row(hook, why, tmp_path, monkeypatch):
    """The pyblasnn worker exits, or hangs, inside relu: the relu row is FAILED with the
    reason (within the timeout for the hang), and the next row still runs in a new worker."""
    monkeypatch.setattr(workers, "INIT", hook)
    # the glob selects relu and relu_backward only (not book_add_relu, which calls relu too)
    rc = harness.main(["--tiny", "--only", "[r]elu*", "--no-epoch", "--no-plots",
                       "--worker-timeout", "6", "--out", str(tmp_path)])
    assert rc == 1
    rows = json.loads((tmp_path / "partial.json").read_text())["rows"]
    assert {r["kernel"] for r in rows} == {"relu", "relu_backward"}
    relu = [r for r in rows if r["kernel"] == "relu"]
    assert relu and all(r["status"] == "FAILED" for r in relu)
    assert all(r["reason"].startswith("pyblasnn worker") and why in r["reason"] for r in relu)
    assert all(r["status"] == "ok" for r in rows if r["kernel"] == "relu_backward")


def test_worker_reports_errors_and_survives_them():
    with workers.Workers(timeout_s=60) as pool:
        pid = pool.pid("w")
        with pytest.raises(workers.JobError, match="IndexError"):
            pool.call("w", harness.prepare_competitor, "tiny", 10 ** 6, 1, "numpy")
        assert pool.pid("w") == pid


def test_only_glob_and_thread_list(tmp_path, capsys):
    rc = harness.main(["--tiny", "--only", "matmul_bat*", "--threads", "1,2", "--repeats", "1",
                       "--no-epoch", "--no-plots", "--out", str(tmp_path)])
    assert rc == 0
    data = json.loads((tmp_path / "partial.json").read_text())
    kernels = {r["kernel"] for r in data["rows"]}
    assert kernels == {"matmul_batched", "matmul_batched_backward"}
    assert sorted({r["threads"] for r in data["rows"]}) == [1, 2]
    assert "Thread scaling" in capsys.readouterr().out


def test_bad_arguments():
    with pytest.raises(SystemExit):
        harness.parse_args(["--threads", "0"])
    with pytest.raises(SystemExit):
        harness.parse_args(["--repeats", "0"])
    assert harness.parse_args(["--threads", "2,1,2"]).threads == [1, 2]


def test_plots(tmp_path):
    pytest.importorskip("matplotlib")
    rc = harness.main(["--tiny", "--only", "matmul,relu", "--repeats", "1", "--no-epoch",
                       "--out", str(tmp_path), "--name", "t"])
    assert rc == 0
    for name in ("t-matmul_gflops.png", "t-elementwise_speedup.png", "t-batched_speedup.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_check_rejects_wrong_values_shapes_and_dtypes():
    a = np.ones((3, 4), np.float32)
    assert_close(a.copy(), a, np.float32)
    with pytest.raises(AssertionError):
        assert_close(a * 1.01, a, np.float32)
    with pytest.raises(AssertionError):
        assert_close(a.T, a, np.float32)
    with pytest.raises(AssertionError):
        assert_close(a.astype(np.float64), a, np.float32)
    with pytest.raises(AssertionError):
        assert_close((a,), (a, a), np.float32)


def test_numpy_trainer_learns():
    rng = np.random.default_rng(0)
    x, y = _bench_hooks.synthetic_digits(1024, 0)
    t = NumpyMLP(x, y, learning_rate=0.05, params=init_params(rng))
    before = t.accuracy(x, y)
    for _ in range(3):
        t.epoch()
    assert t.accuracy(x, y) > max(0.9, before)


def test_numpy_softmax_cross_entropy_matches_the_definition():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((7, 10))
    y = rng.integers(0, 10, 7)
    loss, grad = cases.numpy_softmax_cross_entropy(z, y)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(7), y])))
    onehot = np.eye(10)[y]
    np.testing.assert_allclose(grad, (p - onehot) / 7, rtol=1e-12, atol=1e-15)


def test_epoch_row_skips_without_mnist(tmp_path):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"not an npz file")
    row = epoch.run_epochs(1, "tiny", mnist_path=str(bad), trainers=("numpy",))
    assert row["status"] == "skipped" and "MNIST could not be loaded" in row["reason"]


def _optional(module, row, trainer):
    """The trainer of an optional library ran, or says that the library is not importable."""
    if trainer not in row["times"]:
        assert f"{module} not importable" in row["unavailable"][trainer]
        return False
    assert trainer not in row["unavailable"]
    return True


def test_epoch_row_on_synthetic_data(monkeypatch):
    """Every trainer in its own worker, from the same initial weights and shuffles: the
    NumPy and JAX trainers then compute the same model (their accuracies agree); torch
    and jax rows run when importable and say why not otherwise."""
    monkeypatch.setattr(workers, "INIT", _bench_hooks.fake_mnist)
    row = report.derive(epoch.run_epochs(1, "tiny"))
    assert row["status"] == "ok"
    assert row["shape"].endswith("512 train / 188 test samples")
    assert row["times"]["numpy"]["repeats"] == 1
    assert all(0.0 <= a <= 1.0 for a in row["accuracy"].values())
    # pyblasnn either trained or says why not (frontend not merged yet)
    assert ("pyblasnn" in row["times"]) != ("pyblasnn" in row["unavailable"])
    _optional("torch", row, "pytorch")
    if _optional("jax", row, "jax"):
        assert row["accuracy"]["jax"] == pytest.approx(row["accuracy"]["numpy"], abs=0.02)
        assert row["x_jax"]["jax"] == pytest.approx(1.0)
        assert row["x_numpy"]["jax"] == pytest.approx(row["times"]["numpy"]["median_ms"]
                                                      / row["times"]["jax"]["median_ms"])
    pids = list(row["workers"].values())
    assert set(row["workers"]) == set(row["times"])
    assert os.getpid() not in pids and len(set(pids)) == len(pids)
    head, body = report.epoch_table({"rows": [row]})
    assert head[-3:] == ["x NumPy", "x PyTorch", "x JAX"]
    assert [line[0] for line in body] == ["pyblasnn", "NumPy", "PyTorch", "JAX"]


def test_a_trainer_whose_worker_dies_is_reported_and_the_others_run(monkeypatch):
    monkeypatch.setattr(workers, "INIT", _bench_hooks.fake_mnist_and_crashing_numpy_trainer)
    row = epoch.run_epochs(1, "tiny", trainers=("pyblasnn", "numpy"))
    assert row["status"] == "ok" and "pyblasnn" in row["times"]
    assert "numpy" not in row["times"]
    assert row["unavailable"]["numpy"] == ("failed: numpy worker died (exit code 3) during "
                                           "setup_trainer")
    assert any("mnist_epoch[NumPy]: failed: numpy worker died" in line
               for line in report.problems({"rows": [row]}))


def test_from_scratch_row_runs_the_listing_beside_fit(monkeypatch):
    from pyblasnn.bench import tape_epoch
    monkeypatch.setattr(workers, "INIT", _bench_hooks.fake_mnist)
    # the listing beside these tests: an installed pyblasnn has no examples/ next to it
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples",
                        "from_scratch.py")
    listing = tape_epoch.load_listing(path)
    for name in ("NaiveDense", "NaiveSequential", "BatchGenerator", "one_training_step",
                 "update_weights", "fit", "optimizer"):
        assert name in listing, name
    with workers.Workers() as pool:
        row = tape_epoch.run_tape_epochs(1, "tiny", listing_path=path, pool=pool)
        assert row["status"] == "ok", row.get("reason")
        # the listing's fit really trained its model, in its worker
        assert pool.call("from_scratch", _bench_hooks.weights_moved)
    assert set(row["times"]) == {"from_scratch", "sequential_fit"}
    assert len(set(row["workers"].values())) == 2
    assert row["x_fit"] > 0 and all(0 <= a <= 1 for a in row["accuracy"].values())
    head, body = tape_epoch.tape_table([row])
    assert len(body) == 2 and body[0][0].startswith("book listing")


def test_contended_section_runs_in_tiny_mode(tmp_path):
    """The contended section (a busy process started and stopped by the harness; NumPy
    calls interleaved) gives a row per (what, load, threads), bitwise-equal results and
    leaves no busy process behind; the plots (when matplotlib is there) skip its rows, which
    reuse kernel names without the kernel rows' fields. No timing is asserted."""
    import contextlib
    import io

    from pyblasnn.bench import contended
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = harness.main(["--tiny", "--only", "contended,matmul", "--repeats", "1",
                           "--out", str(tmp_path)])
    assert rc == 0, buf.getvalue()
    data = json.loads((tmp_path / "partial.json").read_text())
    rows = [r for r in data["rows"] if r["section"] == "contended"]
    keys = {(r["kernel"], r["shape"], r["load"], r["threads"]) for r in rows}
    whats = {(r["kernel"], r["shape"]) for r in rows}
    assert ("mnist_epoch", "784-512-10") in whats and len(whats) >= 3
    assert keys == {(k, s, load, nt) for k, s in whats for load in contended.LOADS
                    for nt in contended.THREADS}
    for r in rows:
        assert r["status"] == "ok" and r["bitwise_equal"] is True, r
        stats = r["times"]["pyblasnn"]
        assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["max_ms"]
    md = (tmp_path / "partial.md").read_text()
    assert "### Contended" in md and "| busy |" in md and "| numpy |" in md


def test_contended_load_stops_its_busy_process():
    from pyblasnn.bench import contended
    with contended.load("busy") as between:
        between()
    # the process was killed and reaped: no child of ours runs the busy loop any more
    import os
    if not os.path.isdir("/proc"):
        pytest.skip("needs /proc to list child processes")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        assert not (ppid == os.getpid() and contended.BUSY_CODE.encode() in cmd)
