"""Classical blind separators built from librosa: HPSS, NMF and REPET-SIM.

None of them knows the four MUSDB stems, so each ends with a documented assignment of its
components to vocals, drums, bass and other, and soft (Wiener-like) masks on the mixture
STFT. Decompositions run on the channel-mean magnitude; the masks are applied to every
channel. The mixture phase is kept.

* ``hpss``: two-pass median-filter HPSS (after Fitzgerald & Gainza 2010). Pass 1 splits
  percussive (drums) from harmonic. Pass 2 re-runs HPSS on the harmonic part with a ~0.4 s
  time median, where the vibrato and glides of a voice no longer look stationary: its
  percussive part is vocals. The stable harmonic rest is split at the bass crossover.
* ``nmf``: NMF of the magnitude (librosa.decompose.decompose with scikit-learn's NMF).
  The component centred lowest (and any centred below the crossover) is bass, the one with
  the flattest basis (and any with flatness > 0.3) drums, and of the rest the third with
  the most variable activations (voices come and go) vocals; the others are other.
* ``repet``: REPET-SIM (Rafii & Pardo 2012): a nearest-neighbour median filter over similar
  frames models the repeating background; the non-repeating foreground is vocals. The
  background goes through HPSS for drums, and its harmonic part is split at the crossover.
"""

from __future__ import annotations

import warnings

import librosa
import numpy as np

from stemprover.constants import STEMS
from stemprover.dsp.spectral import stft_size
from stemprover.separators.base import Separator, register

BASS_CROSSOVER_HZ = 250.0  # upper edge of a bass line's fundamentals and first partials
EPS = 1e-10


def lowpass_weight(freqs_hz: np.ndarray, crossover_hz: float = BASS_CROSSOVER_HZ) -> np.ndarray:
    """A soft (logistic in log-frequency, ~half-octave wide) low-band weight ``(F,)``."""
    octaves = np.log2(np.maximum(freqs_hz, 1.0) / crossover_hz)
    return 1.0 / (1.0 + np.exp(octaves / 0.15))


class ClassicalSeparator(Separator):
    """Shared STFT, soft masking and inversion; subclasses model the stem magnitudes."""

    def __init__(self, n_fft: int | None = None):
        self.n_fft = n_fft

    def _separate(self, mixture, sample_rate, references):
        n_fft = self.n_fft or stft_size(sample_rate)
        hop = n_fft // 4
        spec = librosa.stft(mixture, n_fft=n_fft, hop_length=hop)  # (C, F, T)
        magnitude = np.abs(spec).mean(axis=0)  # (F, T)
        freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
        models = self.model(magnitude, freqs, sample_rate, hop)
        power = {s: np.square(models[s]) for s in STEMS}
        total = sum(power.values()) + EPS
        n = mixture.shape[-1]
        return {
            s: librosa.istft(spec * (power[s] / total), hop_length=hop, n_fft=n_fft, length=n)
            for s in STEMS
        }

    def model(
        self, magnitude: np.ndarray, freqs: np.ndarray, sample_rate: int, hop_length: int
    ) -> dict[str, np.ndarray]:
        """stem -> non-negative magnitude model ``(F, T)``."""
        raise NotImplementedError


def split_bass(harmonic: np.ndarray, freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low = lowpass_weight(freqs)[:, None]
    return harmonic * low, harmonic * (1.0 - low)


@register("hpss")
class HPSSSeparator(ClassicalSeparator):
    name = "hpss"

    def model(self, magnitude, freqs, sample_rate, hop_length):
        harmonic, percussive = librosa.decompose.hpss(magnitude, kernel_size=17)
        # Pass 2: only partials steady over ~0.4 s stay harmonic; sung notes with vibrato
        # and glides fall into the fluctuating (percussive) part.
        long_frames = max(1, int(round(0.2 * sample_rate / hop_length)))
        stable, fluctuating = librosa.decompose.hpss(harmonic, kernel_size=(2 * long_frames + 1, 17))
        bass, other = split_bass(stable, freqs)
        _, vocals = split_bass(fluctuating, freqs)
        return {"vocals": vocals, "drums": percussive, "bass": bass, "other": other}


@register("nmf")
class NMFSeparator(ClassicalSeparator):
    name = "nmf"

    def __init__(self, n_components: int = 16, seed: int = 0, n_fft: int | None = None):
        super().__init__(n_fft)
        self.n_components = n_components
        self.seed = seed

    def model(self, magnitude, freqs, sample_rate, hop_length):
        from sklearn.decomposition import NMF
        from sklearn.exceptions import ConvergenceWarning

        k = int(min(self.n_components, magnitude.shape[1]))
        nmf = NMF(n_components=k, init="nndsvda", max_iter=200, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # 200 iterations suffice here
            bases, activations = librosa.decompose.decompose(magnitude, transformer=nmf)
        flatness = librosa.feature.spectral_flatness(S=bases.T[..., None] + EPS)[..., 0, 0]
        centroid = (freqs[:, None] * bases).sum(0) / (bases.sum(0) + EPS)
        variability = activations.std(1) / (activations.mean(1) + EPS)
        labels = np.full(k, "other", dtype=object)
        # Every stem gets at least its most typical component, then the clear-cut ones.
        bass = (centroid < BASS_CROSSOVER_HZ) | (np.arange(k) == np.argmin(centroid))
        labels[bass] = "bass"
        free = labels == "other"
        if free.any():
            drums = free & ((flatness > 0.3) | (flatness == flatness[free].max()))
            labels[drums] = "drums"
        rest = np.flatnonzero(labels == "other")
        if rest.size > 1:
            n_vocal = max(1, rest.size // 3)
            labels[rest[np.argsort(-variability[rest])[:n_vocal]]] = "vocals"
        models = {}
        for stem in STEMS:
            picked = labels == stem
            models[stem] = bases[:, picked] @ activations[picked] if picked.any() else (
                np.zeros_like(magnitude)
            )
        return models


@register("repet")
class RepetSimSeparator(ClassicalSeparator):
    name = "repet"

    def model(self, magnitude, freqs, sample_rate, hop_length):
        n_frames = magnitude.shape[1]
        # Similar frames must be at least 2 s apart (librosa's vocal-separation example).
        width = int(min(librosa.time_to_frames(2.0, sr=sample_rate, hop_length=hop_length),
                        max(1, n_frames // 3)))
        repeating = librosa.decompose.nn_filter(
            magnitude, aggregate=np.median, metric="cosine", width=max(1, width)
        )
        repeating = np.minimum(magnitude, repeating)
        foreground = magnitude - repeating
        harmonic, percussive = librosa.decompose.hpss(repeating, kernel_size=17)
        bass, other = split_bass(harmonic, freqs)
        _, vocals = split_bass(foreground, freqs)
        other = other + foreground * lowpass_weight(freqs)[:, None]
        return {"vocals": vocals, "drums": percussive, "bass": bass, "other": other}
