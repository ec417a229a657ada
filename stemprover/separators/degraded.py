"""Degraded oracles: the oracle Wiener mask (IRM2) damaged by one artifact type.

    sep = get_separator("degraded", artifact="bleed", severity=0.5, seed=0)

They give training pairs whose artifact type and severity are known. Severity 0 is the
plain IRM2 oracle; severity 1 is the strongest damage. Every random draw comes from
``rng_for(seed, artifact, stem)``, so a separator is deterministic given its seed.

* ``hf_loss``: a low-pass roll-off (8th-order Butterworth magnitude, ~48 dB/octave) on the
  mask, like the 11-16 kHz cut-off of spectrogram separators at 44.1 kHz. The cut-off is a
  fraction of Nyquist, so it scales with the sample rate: ``f_c = (1 - 0.7 s) * f_nyq``
  (22.05 kHz at s=0, 14.3 kHz at s=0.5, 8.2 kHz at s=0.9 for 44.1 kHz audio).
* ``musical_noise``: log-normal mask errors (``sigma = s``), random holes (probability
  ``0.3 s``) and isolated time-frequency peaks where the mask jumps to U(0.5, 1)
  (probability ``0.05 s``), which let other sources through in single bins.
* ``bleed``: the other sources leak into the mask, ``M + 0.5 s (1 - M)`` (about -6 dB of
  leakage at s=1).
* ``phase_smear``: the mask is smoothed in time over up to 250 ms (at s=1) and applied with
  the mixture's phase, which smears transients and onsets.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from stemprover.constants import ARTIFACTS
from stemprover.errors import StemproverError
from stemprover.project.seed import rng_for
from stemprover.separators.base import register
from stemprover.separators.oracle import MaskSeparator, ratio_masks

MAX_SMEAR_SECONDS = 0.25  # mask smoothing length at severity 1 (several hops at any rate)
ROLLOFF_ORDER = 8  # Butterworth order of the hf_loss roll-off: 6 dB/octave per order


def hf_cutoff_hz(severity: float, sample_rate: int) -> float:
    """The hf_loss cut-off frequency (Hz) for ``severity`` in [0, 1]."""
    return (1.0 - 0.7 * severity) * sample_rate / 2


@register("degraded")
class DegradedOracle(MaskSeparator):
    """IRM2 with one artifact of a given severity.

    Args:
        artifact: one of :data:`~stemprover.constants.ARTIFACTS`.
        severity: 0 (none) to 1 (strongest).
        seed: seed of the random mask errors.
        n_fft: STFT size; None scales ~46 ms to the sample rate.
    """

    def __init__(self, artifact: str, severity: float = 0.5, seed: int = 0, n_fft=None):
        super().__init__(n_fft)
        if artifact not in ARTIFACTS:
            raise StemproverError(
                f"unknown artifact {artifact!r}; choose one of {', '.join(ARTIFACTS)}"
            )
        if not 0.0 <= float(severity) <= 1.0:
            raise StemproverError(f"severity must lie in [0, 1], got {severity}")
        self.artifact = artifact
        self.severity = float(severity)
        self.seed = int(seed)
        self.name = f"degraded-{artifact}-{self.severity:g}"

    def masks(self, mix_spec, ref_specs, sample_rate, n_fft):
        masks = ratio_masks(ref_specs, 2.0)
        if self.severity == 0.0:
            return masks
        hop = n_fft // 4
        return {
            stem: np.clip(self.degrade(mask, stem, sample_rate, n_fft, hop), 0.0, 1.0)
            for stem, mask in masks.items()
        }

    def degrade(
        self, mask: np.ndarray, stem: str, sample_rate: int, n_fft: int, hop_length: int
    ) -> np.ndarray:
        """Apply the artifact to one stem's mask ``(C, F, T)``."""
        s = self.severity
        if self.artifact == "hf_loss":
            freqs = np.linspace(0.0, sample_rate / 2, mask.shape[-2])
            ratio = freqs / hf_cutoff_hz(s, sample_rate)
            gain = 1.0 / np.sqrt(1.0 + ratio ** (2 * ROLLOFF_ORDER))
            return mask * gain[:, None].astype(np.float32)
        if self.artifact == "bleed":
            return mask + 0.5 * s * (1.0 - mask)
        if self.artifact == "phase_smear":
            frames = int(round(s * MAX_SMEAR_SECONDS * sample_rate / hop_length))
            size = 2 * (frames // 2) + 1
            return uniform_filter1d(mask, size=size, axis=-1, mode="nearest") if size > 1 else mask
        rng = rng_for(self.seed, self.artifact, stem)
        jitter = np.exp(s * rng.standard_normal(mask.shape)).astype(np.float32)
        holes = rng.random(mask.shape) < 0.3 * s
        peaks = rng.random(mask.shape) < 0.05 * s
        noisy = mask * jitter
        noisy[holes] = 0.0
        noisy[peaks] = rng.uniform(0.5, 1.0, size=int(peaks.sum()))
        return noisy
