"""Few-step sampling of clean spectrogram pictures from separated ones.

    clean = sample(model, separated_img, mixture_img, steps=4, adapter_weights={"general": 1.0})

A bridge model (the default formulation, :mod:`stemprover.model.bridge`) starts at the separated
picture itself (``t = strength``, 1 by default) and takes ``steps`` steps of diffusers'
``FlowMatchEulerDiscreteScheduler`` toward the clean picture; each step asks the network for the
clean picture and moves part of the way there (InDI's update). Nothing of the input is thrown
away, and an untrained model returns its input at any number of steps.

An SDEdit model (kept as an ablation row) starts partway along a noise diffusion: the separated stem's
picture is noised to the level that ``strength`` selects (1 = pure noise, small = a light
touch), then ``steps`` denoising steps of a diffusers scheduler (DDIM, or DPM-Solver++
multistep) bring it back. ``steps`` is always the number of model evaluations: with
``strength < 1`` the scheduler is set up for ``ceil(steps / strength)`` steps and only the
last ``steps`` are run. The control branch's conditioning embedding depends only on the
separated stem (and mixture), so it is computed once per segment and reused at every step
(``use_cache=False`` recomputes it, to measure what the cache saves).

A regression model (no ``encode_condition``) skips all this: one forward pass.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from diffusers.utils.torch_utils import randn_tensor

from stemprover.dsp.spectral import image_to_wave, stft, wave_to_image
from stemprover.errors import StemproverError
from stemprover.model.bridge import bridge_scheduler, bridge_sigmas, step_noise_std

SCHEDULERS = ("ddim", "dpmpp")
MAX_STEPS = 50


def is_diffusion(model: Any) -> bool:
    """True for a diffusion model (it has a control branch to encode the condition)."""
    return hasattr(model, "encode_condition")


def make_scheduler(model: Any, name: Literal["ddim", "dpmpp"] = "dpmpp"):
    """A diffusers scheduler built from the model's training noise schedule.

    "trailing" timestep spacing makes the first step start from the last training
    timestep, which few-step sampling needs (Lin et al. 2024, "Common Diffusion Noise
    Schedules and Sample Steps are Flawed").
    """
    config = dict(getattr(model, "scheduler_config", None) or {})
    prediction_type = getattr(getattr(model, "config", None), "prediction_type", None)
    if prediction_type:
        config["prediction_type"] = prediction_type
    config["timestep_spacing"] = "trailing"
    if name == "ddim":
        return DDIMScheduler.from_config(config, set_alpha_to_one=True, clip_sample=False)
    if name == "dpmpp":
        return DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", solver_order=2, lower_order_final=True
        )
    raise StemproverError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


def check_steps(steps: int, strength: float) -> None:
    """Reject step counts outside 1..50 and strengths outside (0, 1]."""
    if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise StemproverError(f"steps must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
    if not 0.0 < float(strength) <= 1.0:
        raise StemproverError(f"strength must be in (0, 1], got {strength!r}")


def timesteps_for(scheduler, steps: int, strength: float) -> tuple[torch.Tensor, int]:
    """The last ``steps`` timesteps of a ``ceil(steps / strength)``-step schedule.

    Returns:
        ``(timesteps (steps,), begin_index)``; the scheduler is left set up for them.
    """
    check_steps(steps, strength)
    n_train = int(scheduler.config.num_train_timesteps)
    total = min(max(steps, math.ceil(steps / float(strength) - 1e-9)), n_train)
    scheduler.set_timesteps(total)
    begin = (total - steps) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler.timesteps[begin:], begin


@torch.no_grad()
def sample(
    model: Any,
    separated_img: torch.Tensor,
    mixture_img: torch.Tensor | None = None,
    *,
    steps: int = 4,
    strength: float = 1.0,
    scheduler: Literal["ddim", "dpmpp"] = "dpmpp",
    adapter_weights: dict[str, float] | torch.Tensor | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    noise: torch.Tensor | None = None,
    use_cache: bool = True,
    forward: Any = None,
) -> torch.Tensor:
    """Clean pictures from separated ones.

    Args:
        model: A StemProverModel (diffusion) or RegressionModel.
        separated_img: Separated stem pictures ``(B, C, F, T)``.
        mixture_img: Mixture pictures ``(B, C, F, T)`` or None.
        steps: Model evaluations, 1 to 50.
        strength: Where to start, in (0, 1]. Bridge: the bridge time the separated picture is
            taken for (1 = all the way). SDEdit: the noise level (1 = almost pure noise).
        scheduler: SDEdit only: "ddim" or "dpmpp" (DPM-Solver++ 2M); a bridge model always
            uses its flow-matching Euler scheduler.
        adapter_weights: Adapter name -> weight, or ``(B, n_adapters)`` per item.
        generator: Source of the starting noise when ``noise`` is not given; a list with
            one generator per item makes each item's noise independent of the batching.
        noise: Starting noise in model space (``(B, C, F, T)`` in pixel mode).
        use_cache: Encode the condition once (True) or at every step (False).
        forward: Callable used instead of ``model`` for the denoiser calls (e.g. a
            ``torch.compile``-d model); same signature as ``model.forward``.

    Returns:
        Clean pictures, float32 ``(B, C, F, T)``.
    """
    dtype = _model_dtype(model)
    separated = separated_img.to(dtype)
    mixture = None if mixture_img is None else mixture_img.to(dtype)
    denoise = model if forward is None else forward
    if not is_diffusion(model):
        return denoise(separated, mixture).float()
    if getattr(model, "is_bridge", False):
        return _sample_bridge(model, separated_img, mixture, steps=steps, strength=strength,
                              adapter_weights=adapter_weights, generator=generator,
                              use_cache=use_cache, denoise=denoise)
    noise_scheduler = make_scheduler(model, scheduler)
    timesteps, _ = timesteps_for(noise_scheduler, steps, strength)
    # Noise lives in model space: the scaled picture, or an autoencoder's latents.
    encode = getattr(model, "encode_image", None)
    clean_guess = (encode(separated) if encode else separated).float()
    if noise is None:
        noise = randn_tensor(clean_guess.shape, generator=generator, device=clean_guess.device)
    start = timesteps[:1].repeat(clean_guess.shape[0]).to(clean_guess.device)
    latents = noise_scheduler.add_noise(clean_guess, noise.float().to(clean_guess.device), start)
    condition = model.encode_condition(separated, mixture) if use_cache else None
    for t in timesteps:
        if not use_cache:
            condition = model.encode_condition(separated, mixture)
        model_input = noise_scheduler.scale_model_input(latents, t)
        t_batch = t.reshape(1).repeat(latents.shape[0]).to(latents.device)
        output = denoise(model_input.to(dtype), t_batch, condition, adapter_weights)
        latents = noise_scheduler.step(output.float(), t, latents).prev_sample
    decode = getattr(model, "decode_image", None)
    if decode is None:
        return latents
    return decode(latents.to(dtype), tuple(separated_img.shape[-2:])).float()


def _sample_bridge(model, separated_img, mixture, *, steps, strength, adapter_weights,
                   generator, use_cache, denoise) -> torch.Tensor:
    """Bridge sampling from the separated picture (see the module docstring)."""

    check_steps(steps, strength)
    dtype = _model_dtype(model)
    separated = separated_img.to(dtype)
    start = model.encode_image(separated).float()
    scheduler = bridge_scheduler()
    scheduler.set_timesteps(sigmas=bridge_sigmas(steps, strength), device=start.device)
    rho = float(model.config.bridge_noise)
    controlled = model.has_control  # a base model (stage 03) restores from x_t alone
    condition = model.encode_condition(separated, mixture) if use_cache and controlled else None
    x = start
    for index, t in enumerate(scheduler.timesteps):
        if not use_cache and controlled:
            condition = model.encode_condition(separated, mixture)
        sigma, sigma_next = float(scheduler.sigmas[index]), float(scheduler.sigmas[index + 1])
        t_batch = t.reshape(1).repeat(x.shape[0]).to(x.device)
        clean = denoise(x.to(dtype), t_batch, condition, adapter_weights).float()
        velocity = (x - clean) / sigma
        x = scheduler.step(velocity, t, x).prev_sample
        spread = step_noise_std(sigma, sigma_next, rho)
        if spread > 0:
            x = x + spread * randn_tensor(x.shape, generator=generator, device=x.device)
    decode = getattr(model, "decode_image", None)
    size = tuple(separated_img.shape[-2:])
    if model.autoencoder is None:
        return decode(x.to(dtype), size).float()
    # latent mode decodes only the correction, so the autoencoder's error does not cap quality
    change = decode(x.to(dtype), size).float() - decode(start.to(dtype), size).float()
    return separated_img.float() + change


def _model_dtype(model: Any) -> torch.dtype:
    try:
        return next(model.parameters()).dtype
    except (AttributeError, StopIteration):
        return torch.float32


@torch.no_grad()
def sample_waves(
    model: Any,
    separated: torch.Tensor,
    mixture: torch.Tensor | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Clean waveforms from separated ones at the model's rate.

    Args:
        model: A StemProverModel or RegressionModel (with ``.representation``).
        separated: ``(B, n_samples)`` float32 at ``model.config.sample_rate``.
        mixture: ``(B, n_samples)`` or None.
        **kwargs: Passed to :func:`sample` (steps, strength, scheduler, adapter_weights, ...).

    Returns:
        float32 ``(B, n_samples)``.
    """

    rep = model.representation
    separated_img = wave_to_image(separated.float(), rep)
    mixture_img = None if mixture is None else wave_to_image(mixture.float(), rep)
    clean_img = sample(model, separated_img, mixture_img, **kwargs)
    # Only the magnitude picture lacks a phase; it reuses the separated stem's.
    phase = stft(separated.float(), rep.cfg) if rep.name == "magnitude" else None
    return image_to_wave(clean_img.float(), rep, separated.shape[-1], phase=phase)
