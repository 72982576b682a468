"""Keras-style progress bar.

    469/469 [==============================] - 1s 2ms/step - loss: 0.2524 - accuracy: 0.9273

verbose=1 on a terminal redraws the bar in place (carriage return, at most every
``interval`` seconds); verbose=1 to a non-terminal prints only the final line of each epoch;
verbose=2 prints one summary line per epoch (``469/469 - 1s - loss: ... - 1s/epoch -
2ms/step``); verbose=0 prints nothing.
"""
import sys
import time

__all__ = ["Progbar", "format_time"]


def format_time(seconds, unit):
    """' 2ms/step' style: s above one second, ms above a millisecond, else us."""
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/{unit}"
    return f" {seconds * 1e6:.0f}us/{unit}"


def format_value(value):
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


class Progbar:
    """Progress of ``target`` steps; ``update(current, values, finalize=False)``."""

    def __init__(self, target, width=30, verbose=1, interval=0.05, stream=None, dynamic=None):
        self.target = int(target)
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self._stream = stream
        self.dynamic = dynamic
        self._start = time.perf_counter()
        self._last_update = 0.0
        self._prev_width = 0

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    def _is_dynamic(self):
        if self.dynamic is not None:
            return self.dynamic
        isatty = getattr(self.stream, "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:          # closed stream
            return False

    def bar(self, current):
        digits = len(str(self.target))
        text = f"{current:{digits}d}/{self.target} ["
        prog_width = int(self.width * current / self.target) if self.target else self.width
        if prog_width > 0:
            text += "=" * (prog_width - 1)
            text += ">" if current < self.target else "="
        return text + "." * (self.width - prog_width) + "]"

    @staticmethod
    def _values(values):
        return "".join(f" - {k}: {format_value(v)}" for k, v in (values or []))

    def update(self, current, values=None, finalize=False):
        """Show progress at step ``current``; ``values`` is a list of (name, running value)."""
        if self.verbose == 0:
            return
        now = time.perf_counter()
        elapsed = now - self._start
        per_step = elapsed / current if current else 0.0
        if self.verbose == 2 or not self._is_dynamic():
            if not finalize:
                return
            if self.verbose == 2:
                digits = len(str(self.target))
                line = (f"{current:{digits}d}/{self.target} - {elapsed:.0f}s"
                        f"{self._values(values)} -{format_time(elapsed, 'epoch')} -"
                        f"{format_time(per_step, 'step')}")
            else:
                line = (f"{self.bar(current)} - {elapsed:.0f}s{format_time(per_step, 'step')}"
                        f"{self._values(values)}")
            self.stream.write(line + "\n")
            self.stream.flush()
            return
        if not finalize and now - self._last_update < self.interval:
            return
        self._last_update = now
        line = self.bar(current)
        if finalize:
            line += f" - {elapsed:.0f}s{format_time(per_step, 'step')}"
        else:
            eta = per_step * (self.target - current)
            if eta > 3600:
                eta_text = f"{int(eta // 3600)}:{int(eta % 3600) // 60:02d}:{int(eta % 60):02d}"
            elif eta > 60:
                eta_text = f"{int(eta // 60)}:{int(eta % 60):02d}"
            else:
                eta_text = f"{int(eta)}s"
            line += f" - ETA: {eta_text}"
        line += self._values(values)
        pad = " " * max(0, self._prev_width - len(line))
        self._prev_width = len(line)
        self.stream.write("\r" + line + pad + ("\n" if finalize else ""))
        self.stream.flush()
