"""StemProver: phase-aware diffusion post-processing for separated music stems.

Submodules are imported lazily so that ``import stemprover`` stays cheap
(the command line answers ``--help`` without loading torch or diffusers).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "StemproverError": "stemprover.errors",
    "seed_everything": "stemprover.project.seed",
    "enhance": "stemprover.inference.enhance",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stemprover' has no attribute {name!r}")
