"""Classical post-filters: the non-learned baseline that StemProver must beat.

    cleaned = postfilter(separated, sample_rate, mixture=mixture)   # dict stem -> (C, N)

Two methods:

* ``wiener``: the multichannel Wiener filter of Open-Unmix (``openunmix.filtering.wiener``,
  EM iterations as in Nugraha et al. 2016). The separated stems' magnitudes act as source
  models and the mixture STFT is redistributed between them, so the stems sum back to the
  mixture. Needs the mixture; with fewer than four stems the remainder is a residual source.
* ``smoothing``: a single-stem Wiener gain against a per-bin noise floor (minimum
  statistics), with the gain median-smoothed in time and frequency, times a gain that pulls
  isolated time-frequency peaks down to the running median of their bin: the classical
  remedies for musical noise. Used when no mixture is given.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from typing import Literal

import librosa
import numpy as np
import torch
from scipy.ndimage import median_filter

from stemprover.constants import STEMS


@dataclass
class PostfilterConfig:
    method: Literal["wiener", "smoothing"] = "wiener"  # wiener when a mixture is given
    n_fft: int = 2048  # Open-Unmix's Wiener filter setting at 44.1 kHz (~46 ms)
    hop_length: int = 512  # 75% overlap, as Open-Unmix
    iterations: int = 1  # EM iterations; Open-Unmix's default trades quality for speed
    smooth_time_frames: int = 5  # median length in frames (~60 ms at 44.1 kHz): spans a musical-noise blip
    smooth_freq_bins: int = 3  # median length in bins: removes isolated tonal residues
    noise_percentile: float = 10.0  # per-bin noise floor = this percentile of power over time
    noise_freq_bins: int = 31  # the floor is median-smoothed over this many bins, so tones (a few bins) never count as noise
    noise_weight: float = 1.0  # over-subtraction factor of the noise floor in the gain
    gain_floor: float = 0.1  # -20 dB: limits suppression, avoiding holes in the spectrum
    # mixture projection: the Wiener change is applied in proportion to how far the stems are
    # from summing to the mixture, in full from this residual energy share on (design study
    # row 34: 0.3 is the largest mean gain on the valid split with no input-quality bin below 0)
    gate_scale: float = 0.3


def postfilter(
    separated: dict[str, np.ndarray],
    sample_rate: int,
    mixture: np.ndarray | None = None,
    cfg: PostfilterConfig | None = None,
) -> dict[str, np.ndarray]:
    """Post-filter separated stems.

    Args:
        separated: stem -> float32 audio ``(n_channels, n_samples)``.
        sample_rate: Hz; the STFT sizes are scaled from 44.1 kHz to keep their duration.
        mixture: ``(n_channels, n_samples)`` mixture the stems came from, or None.
        cfg: Filter settings.

    Returns:
        stem -> float32 ``(n_channels, n_samples)``, same shapes as the input.
    """
    cfg = cfg or PostfilterConfig()
    n_fft, hop = scaled_sizes(cfg, sample_rate)
    if cfg.method == "wiener" and mixture is not None:
        return wiener(separated, mixture, n_fft, hop, cfg)
    return {stem: smooth(audio, n_fft, hop, cfg) for stem, audio in separated.items()}


def smooth(audio: np.ndarray, n_fft: int, hop_length: int, cfg: PostfilterConfig) -> np.ndarray:
    """Spectral-smoothing Wiener gain on one stem ``(n_channels, n_samples)``."""
    spec = librosa.stft(audio, n_fft=n_fft, hop_length=hop_length)  # (C, F, T)
    power = np.mean(np.abs(spec) ** 2, axis=0)  # one gain for all channels keeps the stereo image
    noise = np.percentile(power, cfg.noise_percentile, axis=1)
    noise = median_filter(noise, size=cfg.noise_freq_bins, mode="nearest")[:, None]
    gain = power / (power + cfg.noise_weight * noise + 1e-12)
    gain = median_filter(gain, size=(cfg.smooth_freq_bins, cfg.smooth_time_frames), mode="nearest")
    # Musical noise is made of isolated peaks: a bin far above the median of its own recent
    # past and future is cut back to that median. Sustained partials equal their median.
    steady = median_filter(power, size=(1, cfg.smooth_time_frames), mode="nearest")
    gain = gain * np.sqrt(np.minimum(1.0, steady / (power + 1e-12)))
    gain = np.clip(gain, cfg.gain_floor, 1.0)
    out = librosa.istft(spec * gain[None], hop_length=hop_length, n_fft=n_fft, length=audio.shape[-1])
    return out.astype(np.float32)


def wiener(
    separated: dict[str, np.ndarray],
    mixture: np.ndarray,
    n_fft: int,
    hop_length: int,
    cfg: PostfilterConfig,
) -> dict[str, np.ndarray]:
    """The mixture STFT redistributed between stems whose magnitudes act as source models."""
    names = list(separated)
    length = mixture.shape[-1]
    mix_spec = librosa.stft(mixture, n_fft=n_fft, hop_length=hop_length)  # (C, F, T)
    mags = np.stack(
        [np.abs(librosa.stft(separated[s], n_fft=n_fft, hop_length=hop_length)) for s in names],
        axis=-1,
    )  # (C, F, T, S)
    # Open-Unmix's layout: (frames, bins, channels, sources) and (frames, bins, channels, 2).
    targets = torch.from_numpy(mags.transpose(2, 1, 0, 3).astype(np.float32))
    mix = torch.view_as_real(torch.from_numpy(mix_spec.transpose(2, 1, 0).astype(np.complex64)))
    residual = not set(STEMS) <= set(names)
    filtering = _openunmix_filtering()
    with torch.no_grad():
        out = filtering.wiener(targets, mix, iterations=cfg.iterations, residual=residual)
    out = torch.view_as_complex(out.permute(0, 1, 2, 4, 3).contiguous()).numpy()  # (T, F, C, S)
    result = {}
    for index, stem in enumerate(names):
        spec = out[..., index].transpose(2, 1, 0)  # (C, F, T)
        audio = librosa.istft(spec, hop_length=hop_length, n_fft=n_fft, length=length)
        result[stem] = audio.astype(np.float32)
    return result


def scaled_sizes(cfg: PostfilterConfig, sample_rate: int) -> tuple[int, int]:
    """STFT sizes scaled from 44.1 kHz to ``sample_rate``, n_fft kept a power of two."""
    ratio = sample_rate / 44100
    n_fft = int(2 ** round(np.log2(max(64, cfg.n_fft * ratio))))
    hop = max(1, int(round(n_fft * cfg.hop_length / cfg.n_fft)))
    return n_fft, hop


def _openunmix_filtering():
    """``openunmix.filtering`` without running ``openunmix/__init__``, which imports torchaudio.

    The filtering module itself only needs torch; torchaudio is deliberately not installed.
    """
    name = "openunmix.filtering"
    if name in sys.modules:
        return sys.modules[name]
    try:
        return importlib.import_module(name)
    except ImportError:
        package = importlib.util.find_spec("openunmix")
        if package is None or not package.submodule_search_locations:
            raise
        path = f"{package.submodule_search_locations[0]}/filtering.py"
        spec = importlib.util.spec_from_file_location("stemprover._openunmix_filtering", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
