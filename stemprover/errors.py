"""The one error type that StemProver shows to its users.

Every failure caused by the user's input (a missing or corrupt file, NaN samples,
a mismatched config, ...) is raised as :class:`StemproverError` with a one-line
message that names the file and the problem. The command line catches it, prints
``stemprover: error: <message>`` and exits with a non-zero code.
"""

from __future__ import annotations


class StemproverError(Exception):
    """A user-facing error with a single-line message."""

    def __init__(self, message: str):
        # Collapse newlines so the message always fits on one line.
        super().__init__(" ".join(str(message).split()))
