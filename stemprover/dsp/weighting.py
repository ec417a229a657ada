"""Perceptual frequency weights: A-weighting and ISO 226 equal-loudness.

    w = perceptual_weights(44100, 1024, kind="a")   # torch (513,), mean 1

The losses multiply per-bin errors by these weights so that errors where hearing is most
sensitive (1-5 kHz) count more than errors at the extremes of the spectrum.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

from stemprover.errors import StemproverError

# ISO 226:2003 Table 1: frequencies (Hz), exponent af, transfer function Lu (dB),
# hearing threshold Tf (dB SPL).
ISO226_FREQS = np.array([
    20, 25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000,
    1250, 1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500,
], dtype=np.float64)
ISO226_AF = np.array([
    0.532, 0.506, 0.480, 0.455, 0.432, 0.409, 0.387, 0.367, 0.349, 0.330, 0.315, 0.301,
    0.288, 0.276, 0.267, 0.259, 0.253, 0.250, 0.246, 0.244, 0.243, 0.243, 0.243, 0.242,
    0.242, 0.245, 0.254, 0.271, 0.301,
])
ISO226_LU = np.array([
    -31.6, -27.2, -23.0, -19.1, -15.9, -13.0, -10.3, -8.1, -6.2, -4.5, -3.1, -2.0, -1.1,
    -0.4, 0.0, 0.3, 0.5, 0.0, -2.7, -4.1, -1.0, 1.7, 2.5, 1.2, -2.1, -7.1, -11.2, -10.7, -3.1,
])
ISO226_TF = np.array([
    78.5, 68.7, 59.5, 51.1, 44.0, 37.5, 31.5, 26.5, 22.1, 17.9, 14.4, 11.4, 8.6, 6.2, 4.4,
    3.0, 2.2, 2.4, 3.5, 1.7, -1.3, -4.2, -6.0, -5.4, -1.5, 6.0, 12.6, 13.9, 12.3,
])

WEIGHT_KINDS = ("a", "equal_loudness", "none")


def a_weighting(freqs_hz) -> np.ndarray:
    """A-weighting (IEC 61672-1) in dB: 0 dB at 1 kHz, -inf at 0 Hz.

    Args:
        freqs_hz: Frequencies in Hz, any shape.

    Returns:
        float64 array of the same shape, in dB.
    """
    freqs = np.asarray(freqs_hz, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.asarray(librosa.A_weighting(freqs, min_db=None), dtype=np.float64)


def iso226_spl(phon: float = 40.0) -> np.ndarray:
    """Sound pressure level (dB SPL) of the ISO 226:2003 contour at ``ISO226_FREQS``.

    Equation (1) of the standard; valid from 20 to 90 phon.
    """
    if not 20.0 <= phon <= 90.0:
        raise StemproverError(f"ISO 226 contours are defined for 20-90 phon, got {phon}")
    af = 4.47e-3 * (10.0 ** (0.025 * phon) - 1.15) + (
        0.4 * 10.0 ** ((ISO226_TF + ISO226_LU) / 10.0 - 9.0)
    ) ** ISO226_AF
    return (10.0 / ISO226_AF) * np.log10(af) - ISO226_LU + 94.0


def equal_loudness(freqs_hz, phon: float = 40.0) -> np.ndarray:
    """Equal-loudness weight in dB: minus the ISO 226 contour, 0 dB at 1 kHz.

    Between the table frequencies the contour is interpolated linearly in log frequency;
    outside 20 Hz - 12.5 kHz it is held at the end values (the standard stops there).

    Args:
        freqs_hz: Frequencies in Hz, any shape.
        phon: Loudness level of the contour (40 phon is the level A-weighting models).

    Returns:
        float64 array of the same shape, in dB (negative where hearing is less sensitive).
    """
    freqs = np.clip(np.asarray(freqs_hz, dtype=np.float64), ISO226_FREQS[0], ISO226_FREQS[-1])
    spl = iso226_spl(phon)
    contour = np.interp(np.log(freqs), np.log(ISO226_FREQS), spl)
    reference = spl[list(ISO226_FREQS).index(1000.0)]
    return reference - contour


def perceptual_weights(sample_rate: float, n_fft: int, kind: str = "a") -> torch.Tensor:
    """Amplitude weights per STFT bin, normalised to mean 1.

    Args:
        sample_rate: Hz.
        n_fft: STFT size; bin ``k`` lies at ``k * sample_rate / n_fft`` Hz.
        kind: "a" (A-weighting), "equal_loudness" (ISO 226 at 40 phon) or "none".

    Returns:
        float32 tensor ``(n_fft // 2 + 1,)``: ``10 ** (dB / 20)`` scaled to mean 1
        (the DC bin gets 0 under A-weighting).
    """
    freqs = np.arange(n_fft // 2 + 1) * float(sample_rate) / n_fft
    if kind == "a":
        db = a_weighting(freqs)
    elif kind == "equal_loudness":
        db = equal_loudness(freqs)
    elif kind == "none":
        db = np.zeros_like(freqs)
    else:
        raise StemproverError(f"unknown weighting {kind!r}; choose from {WEIGHT_KINDS}")
    gains = 10.0 ** (db / 20.0)
    return torch.as_tensor(gains / gains.mean(), dtype=torch.float32)
