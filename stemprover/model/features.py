"""Mask-domain input features of a (separated, mixture) pair of pictures.

    feats = mask_features(separated_img, mixture_img, representation, scale)  # (B, 4, F, T)

Separation artifacts live in the mask the separator applied to the mixture: bleed raises it
toward one, musical noise jitters it, a band limit rolls it off. Read from real and imaginary
parts, a convolution has to learn magnitudes and ratios that do not depend on the phase before
it can see any of that; given them directly, a network learns the correction many times faster
(design study, rows 12 to 15). The four channels are:

0. ``log1p(scale * |S|)``: the stem's compressed magnitude on a log scale;
1. ``log1p(scale * |M|)``: the same for the mixture;
2. the implied mask ``|S| / |M|`` (uncompressed magnitudes), clipped to [0, 2];
3. ``cos(angle S - angle M)``: where the stem's phase departs from the mixture's.

Items whose mixture is all zero (mixture dropout, or no mixture given) get zeros in channels
1 to 3, so "no mixture" reads the same however the picture was left out.
"""

from __future__ import annotations

import torch

N_MASK_FEATURES = 4
MAX_RATIO = 2.0


def mask_features(
    separated_img: torch.Tensor,
    mixture_img: torch.Tensor | None,
    representation,
    scale: float = 1.0,
) -> torch.Tensor:
    """Four feature channels ``(B, 4, F, T)`` of a stem picture and its mixture picture.

    Args:
        separated_img: Picture of the separated stem ``(B, C, F, T)``.
        mixture_img: Picture of the mixture, same shape, or None (no mixture).
        representation: The pictures' :class:`~stemprover.dsp.spectral.Representation`.
        scale: The model's ``image_scale`` (clean pictures have unit spread after it).
    """
    s_mag, s_phase = representation.split_mag_phase(separated_img)
    s_mag = s_mag.clamp_min(0)
    if mixture_img is None:
        mixture_img = torch.zeros_like(separated_img)
    m_mag, m_phase = representation.split_mag_phase(mixture_img)
    m_mag = m_mag.clamp_min(0)
    has_mix = (m_mag.flatten(1).amax(1) > 0).to(separated_img.dtype)[:, None, None, None]
    raw_s = representation.decompress(s_mag)
    raw_m = representation.decompress(m_mag)
    tiny = torch.finfo(raw_m.dtype).eps
    ratio = (raw_s / (raw_m + tiny * (1 + raw_m.flatten(1).amax(1)[:, None, None, None])))
    ratio = ratio.clamp(0.0, MAX_RATIO) * has_mix
    # cos(a - b) = cos a cos b + sin a sin b; bins without phase (silence) give 0
    cos_diff = (s_phase[:, :1] * m_phase[:, :1] + s_phase[:, 1:2] * m_phase[:, 1:2]) * has_mix
    return torch.cat([torch.log1p(scale * s_mag), torch.log1p(scale * m_mag) * has_mix,
                      ratio, cos_diff], dim=1)
