"""Build the compiled kernels of pyblasnn.

Every ``kernels/<name>.pyx`` becomes the extension module ``pyblasnn._kernels.<name>``;
the C GEMM engine in ``kernels/gemm/`` is linked into the modules that use it. The modules
the package cannot work without are listed once, in ``KERNEL_MODULES``: a tree that lacks
any of their sources (or the GEMM engine's) stops with an error on every command, so no
build can produce a package without its kernels.

OpenMP: the C compiler is probed for ``-fopenmp``; when it is missing (or when
``PYBLASNN_OPENMP=0``) the kernels are built serially and a warning is printed.
``PYBLASNN_OPENMP=1`` makes a missing OpenMP an error instead of a warning.
No ``-march=native``: the SIMD paths are compiled per function with
``__attribute__((target(...)))`` and chosen at run time.

Optimisation: ``-O3``, unless ``CFLAGS`` already names an ``-O`` level (then that one).
Debug info: a wheel (``python -m build``, ``pip wheel``, a non-editable ``pip install``) is
a release build, compiled with ``-g0`` and linked with ``-s``; ``pip install -e .`` and
``python setup.py build_ext --inplace`` keep the interpreter's ``-g``. ``PYBLASNN_STRIP=0|1``
forces either choice.

Sanitizers: ``PYBLASNN_SANITIZE=address,undefined`` (any ``-fsanitize=`` list) compiles with
``-fsanitize=... -fno-omit-frame-pointer -fno-wrapv`` at ``-O1`` (or the ``CFLAGS`` level)
with debug info, and links with ``-fsanitize=...``. See README.md for how to run it.

The OpenMP probe and Cython run only when the extensions are built, so ``sdist`` and the
metadata steps need neither a compiler nor Cython.
"""
import glob
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = "kernels"
#: The compiled modules pyblasnn imports: kernels/<name>.pyx -> pyblasnn._kernels.<name>.
KERNEL_MODULES = ("elementwise", "linalg", "loss", "optim", "threads")
#: The modules the C GEMM engine (kernels/gemm/*.c) is linked into.
USES_GEMM = ("linalg",)

OPENMP_PROBE = r"""
#include <omp.h>
int main(void) { int n = 0;
#pragma omp parallel reduction(+:n)
  n += 1;
  return omp_get_max_threads() > 0 && n > 0 ? 0 : 1; }
"""


def _sources(pattern):
    """Sorted paths matching pattern, relative to the project root (as setuptools wants)."""
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


def kernel_sources():
    """(pyx files, GEMM C files, headers); exit with an error when a needed source is missing."""
    pyx = _sources(os.path.join(KERNELS, "*.pyx"))
    gemm = _sources(os.path.join(KERNELS, "gemm", "*.c"))
    headers = (_sources(os.path.join(KERNELS, "*.h")) + _sources(os.path.join(KERNELS, "*.pxd"))
               + _sources(os.path.join(KERNELS, "gemm", "*.h")))
    found = {os.path.splitext(os.path.basename(p))[0] for p in pyx}
    missing = [f"{KERNELS}/{name}.pyx" for name in KERNEL_MODULES if name not in found]
    if not gemm:
        missing.append(f"{KERNELS}/gemm/*.c")
    if missing:
        sys.exit(f"pyblasnn: ERROR: the kernel sources are missing under {HERE}: "
                 f"{', '.join(missing)}. Build from a git clone or a complete sdist; a "
                 f"package without its compiled kernels cannot work.")
    return pyx, gemm, headers


