"""The one error type that StemProver shows to its users.

Every failure caused by the user's input (a missing or corrupt file, NaN samples,
a mismatched config, ...) is raised as :class:`StemproverError` with a one-line
message that names the file and the problem. The command line catches it, prints
``stemprover: error: <message>`` and exits with a non-zero code. An operating-system
error becomes one through :func:`os_error`, which names the path and says the cause in
the same words whatever raised it (:func:`os_reason`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading


class StemproverError(Exception):
    """A user-facing error with a single-line message."""

    def __init__(self, message: str):
        # Collapse newlines so the message always fits on one line.
        super().__init__(" ".join(str(message).split()))


_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ELOOP: "too many levels of symbolic links",
    errno.ENOENT: "no such file",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "not a directory",
    errno.ENAMETOOLONG: "file name too long",
    errno.EROFS: "read-only file system",
    errno.EEXIST: "already exists",
    errno.EIO: "input/output error",
    errno.EFBIG: "file too large",
}
"""The phrase shown for an errno; any other errno is shown with the system's own words."""

_ERRNO_OF_TEXT = {os.strerror(code).lower(): code for code in errno.errorcode}


def os_reason(err: OSError | int) -> str:
    """The cause of an operating-system error in a few lowercase words.

    Args:
        err: An OSError, or an errno value.
    """
    code = err if isinstance(err, int) else err.errno
    if code in _REASONS:
        return _REASONS[code]
    if code is not None:
        return os.strerror(code).lower()
    text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return text.strip().rstrip(".").lower() or type(err).__name__


def errno_of_text(text: str) -> int | None:
    """The errno whose system message is ``text`` ("No space left on device."), or None."""
    return _ERRNO_OF_TEXT.get(text.strip().rstrip(".").lower())


def os_error(err: OSError, path: object = None, action: str = "") -> StemproverError:
    """``<path>: <reason>``, or ``<path>: <action> (<reason>)``, as a StemproverError.

    Args:
        err: The error.
        path: The path to name; None names ``err.filename``.
        action: What failed, e.g. "cannot write"; empty where the reason says it all.
    """
    path = err.filename if path is None else path
    if isinstance(path, (str, bytes, os.PathLike)):
        path = os.fsdecode(path)
    where = f"{path}: " if path not in (None, "") else ""
    reason = os_reason(err)
    return StemproverError(f"{where}{action} ({reason})" if action else f"{where}{reason}")


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
