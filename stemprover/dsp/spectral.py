"""Phase-aware STFT and the spectrogram "pictures" that the diffusion model sees.

    cfg = StftConfig(n_fft=1024, hop_length=256)
    rep = get_representation("complex", cfg)
    image = wave_to_image(wave, rep)                      # (batch, 2, freq, time)
    wave_back = image_to_wave(image, rep, wave.shape[-1])  # exact round trip

Spectra are complex tensors ``(..., n_freqs, n_frames)``; pictures are real tensors
``(batch, channels, freq, time)``. Three representations, each with an exact inverse:

* ``magnitude``: ``beta * |X|^alpha``, one channel; the inverse needs a phase.
* ``complex``: power-law compressed real and imaginary parts as in SGMSE+
  (Richter et al. 2023), ``beta * |X|^alpha * exp(i angle X)``, two channels.
* ``mag_if``: compressed magnitude plus the instantaneous-frequency deviation, i.e. the
  frame-to-frame phase advance minus the advance of the bin's centre frequency, wrapped to
  [-pi, pi) and divided by pi. Frame 0 stores its own phase, so the inverse (a cumulative
  sum from frame 0) rebuilds every phase exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from stemprover.errors import StemproverError

WINDOWS = ("hann", "hamming", "blackman", "sqrt_hann")


@dataclass
class StftConfig:
    """STFT settings shared by the model, the losses and the metrics."""

    n_fft: int = 1024  # 23 ms at 44.1 kHz: the usual music-separation resolution
    hop_length: int = 256  # 75% overlap: smooth phase advance, robust reconstruction
    window: str = "hann"  # one of WINDOWS; periodic windows satisfy COLA for these hops
    center: bool = True  # pad n_fft//2 zeros on both ends so frame t is centred at t*hop

    def __post_init__(self) -> None:
        if self.n_fft < 2 or self.hop_length < 1 or self.hop_length > self.n_fft:
            raise StemproverError(
                f"invalid STFT: n_fft={self.n_fft}, hop_length={self.hop_length} "
                "(need n_fft >= 2 and 1 <= hop_length <= n_fft)"
            )
        if self.window not in WINDOWS:
            raise StemproverError(f"unknown STFT window {self.window!r}; choose from {WINDOWS}")

    @property
    def n_freqs(self) -> int:
        """Number of frequency bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1


def make_window(cfg: StftConfig, dtype=torch.float32, device=None) -> torch.Tensor:
    """The analysis/synthesis window ``(n_fft,)`` (periodic)."""
    if cfg.window == "hann":
        return torch.hann_window(cfg.n_fft, dtype=dtype, device=device)
    if cfg.window == "sqrt_hann":
        return torch.hann_window(cfg.n_fft, dtype=dtype, device=device).sqrt()
    if cfg.window == "hamming":
        return torch.hamming_window(cfg.n_fft, dtype=dtype, device=device)
    return torch.blackman_window(cfg.n_fft, dtype=dtype, device=device)


def n_frames(n_samples: int, cfg: StftConfig) -> int:
    """Number of STFT frames :func:`stft` returns for ``n_samples`` samples."""
    if cfg.center:
        return 1 + n_samples // cfg.hop_length
    if n_samples < cfg.n_fft:
        return 0
    return 1 + (n_samples - cfg.n_fft) // cfg.hop_length


def stft(wave: torch.Tensor, cfg: StftConfig) -> torch.Tensor:
    """Short-time Fourier transform.

    Args:
        wave: Real tensor ``(..., n_samples)`` (numpy arrays are converted).
        cfg: STFT settings. With ``center`` the signal is zero-padded by ``n_fft // 2``.

    Returns:
        Complex tensor ``(..., n_freqs, n_frames)``; complex128 for float64 input,
        complex64 otherwise (half-precision input is computed in float32).
    """
    wave = torch.as_tensor(wave)
    if not wave.is_floating_point() or wave.dtype in (torch.float16, torch.bfloat16):
        wave = wave.float()  # torch's FFT has no half-precision path on CPU
    lead, n_samples = wave.shape[:-1], wave.shape[-1]
    if n_samples == 0 or (not cfg.center and n_samples < cfg.n_fft):
        raise StemproverError(
            f"signal of {n_samples} samples is shorter than one STFT frame (n_fft={cfg.n_fft})"
        )
    flat = wave.reshape(-1, n_samples)
    spec = torch.stft(
        flat,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        window=make_window(cfg, flat.dtype, flat.device),
        center=cfg.center,
        pad_mode="constant",
        return_complex=True,
    )
    return spec.reshape(*lead, *spec.shape[-2:])


