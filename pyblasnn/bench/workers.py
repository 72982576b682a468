"""Worker processes: every library of a benchmark row is timed in a process of its own.

An idle thread pool keeps its cores busy for a while after a call (OpenBLAS threads spin
~0.1 s, libgomp's less), so two libraries timed in one process can each pay for the other's
pool. The harness therefore starts one worker per competitor ("pyblasnn", "numpy",
"python", "pytorch", "jax", ...) with the spawn start method, once per run, and keeps it
for every row; the parent only schedules (A B A B across the workers) and compares.

Protocol: the parent sends a *job*, a module-level function (pickled by reference) and
its arguments; the worker runs ``job(state, *args)``, where ``state`` is the worker's own
dict (whatever earlier jobs left there: a case's operands, the callable being timed, a
trainer), and sends back the return value. Failures never hang the parent:

- an exception raised by a job comes back and is raised in the parent: ``Unavailable``
  (and its subclasses) as itself, anything else as ``JobError`` with its type and message;
- a worker that dies, or gives no answer within the timeout (it is then killed), raises
  ``WorkerFailed``; the pool starts a fresh process under that name at its next use.
"""
import contextlib
import multiprocessing
import os

from .discover import Unavailable

#: Seconds a worker may take to start or to answer one job before it is killed.
DEFAULT_TIMEOUT_S = 300.0
#: Called as ``INIT(name)`` in every new worker before it serves jobs; None in a real run
#: (tests plant a broken kernel or fake data with it). Must be a module-level function.
INIT = None


class WorkerFailed(Exception):
    """A worker died or did not answer in time; str(exc) says which and why."""


class JobError(Exception):
    """A job raised an exception in its worker; str(exc) is its type and message."""


def reason(exc):
    """One line (at most 400 characters) naming an exception and its message."""
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    text = " | ".join(lines[:4])
    if isinstance(exc, (WorkerFailed, JobError)):
        return text[:400]
    return f"{type(exc).__name__}: {text}"[:400]


def _serve(conn, name, init):
    """The worker's main loop: run jobs until the parent sends None or goes away."""
    if init is not None:
        init(name)
    state = {"name": name}
    conn.send(os.getpid())
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        job, args = message
        try:
            reply = ("ok", job(state, *args))
        except Unavailable as exc:
            reply = ("unavailable", exc)
        except Exception as exc:  # reported to the parent; the worker goes on serving
            reply = ("error", reason(exc))
        conn.send(reply)


class Worker:
    """One spawned process answering jobs over a pipe."""

    def __init__(self, name, timeout_s=DEFAULT_TIMEOUT_S):
        self.name, self.timeout_s = name, timeout_s
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, name, INIT),
                                   name=f"pyblasnn-bench-{name}", daemon=True)
        self.process.start()
        child.close()
        self.pid = self._receive("start")

    def call(self, job, *args):
        """Run ``job(state, *args)`` in the worker and return its result."""
        what = getattr(job, "__name__", str(job))
        try:
            self.conn.send((job, args))
        except OSError:
            raise self._died(what) from None
        kind, value = self._receive(what)
        if kind == "unavailable":
            raise value
        if kind == "error":
            raise JobError(value)
        return value

    def _receive(self, what):
        if not self.conn.poll(self.timeout_s):
            self.kill()
            raise WorkerFailed(f"{self.name} worker: no answer within {self.timeout_s:g} s "
                               f"({what}); killed")
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            raise self._died(what) from None

    def _died(self, what):
        self.kill()
        return WorkerFailed(f"{self.name} worker died (exit code {self.process.exitcode}) "
                            f"during {what}")

    def close(self):
        """Ask the worker to exit; kill it when it does not within a few seconds."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(5)
        self.kill()

    def kill(self):
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


class Workers:
    """The run's workers, one per competitor name, each started at its first use."""

    def __init__(self, timeout_s=DEFAULT_TIMEOUT_S):
        self.timeout_s = timeout_s
        self._workers = {}

    def pid(self, name):
        """The process id of `name`'s worker (started if needed)."""
        return self._worker(name).pid

    def _worker(self, name):
        if name not in self._workers:
            self._workers[name] = Worker(name, self.timeout_s)
        return self._workers[name]

    def call(self, name, job, *args):
        """Run a job in `name`'s worker; a worker that failed is dropped (the next call
        starts a fresh one) and the WorkerFailed raised."""
        try:
            return self._worker(name).call(job, *args)
        except WorkerFailed:
            self._workers.pop(name, None)
            raise

    def close(self):
        while self._workers:
            self._workers.popitem()[1].close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def using(pool=None):
    """``pool``, or a pool of its own for the duration when None."""
    if pool is not None:
        yield pool
        return
    with Workers() as own:
        yield own
