"""Band-specific artifact detectors for separated stems.

    det = detect(separated, 44100, mixture=mixture)
    det.scores        # {"hf_loss": 0.4, "musical_noise": 0.1, "bleed": 0.2, "phase_smear": 0.0}
    det.maps["bleed"] # (n_bands, n_frames) in [0, 1]
    adapter_weights(det)  # {"hf_loss": .., "musical_noise": .., "bleed": .., "general": ..}

Every detector works on band levels of the stem's power spectrogram (channel mean) in
critical (or octave) bands. With the mixture the detectors compare the stem to it (the
separation mask in dB); without it they fall back on the stem alone, which is less
specific: a bass stem has no treble and reads as band-limited, a noisy drum stem reads as
filled valleys.

Thresholds are adaptive: a robust median plus ``k`` times the (normal-consistent) MAD,
per band over time for the temporal artifacts (isolated peaks, onsets), and per frame over
the reference bands for the band limit. The bleed map uses a fixed dB scale.

* ``hf_loss``: how far the upper bands of the long-term band profile of the stem (over
  the mixture when given) fall below its reference bands, beyond their natural spread. A
  stem with no treble of its own (a bass line) reads as band-limited.
* ``musical_noise``: isolated time-frequency peaks, bins louder than both their time and
  their frequency neighbourhood (so steady partials and broadband transients are not
  peaks), in excess of the rate found in the mixture (or in a clean signal).
* ``bleed``: the valley floor of each band: the 10th percentile of the mask in dB (stem
  over mixture); without a mixture, of the stem's level below its 90th percentile. Other
  sources leaking in fill the valleys.
* ``phase_smear``: mask inertia at the mixture's onsets and offsets: a time-smoothed mask
  applied with the mixture phase cannot follow the sources' balance, so the stem follows
  every transient of the mixture (pre-echo, smeared attacks). Without a mixture: onset
  sharpness, the share of a band's rise reached within one frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
from scipy.ndimage import median_filter

from stemprover.constants import ADAPTERS, ARTIFACTS
from stemprover.dsp.audio import check_mixture
from stemprover.dsp.bands import Band, band_edges_hz, get_bands
from stemprover.dsp.spectral import stft_size
from stemprover.errors import StemproverError

MAD_SCALE = 1.4826  # MAD of a normal distribution times this is its standard deviation
FLOOR_DB = -80.0  # bins this far below the loudest bin are treated as silence
PEAK_SPAN = 5  # neighbourhood (bins / frames) that an isolated peak must stand out from
PEAK_RATE_SCALE = 0.02  # an excess of 2% peaky bins gives a musical-noise score of 0.63
VALLEY_RANGE_DB = (-40.0, 0.0)  # valley floor mapped linearly to a bleed map of 0..1
HF_K = 2.0  # MADs of the reference bands' deficits that a band-limit cliff must exceed
HF_SOFTNESS_DB = 6.0  # width of the logistic loss around the threshold
ONSET_WINDOW_SECONDS = 0.15  # window over which an onset's total rise is measured


@dataclass
class Detection:
    """Detector output for one stem.

    Attributes:
        scores: artifact -> score in [0, 1] (0: not detected).
        maps: artifact -> ``(n_bands, n_frames)`` in [0, 1], where in time and frequency.
        band_edges_hz: ``(n_bands + 1,)`` band edges, Hz.
        frame_seconds: hop between map frames, s.
    """

    scores: dict[str, float]
    maps: dict[str, np.ndarray]
    band_edges_hz: np.ndarray
    frame_seconds: float


def robust_threshold(values: np.ndarray, k: float, axis: int = -1) -> np.ndarray:
    """``median + k * 1.4826 * MAD`` along ``axis`` (NaNs ignored), keeping dims."""
    median = np.nanmedian(values, axis=axis, keepdims=True)
    mad = np.nanmedian(np.abs(values - median), axis=axis, keepdims=True)
    return median + k * MAD_SCALE * mad


def _power(audio: np.ndarray, n_fft: int) -> np.ndarray:
    spec = librosa.stft(audio, n_fft=n_fft, hop_length=n_fft // 4)
    return np.mean(np.abs(spec) ** 2, axis=0)  # (F, T)


def _db(power: np.ndarray, reference: float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power, reference * 10 ** (FLOOR_DB / 10)) + 1e-30)


def _band_power(power: np.ndarray, bands: list[Band]) -> np.ndarray:
    """Mean power per bin of each band ``(n_bands, T)``."""
    return np.stack([power[b.bins].mean(0) for b in bands])


def detect(
    separated: np.ndarray,
    sample_rate: int,
    mixture: np.ndarray | None = None,
    *,
    n_fft: int | None = None,
    bands: str = "critical",
    k: float = 3.0,
) -> Detection:
    """Score each artifact type in a separated stem.

    Args:
        separated: ``(C, n)`` or ``(n,)`` float audio.
        sample_rate: Hz.
        mixture: the mixture the stem came from, same shape, or None.
        n_fft: STFT size; None scales ~46 ms to the sample rate.
        bands: ``critical`` or ``octave``.
        k: MAD multiplier of the adaptive thresholds.

    Returns:
        A :class:`Detection`.
    """
    stem = check_mixture(separated, "separated stem")
    n_fft = n_fft or stft_size(sample_rate)
    band_list = get_bands(bands, sample_rate, n_fft)
    power = _power(stem, n_fft)
    mix_power = None
    if mixture is not None:
        mix = check_mixture(mixture, "mixture")
        if mix.shape[-1] != stem.shape[-1]:
            raise StemproverError(
                f"mixture has {mix.shape[-1]} samples, separated stem has {stem.shape[-1]}"
            )
        mix_power = _power(mix, n_fft)
    frame_seconds = (n_fft // 4) / sample_rate
    maps = {
        "hf_loss": hf_loss_map(power, mix_power, band_list, sample_rate, k),
        "musical_noise": musical_noise_map(power, mix_power, band_list, k),
        "bleed": bleed_map(power, mix_power, band_list),
        "phase_smear": phase_smear_map(power, mix_power, band_list, frame_seconds, k),
    }
    weight = _frame_weights(mix_power if mix_power is not None else power, band_list)
    scores = {
        "hf_loss": _upper_mean(maps["hf_loss"], weight),
        "musical_noise": float(1.0 - np.exp(-np.sum(maps["musical_noise"].mean(0) * weight)
                                           / PEAK_RATE_SCALE)),
        "bleed": float(np.sum(maps["bleed"].mean(0) * weight)),
        "phase_smear": _onset_score(maps["phase_smear"]),
    }
    maps["phase_smear"] = np.nan_to_num(maps["phase_smear"], nan=0.0)
    return Detection(
        scores={a: float(np.clip(scores[a], 0.0, 1.0)) for a in ARTIFACTS},
        maps={a: maps[a].astype(np.float32) for a in ARTIFACTS},
        band_edges_hz=band_edges_hz(band_list),
        frame_seconds=frame_seconds,
    )


def _frame_weights(power: np.ndarray, bands: list[Band]) -> np.ndarray:
    """Frames weighted by being active (within 40 dB of the loudest frame), summing to 1."""
    level = 10 * np.log10(power.sum(0) + 1e-30)
    active = (level > level.max() - 40.0).astype(float)
    return active / max(active.sum(), 1.0)


def hf_loss_map(power, mix_power, bands, sample_rate, k) -> np.ndarray:
    """Lost high bands ``(n_bands, T)``: upper bands far below the reference bands.

    The profile is the median over active frames of each band's level (the stem over the
    mixture when one is given). A band's deficit is the median profile of the reference
    bands (200 Hz to a sixth of the sample rate) minus its own. The threshold is the
    median plus ``HF_K`` MADs of the reference bands' own deficits (at least 6 dB). Each
    upper band (above a sixth of the sample rate) gets a logistic loss
    ``1 / (1 + exp(-(deficit - threshold) / 6 dB))``, which is strictly monotone in the
    attenuation of the band. Bands where the mixture is silent (above a resampler's band
    edge) are skipped. The score is the mean loss of the upper bands.
    """
    level = _db(_band_power(power, bands), power.max())
    weights = _frame_weights(mix_power if mix_power is not None else power, bands)
    active = weights > 0
    defined = np.ones(len(bands), dtype=bool)
    if mix_power is not None:
        mix_level = _db(_band_power(mix_power, bands), mix_power.max())
        level = level - mix_level
        mix_profile = np.median(mix_level[:, active], axis=1)
        defined = mix_profile > mix_profile.max() - 50.0
    profile = np.median(level[:, active], axis=1)
    centres = np.array([(b.f_low + b.f_high) / 2 for b in bands])
    reference = (centres >= 200.0) & (centres < sample_rate / 6) & defined
    if reference.sum() < 3:
        reference = (np.arange(len(bands)) < max(3, len(bands) // 3)) & defined
    deficit = np.median(profile[reference]) - profile
    threshold = max(6.0, float(robust_threshold(deficit[reference], HF_K)[0]))
    upper = (centres >= sample_rate / 6) & defined
    loss = 1.0 / (1.0 + np.exp(-(deficit - threshold) / HF_SOFTNESS_DB))
    lost = np.where(upper, loss, 0.0)
    return lost[:, None] * active[None].astype(float)


def _upper_mean(lost: np.ndarray, weight: np.ndarray) -> float:
    """Mean loss over the bands that can be lost (non-zero somewhere), frame-weighted."""
    rows = lost.max(1) > 0
    return float(np.sum(lost[rows].mean(0) * weight)) if rows.any() else 0.0


def _peakiness(level: np.ndarray) -> np.ndarray:
    along_time = level - median_filter(level, size=(1, PEAK_SPAN), mode="nearest")
    along_freq = level - median_filter(level, size=(PEAK_SPAN, 1), mode="nearest")
    return np.minimum(along_time, along_freq)


def musical_noise_map(power, mix_power, bands, k) -> np.ndarray:
    """Excess rate of isolated peaks per band and frame ``(n_bands, T)``."""
    level = _db(power, power.max())
    peaks = _peakiness(level)
    audible = level > level.max() + FLOOR_DB + 20.0
    if mix_power is not None:
        baseline = _peakiness(_db(mix_power, mix_power.max()))
    else:
        baseline = peaks
    out = []
    for band in bands:
        thr = robust_threshold(baseline[band.bins].ravel(), k)[0]
        rate = ((peaks[band.bins] > thr) & audible[band.bins]).mean(0)
        base_rate = (baseline[band.bins] > thr).mean() if mix_power is not None else 0.0
        out.append(np.clip(rate - base_rate, 0.0, 1.0))
    return np.stack(out)


def bleed_map(power, mix_power, bands) -> np.ndarray:
    """Valley floor per band and frame mapped to [0, 1] ``(n_bands, T)``."""
    low, high = VALLEY_RANGE_DB
    level = _db(power, (mix_power if mix_power is not None else power).max())
    out = []
    for band in bands:
        if mix_power is not None:
            mix_level = _db(mix_power[band.bins], mix_power.max())
            ratio = level[band.bins] - mix_level
            active = mix_level > mix_level.max() + FLOOR_DB + 20.0
            floor = _masked_percentile(ratio, active, 10.0)
        else:
            floor = np.percentile(level[band.bins], 10, axis=0) - np.percentile(
                level[band.bins], 90, axis=0
            )
        out.append(np.clip((np.nan_to_num(floor, nan=low) - low) / (high - low), 0.0, 1.0))
    return np.stack(out)


def _masked_percentile(values: np.ndarray, keep: np.ndarray, q: float) -> np.ndarray:
    """Per column (axis 0) lower ``q``-th percentile of the kept values; NaN if none kept.

    Nearest-rank (lower) percentile, vectorised; ``np.nanpercentile`` loops over columns.
    """
    ordered = np.sort(np.where(keep, values, np.inf), axis=0)
    count = keep.sum(axis=0)
    rank = np.floor(q / 100.0 * np.maximum(count - 1, 0)).astype(int)
    picked = np.take_along_axis(ordered, rank[None], axis=0)[0]
    return np.where(count > 0, picked, np.nan)


def phase_smear_map(power, mix_power, bands, frame_seconds, k) -> np.ndarray:
    """Onset smearing per band at onset frames (NaN elsewhere) ``(n_bands, T)``.

    With the mixture: at the mixture's onsets and offsets (jumps above the band's
    ``median + k * MAD``, at least 3 dB), a sharp mask changes with the sources' balance
    while a time-smoothed mask lags, so the stem just follows the mixture. The map is
    ``1 - |change of the mask in dB| / |change of the mixture in dB|``. Without it: at the
    stem's own onsets, the share of the rise over ~150 ms that is not reached in one frame.
    """
    level = _db(_band_power(power, bands), power.max())
    out = np.full(level.shape, np.nan)
    if mix_power is not None:
        mix_level = _db(_band_power(mix_power, bands), mix_power.max())
        mix_jump = mix_level[:, 2:] - mix_level[:, :-2]  # change over two hops, centred
        mask_jump = (level - mix_level)[:, 2:] - (level - mix_level)[:, :-2]
        thr = np.maximum(robust_threshold(np.abs(mix_jump), k, axis=1), 3.0)
        audible = (level[:, 1:-1] > level.max() + FLOOR_DB + 20.0)
        events = (np.abs(mix_jump) > thr) & audible
        inertia = 1.0 - np.clip(np.abs(mask_jump) / np.maximum(np.abs(mix_jump), 1e-6), 0, 1)
        out[:, 1:-1] = np.where(events, inertia, np.nan)
        return out
    width = max(2, int(round(ONSET_WINDOW_SECONDS / frame_seconds)))
    n_frames = level.shape[1]
    if n_frames < 2 * width + 2:
        return out
    jump = np.diff(level, axis=1, prepend=level[:, :1])
    thr = np.maximum(robust_threshold(jump, k, axis=1), 3.0)
    for b, t in zip(*np.nonzero(jump > thr)):
        if width + 1 <= t < n_frames - width:
            rise = level[b, t : t + width + 1].max() - level[b, t - width - 1]
            if rise >= 6.0:
                out[b, t] = 1.0 - np.clip(jump[b, t] / rise, 0.0, 1.0)
    return out


def _onset_score(smear: np.ndarray) -> float:
    values = smear[np.isfinite(smear)]
    return float(np.mean(values)) if values.size else 0.0


def adapter_weights(detection: Detection | dict[str, float]) -> dict[str, float]:
    """Mixing weights of the LoRA adapters from artifact scores (sum to 1).

    ``phase_smear`` drives the ``general`` adapter. With no artifact detected, ``general``
    takes all the weight.
    """
    scores = detection.scores if isinstance(detection, Detection) else dict(detection)
    raw = {
        "hf_loss": scores.get("hf_loss", 0.0),
        "musical_noise": scores.get("musical_noise", 0.0),
        "bleed": scores.get("bleed", 0.0),
        "general": scores.get("phase_smear", 0.0) + scores.get("general", 0.0),
    }
    raw = {a: max(0.0, float(raw[a])) for a in ADAPTERS}
    total = sum(raw.values())
    if total <= 1e-9:
        return {a: float(a == "general") for a in ADAPTERS}
    return {a: raw[a] / total for a in ADAPTERS}
