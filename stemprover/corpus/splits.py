"""Which pieces go to which split: by piece, disjoint, deterministic from the seed.

Each split's songs are shared among the sources by their weights (largest remainder).
Each source's pieces are shuffled once with ``rng_for(seed, "pieces", source)`` and dealt
out in order: first to train, then valid, then test. A piece is therefore in at most one
split, and the same config always gives the same plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from stemprover.constants import SPLITS
from stemprover.corpus.config import CorpusConfig
from stemprover.corpus.scores import piece_pool
from stemprover.errors import StemproverError
from stemprover.project.seed import rng_for


@dataclass(frozen=True)
class TrackPlan:
    """One track to render: its id, split, piece id and source."""

    track: str
    split: str
    piece: str
    source: str


def track_id(piece: str) -> str:
    """A folder-safe track id from a piece id: ``"quartet/haydn/opus74no1/movement1"`` ->
    ``"quartet-haydn-opus74no1-movement1"``."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", piece).strip("-")


def allocate(n: int, weights: dict[str, float], rng: np.random.Generator) -> dict[str, int]:
    """Share ``n`` songs among sources in proportion to ``weights`` (largest remainder;
    ties are broken by ``rng``)."""
    names = [s for s, w in weights.items() if w > 0]
    total = sum(weights[s] for s in names)
    quotas = {s: n * weights[s] / total for s in names}
    counts = {s: int(np.floor(q)) for s, q in quotas.items()}
    tiebreak = dict(zip(names, rng.permutation(len(names))))
    order = sorted(names, key=lambda s: (-(quotas[s] - counts[s]), tiebreak[s]))
    for s in order[: n - sum(counts.values())]:
        counts[s] += 1
    return counts


def source_pool(source: str, needed: int) -> list[str]:
    """Piece ids available for ``source`` (pop pieces are generated, so never run out)."""
    if source == "pop":
        return [f"pop/{i:04d}" for i in range(needed)]

    return list(piece_pool(source))


def plan_tracks(cfg: CorpusConfig) -> list[TrackPlan]:
    """Every track of the corpus, in split order (train, valid, test).

    Raises:
        StemproverError: when a source has fewer pieces than the splits ask for.
    """
    counts = {
        split: allocate(cfg.n_songs(split), cfg.sources, rng_for(cfg.seed, "allocate", split))
        for split in SPLITS
    }
    plans = []
    for source in cfg.sources:
        needed = sum(counts[split].get(source, 0) for split in SPLITS)
        if needed == 0:
            continue
        pool = source_pool(source, needed)
        if len(pool) < needed:
            raise StemproverError(
                f"corpus: {needed} {source} songs requested but only {len(pool)} pieces exist"
            )
        if source != "pop":
            pool = [pool[i] for i in rng_for(cfg.seed, "pieces", source).permutation(len(pool))]
        position = 0
        for split in SPLITS:
            for piece in pool[position : position + counts[split].get(source, 0)]:
                plans.append(TrackPlan(track_id(piece), split, piece, source))
            position += counts[split].get(source, 0)
    return sorted(plans, key=lambda p: (SPLITS.index(p.split), p.track))
