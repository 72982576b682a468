"""``python -m pyblasnn``: --help, argument errors and a short real run."""
import os
import re
import subprocess
import sys

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