def _compiler_command():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or ([], []) for a serial build."""
    choice = os.environ.get("PYBLASNN_OPENMP", "").strip()
    if choice == "0":
        print("pyblasnn: PYBLASNN_OPENMP=0 -> building the kernels without OpenMP (serial)")
        return [], []
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        candidates.insert(0, (["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        for cflags, lflags in candidates:
            cmd = _compiler_command() + cflags + [src, "-o", os.path.join(tmp, "probe")] + lflags
            try:
                ok = subprocess.run(cmd, capture_output=True).returncode == 0
            except OSError:
                ok = False
            if ok:
                return cflags, lflags
    message = ("pyblasnn: WARNING: the C compiler does not support OpenMP; "
               "the kernels are built serially (set CC to an OpenMP compiler to get threads)")
    if choice == "1":
        sys.exit(message.replace("WARNING", "ERROR") + " and PYBLASNN_OPENMP=1 was set")
    print(message)
    return [], []


def sanitizers():
    """The -fsanitize list from PYBLASNN_SANITIZE ("address,undefined"), or ""."""
    value = os.environ.get("PYBLASNN_SANITIZE", "").strip()
    if value and not re.fullmatch(r"[a-z0-9_-]+(,[a-z0-9_-]+)*", value):
        sys.exit(f"pyblasnn: ERROR: PYBLASNN_SANITIZE={value!r}: expected a comma-separated "
                 f"-fsanitize list such as address,undefined")
    return value


def release_build(distribution):
    """True when building a wheel (strip debug info); PYBLASNN_STRIP=0|1 overrides."""
    choice = os.environ.get("PYBLASNN_STRIP", "").strip()
    if choice in ("0", "1"):
        return choice == "1"
    return "bdist_wheel" in (distribution.commands or [])


def compile_and_link_args(strip):
    """Compiler and linker flags for the kernels (gcc / clang; MSVC gets /O2)."""
    if sys.platform == "win32":
        return ["/O2"], []
    # The interpreter's CFLAGS come first on the command line and ours after them, so an -O
    # here would override the user's: add one only when CFLAGS names none.
    user_opt = any(f.startswith("-O") for f in shlex.split(os.environ.get("CFLAGS", "")))
    sanitize = sanitizers()
    compile_args = ["-fno-math-errno", "-fno-trapping-math", "-std=c11"]
    link_args = []
    if sanitize:
        # -fno-wrapv undoes Python's -fwrapv so UBSan reports signed overflow; -O1 keeps
        # the stack traces readable and the build quick.
        compile_args += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-fno-wrapv", "-g"]
        link_args.append(f"-fsanitize={sanitize}")
        if not user_opt:
            compile_args.insert(0, "-O1")
        print(f"pyblasnn: sanitizer build (-fsanitize={sanitize})")
    else:
        if not user_opt:
            compile_args.insert(0, "-O3")
        if strip:
            # The last -g wins over the interpreter's; -s drops the symbol table at link
            # time (an extension module needs only its dynamic symbols).
            compile_args.append("-g0")
            if sys.platform != "darwin":
                link_args.append("-s")
            print("pyblasnn: release build (-g0, stripped)")
    return compile_args, link_args


def extensions(strip=False):
    import numpy
    from Cython.Build import cythonize

    pyx_files, gemm_sources, headers = kernel_sources()
    omp_compile, omp_link = openmp_flags()
    compile_args, link_args = compile_and_link_args(strip)
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    if omp_compile:
        macros.append(("PYBLASNN_OPENMP", "1"))
    exts = []
    for pyx in pyx_files:
        name = os.path.splitext(os.path.basename(pyx))[0]
        exts.append(Extension(
            "pyblasnn._kernels." + name,
            sources=[pyx] + (gemm_sources if name in USES_GEMM else []),
            depends=headers,            # editing a header or .pxd triggers a rebuild
            include_dirs=[KERNELS, numpy.get_include()],
            define_macros=macros,
            extra_compile_args=compile_args + omp_compile,
            extra_link_args=link_args + omp_link,
        ))
    return cythonize(exts, compiler_directives={
        "language_level": 3, "boundscheck": False, "wraparound": False,
        "cdivision": True, "initializedcheck": False, "embedsignature": True,
    }, include_path=[KERNELS], quiet=True)


class BuildKernels(build_ext):
    """Probe OpenMP and run Cython when the extensions are built, not on every command."""

    def run(self):
        # Fill in the declared extensions in place: setuptools' finalize_options has
        # already annotated those objects.
        built = {ext.name: ext for ext in extensions(strip=release_build(self.distribution))}
        for ext in self.extensions:
            real = built[ext.name]
            for attr in ("sources", "depends", "include_dirs", "define_macros",
                         "extra_compile_args", "extra_link_args", "language"):
                setattr(ext, attr, getattr(real, attr))
        super().run()


def declared_extensions():
    """One Extension per kernel module (its real flags come in BuildKernels): they make
    the wheel platform-specific and list the sources sdist must carry."""
    pyx_files, gemm_sources, headers = kernel_sources()
    return [Extension("pyblasnn._kernels." + os.path.splitext(os.path.basename(p))[0],
                      sources=[p] + gemm_sources, depends=headers) for p in pyx_files]


def require_setuptools(major=77):
    """setuptools reads pyproject.toml's PEP 639 license expression from version 77 on; an
    older one fails with a schema dump. pip's isolated builds fetch a new one by themselves."""
    import setuptools
    have = setuptools.__version__
    if int(have.split(".")[0]) < major:
        sys.exit(f"pyblasnn: ERROR: setuptools >= {major} is needed to build (this Python has "
                 f"{have}): python -m pip install \"setuptools>={major}\" Cython, or "
                 f"python -m pip install -e \".[dev]\"")


KERNEL_EXTENSIONS = declared_extensions()
require_setuptools()
setup(ext_modules=KERNEL_EXTENSIONS, cmdclass={"build_ext": BuildKernels})
