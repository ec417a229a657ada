"""Limits on the model's change to a stem: DC, mixture consistency and level.

    change = guard_change(change, stem, residual, n_fft=512, hop_length=128)

The sampler returns a cleaned segment; what reaches the output is the *change*
``cleaned - stem`` (times the validated blend). Three rules, none of which depends on the
model's weights, keep that change to what a stem cleaner can justify:

1. **DC passes through.** A constant offset is not a sound a separator damages, and a
   spectral model sees it only as the edge of its lowest bin (0 to ``rate / n_fft`` Hz,
   shared with the bass). The change has its mean over the segment removed, so the input's
   DC comes out as it went in.
2. **Mixture consistency** (when the mixture is known). Whatever a stem lacks, or holds that
   belongs to another source, lies in the residual ``mixture - stem``. In each
   time-frequency bin the change is limited in magnitude to the residual's (its phase is
   kept). A stem equal to its mixture has a zero residual, so nothing in the mixture belongs
   to another source and the stem comes back unchanged. Bleed is removed in full as long as
   the separator assigned the stem less than half of the other sources in that bin, which a
   separator better than chance does.
3. **Level guard.** The separators this tool is for leave the other sources at least about
   10 dB below the stem (9 to 12 dB SDR on MUSDB18-HQ), so removing their bleed and noise
   lowers a band's energy by at most about 0.4 dB. A band whose energy drops by more than
   ``max_drop_db`` is the model's shrinkage toward the mean of its training targets, not
   cleaning: the cleaned band is scaled back up to ``RESTORE_SHARE * max_drop_db`` below
   the input in that band. A band the model raises (lost high frequencies restored) is left
   alone. Bands are octaves at the model's rate, judged per channel over spans of
   ``LEVEL_SECONDS`` (about the time over which the ear integrates loudness; short enough
   that segments, which are cross-faded, keep the bound wherever their weight lies). A
   musical-noise blip lasts tens of milliseconds and covers few bins, so removing it barely
   moves a span's band energy.
"""

from __future__ import annotations

import numpy as np
import torch

MAX_DROP_DB = 0.5  # ~ removing bleed 10 dB below the stem (0.41 dB): more is shrinkage
RESTORE_SHARE = 0.6  # a band over the bound comes back to 0.6 x 0.5 = 0.3 dB below its input
LEVEL_SECONDS = 0.25  # level is judged over spans this long: about the ear's loudness window
LOWEST_BAND_HZ = 62.5  # the bins below are one band: an octave there holds one or two bins


def octave_edges(n_bins: int, sample_rate: int) -> list[tuple[int, int]]:
    """Bin ranges ``[lo, hi)`` of octave bands up to Nyquist; the first holds all bins below
    ``LOWEST_BAND_HZ``."""
    hz_per_bin = sample_rate / 2 / (n_bins - 1)
    edges = [0]
    frequency = LOWEST_BAND_HZ
    while frequency < sample_rate / 2:
        edge = int(np.ceil(frequency / hz_per_bin))
        if edge > edges[-1]:
            edges.append(min(edge, n_bins))
        frequency *= 2
    if edges[-1] < n_bins:
        edges.append(n_bins)
    return list(zip(edges[:-1], edges[1:]))


def guard_change(
    change: np.ndarray,
    stem: np.ndarray,
    residual: np.ndarray | None,
    *,
    n_fft: int,
    hop_length: int,
    sample_rate: int,
    max_drop_db: float | None = MAX_DROP_DB,
) -> np.ndarray:
    """The model's change limited by the module's three rules.

    Args:
        change: ``(n_rows, n_samples)`` float32: cleaned minus stem, at the model's rate.
        stem: ``(n_rows, n_samples)``: the stem the change applies to.
        residual: ``(n_rows, n_samples)``: mixture minus stem, or None (no mixture known).
        n_fft: STFT size of the limits (the model's), in samples.
        hop_length: STFT hop, in samples.
        sample_rate: Hz, the rate of all three arrays.
        max_drop_db: Largest energy drop per band, dB; None: no level guard.

    Returns:
        float32 ``(n_rows, n_samples)``.
    """
    change = np.asarray(change, dtype=np.float64)
    change = change - change.mean(axis=-1, keepdims=True)
    n_samples = change.shape[-1]
    if n_samples < n_fft:
        return change.astype(np.float32)
    window = torch.hann_window(n_fft, dtype=torch.float64)  # float64: the round trip is exact

    def spectrum(audio):
        return torch.stft(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float64)),
                          n_fft, hop_length, window=window, return_complex=True)

    delta = spectrum(change)  # (rows, bins, frames)
    if residual is not None:
        bound = spectrum(residual).abs()
        size = delta.abs()
        delta = delta * torch.where(size > bound, bound / size.clamp_min(1e-30), 1.0)
    if max_drop_db is None:
        return torch.istft(delta, n_fft, hop_length, window=window,
                           length=n_samples).numpy().astype(np.float32, copy=False)
    before = spectrum(stem)
    after = before + delta
    floor = 10.0 ** (-max_drop_db / 10.0)
    # A rescaled spectrogram is not exactly the STFT of a signal: the inverse STFT spreads a
    # little of the correction into neighbouring spans and bands. A band over the bound is
    # restored to RESTORE_SHARE of it, which leaves room for that spread.
    target = 10.0 ** (-RESTORE_SHARE * max_drop_db / 10.0)
    n_rows, _, n_frames = after.shape
    span = max(1, int(round(LEVEL_SECONDS * sample_rate / hop_length)))
    chunk = torch.arange(n_frames) // span  # the level span of each frame
    n_chunks = int(chunk[-1]) + 1
    for lo, hi in octave_edges(delta.shape[1], sample_rate):
        energy_in = torch.zeros(n_rows, n_chunks, dtype=torch.float64).index_add_(
            1, chunk, before[:, lo:hi].abs().square().sum(dim=1))
        energy_out = torch.zeros(n_rows, n_chunks, dtype=torch.float64).index_add_(
            1, chunk, after[:, lo:hi].abs().square().sum(dim=1))
        low = energy_out < floor * energy_in
        if bool(low.any()):
            scale = torch.where(low, torch.sqrt(target * energy_in / energy_out.clamp_min(1e-30)),
                                1.0)
            after[:, lo:hi] = after[:, lo:hi] * scale[:, None, chunk]
    guarded = torch.istft(after - before, n_fft, hop_length, window=window, length=n_samples)
    return guarded.numpy().astype(np.float32, copy=False)
