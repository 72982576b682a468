"""``python -m pyblasnn``: --help, argument errors (one line each), Ctrl-C and a short real run."""
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

import pyblasnn
from pyblasnn import __main__ as cli
from pyblasnn import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pyblasnn.__file__)))


def run_cli(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "pyblasnn", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)


def test_help_lists_every_option():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for option in ("--epochs", "--batch-size", "--optimizer", "--learning-rate", "--momentum",
                   "--threads", "--seed", "--dataset", "--save", "--plot", "--verbose"):
        assert option in result.stdout, option
    assert "fashion_mnist" in result.stdout and "rmsprop" in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (["--optimizer", "adam"], "invalid choice: 'adam'"),
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--batch-size", "-3"], "--batch-size must be >= 1"),
    (["--dataset", "cifar10"], "invalid choice: 'cifar10'"),
    (["--learning-rate", "-1"], "learning_rate must be > 0"),
    (["--momentum", "1.5"], "momentum must be in [0, 1)"),
    (["--threads", "0"], "--threads must be >= 1 or -1"),
])
def test_bad_arguments_exit_2_with_a_message(args, fragment, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_dataset", lambda name: pytest.fail("must not load data"))
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    assert fragment in capsys.readouterr().err


def test_plot_without_matplotlib_says_so(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # import fails
    monkeypatch.setattr(cli, "load_dataset", lambda name: pytest.fail("must not load data"))
    with pytest.raises(SystemExit) as info:
        cli.main(["--plot", "out.png"])
    assert info.value.code == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err


@pytest.mark.slow
def test_short_real_run_prints_results_and_saves(tmp_path):
    path = tmp_path / "model.npz"
    result = run_cli("--epochs", "1", "--train-samples", "3000", "--batch-size", "100",
                     "--seed", "1", "--threads", "1", "--save", str(path), "--verbose", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "SGD(learning_rate=0.1, momentum=0.9, nesterov=False)" in out
    assert "3000 train / 10000 test" in out and "1 threads" in out
    assert "Epoch 1/1" in out
    assert re.search(r"^30/30 - \d+s - loss: \d\.\d{4} - accuracy: \d\.\d{4}", out, re.M), out
    acc = float(re.search(r"test accuracy: (\d\.\d{4})", out).group(1))
    assert 0.8 < acc <= 1.0                      # 3000 images, one epoch
    assert re.search(r"seconds per epoch: \d+\.\d\d  samples per second: [\d,]+", out)
    model = models.load_model(path)
    assert model.count_params() == 407050 and repr(model.optimizer).startswith("SGD(")


# -- bad input: one line on stderr, a non-zero exit, never a traceback ----------------------

BAD_ARGUMENTS = [
    (["--threads", "200000"], "--threads 200000: set_num_threads"),
    (["--threads", "0"], "--threads must be >= 1 or -1, got 0"),
    (["--threads", "-7"], "--threads must be >= 1 or -1, got -7"),
    (["--epochs", "-1"], "--epochs must be >= 1, got -1"),
    (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--learning-rate", "nan"], "learning_rate must be finite, got nan"),
    (["--learning-rate", "inf"], "learning_rate must be finite, got inf"),
    (["--learning-rate", "-1"], "learning_rate must be > 0, got -1.0"),
    (["--momentum", "2"], "momentum must be in [0, 1), got 2.0"),
    (["--optimizer", "rmsprop", "--momentum", "-0.5"], "momentum must be in [0, 1), got -0.5"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["--save", "{missing}/model.npz"], "does not exist"),
    (["--save", "{tmp}"], "is a directory"),
    (["--train-samples", "0"], "--train-samples must be >= 1, got 0"),
    (["--verbose", "3"], "argument --verbose: invalid choice: 3"),
]


@pytest.mark.parametrize("args, fragment", BAD_ARGUMENTS,
                         ids=[" ".join(args) for args, _ in BAD_ARGUMENTS])
def test_bad_argument_gives_one_line_and_exit_2(args, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_dataset", lambda name: pytest.fail("must not load data"))
    args = [a.format(missing=tmp_path / "missing", tmp=tmp_path) for a in args]
    threads = pyblasnn.get_num_threads()
    try:
        with pytest.raises(SystemExit) as info:     # any other exception fails the test
            cli.main(args)
    finally:
        pyblasnn.set_num_threads(threads)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pyblasnn: error: ") and fragment in lines[0], lines[0]
    assert lines[0].endswith("(see pyblasnn --help)") and out == ""


def test_bad_arguments_in_a_real_process_print_no_traceback(tmp_path):
    """A few of the cases above as ``python -m pyblasnn``, run side by side; offline and
    with an empty data directory, so an argument that slipped through fails fast."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYBLASNN_HOME=str(tmp_path / "home"), PYBLASNN_OFFLINE="1")
    cases = [BAD_ARGUMENTS[0], BAD_ARGUMENTS[6], BAD_ARGUMENTS[11]]
    procs = [subprocess.Popen([sys.executable, "-m", "pyblasnn", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for args, _ in cases]
    try:
        results = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for (args, fragment), proc, (out, err) in zip(cases, procs, results):
        assert "Traceback" not in err and out == "", (args, err)
        assert proc.returncode == 2, (args, proc.returncode, err)
        assert len(err.splitlines()) == 1 and fragment in err, (args, err)


def test_a_value_error_from_set_num_threads_becomes_one_line(capsys, monkeypatch):
    def refuse(n):
        raise ValueError(f"set_num_threads: n={n} is above the maximum")

    monkeypatch.setattr(pyblasnn, "set_num_threads", refuse)
    monkeypatch.setattr(cli, "load_dataset", lambda name: pytest.fail("must not load data"))
    with pytest.raises(SystemExit) as info:
        cli.main(["--threads", "64"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == ("pyblasnn: error: --threads 64: set_num_threads: n=64 is above the maximum "
                   "(see pyblasnn --help)\n")


# -- Ctrl-C: save what was trained, one line, exit 130 --------------------------------------

# The CLI on synthetic data (64 features, 10 classes), so the test needs no MNIST.
FAKE_DATA_CLI = """\
import sys
import numpy as np
from pyblasnn import __main__ as cli

def load_dataset(name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048 + 256, 64)).astype(np.float32)
    y = (x[:, :10].argmax(axis=1)).astype(np.uint8)
    return (x[:2048], y[:2048]), (x[2048:], y[2048:])

cli.load_dataset = load_dataset
sys.exit(cli.main(sys.argv[1:]))
"""


def test_ctrl_c_saves_the_last_completed_step_and_exits_130(tmp_path):
    path = tmp_path / "model.npz"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", FAKE_DATA_CLI, "--epochs", "100000",
                             "--batch-size", "128", "--seed", "0", "--verbose", "2",
                             "--save", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    try:
        seen = []
        for line in proc.stdout:            # wait until two epochs are done
            seen.append(line)
            if line.startswith("Epoch 3/"):
                break
        else:
            pytest.fail(f"the CLI ended early: {''.join(seen)} {proc.stderr.read()}")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err, err
    assert proc.returncode == 130, (proc.returncode, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    m = re.fullmatch(r"pyblasnn: interrupted after (\d+) training steps \((\d+) of 100000 "
                     r"epochs complete\); saved the model as of step (\d+) to (.+)", lines[0])
    assert m, lines[0]
    steps, epochs = int(m.group(1)), int(m.group(2))
    assert m.group(3) == m.group(1) and m.group(4) == str(path)
    assert steps >= 2 * 16 and epochs >= 2 and epochs in (steps // 16, steps // 16 - 1)
    model = models.load_model(path)
    assert model.optimizer.iterations == steps
    # the same run, stopped after exactly that many steps, has the same weights bit for bit
    namespace = {}
    exec(FAKE_DATA_CLI.split("cli.load_dataset = ")[0], namespace)
    (x, y), _ = namespace["load_dataset"]("mnist")
    twin = pyblasnn.Sequential([pyblasnn.layers.Dense(512, activation="relu"),
                                pyblasnn.layers.Dense(10, activation="softmax")])
    twin.compile(optimizer=pyblasnn.optimizers.SGD(0.1, momentum=0.9),
                 loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class StopAt(pyblasnn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations == steps:
                self.model.stop_training = True

    twin.fit(x, y, epochs=epochs + 1, batch_size=128, seed=0, verbose=0, callbacks=[StopAt()])
    assert twin.optimizer.iterations == steps
    for got, want in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_plot_dir_writes_the_report_figures(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    x = rng.random((300, 784), dtype=np.float32)
    y = rng.integers(0, 10, 300)
    monkeypatch.setattr(cli, "load_dataset", lambda name: ((x[:200], y[:200]), (x[200:], y[200:])))
    out = tmp_path / "figures"
    assert cli.main(["--epochs", "1", "--verbose", "0", "--plot", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["confident_errors.png", "confusion.png", "history.png", "test_digits.png"]
    assert all((out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)
    assert "saved figures:" in capsys.readouterr().out


def test_plot_onto_a_file_is_refused(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(cli, "load_dataset", lambda name: pytest.fail("must not load data"))
    target = tmp_path / "a.png"
    target.write_bytes(b"")
    with pytest.raises(SystemExit):
        cli.main(["--plot", str(target)])
    assert "is not a directory" in capsys.readouterr().err
