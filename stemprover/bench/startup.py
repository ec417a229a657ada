"""Start-up time of enhancement: a fresh interpreter until the model is ready to process.

    from stemprover.bench.startup import startup_seconds
    startup_seconds("models/default")   # {"startup_seconds": ..., "import_seconds": ...}

Each measurement is a new Python process (nothing is imported or cached in memory yet), timed
from outside, so interpreter start, imports and model loading all count: what a user waits
for between pressing enter and the first segment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROBE = """
import json, sys, time
start = time.perf_counter()
from stemprover.inference.enhance import Enhancer
imported = time.perf_counter()
Enhancer(sys.argv[1], device="cpu")
print(json.dumps({"import_seconds": imported - start,
                  "load_seconds": time.perf_counter() - imported}))
"""


def startup_seconds(model_path: str | os.PathLike, repeats: int = 3) -> dict[str, float]:
    """Median over ``repeats`` fresh processes of the time to a loaded :class:`Enhancer`.

    Returns:
        ``startup_seconds`` (process start to model ready, wall clock from outside),
        ``import_seconds`` (importing enhancement: torch, diffusers, peft) and
        ``load_seconds`` (reading the weights), each the median.
    """
    rows = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", PROBE, str(Path(model_path))],
                              capture_output=True, text=True, check=True, env=_env())
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["startup_seconds"] = time.perf_counter() - start
        rows.append(row)
    return {key: float(sorted(row[key] for row in rows)[len(rows) // 2]) for key in rows[0]}


def _env() -> dict[str, str]:
    """This process's environment, with the package importable from where it was loaded."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env
