"""Mixture projection: the four stems of one song, redistributed over its mixture.

    cleaned = enhance_stems(separated, 44100, model, mixture=song)        # "before" (default)
    cleaned = enhance_stems(separated, 44100, model, mixture=song, projection="none")
    stemprover enhance vocals.wav drums.wav bass.wav other.wav --mixture song.wav --project -o out/

A stem cleaned on its own cannot know what the other three took from the mixture. The four
stems' magnitudes are used as source models of a multichannel Wiener filter
(:func:`stemprover.inference.postfilter.wiener`, Open-Unmix's), which redistributes the
mixture STFT between them: whatever one stem lost and another kept goes back to the stem whose
model claims it, and the four outputs sum to the mixture. The filter can precede the model
(``before``, the default: a predictor, then the generative model that repairs it, the order of
stochastic regeneration), follow it (``after``, as the network and its Wiener step in
Open-Unmix), or both (``both``). Design study row 33 chose ``before`` on the valid split; a
single stem against the rest of the mixture (one source and a residual) lost on every test
set there, so a projection needs all four stems.

The filter rebuilds every stem from the mixture with the mixture's phase and the stems'
power ratios, which caps a stem at about the oracle Wiener mask's quality: a stem that is
already better (a modern separator's, or one whose estimates already sum to the mixture) comes
out worse. So the change is gated by the stems' inconsistency with the mixture, the energy of
``mixture - sum(stems)`` over the mixture's: a share ``min(1, inconsistency / gate_scale)``
of the Wiener change is applied (:class:`~stemprover.inference.postfilter.PostfilterConfig`).
Stems that sum to the mixture are left as they are; bleed, which makes them sum to more, gets
the whole filter (design study row 34).

Long songs are projected in blocks of STFT frames (:func:`project_streams`), so memory stays
flat with duration. Open-Unmix's filter with one EM iteration is local in time except for
two statistics over the whole song: each source's spatial covariance per frequency (a sum
over frames) and the mixture's largest STFT magnitude (a scale for numerical range). A first
pass over the files sums them; a second filters each block with them and overlap-adds the
inverse STFT. Both passes see exactly the frames of the whole-file STFT, so the streamed
result equals the whole-file filter to float rounding, at block edges too.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import fft as scipy_fft

from stemprover.constants import STEMS
from stemprover.errors import StemproverError
from stemprover.inference.enhance import EnhanceOptions, Enhancer, enhance
from stemprover.inference.postfilter import PostfilterConfig, scaled_sizes
from stemprover.inference.streaming import ArraySink, ArraySource, FileSink, FileSource

BLOCK_FRAMES = 256  # STFT frames per block: 3 s at 44.1 kHz, a few tens of MB of spectra
EPS = 1e-10  # Open-Unmix's regularisation (the power of a white noise taken out)
SCALE_FACTOR = 10.0  # Open-Unmix's range scale: spectra are divided by max(1, max|X| / 10)

PROJECTIONS = ("none", "after", "before", "both")
"""Where the mixture projection goes relative to the model."""


def check_projection(projection: str) -> str:
    if projection not in PROJECTIONS:
        raise StemproverError(
            f"unknown projection {projection!r}; choose one of {', '.join(PROJECTIONS)}"
        )
    return projection


def check_stems(stems: Mapping[str, Any]) -> None:
    missing = [stem for stem in STEMS if stem not in stems]
    if missing:
        raise StemproverError(
            f"mixture projection needs all four stems; missing {', '.join(missing)}"
        )


def project(
    stems: Mapping[str, np.ndarray],
    sample_rate: int,
    mixture: np.ndarray,
    cfg: PostfilterConfig | None = None,
) -> dict[str, np.ndarray]:
    """The four stems ``(C, n)`` redistributed over ``mixture`` ``(C, n)`` by a Wiener filter."""
    check_stems(stems)
    mixture = np.asarray(mixture, dtype=np.float32)
    sinks = {stem: ArraySink(*mixture.shape) for stem in STEMS}
    project_streams({stem: ArraySource(np.asarray(stems[stem], dtype=np.float32), sample_rate)
                     for stem in STEMS}, ArraySource(mixture, sample_rate), sinks, cfg)
    return {stem: sinks[stem].audio for stem in STEMS}


def project_streams(stems: Mapping[str, Any], mixture: Any, sinks: Mapping[str, Any],
                    cfg: PostfilterConfig | None = None,
                    block_frames: int = BLOCK_FRAMES) -> None:
    """Project the four stems onto the mixture block by block (see the module docstring).

    Args:
        stems: stem -> source (:mod:`~stemprover.inference.streaming`), all four, each of
            the mixture's rate, length and channels (1 or 2).
        mixture: The mixture's source.
        sinks: stem -> sink receiving the projected ``(C, n)`` float32 blocks in order.
        cfg: STFT sizes (scaled to the rate) and EM iterations; one iteration is streamed.
        block_frames: STFT frames per block.
    """
    check_stems(stems)
    cfg = cfg or PostfilterConfig()
    if cfg.iterations != 1:
        raise StemproverError("the streamed projection runs one EM iteration (Open-Unmix's "
                              f"default); got iterations={cfg.iterations}")
    n_fft, hop = scaled_sizes(cfg, mixture.sample_rate)
    frames = _Frames(n_fft, hop, mixture.n_samples)
    blocks = [(t, min(t + block_frames, frames.n_frames))
              for t in range(0, frames.n_frames, block_frames)]
    # Pass 1: each source's weighted spatial covariance (a sum over frames), the scale, and
    # the energies of the mixture and of its residual after the stems (the gate).
    covariance = {stem: 0.0 for stem in STEMS}
    weight = {stem: 0.0 for stem in STEMS}
    largest, mixture_energy, residual_energy = 0.0, 0.0, 0.0
    for first, last in blocks:
        mix = frames.spectra(mixture, first, last)  # (T, F, C)
        largest = max(largest, float(np.abs(mix).max(initial=0.0)))
        phase = _phase(mix)
        residual = mix.astype(np.complex128)
        for stem in STEMS:
            spectra = frames.spectra(stems[stem], first, last)
            residual = residual - spectra
            estimate = np.abs(spectra) * phase
            covariance[stem] = covariance[stem] + np.einsum(
                "tfc,tfd->fcd", estimate, estimate.conj(), dtype=np.complex128)
            weight[stem] = weight[stem] + _power(estimate).sum(axis=0, dtype=np.float64)
        mixture_energy += float(np.sum(np.abs(mix.astype(np.complex128)) ** 2))
        residual_energy += float(np.sum(np.abs(residual) ** 2))
    share = gate_share(residual_energy, mixture_energy, cfg.gate_scale)
    scale = max(1.0, largest / SCALE_FACTOR)
    # The E-step runs in double precision: the covariances of panned sources are close to
    # rank one, and their inverse would amplify float32 rounding (Open-Unmix recommends
    # float64 for the same reason).
    spatial = {stem: (covariance[stem] / scale**2)
               / (EPS + weight[stem] / scale**2)[:, None, None] for stem in STEMS}
    # Pass 2: the Wiener filter of each block, with the song's spatial covariances.
    adders = {stem: frames.adder() for stem in STEMS}
    for first, last in blocks:
        mix = frames.spectra(mixture, first, last)
        own = {stem: frames.spectra(stems[stem], first, last) for stem in STEMS}
        power = {stem: np.mean(np.abs(own[stem]).astype(np.float64) ** 2, axis=-1) / scale**2
                 for stem in STEMS}  # |magnitude x phase|^2: the phase drops out
        mix = mix.astype(np.complex128)
        n_channels = mix.shape[-1]
        model = np.sqrt(EPS) * np.eye(n_channels, dtype=np.complex128)[None, None]
        for stem in STEMS:
            model = model + power[stem][..., None, None] * spatial[stem][None]
        whitened = _apply(_inverse(model), mix)
        for stem in STEMS:
            filtered = power[stem][..., None] * _apply(spatial[stem][None], whitened)
            if share < 1.0:
                filtered = own[stem] + share * (filtered - own[stem])
            sinks[stem].write(adders[stem].add(filtered, first, last))
    for stem in STEMS:
        sinks[stem].write(adders[stem].finish())


def gate_share(residual_energy: float, mixture_energy: float, gate_scale: float) -> float:
    """The share of the Wiener change applied: the stems' inconsistency with the mixture
    (residual energy over the mixture's) over ``gate_scale``, at most 1; 1 when ungated
    (``gate_scale`` 0) or when the mixture is silent."""
    if gate_scale <= 0 or mixture_energy <= 0:
        return 1.0
    return min(1.0, residual_energy / mixture_energy / gate_scale)


def _apply(matrices: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``matrices (..., C, C)`` times ``vectors (..., C)``, term by term (C is 1 or 2)."""
    return sum(matrices[..., :, k] * vectors[..., k, None] for k in range(vectors.shape[-1]))


def _phase(mix: np.ndarray) -> np.ndarray:
    """Unit phasors of the mixture (1 where it is zero, as atan2(0, 0) = 0 in Open-Unmix)."""
    size = np.abs(mix)
    return np.where(size > 0, mix / np.where(size > 0, size, 1), 1).astype(np.complex64)


def _power(estimate: np.ndarray) -> np.ndarray:
    """Power spectral density ``(T, F)``: the power averaged over channels."""
    return np.mean(estimate.real**2 + estimate.imag**2, axis=-1)


def _inverse(matrices: np.ndarray) -> np.ndarray:
    """Inverses of ``(..., C, C)`` matrices, C = 1 or 2, in closed form."""
    if matrices.shape[-1] == 1:
        return 1.0 / matrices
    a, b = matrices[..., 0, 0], matrices[..., 0, 1]
    c, d = matrices[..., 1, 0], matrices[..., 1, 1]
    det = a * d - b * c
    return np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2) / det[..., None, None]


