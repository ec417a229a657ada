"""A rendered multitrack corpus of clean stems, with splits by piece.

    from stemprover.corpus import ensure_corpus, list_tracks, load_track
    corpus_dir = ensure_corpus("smoke")                    # renders once, then reuses
    for track_dir in list_tracks(corpus_dir, split="train"):
        audio = load_track(track_dir)                      # mixture + 4 stems, (2, n) float32

Songs come from music21's corpus (Bach chorales, string quartets, Palestrina) and from a
seeded pop generator; instruments are rendered by FluidSynth through GM soundfonts
(FluidR3_GM for train/valid, MuseScore_General for test) and the lead line is sung by
Festival. See :mod:`stemprover.corpus.build` for the folder layout; :mod:`stemprover.corpus.real`
reads the real MUSDB18 track that stempeg ships. Imports ``dsp``, ``metrics`` and ``project`` only.
"""

from stemprover.corpus.build import (
    TrackInfo,
    corpus_config,
    corpus_summary,
    ensure_corpus,
    list_tracks,
    load_track,
    mix_stems,
    read_manifest,
    render_corpus,
    render_track,
)
from stemprover.corpus.config import SOURCES, CorpusConfig
from stemprover.corpus.splits import TrackPlan, plan_tracks

__all__ = [
    "SOURCES",
    "CorpusConfig",
    "TrackInfo",
    "TrackPlan",
    "corpus_config",
    "corpus_summary",
    "ensure_corpus",
    "list_tracks",
    "load_track",
    "mix_stems",
    "plan_tracks",
    "read_manifest",
    "render_corpus",
    "render_track",
]
