"""Mixture projection: the four cleaned stems of one song, made to sum to its mixture.

    cleaned = enhance_stems(separated, 44100, model, mixture=song)            # "after" (default)
    cleaned = enhance_stems(separated, 44100, model, mixture=song, projection="none")

A stem cleaned on its own cannot know what the other three took from the mixture. Once all
four are cleaned, their magnitudes are used as source models of a multichannel Wiener filter
(:func:`stemprover.inference.postfilter.wiener`, Open-Unmix's), which redistributes the
mixture STFT between them: whatever one stem lost and another kept goes back to the stem whose
model claims it, and the four outputs sum to the mixture. This is the step that follows the
network in Open-Unmix; here it follows (``after``) the bridge, precedes it (``before``, the
predictor of a stochastic-regeneration cascade), or both (``both``). Design study row 33
compares them on the valid split; a single stem against the rest of the mixture (one source
and a residual) loses on every test set, so projection needs all four stems.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from stemprover.constants import STEMS
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
    projection: str = "after",
    **options: Any,
) -> dict[str, np.ndarray]:
    """Clean every stem of one song with ``model``, then project them onto the mixture.

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