class _Frames:
    """The frames of librosa's centred STFT (zero padding, periodic Hann window), read from
    a source block by block, and the overlap-add of their inverse.

    Frame ``t`` covers samples ``[t * hop - n_fft // 2, t * hop + n_fft // 2)``; outside
    the signal the samples are zero.
    """

    def __init__(self, n_fft: int, hop: int, n_samples: int):
        from scipy.signal import get_window

        self.n_fft, self.hop, self.n_samples = n_fft, hop, n_samples
        self.n_frames = 1 + n_samples // hop
        self.window = get_window("hann", n_fft, fftbins=True).astype(np.float32)

    def spectra(self, source, first: int, last: int) -> np.ndarray:
        """Frames ``[first, last)`` of ``source``: complex ``(T, F, C)``."""
        start = first * self.hop - self.n_fft // 2
        end = (last - 1) * self.hop - self.n_fft // 2 + self.n_fft
        lo, hi = max(start, 0), min(end, self.n_samples)
        audio = np.zeros((source.n_channels, end - start), dtype=np.float32)
        if hi > lo:
            audio[:, lo - start : hi - start] = source.read(lo, hi)
        framed = np.lib.stride_tricks.sliding_window_view(audio, self.n_fft, axis=-1)[:, ::self.hop]
        return scipy_fft.rfft(framed * self.window, axis=-1).transpose(1, 2, 0)  # complex64

    def adder(self) -> _OverlapAdd:
        return _OverlapAdd(self)


