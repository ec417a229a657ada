"""Frequency bands for per-band reports: octave bands and critical (Bark) bands.

    bands = get_bands("critical", sample_rate=44100, n_fft=2048)
    per_band = band_reduce(error_map, bands, weights=magnitude)   # (..., n_bands, frames)

Each band holds a ``slice`` of STFT bins (bin ``k`` lies at ``k * sample_rate / n_fft`` Hz).
A bin belongs to the band with ``f_low <= f < f_high``; the last band also takes the
Nyquist bin. Bands are contiguous and cover 0 Hz to Nyquist; a band too narrow to hold
any bin at a coarse ``n_fft`` is merged into the band above it, so no band is empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from stemprover.errors import StemproverError

BARK_EDGES_HZ = (
    0, 100, 200, 300, 400, 510, 630, 770, 920, 1080, 1270, 1480, 1720, 2000, 2320, 2700,
    3150, 3700, 4400, 5300, 6400, 7700, 9500, 12000, 15500,
)
"""Zwicker's critical-band edges (Zwicker 1961); the last band runs from 15.5 kHz to Nyquist."""


@dataclass
class Band:
    """A frequency band and the STFT bins inside it."""

    name: str
    f_low: float  # Hz, inclusive
    f_high: float  # Hz, exclusive (Nyquist is included in the last band)
    bins: slice  # STFT bin indices

    @property
    def n_bins(self) -> int:
        return self.bins.stop - self.bins.start


def _hz_label(freq: float) -> str:
    if freq >= 1000:
        return f"{freq / 1000:g} kHz"
    return f"{int(freq + 0.5)} Hz"


def _bands_from_edges(
    edges: list[float], names: list[str], sample_rate: float, n_fft: int
) -> list[Band]:
    """Turn contiguous edges (Hz, ending at Nyquist) into bands of bins, merging empty ones."""
    n_freqs = n_fft // 2 + 1
    bin_hz = sample_rate / n_fft
    starts = [min(n_freqs, math.ceil(edge / bin_hz - 1e-9)) for edge in edges[:-1]] + [n_freqs]
    bands: list[Band] = []
    pending_low, pending_names = None, []
    for i, name in enumerate(names):
        low = edges[i] if pending_low is None else pending_low
        first = starts[i] if pending_low is None else math.ceil(low / bin_hz - 1e-9)
        pending_names.append(name)
        if starts[i + 1] <= first:  # no bin in this band: merge it into the next one
            pending_low = low
            continue
        label = pending_names[0] if len(pending_names) == 1 else (
            f"{pending_names[0]}..{pending_names[-1]}"
        )
        bands.append(Band(label, float(low), float(edges[i + 1]), slice(first, starts[i + 1])))
        pending_low, pending_names = None, []
    if pending_low is not None and bands:  # trailing empty bands join the last band
        bands[-1].f_high = float(edges[-1])
    return bands


def octave_bands(sample_rate: float, n_fft: int, f_min: float = 62.5) -> list[Band]:
    """Octave bands centred at ``f_min * 2**k`` Hz with edges ``fc / sqrt(2)``, ``fc * sqrt(2)``.

    The lowest band extends down to 0 Hz and the highest is cut at Nyquist; bands whose
    centre lies above Nyquist are left out.

    Args:
        sample_rate: Hz.
        n_fft: STFT size the bins refer to.
        f_min: Centre of the lowest band in Hz (62.5 Hz gives 62.5, 125, ..., 16 kHz).
    """
    _check(sample_rate, n_fft)
    nyquist = sample_rate / 2
    centres = []
    centre = float(f_min)
    while centre < nyquist:
        centres.append(centre)
        centre *= 2
    if not centres:
        raise StemproverError(f"f_min={f_min} Hz is above Nyquist ({nyquist} Hz)")
    edges = [0.0] + [min(c * math.sqrt(2), nyquist) for c in centres[:-1]] + [nyquist]
    return _bands_from_edges(edges, [_hz_label(c) for c in centres], sample_rate, n_fft)


def critical_bands(sample_rate: float, n_fft: int) -> list[Band]:
    """Critical bands with Zwicker's edges, cut at Nyquist (named "bark 1", "bark 2", ...)."""
    _check(sample_rate, n_fft)
    nyquist = sample_rate / 2
    inner = [float(e) for e in BARK_EDGES_HZ[1:] if e < nyquist]
    edges = [0.0] + inner + [nyquist]
    names = [f"bark {i + 1}" for i in range(len(edges) - 1)]
    return _bands_from_edges(edges, names, sample_rate, n_fft)


def get_bands(kind: str, sample_rate: float, n_fft: int) -> list[Band]:
    """Bands by name: "octave" or "critical"."""
    if kind == "octave":
        return octave_bands(sample_rate, n_fft)
    if kind == "critical":
        return critical_bands(sample_rate, n_fft)
    raise StemproverError(f"unknown band kind {kind!r}; choose 'octave' or 'critical'")


def band_edges_hz(bands: list[Band]) -> np.ndarray:
    """Edges ``(n_bands + 1,)`` in Hz of contiguous bands."""
    return np.array([b.f_low for b in bands] + [bands[-1].f_high])


def band_reduce(values, bands: list[Band], weights=None, axis: int = -2):
    """Weighted mean of ``values`` over the bins of each band.

    Args:
        values: numpy array or torch tensor with the frequency bins on ``axis``,
            e.g. ``(..., n_freqs, n_frames)``.
        bands: Bands from :func:`get_bands` for the same ``n_fft``.
        weights: Non-negative weights broadcastable to ``values`` (e.g. the reference
            magnitude), or None for a plain mean. A band whose weights are all zero gets 0.
        axis: The frequency axis.

    Returns:
        Same type as ``values`` with ``axis`` of length ``len(bands)``.
    """
    is_torch = isinstance(values, torch.Tensor)
    lib = torch if is_torch else np
    if weights is None:
        weights = lib.ones_like(values)
    else:
        weights = weights + lib.zeros_like(values)  # broadcast to the full shape
    out = []
    for band in bands:
        index = [slice(None)] * values.ndim
        index[axis] = band.bins
        v, w = values[tuple(index)], weights[tuple(index)]
        if is_torch:
            total = w.sum(dim=axis)
            out.append((v * w).sum(dim=axis) / total.clamp_min(1e-30))
        else:
            total = w.sum(axis=axis)
            out.append((v * w).sum(axis=axis) / np.maximum(total, 1e-30))
    return torch.stack(out, dim=axis) if is_torch else np.stack(out, axis=axis)


def _check(sample_rate: float, n_fft: int) -> None:
    if sample_rate <= 0 or n_fft < 2:
        raise StemproverError(f"need sample_rate > 0 and n_fft >= 2, got {sample_rate}, {n_fft}")
