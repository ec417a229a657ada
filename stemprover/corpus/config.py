"""The corpus config: how many songs, how long, from which sources, through which soundfonts.

Profiles fill it from the ``corpus:`` section of ``notebooks/params/<profile>.yaml``::

    cfg = build(CorpusConfig, load_profile("smoke")["corpus"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from stemprover.constants import SPLITS, STEMS
from stemprover.errors import StemproverError

SOURCES = ("pop", "bach", "quartet", "palestrina")
"""Where songs come from: procedural pop, and three music21 corpus collections."""

CORPUS_VERSION = 2
"""Bumped whenever rendering changes, so that stale tracks are re-rendered."""


def _default_sources() -> dict[str, float]:
    # Half pop (the closest to what separators meet), half classical (real voice leading).
    return {"pop": 0.5, "bach": 0.25, "quartet": 0.15, "palestrina": 0.1}


def _default_soundfonts() -> dict[str, str]:
    # The test split hears different instrument samples than training did.
    return {"train": "FluidR3_GM", "valid": "FluidR3_GM", "test": "MuseScore_General"}


def _default_stem_levels() -> dict[str, tuple[float, float]]:
    # RMS level ranges in dBFS; vocals sit slightly on top, as in a produced mix.
    return {
        "vocals": (-21.0, -16.0),
        "drums": (-25.0, -19.0),
        "bass": (-25.0, -19.0),
        "other": (-24.0, -18.0),
    }


@dataclass
class CorpusConfig:
    """What :func:`stemprover.corpus.build.render_corpus` renders.

    Every random choice (pieces, excerpt, tempo, instruments, gains, panning, reverb)
    is drawn from ``stemprover.project.seed.rng_for(seed, ...)`` keyed by the piece, so a track
    does not change when other tracks are added.
    """

    seed: int = 0  # the one seed of the corpus
    n_train: int = 3  # songs in the training split
    n_valid: int = 1  # songs in the validation split
    n_test: int = 2  # songs in the held-out test split
    song_seconds: float = 6.0  # length of every song, s
    sources: dict[str, float] = field(default_factory=_default_sources)  # weights per source
    soundfonts: dict[str, str] = field(default_factory=_default_soundfonts)  # split -> name/path
    voice: Literal["festival", "gm"] = "festival"  # festival singing, or a GM choir patch
    classical_drums: float = 1.0  # probability of light percussion under a classical piece
    vocal_air_db: float = -26.0  # level of the exciter's >6 kHz "air" on Festival's 8 kHz voice
    stem_levels: dict[str, tuple[float, float]] = field(default_factory=_default_stem_levels)
    workers: int = 1  # worker processes; 1 renders in this process

    def __post_init__(self) -> None:
        for name in ("n_train", "n_valid", "n_test"):
            if getattr(self, name) < 0:
                raise StemproverError(f"CorpusConfig.{name} must be >= 0")
        if self.n_train + self.n_valid + self.n_test == 0:
            raise StemproverError("CorpusConfig: the corpus needs at least one song")
        if not 1.0 <= self.song_seconds <= 600.0:
            raise StemproverError(
                f"CorpusConfig.song_seconds must be in [1, 600] s, got {self.song_seconds}"
            )
        unknown = sorted(set(self.sources) - set(SOURCES))
        if unknown:
            raise StemproverError(
                f"CorpusConfig.sources: unknown source(s) {unknown}; known: {list(SOURCES)}"
            )
        if any(w < 0 for w in self.sources.values()) or sum(self.sources.values()) <= 0:
            raise StemproverError("CorpusConfig.sources: weights must be >= 0 with a positive sum")
        missing = sorted(set(SPLITS) - set(self.soundfonts))
        if missing:
            raise StemproverError(f"CorpusConfig.soundfonts: no soundfont for split(s) {missing}")
        if set(self.stem_levels) != set(STEMS):
            raise StemproverError(f"CorpusConfig.stem_levels: needs exactly the stems {STEMS}")
        if not 0.0 <= self.classical_drums <= 1.0:
            raise StemproverError("CorpusConfig.classical_drums is a probability in [0, 1]")
        if self.workers < 1:
            raise StemproverError("CorpusConfig.workers must be >= 1")

    def n_songs(self, split: str) -> int:
        """Number of songs in ``split``."""
        return {"train": self.n_train, "valid": self.n_valid, "test": self.n_test}[split]
