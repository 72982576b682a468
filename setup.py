"""Build the compiled kernels of pyblasnn.

Every ``kernels/<name>.pyx`` becomes the extension module ``pyblasnn._kernels.<name>``;
the C GEMM engine in ``kernels/gemm/`` is linked into the modules that use it.

OpenMP: the C compiler is probed for ``-fopenmp``; when it is missing (or when
``PYBLASNN_OPENMP=0``) the kernels are built serially and a warning is printed.
``PYBLASNN_OPENMP=1`` makes a missing OpenMP an error instead of a warning.
No ``-march=native``: the AVX2/FMA paths are compiled per function with
``__attribute__((target(...)))`` and chosen at run time.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = os.path.join("kernels")
GEMM_SOURCES = sorted(glob.glob(os.path.join(KERNELS, "gemm", "*.c")))
# Headers every module may include: listed so that editing one triggers a rebuild.
HEADERS = sorted(glob.glob(os.path.join(KERNELS, "*.h")) + glob.glob(os.path.join(KERNELS, "gemm", "*.h")))
USES_GEMM = {"linalg"}

OPENMP_PROBE = r"""
#include <omp.h>
int main(void) { int n = 0;
#pragma omp parallel reduction(+:n)
  n += 1;
  return omp_get_max_threads() > 0 && n > 0 ? 0 : 1; }
"""


def _compiler_command():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return cc.split()


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
        raise SystemExit(message.replace("WARNING", "ERROR") + " and PYBLASNN_OPENMP=1 was set")
    print(message)
    return [], []


def extensions():
    omp_compile, omp_link = openmp_flags()
    base_compile = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-std=c11"]
    if sys.platform == "win32":
        base_compile = ["/O2"]
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    if omp_compile:
        macros.append(("PYBLASNN_OPENMP", "1"))
    exts = []
    for pyx in sorted(glob.glob(os.path.join(KERNELS, "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        sources = [pyx] + (GEMM_SOURCES if name in USES_GEMM else [])
        exts.append(Extension(
            "pyblasnn._kernels." + name,
            sources=sources,
            depends=HEADERS,
            include_dirs=[KERNELS, numpy.get_include()],
            define_macros=macros,
            extra_compile_args=base_compile + omp_compile,
            extra_link_args=omp_link,
        ))
    return cythonize(exts, compiler_directives={
        "language_level": 3, "boundscheck": False, "wraparound": False,
        "cdivision": True, "initializedcheck": False, "embedsignature": True,
    }, include_path=[KERNELS], quiet=True)


setup(ext_modules=extensions())
