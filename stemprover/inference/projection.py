"""Mixture projection: the four stems of one song, redistributed over its mixture.

    cleaned = enhance_stems(separated, 44100, model, mixture=song)        # "before" (default)
    cleaned = enhance_stems(separated, 44100, model, mixture=song, projection="none")
    stemprover enhance vocals.wav drums.wav bass.wav other.wav --mixture song.wav --project -o out/

A stem cleaned on its own cannot know what the other three took from the mixture. The four
stems' magnitudes are used as source models of a multichannel Wiener filter
(:func:`stemprover.inference.postfilter.wiener`, Open-Unmix's), which redistributes the
mixture STFT between them: whatever one stem lost and another kept goes back to the stem whose
model claims it, and the four outputs sum to the mixture. The filter can precede the model
(``before``, the default: a predictor, then the generative model that repairs it, the order of
stochastic regeneration), follow it (``after``, as the network and its Wiener step in
Open-Unmix), or both (``both``). Design study row 33 chose ``before`` on the valid split; a
single stem against the rest of the mixture (one source and a residual) lost on every test
set there, so a projection needs all four stems.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from stemprover.constants import STEMS
from stemprover.dsp.audio import load_audio
from stemprover.errors import StemproverError
from stemprover.inference.enhance import EnhanceOptions, Enhancer, enhance
from stemprover.inference.postfilter import PostfilterConfig, scaled_sizes, wiener

PROJECTIONS = ("none", "after", "before", "both")
"""Where the mixture projection goes relative to the model."""


def check_projection(projection: str) -> str:
    if projection not in PROJECTIONS:
        raise StemproverError(
            f"unknown projection {projection!r}; choose one of {', '.join(PROJECTIONS)}"
        )
    return projection


def check_stems(stems: Mapping[str, Any]) -> None:
    missing = [stem for stem in STEMS if stem not in stems]
    if missing:
        raise StemproverError(
            f"mixture projection needs all four stems; missing {', '.join(missing)}"
        )


def project(
    stems: Mapping[str, np.ndarray],
    sample_rate: int,
    mixture: np.ndarray,
    cfg: PostfilterConfig | None = None,
) -> dict[str, np.ndarray]:
    """The four stems ``(C, n)`` redistributed over ``mixture`` ``(C, n)`` by a Wiener filter."""
    check_stems(stems)
    cfg = cfg or PostfilterConfig()
    n_fft, hop = scaled_sizes(cfg, sample_rate)
    return wiener({stem: stems[stem] for stem in STEMS}, mixture, n_fft, hop, cfg)


def enhance_stems(
    stems: Mapping[str, np.ndarray],
    sample_rate: int,
    model: Any = None,
    *,
    mixture: np.ndarray | None = None,
    projection: str = "before",
    **options: Any,
) -> dict[str, np.ndarray]:
    """Clean every stem of one song with ``model``, with the mixture projection around it.

    Args:
        stems: stem -> ``(C, n)`` separator output; all four unless ``projection="none"``.
        sample_rate: Hz.
        model: A loaded model, a model folder, an :class:`Enhancer`, or None (the default).
        mixture: ``(C, n)``: the model's condition, and the sum the projection restores.
        projection: ``"none"``, ``"after"``, ``"before"`` or ``"both"``.
        **options: :class:`EnhanceOptions` fields, as for :func:`enhance`.

    Returns:
        stem -> float32 array of the input's shape.
    """
    check_projection(projection)
    if projection != "none" and mixture is None:
        raise StemproverError("mixture projection needs the mixture")
    if projection != "none":
        check_stems(stems)  # before any model runs
    enhancer = model if isinstance(model, Enhancer) else Enhancer(model, EnhanceOptions(**options))
    current = dict(stems)
    if projection in ("before", "both"):
        current = project(current, sample_rate, mixture)
    current = {
        stem: enhance(audio, sample_rate, enhancer, mixture=mixture)
        for stem, audio in current.items()
    }
    if projection in ("after", "both"):
        current = project(current, sample_rate, mixture)
    return current


def stems_by_name(paths: list[str]) -> dict[str, str]:
    """The four stem files of one song, each known by the stem its file name holds.

    A name holds a stem when the stem's name is one of its words (``song_vocals.wav``,
    ``Bass.flac``, ``03 - drums.wav``); each of the four must be named by exactly one file.

    Raises:
        StemproverError: unless the files are exactly the four stems, once each.
    """
    found: dict[str, list[str]] = {stem: [] for stem in STEMS}
    for path in paths:
        words = set(re.split(r"[^a-z]+", Path(path).name.lower()))
        named = [stem for stem in STEMS if stem in words]
        if len(named) != 1:
            raise StemproverError(
                f"{path}: --project needs files whose names say which one stem they hold "
                f"({', '.join(STEMS)}); this one names {len(named) or 'none'}"
            )
        found[named[0]].append(path)
    wrong = [f"{stem} ({len(files)} files)" for stem, files in found.items() if len(files) != 1]
    if wrong:
        raise StemproverError(
            "--project needs the four stems of one song, one file each; got " + ", ".join(wrong)
        )
    return {stem: files[0] for stem, files in found.items()}


def load_projected(
    paths: Mapping[str, str], mixture_path: str, min_samples: int = 1
) -> tuple[dict[str, np.ndarray], int]:
    """Load a song's four stem files and its mixture, and project the stems onto it.

    The files are read whole (the filter's statistics span the song): about 1 GB of memory
    per minute of stereo audio at 44.1 kHz.

    Returns:
        ``(path -> projected (C, n) float32 stem, sample_rate)``.

    Raises:
        StemproverError: for a file that cannot be read, holds bad samples, or differs from
            the mixture in rate, length or channels.
    """
    mixture, rate = load_audio(mixture_path, min_samples=min_samples)
    stems = {}
    for stem, path in paths.items():
        audio, stem_rate = load_audio(path, min_samples=min_samples)
        if (stem_rate, audio.shape) != (rate, mixture.shape):
            raise StemproverError(
                f"{path}: {audio.shape[0]} channel(s), {audio.shape[1]} samples at "
                f"{stem_rate} Hz, but the mixture {mixture_path} has {mixture.shape[0]}, "
                f"{mixture.shape[1]} at {rate} Hz; they must match"
            )
        stems[stem] = audio
    projected = project(stems, rate, mixture)
    return {paths[stem]: projected[stem] for stem in STEMS}, rate
