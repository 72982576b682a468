"""Ctrl-C on a step boundary: SIGINT is held back while a section that must not be split runs.

Python raises ``KeyboardInterrupt`` between any two bytecodes, so a Ctrl-C during an optimizer
step could land after one parameter's update and before the next one's, leaving the model
with weights of two different steps. ``SigintDeferral`` routes SIGINT through itself for the
duration of ``fit`` (``install`` / ``uninstall``, once per call: the handler is swapped twice
per fit, not per step); inside ``with deferral:`` a SIGINT is only recorded, and it is passed
on to the previous handler (Python's default raises ``KeyboardInterrupt``) when the section
ends. Entering and leaving a section costs two attribute updates.

Signal handlers can only be set in the main thread: elsewhere ``install`` does nothing and a
section is just a counter (a worker thread never receives KeyboardInterrupt anyway).
"""
import signal
import threading

__all__ = ["SigintDeferral"]


class SigintDeferral:
    """Defers SIGINT to the end of each ``with`` section while installed (see the module)."""

    __slots__ = ("_depth", "_pending", "_previous", "_installed")

    def __init__(self):
        self._depth = 0
        self._pending = False
        self._previous = None
        self._installed = False

    def __repr__(self):
        return (f"SigintDeferral(installed={self._installed}, depth={self._depth}, "
                f"pending={self._pending})")

    def install(self):
        """Take over SIGINT (main thread only; a no-op elsewhere). Returns whether it did."""
        if self._installed or threading.current_thread() is not threading.main_thread():
            return False
        previous = signal.getsignal(signal.SIGINT)
        if previous is None:                # a handler set outside Python: leave it alone
            return False
        self._pending = False
        self._previous = previous           # set first: a SIGINT may arrive the moment
        signal.signal(signal.SIGINT, self._handle)     # the handler is in place
        self._installed = True
        return True

    def uninstall(self):
        """Give SIGINT back to the handler that was there before ``install``."""
        if self._installed:
            self._installed = False
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame):
        if self._depth:
            self._pending = True
        else:
            self._forward(frame)

    def _forward(self, frame):
        previous = self._previous
        if callable(previous):
            previous(signal.SIGINT, frame)          # default_int_handler: KeyboardInterrupt
        elif previous == signal.SIG_DFL:            # the default action: the process ends
            self.uninstall()
            signal.raise_signal(signal.SIGINT)
        # SIG_IGN: the signal is dropped, as it would have been

    def __enter__(self):
        self._depth += 1
        return self

    def __exit__(self, exc_type, exc, tb):
        self._depth -= 1
        if self._pending and not self._depth:
            self._pending = False
            self._forward(None)
        return False
