"""Oracle masks: upper references computed from the clean stems.

* ``irm1``: ideal ratio mask on magnitudes, ``|S_j| / sum_k |S_k|``.
* ``irm2``: ideal ratio mask on powers, the oracle Wiener filter ``|S_j|^2 / sum_k |S_k|^2``.
* ``ibm``: ideal binary mask, 1 where stem ``j`` holds more than half of the magnitude sum
  (``irm1 > 0.5``, the ``theta = 0.5`` binary mask of Vincent et al.'s oracle toolbox).

All masks are applied to the mixture STFT, so the separated stems carry the mixture's phase.
"""

from __future__ import annotations

import librosa
import numpy as np

from stemprover.constants import STEMS
from stemprover.dsp.spectral import stft_size
from stemprover.separators.base import Separator, register

EPS = 1e-10


class MaskSeparator(Separator):
    """A separator that multiplies the mixture STFT by one real mask per stem."""

    needs_references = True

    def __init__(self, n_fft: int | None = None):
        self.n_fft = n_fft  # None: ~46 ms, scaled to the sample rate

    def stft_params(self, sample_rate: int) -> tuple[int, int]:
        n_fft = self.n_fft or stft_size(sample_rate)
        return n_fft, n_fft // 4

    def _separate(self, mixture, sample_rate, references):
        n_fft, hop = self.stft_params(sample_rate)
        mix_spec = librosa.stft(mixture, n_fft=n_fft, hop_length=hop)  # (C, F, T)
        ref_specs = {s: librosa.stft(references[s], n_fft=n_fft, hop_length=hop) for s in STEMS}
        masks = self.masks(mix_spec, ref_specs, sample_rate, n_fft)
        n = mixture.shape[-1]
        return {
            stem: librosa.istft(masks[stem] * mix_spec, hop_length=hop, n_fft=n_fft, length=n)
            for stem in STEMS
        }

    def masks(
        self,
        mix_spec: np.ndarray,
        ref_specs: dict[str, np.ndarray],
        sample_rate: int,
        n_fft: int,
    ) -> dict[str, np.ndarray]:
        """stem -> real mask ``(C, F, T)`` in [0, 1]."""
        raise NotImplementedError


def ratio_masks(ref_specs: dict[str, np.ndarray], power: float) -> dict[str, np.ndarray]:
    """``|S_j|^p / sum_k |S_k|^p`` for every stem (masks sum to 1 where any stem is active)."""
    mags = {s: np.abs(spec) ** power for s, spec in ref_specs.items()}
    total = sum(mags.values()) + EPS
    return {s: (m / total).astype(np.float32) for s, m in mags.items()}


@register("irm1")
class IRM1(MaskSeparator):
    name = "irm1"

    def masks(self, mix_spec, ref_specs, sample_rate, n_fft):
        return ratio_masks(ref_specs, 1.0)


@register("irm2")
class IRM2(MaskSeparator):
    name = "irm2"

    def masks(self, mix_spec, ref_specs, sample_rate, n_fft):
        return ratio_masks(ref_specs, 2.0)


@register("ibm")
class IBM(MaskSeparator):
    name = "ibm"

    def masks(self, mix_spec, ref_specs, sample_rate, n_fft):
        return {s: (m > 0.5).astype(np.float32) for s, m in ratio_masks(ref_specs, 1.0).items()}
