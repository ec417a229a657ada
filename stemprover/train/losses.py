"""Training losses: the diffusion objective and phase-aware terms on the clean spectrogram.

    loss_fn = PhaseAwareLoss(LossConfig(), representation, stft_cfg, sample_rate)
    total, terms = loss_fn(predicted_clean_image, clean_image, lengths=lengths)

Layouts: images ``(batch, channels, freq, frames)``, complex spectra ``(batch, freq, frames)``,
waves ``(batch, samples)``. Every term function returns one value per example when
``reduce=False`` (so per-example weights such as ``ᾱ_t`` can be applied) and their mean otherwise.
Phase and instantaneous-frequency terms are written as ``1 - cos`` of the angle error: bounded,
smooth at zero error (``≈ Δ²/2``) and free of the ``±π`` wrap that ``|Δ|`` puts in the gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from stemprover.dsp.spectral import Representation, StftConfig, istft, n_frames
from stemprover.dsp.weighting import perceptual_weights
from stemprover.errors import StemproverError

EPS = 1e-8  # keeps |S| and its gradient finite in silent bins (spectra are O(1e-3..1e2))
LOG_FLOOR = 1e-5  # magnitude floor for log spectra: -100 dB, below any audible content


@dataclass
class LossConfig:
    """Weight of each loss term and the settings of the phase-aware terms."""

    diffusion: float = 1.0  # the denoising objective carries the generative model
    complex: float = 0.5  # compressed complex error: magnitude and phase in one term (Wilson 2018)
    phase_cosine: float = 0.2  # phase error counted where the clean stem has energy
    inst_freq: float = 0.1  # IF keeps partials steady across frames (smearing shows up here)
    mrstft: float = 0.2  # waveform-level check after iSTFT, several time/frequency trade-offs
    snr: float = 0.0  # -SNR of the linear spectra in 10 dB units: SDR without an inverse STFT
    frequency_weighting: Literal["none", "a", "equal_loudness"] = "a"  # weight bins as heard
    mrstft_resolutions: tuple[tuple[int, int], ...] = ((256, 64), (512, 128), (1024, 256))
    compress_alpha: float = 0.3  # |S|^0.3 compression (Braun & Tashev 2021) balances loud/quiet
    complex_mag_weight: float = 0.3  # share of the magnitude-only part of the complex loss
    magnitude_power: float = 0.5  # phase/IF weight |S_clean|^p: p<1 lets quiet partials count
    min_snr_gamma: float = 5.0  # Min-SNR-γ weighting of the diffusion loss (Hang 2023); 0 = off
    clean_weighting: Literal["none", "alpha_bar"] = "alpha_bar"  # x0 at high noise is a guess
    bridge_one_share: float = 0.5  # bridge: share of items at t = 1, where every call starts
    harm: float = 0.0  # bridge: hinge on the dB an item's prediction loses against its input

    def __post_init__(self) -> None:
        names = ("diffusion", "complex", "phase_cosine", "inst_freq", "mrstft", "snr",
                 "min_snr_gamma", "harm")
        negative = [name for name in names if getattr(self, name) < 0]
        if negative:
            raise StemproverError(f"LossConfig: {', '.join(negative)} must not be negative")
        if not 0 < self.compress_alpha <= 1 or not 0 <= self.complex_mag_weight <= 1:
            raise StemproverError(
                "LossConfig: need 0 < compress_alpha <= 1, 0 <= complex_mag_weight <= 1"
            )
        if not 0 <= self.bridge_one_share <= 1:
            raise StemproverError("LossConfig: bridge_one_share must be in [0, 1]")
        if self.magnitude_power < 0:
            raise StemproverError("LossConfig: magnitude_power must not be negative")
        if not self.mrstft_resolutions or any(
            len(r) != 2 or not 1 <= r[1] <= r[0] for r in self.mrstft_resolutions
        ):
            raise StemproverError(
                f"LossConfig: mrstft_resolutions must be (n_fft, hop_length) pairs with "
                f"1 <= hop_length <= n_fft, got {self.mrstft_resolutions}"
            )


# ----------------------------------------------------------------------------- diffusion


def _alpha_bar(scheduler: Any, timesteps: Tensor, like: Tensor) -> Tensor:
    """``ᾱ_t`` from the scheduler, shaped ``(B, 1, ..., 1)`` to broadcast against ``like``."""
    alphas = scheduler.alphas_cumprod.to(device=timesteps.device)[timesteps.long()]
    return alphas.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def _prediction_type(scheduler: Any, prediction_type: str | None) -> str:
    kind = prediction_type or scheduler.config.prediction_type
    if kind not in ("epsilon", "v_prediction", "sample"):
        raise StemproverError(f"unsupported prediction_type {kind!r}")
    return kind


def diffusion_target(
    clean: Tensor,
    noise: Tensor,
    timesteps: Tensor,
    scheduler: Any,
    prediction_type: str | None = None,
) -> Tensor:
    """What the network should output for ``noisy = add_noise(clean, noise, t)``.

    Args:
        clean: Clean images or latents ``(B, C, F, T)``.
        noise: The Gaussian noise that was added, same shape.
        timesteps: ``(B,)`` integer timesteps.
        scheduler: A diffusers scheduler with ``alphas_cumprod``.
        prediction_type: ``"epsilon"`` (noise), ``"v_prediction"`` (``√ᾱ ε - √(1-ᾱ) x0``)
            or ``"sample"``; defaults to the scheduler's.
    """
    kind = _prediction_type(scheduler, prediction_type)
    if kind == "epsilon":
        return noise
    if kind == "sample":
        return clean
    alpha_bar = _alpha_bar(scheduler, timesteps, clean)
    return alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * clean


def predict_clean(
    noisy: Tensor,
    model_output: Tensor,
    timesteps: Tensor,
    scheduler: Any,
    prediction_type: str | None = None,
) -> Tensor:
    """The clean image ``x0`` implied by a model output (diffusers' ``pred_original_sample``)."""
    kind = _prediction_type(scheduler, prediction_type)
    if kind == "sample":
        return model_output
    alpha_bar = _alpha_bar(scheduler, timesteps, noisy)
    if kind == "epsilon":
        return (noisy - (1 - alpha_bar).sqrt() * model_output) / alpha_bar.sqrt()
    return alpha_bar.sqrt() * noisy - (1 - alpha_bar).sqrt() * model_output


def min_snr_weights(
    timesteps: Tensor, scheduler: Any, gamma: float, prediction_type: str | None = None
) -> Tensor:
    """Min-SNR-γ loss weights ``(B,)`` (Hang et al. 2023); all ones when ``gamma <= 0``."""
    if gamma <= 0:
        return torch.ones(timesteps.shape[0], device=timesteps.device)
    alpha_bar = _alpha_bar(scheduler, timesteps, timesteps.float()).reshape(-1)
    snr = alpha_bar / (1 - alpha_bar)  # diffusers.training_utils.compute_snr, without its imports
    weights = snr.clamp(max=gamma)
    kind = _prediction_type(scheduler, prediction_type)
    if kind == "epsilon":
        return weights / snr
    if kind == "v_prediction":
        return weights / (snr + 1)
    return weights


def diffusion_loss(model_output: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """Mean squared error per example, times optional per-example ``weights`` ``(B,)``, averaged."""
    per_example = (model_output.float() - target.float()).pow(2).flatten(1).mean(dim=1)
    if weights is not None:
        per_example = per_example * weights.to(per_example)
    return per_example.mean()


# ----------------------------------------------------------------------------- spectral terms


def _abs(spec: Tensor) -> Tensor:
    return (spec.real.square() + spec.imag.square() + EPS).sqrt()


def _weighted_mean(values: Tensor, weights: Tensor, reduce: bool) -> Tensor:
    """``Σ w·v / Σ w`` over all but the batch axis."""
    weights = weights.expand_as(values)
    per_example = (values * weights).flatten(1).sum(1) / weights.flatten(1).sum(1).clamp_min(EPS)
    return per_example.mean() if reduce else per_example


def _bin_weights(like: Tensor, freq_weights: Tensor | None, frame_mask: Tensor | None) -> Tensor:
    """Weights ``(B or 1, F, T)`` from per-bin weights ``(F,)`` and a frame mask ``(B, T)``."""
    weights = torch.ones(1, *like.shape[-2:], device=like.device, dtype=like.real.dtype)
    if freq_weights is not None:
        weights = weights * freq_weights.to(weights)[:, None]
    if frame_mask is not None:
        weights = weights * frame_mask.to(weights)[:, None, :]
    return weights


def compress(spec: Tensor, alpha: float) -> Tensor:
    """Power-law compressed complex spectrum ``|S|^α e^{i∠S}`` (differentiable at 0)."""
    return spec * _abs(spec).pow(alpha - 1)


def spectral_snr_loss(
    est: Tensor,
    ref: Tensor,
    *,
    frame_mask: Tensor | None = None,
    reduce: bool = True,
) -> Tensor:
    """Negative signal-to-error ratio of the linear complex spectra, in units of 10 dB.

    By Parseval's theorem the error energy of a (near-)tight STFT frame is the waveform's, so
    this is the SDR that the evaluation reports, computed without an inverse STFT. A log ratio
    weighs every item alike, loud or quiet, and a compressed-domain loss alone lets loud bins,
    which dominate SDR, get worse while quiet ones improve.

    Args:
        est, ref: Complex spectra ``(B, F, T)``.
        frame_mask: Optional ``(B, T)`` mask of valid frames.
    """
    diff = est - ref
    err = diff.real.square() + diff.imag.square()
    energy = ref.real.square() + ref.imag.square()
    if frame_mask is not None:
        mask = frame_mask[:, None, :].to(err)
        err, energy = err * mask, energy * mask
    ratio = (err.sum(dim=(-2, -1)) + EPS) / (energy.sum(dim=(-2, -1)) + EPS)
    values = torch.log10(ratio)
    return values.mean() if reduce else values


def complex_compressed_loss(
    est: Tensor,
    ref: Tensor,
    *,
    alpha: float = 0.3,
    mag_weight: float = 0.3,
    freq_weights: Tensor | None = None,
    frame_mask: Tensor | None = None,
    reduce: bool = True,
) -> Tensor:
    """``(1-λ)|c(Ŝ)-c(S)|² + λ(|c(Ŝ)|-|c(S)|)²`` with ``c`` the compression of :func:`compress`.

    Args:
        est, ref: Complex spectra ``(B, F, T)``.
        alpha: Compression exponent.
        mag_weight: ``λ``, the share of the magnitude-only error.
        freq_weights: Optional per-bin weights ``(F,)``.
        frame_mask: Optional ``(B, T)`` mask of valid frames.
    """
    c_est, c_ref = compress(est, alpha), compress(ref, alpha)
    diff = c_est - c_ref
    complex_err = diff.real.square() + diff.imag.square()
    mag_err = (_abs(est).pow(alpha) - _abs(ref).pow(alpha)).square()
    values = (1 - mag_weight) * complex_err + mag_weight * mag_err
    return _weighted_mean(values, _bin_weights(ref, freq_weights, frame_mask), reduce)


def phase_cosine_loss(
    est: Tensor,
    ref: Tensor,
    *,
    magnitude_power: float = 1.0,
    freq_weights: Tensor | None = None,
    frame_mask: Tensor | None = None,
    reduce: bool = True,
) -> Tensor:
    """Magnitude-weighted ``1 - cos(∠Ŝ - ∠S)`` with weights ``|S|^p`` of the reference.

    A phase shift θ applied to every bin gives exactly ``1 - cos θ``, whatever the magnitudes.
    """
    cos = (est * ref.conj()).real / (_abs(est) * _abs(ref))
    weights = _bin_weights(ref, freq_weights, frame_mask) * _abs(ref).detach().pow(magnitude_power)
    return _weighted_mean(1 - cos, weights, reduce)


def if_loss(
    est: Tensor,
    ref: Tensor,
    *,
    magnitude_power: float = 1.0,
    freq_weights: Tensor | None = None,
    frame_mask: Tensor | None = None,
    reduce: bool = True,
) -> Tensor:
    """Instantaneous-frequency error ``1 - cos(ΔIF)``, ``ΔIF`` wrapped to ``(-π, π]``.

    The IF of a bin is its phase advance between consecutive frames, ``∠(S_t S*_{t-1})``; a
    partial detuned by ``δf`` Hz advances by an extra ``2π δf hop / sample_rate`` radians per frame.
    Weights are ``(|S_t||S_{t-1}|)^{p/2}`` of the reference and need both frames valid.
    """
    z_est = est[..., 1:] * est[..., :-1].conj()
    z_ref = ref[..., 1:] * ref[..., :-1].conj()
    cos = (z_est * z_ref.conj()).real / (_abs(z_est) * _abs(z_ref))
    mask = None if frame_mask is None else frame_mask[:, 1:] & frame_mask[:, :-1]
    weights = _bin_weights(z_ref, freq_weights, mask) * _abs(z_ref).detach().pow(
        magnitude_power / 2
    )
    return _weighted_mean(1 - cos, weights, reduce)


def mrstft_loss(
    est: Tensor,
    ref: Tensor,
    *,
    resolutions: tuple[tuple[int, int], ...] = ((256, 64), (512, 128), (1024, 256)),
    lengths: Tensor | None = None,
    reduce: bool = True,
) -> Tensor:
    """Multi-resolution STFT loss: spectral convergence plus mean |log-magnitude| error.

    Averaged over the ``(n_fft, hop_length)`` resolutions (Yamamoto et al. 2020). Written here
    rather than taken from auraloss because training needs one value per example and masks.

    Args:
        est, ref: Waves ``(B, samples)``.
        lengths: Optional valid samples per example ``(B,)``; later samples and frames are ignored.
    """
    est, ref = est.float(), ref.float()
    if lengths is not None:
        sample_mask = torch.arange(est.shape[-1], device=est.device)[None] < lengths[:, None]
        est, ref = est * sample_mask, ref * sample_mask
    total = est.new_zeros(est.shape[0])
    for n_fft, hop_length in resolutions:
        window = torch.hann_window(n_fft, device=est.device)
        kwargs = dict(n_fft=n_fft, hop_length=hop_length, window=window, return_complex=True)
        # constant padding lets segments shorter than n_fft/2 through (reflect would fail)
        mag_est = _abs(torch.stft(est, pad_mode="constant", **kwargs))
        mag_ref = _abs(torch.stft(ref, pad_mode="constant", **kwargs))
        weights = torch.ones_like(mag_ref[:, :1])
        if lengths is not None:
            frames = torch.arange(mag_ref.shape[-1], device=est.device) * hop_length
            weights = (frames[None] < lengths[:, None]).to(mag_ref)[:, None, :]
        diff = (mag_ref - mag_est) * weights
        convergence = diff.flatten(1).norm(dim=1) / (
            (mag_ref * weights).flatten(1).norm(dim=1) + EPS
        )
        log_err = (mag_ref.clamp_min(LOG_FLOOR).log() - mag_est.clamp_min(LOG_FLOOR).log()).abs()
        total = total + convergence + _weighted_mean(log_err, weights, reduce=False)
    per_example = total / len(resolutions)
    return per_example.mean() if reduce else per_example


# ----------------------------------------------------------------------------- module


def valid_frames(lengths: Tensor, n_frames_total: int, stft_cfg: StftConfig) -> Tensor:
    """``(B, T)`` mask of the STFT frames that lie within each example's ``lengths`` samples."""
    valid = torch.tensor(
        [n_frames(int(n), stft_cfg) for n in lengths.tolist()], device=lengths.device
    )
    return torch.arange(n_frames_total, device=lengths.device)[None] < valid[:, None]


class PhaseAwareLoss(torch.nn.Module):
    """Weighted sum of the loss terms of :class:`LossConfig` on predicted clean images.

    Args:
        cfg: Term weights and settings.
        representation: Maps images ``(B, C, F, T)`` to complex spectra ``(B, F, T)``.
        stft_cfg: The STFT the representation was computed with.
        sample_rate: Audio rate in Hz (for the perceptual frequency weights).
    """

    def __init__(
        self,
        cfg: LossConfig,
        representation: Representation,
        stft_cfg: StftConfig,
        sample_rate: int,
    ):
        super().__init__()
        self.cfg = cfg
        self.representation = representation
        self.stft_cfg = stft_cfg
        self.sample_rate = sample_rate
        weights = perceptual_weights(sample_rate, stft_cfg.n_fft, kind=cfg.frequency_weighting)
        self.register_buffer("freq_weights", weights.float())

    def _spectrum(self, image: Tensor, phase: Tensor | None) -> Tensor:
        return self.representation.inverse(image.float(), phase=phase)

    def forward(
        self,
        pred_image: Tensor,
        target_image: Tensor,
        lengths: Tensor | None = None,
        *,
        phase: Tensor | None = None,
        target_phase: Tensor | None = None,
        sample_weights: Tensor | None = None,
        diffusion: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and its weighted-in terms.

        Args:
            pred_image: Predicted clean image ``(B, C, F, T)`` (differentiable).
            target_image: Clean image, same shape.
            lengths: Valid samples per example ``(B,)``; None when all are full length.
            phase: Phase ``(B, F, T)`` for representations without phase (``magnitude``), e.g. the
                separated stem's; ``target_phase`` (default ``phase``) is used for the target.
            sample_weights: Per-example weights ``(B,)`` of the spectral terms (e.g. ``ᾱ_t``).
            diffusion: A diffusion loss to add with weight ``cfg.diffusion``. Without it the
                image-space MSE takes its place (the regression baseline's counterpart).

        Returns:
            ``(total, terms)``: scalar total and a dict of detached, unweighted scalar terms
            (only those with a non-zero weight), ready to log as CSV columns.
        """
        if pred_image.shape != target_image.shape:
            raise StemproverError(
                f"prediction {tuple(pred_image.shape)} != target {tuple(target_image.shape)}"
            )
        cfg = self.cfg
        weights = torch.ones(pred_image.shape[0], device=pred_image.device)
        if sample_weights is not None:
            weights = sample_weights.to(weights)
        terms: dict[str, Tensor] = {}
        total = pred_image.new_zeros((), dtype=torch.float32)
        if diffusion is not None:
            terms["diffusion"] = diffusion
        elif cfg.diffusion:
            squared = (pred_image.float() - target_image.float()).pow(2)
            mask = torch.ones_like(squared[:, :1, :1])
            if lengths is not None:
                mask = valid_frames(lengths, squared.shape[-1], self.stft_cfg)[:, None, None]
            terms["image"] = (
                _weighted_mean(squared, mask.to(squared), reduce=False) * weights
            ).mean()
        spectral_weights = {
            "complex": cfg.complex,
            "phase_cosine": cfg.phase_cosine,
            "inst_freq": cfg.inst_freq,
            "mrstft": cfg.mrstft,
            "snr": cfg.snr,
        }
        if any(spectral_weights.values()):
            terms.update(
                self._spectral_terms(
                    pred_image, target_image, lengths, phase, target_phase, weights
                )
            )
        for name, value in terms.items():
            total = total + spectral_weights.get(name, cfg.diffusion) * value
        return total, {name: value.detach() for name, value in terms.items()}

    def _spectral_terms(
        self,
        pred_image: Tensor,
        target_image: Tensor,
        lengths: Tensor | None,
        phase: Tensor | None,
        target_phase: Tensor | None,
        weights: Tensor,
    ) -> dict[str, Tensor]:
        cfg = self.cfg
        est = self._spectrum(pred_image, phase)
        ref = self._spectrum(target_image, phase if target_phase is None else target_phase)
        mask = None if lengths is None else valid_frames(lengths, est.shape[-1], self.stft_cfg)
        common = dict(freq_weights=self.freq_weights, frame_mask=mask, reduce=False)
        power = dict(magnitude_power=cfg.magnitude_power)
        per_example: dict[str, Tensor] = {}
        if cfg.complex:
            per_example["complex"] = complex_compressed_loss(
                est, ref, alpha=cfg.compress_alpha, mag_weight=cfg.complex_mag_weight, **common
            )
        if cfg.snr:
            per_example["snr"] = spectral_snr_loss(est, ref, frame_mask=mask, reduce=False)
        if cfg.phase_cosine:
            per_example["phase_cosine"] = phase_cosine_loss(est, ref, **power, **common)
        if cfg.inst_freq:
            per_example["inst_freq"] = if_loss(est, ref, **power, **common)
        if cfg.mrstft:
            hop = self.stft_cfg.hop_length
            length = int(lengths.max()) if lengths is not None else (est.shape[-1] - 1) * hop
            est_wave = istft(est, self.stft_cfg, length=length)
            ref_wave = istft(ref, self.stft_cfg, length=length)
            per_example["mrstft"] = mrstft_loss(
                est_wave,
                ref_wave,
                resolutions=cfg.mrstft_resolutions,
                lengths=lengths,
                reduce=False,
            )
        return {name: (values * weights).mean() for name, values in per_example.items()}

    def diffusion_terms(
        self,
        model_output: Tensor,
        noisy: Tensor,
        clean: Tensor,
        noise: Tensor,
        timesteps: Tensor,
        scheduler: Any,
        *,
        target_image: Tensor | None = None,
        decode: Any = None,
        lengths: Tensor | None = None,
        phase: Tensor | None = None,
        target_phase: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The whole training loss of one diffusion step.

        Args:
            model_output: Network output ``(B, C, H, W)`` in the scheduler's prediction type.
            noisy, clean, noise: ``x_t``, ``x0`` and ``ε`` in the space the model runs in.
            timesteps: ``(B,)``.
            scheduler: diffusers scheduler (``alphas_cumprod``, ``config.prediction_type``).
            target_image: Clean image when the model runs on latents (default ``clean``).
            decode: Callable latents -> images (latent mode), applied to the predicted ``x0``.
            lengths, phase, target_phase: As in :meth:`forward`.
        """
        cfg = self.cfg
        target = diffusion_target(clean, noise, timesteps, scheduler)
        snr_weights = min_snr_weights(timesteps, scheduler, cfg.min_snr_gamma)
        loss = diffusion_loss(model_output, target, snr_weights)
        pred_clean = predict_clean(noisy, model_output.float(), timesteps, scheduler)
        pred_image = decode(pred_clean) if decode is not None else pred_clean
        target_image = clean if target_image is None else target_image
        sample_weights = None
        if cfg.clean_weighting == "alpha_bar":
            sample_weights = _alpha_bar(scheduler, timesteps, timesteps.float()).reshape(-1)
        return self(
            pred_image,
            target_image,
            lengths,
            phase=phase,
            target_phase=target_phase,
            sample_weights=sample_weights,
            diffusion=loss,
        )
