"""The one error type that StemProver shows to its users.

Every failure caused by the user's input (a missing or corrupt file, NaN samples,
a mismatched config, ...) is raised as :class:`StemproverError` with a one-line
message that names the file and the problem. The command line catches it, prints
``stemprover: error: <message>`` and exits with a non-zero code.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class StemproverError(Exception):
    """A user-facing error with a single-line message."""

    def __init__(self, message: str):
        # Collapse newlines so the message always fits on one line.
        super().__init__(" ".join(str(message).split()))


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised where the program is so that cleanup code runs.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_HANDLED = (signal.SIGTERM, signal.SIGHUP)
_held = {"depth": 0, "pending": None}  # touched only by the main thread


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signals_raise():
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread
    (SIGINT already raises KeyboardInterrupt), so temporary files are removed as on any
    error. Elsewhere than in the main thread, it does nothing."""
    if not _on_main_thread():
        yield
        return

    def handler(signum, frame):
        if _held["depth"]:
            _held["pending"] = _held["pending"] or signum
            return
        raise Terminated(signum)

    previous = {sig: signal.signal(sig, handler) for sig in _HANDLED}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def signals_held():
    """A signal that arrives inside waits until the block ends, then raises.

    For the few lines between making a temporary file and remembering its name: a
    :class:`Terminated` raised between the two would leave the file behind.
    """
    if not _on_main_thread():
        yield
        return
    _held["depth"] += 1
    try:
        yield
    finally:
        _held["depth"] -= 1
        pending = _held["pending"] if not _held["depth"] else None
        if pending is not None:
            _held["pending"] = None
            raise Terminated(pending)