def istft(spec: torch.Tensor, cfg: StftConfig, length: int) -> torch.Tensor:
    """Inverse STFT (weighted overlap-add), the exact inverse of :func:`stft`.

    Args:
        spec: Complex tensor ``(..., n_freqs, n_frames)``.
        cfg: The settings used for the forward transform.
        length: Number of output samples (the original signal length).

    Returns:
        Real tensor ``(..., length)``.
    """
    lead = spec.shape[:-2]
    flat = spec.reshape(-1, *spec.shape[-2:])
    real_dtype = flat.real.dtype
    wave = torch.istft(
        flat,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        window=make_window(cfg, real_dtype, flat.device),
        center=cfg.center,
        length=int(length),
    )
    return wave.reshape(*lead, wave.shape[-1])


def princarg(phase: torch.Tensor) -> torch.Tensor:
    """Wrap angles in radians to [-pi, pi)."""
    return torch.remainder(phase + math.pi, 2 * math.pi) - math.pi


class Representation:
    """A reversible map between complex spectra and real pictures.

    Attributes:
        name: "magnitude", "complex" or "mag_if".
        channels: Picture channels (1, 2, 2).
        magnitude_channels: Channels that carry magnitude information.
        phase_channels: Channels that carry phase information (for ``complex`` both
            channels mix the two, so :meth:`split_mag_phase` derives them).
        cfg: The STFT settings the picture belongs to.
        alpha: Magnitude compression exponent (0.5 as SGMSE+).
        beta: Scale applied after compression (0.15 as SGMSE+), bringing values near [-1, 1].
    """

    name = ""
    channels = 0
    magnitude_channels: list[int] = []
    phase_channels: list[int] = []

    def __init__(self, cfg: StftConfig, alpha: float = 0.5, beta: float = 0.15):
        if not 0 < alpha <= 1 or beta <= 0:
            raise StemproverError(f"need 0 < alpha <= 1 and beta > 0, got {alpha}, {beta}")
        self.cfg = cfg
        self.alpha = float(alpha)
        self.beta = float(beta)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cfg={self.cfg}, alpha={self.alpha}, beta={self.beta})"

    def compress(self, magnitude: torch.Tensor) -> torch.Tensor:
        """``beta * magnitude ** alpha``; exact zeros stay finite in the gradient."""
        tiny = torch.finfo(magnitude.dtype).tiny
        return self.beta * magnitude.clamp_min(tiny) ** self.alpha

    def decompress(self, compressed: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`compress`; negative values (model outputs) count as zero."""
        return (compressed.clamp_min(0) / self.beta) ** (1.0 / self.alpha)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex spectrum ``(B, F, T)`` -> picture ``(B, C, F, T)``."""
        raise NotImplementedError

    def inverse(self, image: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
        """Picture ``(B, C, F, T)`` -> complex spectrum ``(B, F, T)``.

        Args:
            image: The picture.
            phase: Angles in radians ``(B, F, T)`` or a complex spectrum whose angle is
                used; required by ``magnitude``, ignored by the others.
        """
        raise NotImplementedError

    def split_mag_phase(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split a picture into a compressed magnitude ``(B, 1, F, T)`` and phase features
        ``(B, 2, F, T)`` (cosine and sine of an angle; zeros when there is no phase)."""
        raise NotImplementedError

    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        return self.forward(spec)

    def _check_image(self, image: torch.Tensor) -> None:
        if image.dim() < 3 or image.shape[-3] != self.channels:
            raise StemproverError(
                f"{self.name} pictures need {self.channels} channels at dim -3, "
                f"got shape {tuple(image.shape)}"
            )


class MagnitudeRepresentation(Representation):
    name = "magnitude"
    channels = 1
    magnitude_channels = [0]
    phase_channels: list[int] = []

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.compress(spec.abs()).unsqueeze(-3)

    def inverse(self, image: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
        self._check_image(image)
        if phase is None:
            raise StemproverError("the magnitude representation needs a phase to invert")
        if phase.is_complex():
            phase = phase.angle()
        magnitude = self.decompress(image.squeeze(-3))
        return torch.polar(magnitude, phase.to(magnitude.dtype))

    def split_mag_phase(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_image(image)
        shape = (*image.shape[:-3], 2, *image.shape[-2:])
        return image, image.new_zeros(shape)


class ComplexRepresentation(Representation):
    name = "complex"
    channels = 2
    magnitude_channels = [0, 1]
    phase_channels = [0, 1]

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        magnitude = spec.abs().clamp_min(torch.finfo(spec.real.dtype).tiny)
        compressed = spec * (self.beta * magnitude ** (self.alpha - 1.0))
        return torch.stack([compressed.real, compressed.imag], dim=-3)

    def inverse(self, image: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
        self._check_image(image)
        compressed = torch.complex(image[..., 0, :, :], image[..., 1, :, :])
        radius = compressed.abs().clamp_min(torch.finfo(image.dtype).tiny)
        scale = radius ** (1.0 / self.alpha - 1.0) / self.beta ** (1.0 / self.alpha)
        return compressed * scale

    def split_mag_phase(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_image(image)
        radius = torch.sqrt(image[..., 0:1, :, :] ** 2 + image[..., 1:2, :, :] ** 2)
        unit = image / radius.clamp_min(1e-8)
        return radius, unit


class MagIfRepresentation(Representation):
    name = "mag_if"
    channels = 2
    magnitude_channels = [0]
    phase_channels = [1]

    def _bin_advance(self, n_freqs: int, device, dtype) -> torch.Tensor:
        if n_freqs != self.cfg.n_freqs:
            raise StemproverError(
                f"mag_if expects {self.cfg.n_freqs} frequency bins, got {n_freqs}"
            )
        bins = torch.arange(n_freqs, device=device, dtype=torch.float64)
        advance = princarg(2 * math.pi * bins * self.cfg.hop_length / self.cfg.n_fft)
        return advance.to(dtype)[:, None]  # (F, 1) expected phase advance per hop

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        phase = spec.angle()
        advance = self._bin_advance(spec.shape[-2], spec.device, phase.dtype)
        step = torch.diff(phase, dim=-1) - advance
        deviation = torch.cat([phase[..., :1], step], dim=-1)
        return torch.stack([self.compress(spec.abs()), princarg(deviation) / math.pi], dim=-3)

    def inverse(self, image: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
        self._check_image(image)
        magnitude = self.decompress(image[..., 0, :, :])
        deviation = image[..., 1, :, :].to(torch.float64) * math.pi
        advance = self._bin_advance(image.shape[-2], image.device, torch.float64)
        increments = torch.cat([deviation[..., :1], deviation[..., 1:] + advance], dim=-1)
        # float64 cumulative sum, wrapped, keeps long clips exact in float32 too
        rebuilt = princarg(torch.cumsum(increments, dim=-1)).to(magnitude.dtype)
        return torch.polar(magnitude, rebuilt)

    def split_mag_phase(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_image(image)
        angle = image[..., 1:2, :, :] * math.pi
        return image[..., 0:1, :, :], torch.cat([torch.cos(angle), torch.sin(angle)], dim=-3)


REPRESENTATIONS = {
    "magnitude": MagnitudeRepresentation,
    "complex": ComplexRepresentation,
    "mag_if": MagIfRepresentation,
}


def get_representation(
    name: str, cfg: StftConfig, alpha: float = 0.5, beta: float = 0.15
) -> Representation:
    """Build a representation by name ("magnitude", "complex" or "mag_if")."""
    if name not in REPRESENTATIONS:
        raise StemproverError(
            f"unknown representation {name!r}; choose from {sorted(REPRESENTATIONS)}"
        )
    return REPRESENTATIONS[name](cfg, alpha=alpha, beta=beta)


def wave_to_image(wave: torch.Tensor, rep: Representation) -> torch.Tensor:
    """Waveforms ``(B, n_samples)`` -> pictures ``(B, C, n_freqs, n_frames)``."""
    return rep.forward(stft(wave, rep.cfg))


def image_to_wave(
    image: torch.Tensor,
    rep: Representation,
    length: int,
    phase: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pictures ``(B, C, F, T)`` -> waveforms ``(B, length)``.

    Args:
        image: Pictures from :func:`wave_to_image` (or a model).
        rep: The representation that made them.
        length: Output length in samples.
        phase: Angles ``(B, F, T)`` or a complex spectrum; needed for ``magnitude``.
    """
    return istft(rep.inverse(image, phase), rep.cfg, length)


def stft_size(sample_rate: int, seconds: float = 2048 / 44100) -> int:
    """A power-of-two FFT size covering ``seconds`` (default: 2048 samples at 44.1 kHz)."""
    return int(2 ** round(np.log2(max(16.0, seconds * sample_rate))))
