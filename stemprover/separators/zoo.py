"""A parametric zoo of mask separators that spans the quality users have, and a held-out family.

    sep = get_separator("zoo", severity=0.2, seed=3)       # one random draw of the zoo
    sep = get_separator("bandsplit", severity=0.5)          # the family kept for testing

``zoo`` (training and validation pairs). Each draw starts from the complex ideal mask
``S_j / X``, which returns the clean stem exactly, and applies a random subset of mask
degradations, each at a random share of ``severity``:

* ``noise``: log-normal errors on the mask magnitude (sigma up to 1.5);
* ``time_smear`` / ``freq_smear``: the mask averaged over up to 200 ms / up to 16 bins;
* ``bleed``: the other sources leak in, ``M + b (1 - M)`` with ``b`` up to 0.8;
* ``band_limit``: an 8th-order Butterworth roll-off, cut-off down to 0.3 of Nyquist;
* ``phase``: the estimate's phase moves from the stem's own towards the mixture's;
* ``musical_noise``: isolated bins whose mask jumps to U(0.5, 1) (up to 5 % of them) and
  holes (up to 20 %).

Severity 0 is the identity (the clean stem), and the draws are dense near 0, so the zoo
holds barely audible damage as well as severe damage: with the default draw the input SI-SDR
of its stems spans about -5 to +40 dB (the dataset card shows the histogram).

``bandsplit`` (held out of every pair and every validation; 05's quality sweep). A band-split
separator's resolution: the oracle Wiener mask pooled over a coarse frequency partition (bands
equally spaced on the mel scale) and over blocks of frames, applied to the mixture with its
phase. ``severity`` in [0, 1] sets the partition from 128 bands and 1 frame (about +20 dB)
down to 6 bands and 16 frames (about 0 dB). None of the zoo's operations pools a mask into
bands, so it tests a degradation the model has not seen.

Every random draw comes from :func:`~stemprover.project.seed.rng_for`, keyed by the seed, the
family and the stem, so a separator is deterministic given its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
from scipy.ndimage import uniform_filter1d

from stemprover.constants import STEMS
from stemprover.errors import StemproverError
from stemprover.project.seed import rng_for
from stemprover.separators.base import register
from stemprover.separators.oracle import EPS, MaskSeparator, ratio_masks

ZOO_KNOBS = ("noise", "time_smear", "freq_smear", "bleed", "band_limit", "phase", "musical_noise")
KNOB_PROBABILITY = 0.5  # each knob is active in about half the draws; at least one always is
QUIET = 1e-6  # mixture STFT magnitude below which the complex ideal mask is undefined
MAX_GAIN = 10.0  # bound of the ideal mask's magnitude (+20 dB) where sources interfere
MAX_SMEAR_SECONDS = 0.2
MAX_SMEAR_BINS = 16
ROLLOFF_ORDER = 8


@dataclass(frozen=True)
class ZooDraw:
    """The amount of each degradation in [0, 1] (0: off) for one stem of one item."""

    noise: float = 0.0
    time_smear: float = 0.0
    freq_smear: float = 0.0
    bleed: float = 0.0
    band_limit: float = 0.0
    phase: float = 0.0
    musical_noise: float = 0.0


def draw_knobs(severity: float, rng: np.random.Generator) -> ZooDraw:
    """A random subset of :data:`ZOO_KNOBS`, each at a uniform share of ``severity``."""
    active = rng.random(len(ZOO_KNOBS)) < KNOB_PROBABILITY
    if not active.any():
        active[rng.integers(len(ZOO_KNOBS))] = True
    shares = rng.uniform(0.25, 1.0, len(ZOO_KNOBS))
    return ZooDraw(**{k: float(severity * s) if a else 0.0
                      for k, a, s in zip(ZOO_KNOBS, active, shares)})


def _check_severity(severity: float) -> float:
    if not 0.0 <= float(severity) <= 1.0:
        raise StemproverError(f"severity must lie in [0, 1], got {severity}")
    return float(severity)


def degrade_mask(
    mask: np.ndarray, draw: ZooDraw, rng: np.random.Generator, *, sample_rate: int, hop: int
) -> np.ndarray:
    """Apply one draw to a complex mask ``(C, F, T)``; magnitudes stay in [0, MAX_GAIN].

    The magnitude and the phase of the mask are damaged separately: every knob but
    ``phase`` acts on ``|mask|``; ``phase`` rotates the mask's phase towards 0, which is the
    mixture's phase.
    """
    magnitude = np.abs(mask)
    phase = np.angle(mask)
    if draw.time_smear:
        size = 2 * int(draw.time_smear * MAX_SMEAR_SECONDS * sample_rate / hop / 2) + 1
        magnitude = uniform_filter1d(magnitude, size=size, axis=-1, mode="nearest")
    if draw.freq_smear:
        size = 2 * int(draw.freq_smear * MAX_SMEAR_BINS / 2) + 1
        magnitude = uniform_filter1d(magnitude, size=size, axis=-2, mode="nearest")
    if draw.noise:
        sigma = 1.5 * draw.noise
        magnitude = magnitude * np.exp(sigma * rng.standard_normal(magnitude.shape))
    if draw.musical_noise:
        holes = rng.random(magnitude.shape) < 0.2 * draw.musical_noise
        peaks = rng.random(magnitude.shape) < 0.05 * draw.musical_noise
        magnitude = np.where(holes, 0.0, magnitude)
        magnitude = np.where(peaks, rng.uniform(0.5, 1.0, magnitude.shape), magnitude)
    if draw.bleed:
        magnitude = magnitude + 0.8 * draw.bleed * (1.0 - np.clip(magnitude, 0.0, 1.0))
    if draw.band_limit:
        ratio = np.linspace(0.0, 1.0, magnitude.shape[-2]) / (1.0 - 0.7 * draw.band_limit)
        magnitude = magnitude / np.sqrt(1.0 + ratio ** (2 * ROLLOFF_ORDER))[:, None]
    phase = phase * (1.0 - draw.phase)
    return (np.clip(magnitude, 0.0, MAX_GAIN) * np.exp(1j * phase)).astype(np.complex64)


@register("zoo")
class MaskZoo(MaskSeparator):
    """One random draw of the parametric mask-degradation family.

    Args:
        severity: 0 (the clean stems) to 1 (every active knob up to its strongest).
        seed: seed of the draw (which knobs, how strong, and the random mask errors).
        n_fft: STFT size; None scales ~46 ms to the sample rate.
    """

    def __init__(self, severity: float = 0.5, seed: int = 0, n_fft: int | None = None):
        super().__init__(n_fft)
        self.severity = _check_severity(severity)
        self.seed = int(seed)
        self.name = f"zoo-{self.severity:g}-{self.seed}"

    def draws(self) -> dict[str, ZooDraw]:
        """The knob amounts of each stem."""
        return {s: draw_knobs(self.severity, rng_for(self.seed, "zoo", "knobs", s)) for s in STEMS}

    def masks(self, mix_spec, ref_specs, sample_rate, n_fft):
        # The complex ideal mask S_j / X returns the stem exactly; its magnitude exceeds 1
        # where the sources interfere destructively. Where the mixture is (near) silent the
        # ratio is meaningless and the oracle Wiener mask stands in.
        quiet = np.abs(mix_spec) < QUIET
        safe = np.where(quiet, 1.0, mix_spec)
        wiener = ratio_masks(ref_specs, 2.0)
        masks = {}
        for stem, draw in self.draws().items():
            mask = np.where(quiet, wiener[stem], ref_specs[stem] / safe)
            if self.severity > 0:
                rng = rng_for(self.seed, "zoo", "errors", stem)
                mask = degrade_mask(mask, draw, rng, sample_rate=sample_rate, hop=n_fft // 4)
            masks[stem] = mask
        return masks

    def _separate(self, mixture, sample_rate, references):
        if self.severity == 0.0:
            return {s: references[s].copy() for s in STEMS}
        return super()._separate(mixture, sample_rate, references)


def band_edges(n_bins: int, n_bands: int, sample_rate: int) -> np.ndarray:
    """Bin indices ``(n_bands + 1,)`` of a partition equally spaced on the mel scale."""
    hz = librosa.mel_frequencies(n_bands + 1, fmin=0.0, fmax=sample_rate / 2)
    edges = np.round(hz / (sample_rate / 2) * (n_bins - 1)).astype(int)
    edges[-1] = n_bins
    return np.unique(np.maximum.accumulate(edges))


def pool_bands(power: np.ndarray, edges: np.ndarray, frames: int) -> np.ndarray:
    """Mean of ``power (C, F, T)`` over each band of ``edges`` and each block of ``frames``."""
    pooled = np.empty_like(power)
    for lo, hi in zip(edges[:-1], edges[1:]):
        pooled[:, lo:hi] = power[:, lo:hi].mean(axis=1, keepdims=True)
    if frames > 1:
        n = power.shape[-1]
        blocks = np.arange(n) // frames
        sums = np.zeros(pooled.shape[:-1] + (blocks[-1] + 1,), dtype=pooled.dtype)
        np.add.at(sums, (..., blocks), pooled)
        counts = np.bincount(blocks)
        pooled = (sums / counts)[..., blocks]
    return pooled


@register("bandsplit")
class BandSplitOracle(MaskSeparator):
    """The oracle Wiener mask at a band-split separator's resolution (held-out family).

    Args:
        severity: 0 (128 bands, single frames) to 1 (6 bands, blocks of 16 frames); the band
            count falls and the block length grows geometrically with it.
        n_fft: STFT size; None scales ~46 ms to the sample rate.
    """

    def __init__(self, severity: float = 0.5, n_fft: int | None = None):
        super().__init__(n_fft)
        self.severity = _check_severity(severity)
        self.n_bands = int(round(128 * (6 / 128) ** self.severity))
        self.frames = int(round(16**self.severity))
        self.name = f"bandsplit-{self.severity:g}"

    def masks(self, mix_spec, ref_specs, sample_rate, n_fft):
        edges = band_edges(mix_spec.shape[-2], self.n_bands, sample_rate)
        power = pool_bands(np.abs(mix_spec) ** 2, edges, self.frames) + EPS
        return {s: (pool_bands(spec * np.conj(mix_spec), edges, self.frames) / power)
                .astype(np.complex64) for s, spec in ref_specs.items()}