class _OverlapAdd:
    """Inverse STFT by windowed overlap-add, normalised by the summed squared window, as
    ``librosa.istft``; returns each sample once no later frame reaches it."""

    def __init__(self, frames: _Frames):
        self.frames = frames
        self.done = 0  # padded coordinate (sample + n_fft // 2) of the first pending sample
        self.signal = np.zeros((0, 0))
        self.norm = np.zeros(0)

    def add(self, spectra: np.ndarray, first: int, last: int) -> np.ndarray:
        """Overlap-add frames ``[first, last)`` (complex ``(T, F, C)``); the final samples."""
        f = self.frames
        pieces = scipy_fft.irfft(spectra.transpose(2, 0, 1), n=f.n_fft, axis=-1) * f.window
        end = (last - 1) * f.hop + f.n_fft
        grow = end - self.done - self.signal.shape[-1]
        if self.signal.shape[0] == 0:
            self.signal = np.zeros((pieces.shape[0], end - self.done))
            self.norm = np.zeros(end - self.done)
        elif grow > 0:
            self.signal = np.pad(self.signal, ((0, 0), (0, grow)))
            self.norm = np.pad(self.norm, (0, grow))
        squared = f.window**2
        for k, t in enumerate(range(first, last)):
            at = t * f.hop - self.done
            self.signal[:, at : at + f.n_fft] += pieces[:, k]
            self.norm[at : at + f.n_fft] += squared
        return self._emit(last * f.hop if last < f.n_frames else end)

    def finish(self) -> np.ndarray:
        return self._emit(self.done + self.signal.shape[-1])

    def _emit(self, until: int) -> np.ndarray:
        """Samples of padded coordinates ``[done, until)``, cropped to the signal."""
        f = self.frames
        count = until - self.done
        signal, norm = self.signal[:, :count], self.norm[:count]
        tiny = np.finfo(norm.dtype).tiny
        out = np.where(norm > tiny, signal / np.where(norm > tiny, norm, 1.0), signal)
        lo = max(self.done, f.n_fft // 2)
        hi = min(until, f.n_fft // 2 + f.n_samples)
        block = out[:, lo - self.done : max(lo, hi) - self.done]
        self.signal, self.norm = self.signal[:, count:], self.norm[count:]
        self.done = until
        return block.astype(np.float32)


def enhance_stems(
    stems: Mapping[str, np.ndarray],
    sample_rate: int,
    model: Any = None,
    *,
    mixture: np.ndarray | None = None,
    projection: str = "before",
    **options: Any,
) -> dict[str, np.ndarray]:
    """Clean every stem of one song with ``model``, with the mixture projection around it.

    Args:
        stems: stem -> ``(C, n)`` separator output; all four unless ``projection="none"``.
        sample_rate: Hz.
        model: A loaded model, a model folder, an :class:`Enhancer`, or None (the default).
        mixture: ``(C, n)``: the model's condition, and the sum the projection restores.
        projection: ``"none"``, ``"after"``, ``"before"`` or ``"both"``.
        **options: :class:`EnhanceOptions` fields, as for :func:`enhance`.

    Returns:
        stem -> float32 array of the input's shape.
    """
    check_projection(projection)
    if projection != "none" and mixture is None:
        raise StemproverError("mixture projection needs the mixture")
    if projection != "none":
        check_stems(stems)  # before any model runs
    enhancer = model if isinstance(model, Enhancer) else Enhancer(model, EnhanceOptions(**options))
    current = dict(stems)
    if projection in ("before", "both"):
        current = project(current, sample_rate, mixture)
    current = {
        stem: enhance(audio, sample_rate, enhancer, mixture=mixture)
        for stem, audio in current.items()
    }
    if projection in ("after", "both"):
        current = project(current, sample_rate, mixture)
    return current


def stems_by_name(paths: list[str]) -> dict[str, str]:
    """The four stem files of one song, each known by the stem its file name holds.

    A name holds a stem when the stem's name is one of its words (``song_vocals.wav``,
    ``Bass.flac``, ``03 - drums.wav``); each of the four must be named by exactly one file.

    Raises:
        StemproverError: unless the files are exactly the four stems, once each.
    """
    found: dict[str, list[str]] = {stem: [] for stem in STEMS}
    for path in paths:
        words = set(re.split(r"[^a-z]+", Path(path).name.lower()))
        named = [stem for stem in STEMS if stem in words]
        if len(named) != 1:
            raise StemproverError(
                f"{path}: --project needs files whose names say which one stem they hold "
                f"({', '.join(STEMS)}); this one names {len(named) or 'none'}"
            )
        found[named[0]].append(path)
    wrong = [f"{stem} ({len(files)} files)" for stem, files in found.items() if len(files) != 1]
    if wrong:
        raise StemproverError(
            "--project needs the four stems of one song, one file each; got " + ", ".join(wrong)
        )
    return {stem: files[0] for stem, files in found.items()}


@dataclass
class ProjectedStem(FileSource):
    """A projected stem in a temporary WAV file, read like any file; the file lives as long
    as this object (its folder is removed when the object is collected)."""

    folder: Any = field(default=None, repr=False)


def load_projected(
    paths: Mapping[str, str], mixture_path: str, min_samples: int = 1
) -> tuple[dict[str, ProjectedStem], int]:
    """Project a song's four stem files onto its mixture, streaming, into temporary files.

    The filter runs in blocks (:func:`project_streams`): memory stays flat whatever the
    song's length; the projected stems (32-bit float WAV, as long as the song) go to a
    temporary folder that is removed with the returned objects.

    Returns:
        ``(path -> projected stem, sample_rate)``; each stem is a source that
        :func:`~stemprover.inference.enhance.enhance_file` reads in place of the file.

    Raises:
        StemproverError: for a file that cannot be read, holds bad samples, or differs from
            the mixture in rate, length or channels.
    """
    mixture = FileSource.open(mixture_path, min_samples=min_samples)
    stems = {}
    for stem, path in paths.items():
        source = FileSource.open(path, min_samples=min_samples)
        if (source.sample_rate, source.n_channels, source.n_samples) != (
                mixture.sample_rate, mixture.n_channels, mixture.n_samples):
            raise StemproverError(
                f"{path}: {source.n_channels} channel(s), {source.n_samples} samples at "
                f"{source.sample_rate} Hz, but the mixture {mixture_path} has "
                f"{mixture.n_channels}, {mixture.n_samples} at {mixture.sample_rate} Hz; "
                "they must match"
            )
        stems[stem] = source
    folder = tempfile.TemporaryDirectory(prefix="stemprover-projection-")
    targets = {stem: Path(folder.name) / f"{stem}.wav" for stem in STEMS}
    with contextlib.ExitStack() as stack:
        sinks = {stem: stack.enter_context(FileSink(targets[stem], mixture.sample_rate,
                                                    mixture.n_channels))
                 for stem in STEMS}
        project_streams(stems, mixture, sinks)
    projected = {}
    for stem in STEMS:
        projected[paths[stem]] = ProjectedStem.open(targets[stem])
        projected[paths[stem]].folder = folder
    return projected, mixture.sample_rate
