"""Packaging: the import error of a source tree without kernels, a build without kernel
sources, the version's single source, py.typed. Runs against an installed package too
(the tests that need the source tree skip without it)."""
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import pyblasnn

PACKAGE = os.path.dirname(os.path.abspath(pyblasnn.__file__))
SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP_PY = os.path.join(SOURCE_TREE, "setup.py")
needs_source_tree = pytest.mark.skipif(not os.path.isfile(SETUP_PY),
                                       reason="needs the source tree (setup.py)")


def _copy_package_without_kernels(dest):
    shutil.copytree(PACKAGE, os.path.join(dest, "pyblasnn"), ignore=shutil.ignore_patterns(
        "*.so", "*.pyd", "__pycache__"))


def _import_pyblasnn(cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", "import pyblasnn"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_source_tree_without_compiled_kernels_says_so(tmp_path):
    """From a checkout with no .so files (what shadows an installed pyblasnn when Python
    runs in the repository root): one ImportError saying where and what to do."""
    _copy_package_without_kernels(tmp_path)
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "kernels").mkdir()
    result = _import_pyblasnn(tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: pyblasnn is imported from its source tree at "), last
    assert str(tmp_path) in last and "no compiled kernels" in last
    assert "`pip install -e .`" in last and "run from another directory" in last


def test_an_installed_package_without_compiled_kernels_says_reinstall(tmp_path):
    _copy_package_without_kernels(tmp_path)
    last = _import_pyblasnn(tmp_path).stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: pyblasnn at ") and "reinstall" in last, last


def test_a_kernel_that_fails_to_load_keeps_its_own_error(tmp_path):
    """A compiled module that is there but broken is not reported as missing."""
    _copy_package_without_kernels(tmp_path)
    from importlib.machinery import EXTENSION_SUFFIXES
    (tmp_path / "pyblasnn" / "_kernels" / ("threads" + EXTENSION_SUFFIXES[0])).write_bytes(b"no elf")
    last = _import_pyblasnn(tmp_path).stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError") and "no compiled kernels" not in last, last


@needs_source_tree
@pytest.mark.parametrize("remove", ["kernels", "kernels/threads.pyx", "kernels/gemm"])
def test_setup_py_without_kernel_sources_fails_loudly(tmp_path, remove):
    """No build may produce a package without its kernels (an sdist that lost them once
    "Successfully installed" a pyblasnn that could not be imported)."""
    pytest.importorskip("setuptools")
    for name in ("setup.py", "pyproject.toml"):
        shutil.copy(os.path.join(SOURCE_TREE, name), tmp_path)
    shutil.copytree(os.path.join(SOURCE_TREE, "kernels"), tmp_path / "kernels",
                    ignore=shutil.ignore_patterns("*.c", "*.so", "*.o"))
    for c in os.listdir(os.path.join(SOURCE_TREE, "kernels", "gemm")):
        if c.endswith(".c"):
            shutil.copy(os.path.join(SOURCE_TREE, "kernels", "gemm", c), tmp_path / "kernels" / "gemm")
    target = tmp_path / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    result = subprocess.run([sys.executable, "setup.py", "build_ext"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "pyblasnn: ERROR: the kernel sources are missing" in result.stderr, result.stderr
    expected = {"kernels": "kernels/elementwise.pyx", "kernels/threads.pyx": "kernels/threads.pyx",
                "kernels/gemm": "kernels/gemm/*.c"}[remove]
    assert expected in result.stderr
    assert not list(tmp_path.glob("build")), "it built something before failing"


@needs_source_tree
def test_the_version_is_set_in_one_place():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(SOURCE_TREE, "pyproject.toml"), "rb") as f:
        pyproject = tomllib.load(f)
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pyblasnn.__version__"}
    with open(os.path.join(SOURCE_TREE, "CHANGELOG.md"), encoding="utf-8") as f:
        assert f"## {pyblasnn.__version__}" in f.read()


def test_installed_metadata_matches_the_package():
    try:
        meta = importlib.metadata.metadata("pyblasnn")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("pyblasnn is not installed (an in-place build)")
    assert meta["Version"] == pyblasnn.__version__
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert "Topic :: Scientific/Engineering :: Artificial Intelligence" in meta.get_all("Classifier")


def test_the_package_ships_py_typed():
    assert os.path.isfile(os.path.join(PACKAGE, "py.typed"))


_FLAGS = """
import json, runpy, sys
import setuptools
setuptools.setup = lambda **kwargs: None        # read setup.py's functions, build nothing
setuptools.__version__ = "80.0"                 # whichever this Python has
build = runpy.run_path(sys.argv[1])
print(json.dumps(build["compile_and_link_args"](strip=sys.argv[2] == "1")))
"""


def _build_flags(env, strip=False):
    pytest.importorskip("setuptools")
    env = {**{k: v for k, v in os.environ.items()
              if k not in ("CFLAGS", "PYBLASNN_SANITIZE", "PYBLASNN_STRIP")}, **env}
    result = subprocess.run([sys.executable, "-c", _FLAGS, SETUP_PY, "1" if strip else "0"],
                            cwd=SOURCE_TREE, env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@needs_source_tree
def test_release_and_sanitizer_build_flags():
    compile_args, link_args = _build_flags({}, strip=True)
    assert compile_args[0] == "-O3" and compile_args[-1] == "-g0" and link_args == ["-s"]
    # an -O level in CFLAGS is the user's choice: no -O3 after it
    compile_args, _ = _build_flags({"CFLAGS": "-O1"})
    assert not any(f.startswith("-O") for f in compile_args)
    compile_args, link_args = _build_flags({"PYBLASNN_SANITIZE": "address,undefined"}, strip=True)
    assert compile_args[0] == "-O1"
    for flag in ("-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-wrapv", "-g"):
        assert flag in compile_args
    assert "-g0" not in compile_args and link_args == ["-fsanitize=address,undefined"]
    compile_args, _ = _build_flags({"PYBLASNN_SANITIZE": "address", "CFLAGS": "-O2 -g"})
    assert "-fsanitize=address" in compile_args and not any(
        f.startswith("-O") for f in compile_args)
