"""Phase analysis of an estimate against a reference, overall and per frequency band.

    df = phase_report(separated, clean, 44100, StftConfig(2048, 512), bands="critical")

Spectra are complex numpy arrays or torch tensors ``(F, T)`` or ``(C, F, T)`` from
:func:`stemprover.dsp.spectral.stft`; waveforms are ``(n_samples,)`` or ``(C, n_samples)``.
Every deviation is a mean over time-frequency bins weighted by the reference magnitude,
so silent bins, whose phase means nothing, do not count:

* phase deviation: ``|princarg(angle est - angle ref)|`` in radians;
* instantaneous-frequency (IF) deviation: the IF of a bin is its phase advance per hop,
  unwrapped around the bin centre; the deviation ``|IF est - IF ref|`` is in Hz (or in bins
  without a sample rate);
* group-delay deviation: the group delay is minus the phase slope across frequency; the
  deviation ``|princarg(d angle est / dk - d angle ref / dk)| * n_fft / (2 pi)`` is in samples;
* inter-bin coherence: the magnitude-weighted phase-locking value of neighbouring bins
  over time, ``|sum_t X[k+1] conj(X[k])| / sum_t |X[k+1]| |X[k]|`` in [0, 1]: 1 when the
  phase relation between neighbouring frequency channels is stable (partials, transients),
  near 0 when phases are scrambled (phase smear).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from stemprover.dsp.bands import Band, get_bands
from stemprover.dsp.spectral import StftConfig, stft
from stemprover.errors import StemproverError

REPORT_COLUMNS = (
    "band", "f_low", "f_high", "mag_error_db", "phase_dev", "if_dev", "gd_dev",
    "coherence", "coherence_ref", "energy_error_db",
)


def _spec(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if not np.iscomplexobj(x) or x.ndim not in (2, 3):
        raise StemproverError(f"expected a complex spectrum (F, T) or (C, F, T), got {x.shape}")
    return x.astype(np.complex128)


def _pair(est, ref) -> tuple[np.ndarray, np.ndarray]:
    est, ref = _spec(est), _spec(ref)
    if est.shape != ref.shape:
        raise StemproverError(f"spectra differ in shape: {est.shape} vs {ref.shape}")
    return est, ref


def weighted_mean(values: np.ndarray, weights: np.ndarray, bands: list[Band] | None = None):
    """Mean of ``values`` weighted by ``weights`` (both ``(..., F, T)``).

    Returns a float, or with ``bands`` an array ``(n_bands,)`` pooling each band's bins,
    frames and channels; nan where the weights sum to zero.
    """
    values, weights = np.broadcast_arrays(values, weights)
    if bands is None:
        total = weights.sum()
        return float((values * weights).sum() / total) if total > 0 else float("nan")
    out = np.full(len(bands), np.nan)
    for i, band in enumerate(bands):
        w = weights[..., band.bins, :]
        if w.sum() > 0:
            out[i] = (values[..., band.bins, :] * w).sum() / w.sum()
    return out


def phase_error_map(est, ref) -> np.ndarray:
    """``|princarg(angle est - angle ref)|`` per bin, radians in [0, pi]."""
    est, ref = _pair(est, ref)
    return np.abs(np.angle(est * np.conj(ref)))


def phase_deviation(est, ref, weighted: bool = True, bands: list[Band] | None = None):
    """Mean absolute phase difference in radians, weighted by ``|ref|`` (or uniform).

    Args:
        est: Complex spectrum ``(F, T)`` or ``(C, F, T)``.
        ref: Reference spectrum, same shape.
        weighted: Weight bins by the reference magnitude.
        bands: If given, one value per band.
    """
    est, ref = _pair(est, ref)
    weights = np.abs(ref) if weighted else np.ones(ref.shape)
    return weighted_mean(phase_error_map(est, ref), weights, bands)


def instantaneous_frequency(spec, hop_length: int, n_fft: int) -> np.ndarray:
    """IF in bins ``(..., F, T - 1)``: ``k + princarg(dphi - 2 pi k hop / n_fft) n_fft / (2 pi hop)``."""
    spec = _spec(spec)
    bins = np.arange(spec.shape[-2])[:, None]
    advance = 2 * np.pi * bins * hop_length / n_fft
    step = np.angle(spec[..., 1:] * np.conj(spec[..., :-1]))
    deviation = np.angle(np.exp(1j * (step - advance)))
    return bins + deviation * n_fft / (2 * np.pi * hop_length)


def if_deviation(
    est,
    ref,
    hop_length: int,
    n_fft: int,
    sample_rate: float | None = None,
    bands: list[Band] | None = None,
):
    """Mean ``|IF est - IF ref|``, weighted by ``|ref|``; Hz with ``sample_rate``, else bins.

    Only frequency offsets below ``n_fft / (2 * hop_length)`` bins are unambiguous.
    """
    est, ref = _pair(est, ref)
    if ref.shape[-1] < 2:
        raise StemproverError("IF deviation needs at least two STFT frames")
    diff = np.abs(instantaneous_frequency(est, hop_length, n_fft)
                  - instantaneous_frequency(ref, hop_length, n_fft))
    if sample_rate is not None:
        diff = diff * sample_rate / n_fft
    weights = np.minimum(np.abs(ref[..., 1:]), np.abs(ref[..., :-1]))
    return weighted_mean(diff, weights, bands)


def group_delay_deviation(est, ref, n_fft: int, bands: list[Band] | None = None):
    """Mean group-delay difference in samples, weighted by ``|ref|`` of neighbouring bins.

    Only delays below ``n_fft / 2`` samples are unambiguous.
    """
    est, ref = _pair(est, ref)
    slope_est = est[..., 1:, :] * np.conj(est[..., :-1, :])
    slope_ref = ref[..., 1:, :] * np.conj(ref[..., :-1, :])
    diff = np.abs(np.angle(slope_est * np.conj(slope_ref))) * n_fft / (2 * np.pi)
    weights = np.minimum(np.abs(ref[..., 1:, :]), np.abs(ref[..., :-1, :]))
    return weighted_mean(diff, weights, bands)


def interbin_coherence(spec) -> tuple[np.ndarray, np.ndarray]:
    """Phase-locking value of neighbouring bins over time.

    Returns:
        ``(coherence, energy)``, both ``(..., F - 1)``: coherence in [0, 1] of bins
        ``k`` and ``k + 1`` and the weight ``sum_t |X[k+1]| |X[k]|`` behind it.
    """
    spec = _spec(spec)
    cross = spec[..., 1:, :] * np.conj(spec[..., :-1, :])
    energy = np.abs(cross).sum(axis=-1)
    coherence = np.abs(cross.sum(axis=-1)) / np.maximum(energy, 1e-300)
    return coherence, energy


def band_coherence(spec, bands: list[Band] | None = None):
    """Energy-weighted mean inter-bin coherence: a float, or one value per band."""
    coherence, energy = interbin_coherence(spec)
    return weighted_mean(coherence[..., None], energy[..., None], bands)


def _spectra(est_wave, ref_wave, stft_cfg: StftConfig) -> tuple[np.ndarray, np.ndarray]:
    est = np.asarray(est_wave, dtype=np.float64)
    ref = np.asarray(ref_wave, dtype=np.float64)
    if est.shape != ref.shape:
        raise StemproverError(f"estimate and reference differ in shape: {est.shape} vs {ref.shape}")
    if est.shape[-1] < stft_cfg.n_fft:
        raise StemproverError(
            f"signal of {est.shape[-1]} samples is shorter than one frame (n_fft={stft_cfg.n_fft})"
        )
    pair = stft(torch.from_numpy(np.stack([est, ref])), stft_cfg).numpy()
    return pair[0], pair[1]


def phase_report(
    est_wave, ref_wave, sample_rate: float, stft_cfg: StftConfig, bands: str = "octave"
) -> pd.DataFrame:
    """Magnitude and phase errors of an estimate per frequency band.

    Args:
        est_wave: Estimate ``(n_samples,)`` or ``(C, n_samples)``.
        ref_wave: Reference of the same shape.
        sample_rate: Hz.
        stft_cfg: STFT settings of the analysis.
        bands: "octave" or "critical".

    Returns:
        One row per band with columns ``REPORT_COLUMNS``: ``f_low``/``f_high`` in Hz,
        ``mag_error_db`` (mean absolute log-magnitude error, dB), ``phase_dev`` (rad),
        ``if_dev`` (Hz), ``gd_dev`` (samples), ``coherence``/``coherence_ref`` (inter-bin
        coherence of estimate and reference) and ``energy_error_db`` (10 log10 of the
        estimate's band energy over the reference's; negative means energy lost).
        Deviations are weighted by the reference magnitude.
    """
    est, ref = _spectra(est_wave, ref_wave, stft_cfg)
    band_list = get_bands(bands, sample_rate, stft_cfg.n_fft)
    ref_mag, est_mag = np.abs(ref), np.abs(est)
    floor = max(ref_mag.max(), 1e-12) * 1e-5  # -100 dB below the peak: ignore the noise floor
    log_error = np.abs(20 * np.log10((est_mag + floor) / (ref_mag + floor)))
    energy_est = np.array([(est_mag[..., b.bins, :] ** 2).sum() for b in band_list])
    energy_ref = np.array([(ref_mag[..., b.bins, :] ** 2).sum() for b in band_list])
    tiny = 1e-20
    return pd.DataFrame({
        "band": [b.name for b in band_list],
        "f_low": [b.f_low for b in band_list],
        "f_high": [b.f_high for b in band_list],
        "mag_error_db": weighted_mean(log_error, ref_mag, band_list),
        "phase_dev": phase_deviation(est, ref, bands=band_list),
        "if_dev": if_deviation(
            est, ref, stft_cfg.hop_length, stft_cfg.n_fft, sample_rate, bands=band_list
        ),
        "gd_dev": group_delay_deviation(est, ref, stft_cfg.n_fft, bands=band_list),
        "coherence": band_coherence(est, band_list),
        "coherence_ref": band_coherence(ref, band_list),
        "energy_error_db": 10 * np.log10((energy_est + tiny) / (energy_ref + tiny)),
    }, columns=list(REPORT_COLUMNS))


def mean_phase_deviation(
    est_wave,
    ref_wave,
    sample_rate: float,
    stft_cfg: StftConfig,
    f_min: float = 0.0,
    f_max: float | None = None,
) -> float:
    """Magnitude-weighted phase deviation (rad) over the bins in ``[f_min, f_max]`` Hz."""
    est, ref = _spectra(est_wave, ref_wave, stft_cfg)
    freqs = np.arange(stft_cfg.n_freqs) * sample_rate / stft_cfg.n_fft
    f_max = sample_rate / 2 if f_max is None else f_max
    keep = (freqs >= f_min) & (freqs <= f_max)
    if not keep.any():
        raise StemproverError(f"no STFT bin between {f_min} and {f_max} Hz")
    return phase_deviation(est[..., keep, :], ref[..., keep, :])


__all__ = [
    "REPORT_COLUMNS", "band_coherence", "group_delay_deviation", "if_deviation",
    "instantaneous_frequency", "interbin_coherence", "mean_phase_deviation", "phase_deviation",
    "phase_error_map", "phase_report", "weighted_mean",
]
