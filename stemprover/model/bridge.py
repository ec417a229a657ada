"""The bridge from the separated picture to the clean one: its points, times and scheduler.

    x_t = bridge_point(clean, separated, t, noise, rho)     # training input at time t
    scheduler = bridge_scheduler(); scheduler.set_timesteps(sigmas=bridge_sigmas(4, 1.0))

Time runs from ``t = 1`` (the separated picture ``y``) to ``t = 0`` (the clean picture ``x0``):

    x_t = (1 - t) * x0 + t * y + rho * sqrt(t * (1 - t)) * eps

With ``rho = 0`` this is InDI's interpolation (Delbracio & Milanfar 2023) and a flow-matching
path whose "noise" end is the separated stem, so diffusers' ``FlowMatchEulerDiscreteScheduler``
(``sigma = t``, no shift) carries the sampler: with the network's clean estimate ``x̂0`` the
velocity is ``(x_t - x̂0) / t`` and one Euler step to ``s`` gives
``x_s = (s / t) * x_t + (1 - s / t) * x̂0``, InDI's update. With ``rho > 0`` it is a Brownian
bridge (the I2SB and Schrödinger-bridge family, Liu et al. 2023, Jukić et al. 2024): the step
adds the bridge's conditional spread ``rho * sqrt(s * (t - s) / t)`` back. One step from
``t = 1`` is the predictive (regression) estimate; more steps refine it.
"""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

TRAIN_TIMESTEPS = 1000
"""The U-Net's time embedding sees ``1000 * t``, the range it was designed for."""


def bridge_scheduler():
    """A diffusers flow-matching Euler scheduler with the identity time map (``sigma = t``)."""
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=TRAIN_TIMESTEPS, shift=1.0)


def bridge_sigmas(steps: int, strength: float = 1.0) -> list[float]:
    """``steps`` evenly spaced bridge times from ``strength`` down to (not including) 0.

    ``strength = 1`` starts at the separated picture itself; a smaller value treats the
    separated picture as an earlier point of the bridge, a lighter touch.
    """
    return [float(strength) * (steps - i) / steps for i in range(steps)]


def bridge_std(t: torch.Tensor, rho: float) -> torch.Tensor:
    """Standard deviation of the bridge at time ``t``: ``rho * sqrt(t (1 - t))``."""
    return rho * (t * (1.0 - t)).clamp_min(0.0).sqrt()


def bridge_point(
    clean: torch.Tensor,
    separated: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor | None = None,
    rho: float = 0.0,
) -> torch.Tensor:
    """``x_t`` between ``clean`` (t = 0) and ``separated`` (t = 1).

    Args:
        clean, separated: ``(B, C, H, W)`` in model space.
        t: ``(B,)`` times in [0, 1].
        noise: ``(B, C, H, W)`` standard normal noise; needed when ``rho > 0``.
        rho: Bridge noise scale.
    """
    t4 = t.reshape(-1, 1, 1, 1).to(clean)
    point = (1.0 - t4) * clean + t4 * separated
    if rho > 0:
        point = point + bridge_std(t4, rho) * noise
    return point


def sample_times(
    batch: int, generator: torch.Generator, one_share: float = 0.5, device=None
) -> torch.Tensor:
    """Training times: ``t = 1`` for a ``one_share`` of the items, uniform in (0, 1] otherwise.

    The first sampling step always starts at ``t = 1`` and a one-step call is nothing else, so
    that time gets a fixed share of every batch; the rest covers the refinement steps.
    """
    uniform = 1.0 - torch.rand(batch, generator=generator, device=generator.device)
    first = torch.rand(batch, generator=generator, device=generator.device) < one_share
    t = torch.where(first, torch.ones_like(uniform), uniform)
    return t if device is None else t.to(device)


def step_noise_std(t: float, s: float, rho: float) -> float:
    """Spread of ``x_s`` given ``x_t`` and the clean end of a Brownian bridge (``s < t``)."""
    if rho <= 0 or t <= 0 or s <= 0:
        return 0.0
    return rho * (s * (t - s) / t) ** 0.5
