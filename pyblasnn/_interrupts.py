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

Entering and leaving ``fit`` must not be split either: a KeyboardInterrupt between taking the
model's training lock and the ``try`` that releases it leaves the model locked for good, and
one raised inside ``install`` (``signal.signal`` runs pending handlers before it returns) left
this handler in place after ``fit``. CPython runs signal handlers only at a call (a Python
function's first instruction, or right after a C function returns) and at a loop's backward
jump, so the caller holds SIGINT around both ends:

    deferral = SigintDeferral(held=True)    # a section open from the start
    try:
        deferral.install()                  # from here a SIGINT is only recorded
        ...take the lock...
        deferral.release()                  # close that section: a SIGINT is raised now
        ...train...
    finally:
        deferral.depth += 1                 # inline, no call: nothing can run before it
        ...release the lock...
        deferral.uninstall()                # hands back, then raises a recorded SIGINT
"""
import signal
import threading

__all__ = ["SigintDeferral"]


class SigintDeferral:
    """Defers SIGINT to the end of each ``with`` section while installed (see the module)."""

    __slots__ = ("depth", "_pending", "_previous", "_installed")

    def __init__(self, held=False):
        #: open sections; SIGINT is recorded, not raised, while it is > 0 (the module says
        #: when to increment it inline instead of entering a section)
        self.depth = 1 if held else 0
        self._pending = False
        self._previous = None
        self._installed = False

    def __repr__(self):
        return (f"SigintDeferral(installed={self._installed}, depth={self.depth}, "
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
        self._installed = True              # the handler is in place (uninstall undoes a
        signal.signal(signal.SIGINT, self._handle)     # swap cut short: it restores previous)
        return True

    def uninstall(self):
        """Give SIGINT back to the handler that was there before ``install``, then pass on
        a SIGINT recorded in a section that was never closed (``held`` or ``depth += 1``)."""
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
        if self._pending:
            self._pending = False
            self._forward(None)

    def release(self):
        """Close one section (the one ``held=True`` opened): a SIGINT recorded in it is
        raised now."""
        self.__exit__(None, None, None)

    def _handle(self, signum, frame):
        if self.depth:
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
        self.depth += 1
        return self

    def __exit__(self, exc_type, exc, tb):
        self.depth -= 1
        if self._pending and not self.depth:
            self._pending = False
            self._forward(None)
        return False
