"""pyblasnn's compiled kernels (built from kernels/ by setup.py).

Before the first kernel module loads the OpenMP runtime, a shorter idle spin is chosen for
its thread pool unless the user chose one: libgomp reads GOMP_SPINCOUNT / OMP_WAIT_POLICY
once, when it is loaded. By default an idle pool thread spins 300,000 pauses (~9 ms on the
Zen machines this was measured on) after every parallel region before it sleeps; on a
loaded machine (another process, or NumPy's OpenBLAS pool in the same loop) that spinning
takes a core from the work that is left. 30,000 (~0.9 ms) still covers the gaps between the
kernels of one training step, so an unloaded run keeps its speed. The variable is set only
while the runtime loads and removed again, so child processes do not inherit it. It has no
effect when another library loaded the same OpenMP runtime first (then set GOMP_SPINCOUNT
or OMP_WAIT_POLICY yourself, before anything is imported).
"""
import os as _os

#: The idle spin (GOMP_SPINCOUNT) pyblasnn asks for when neither GOMP_SPINCOUNT nor
#: OMP_WAIT_POLICY is set.
DEFAULT_SPINCOUNT = "30000"

_set_spin = "GOMP_SPINCOUNT" not in _os.environ and "OMP_WAIT_POLICY" not in _os.environ
if _set_spin:
    _os.environ["GOMP_SPINCOUNT"] = DEFAULT_SPINCOUNT
try:
    from . import threads as _threads  # noqa: F401  (loads the OpenMP runtime)
finally:
    if _set_spin:
        _os.environ.pop("GOMP_SPINCOUNT", None)
#: True when pyblasnn chose the idle spin (the user had set neither variable).
SPINCOUNT_DEFAULTED = _set_spin
