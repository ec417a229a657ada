"""One seed function: every random draw in StemProver goes through it."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch, and return a NumPy generator for local draws.

    Args:
        seed: Non-negative integer seed.

    Returns:
        ``np.random.default_rng(seed)``; pass it on rather than using global state.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:  # torch is a hard dependency, but seeding must not require it
        return np.random.default_rng(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return np.random.default_rng(seed)


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A generator derived from ``seed`` and a tuple of keys (e.g. a track name).

    Independent streams per item keep results stable when items are added or
    reordered, which a single shared generator would not.
    """
    material = [seed] + [abs(hash_key(k)) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(material))


def hash_key(key: object) -> int:
    """A stable (process-independent) 63-bit hash of ``str(key)``."""

    digest = hashlib.sha256(str(key).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
