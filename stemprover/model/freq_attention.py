"""Frequency-band attention: self-attention along the frequency axis within each time frame.

Harmonics of one note sit far apart in frequency but move together; a convolution sees only
neighbouring bins, attention along frequency sees all of them at once. Each frame is a sequence
of ``F`` bins with ``C`` features; a learned band position embedding tells the attention where a
bin sits (low bins and high bins behave differently), interpolated to any number of bins.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FrequencyAttention(nn.Module):
    """Residual multi-head self-attention across frequency, per time frame.

    Args:
        channels: Feature channels ``C`` (must be divisible by ``n_heads``).
        n_heads: Attention heads.
        n_bands: Learned band positions; interpolated linearly to the number of bins.
        enabled: When False the module is the identity (the ablation switch).
    """

    def __init__(self, channels: int, n_heads: int = 2, n_bands: int = 32, enabled: bool = True):
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels {channels} not divisible by n_heads {n_heads}")
        self.enabled = enabled
        self.norm = nn.LayerNorm(channels)
        self.band_embedding = nn.Parameter(torch.randn(channels, n_bands) * 0.02)
        self.attention = nn.MultiheadAttention(channels, n_heads, batch_first=True)

    def band_positions(self, n_freqs: int) -> torch.Tensor:
        """Band position embedding at ``n_freqs`` bins, ``(n_freqs, C)``."""
        table = self.band_embedding.unsqueeze(0)  # (1, C, n_bands)
        return F.interpolate(table, size=n_freqs, mode="linear", align_corners=True)[0].T

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, F, T)`` -> ``(B, C, F, T)``; the identity when disabled."""
        if not self.enabled:
            return features
        batch, channels, n_freqs, n_frames = features.shape
        seq = features.permute(0, 3, 2, 1).reshape(batch * n_frames, n_freqs, channels)
        query = self.norm(seq) + self.band_positions(n_freqs).to(seq.dtype)
        attended, _ = self.attention(query, query, query, need_weights=False)
        out = (seq + attended).reshape(batch, n_frames, n_freqs, channels)
        return out.permute(0, 3, 2, 1)
