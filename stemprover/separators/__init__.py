"""Separators behind one interface: oracles, degraded oracles, classical, neural, external.

    from stemprover.separators import get_separator
    stems = get_separator("hpss").separate(mixture, 44100)

Imports ``dsp``, ``metrics``, ``corpus`` (to train the small neural separators) and ``project``.
"""

from stemprover.separators.base import (
    Separator,
    available_separators,
    get_separator,
    register,
)
from stemprover.separators.training import train_neural_separator

__all__ = [
    "Separator",
    "available_separators",
    "get_separator",
    "register",
    "train_neural_separator",
]
