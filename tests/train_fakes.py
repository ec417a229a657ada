"""Small training data and model sizes shared by the training tests and their worker scripts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from stemprover.constants import ADAPTERS
from stemprover.model import StemProverModel, model_config
from stemprover.train.config import LoraTrainConfig
from stemprover.train.losses import LossConfig

TINY = dict(
    block_out_channels=[8, 16],
    norm_num_groups=4,
    attention_head_dim=4,
    cross_attention_dim=16,
    condition_channels=8,
    n_condition_tokens=2,
    lora_rank=2,
    lora_alpha=2.0,
    freq_attention_heads=2,
)
LOSS = LossConfig(mrstft_resolutions=((128, 32), (256, 64)))
N_SAMPLES = 32 * 15  # 16 STFT frames at hop 32


class FakePairs(torch.utils.data.Dataset):
    """Harmonic tones; the separated side has the artifact of its adapter (known answers)."""

    def __init__(self, n_items: int = 8, seed: int = 0):
        rng = np.random.default_rng(seed)
        time_s = np.arange(N_SAMPLES) / 16000.0
        self.items = []
        for index in range(n_items):
            f0 = rng.uniform(150, 600)
            clean = (
                sum(
                    np.sin(2 * math.pi * f0 * k * time_s + rng.uniform(0, 6)) / k
                    for k in range(1, 6)
                )
                * 0.2
            )
            other = 0.1 * np.sin(2 * math.pi * rng.uniform(700, 900) * time_s)
            adapter = index % len(ADAPTERS)
            separated = clean + (
                0.5 * other
                if ADAPTERS[adapter] == "bleed"
                else 0.02 * rng.standard_normal(N_SAMPLES)
            )
            self.items.append(
                {
                    "separated": torch.tensor(separated, dtype=torch.float32),
                    "clean": torch.tensor(clean, dtype=torch.float32),
                    "mixture": torch.tensor(clean + other, dtype=torch.float32),
                    "adapter": adapter,
                    "severity": 0.5,
                }
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


class PairsThatFailInACopy(FakePairs):
    """FakePairs whose unpickled copies (what a spawned process receives) raise on reading."""

    def __setstate__(self, state):
        self.__dict__.update(state, copied=True)

    def __getitem__(self, index):
        if getattr(self, "copied", False):
            raise RuntimeError("these pairs cannot be read in another process")
        return super().__getitem__(index)


def lora_cfg(**overrides) -> LoraTrainConfig:
    """A few steps of every 04 phase on the tiny model."""
    values = dict(
        general_steps=2,
        adapter_steps=1,
        batch_size=2,
        grad_accum=2,
        checkpoint_every=1,
        warmup_steps=1,
        loss=LOSS,
        model=dict(TINY),
    )
    values.update(overrides)
    return LoraTrainConfig(**values)


def tiny_base(folder: Path) -> Path:
    """A small base, the same for every caller (seeded), saved to ``folder``."""
    torch.manual_seed(0)
    model = StemProverModel(model_config("smoke", **TINY), with_control=False)
    model.config.image_scale = 4.0
    with torch.no_grad():  # a pretrained base: a fresh one is the identity, with no gradient
        model.unet.conv_out.weight.normal_(0.0, 0.05)
    model.save_pretrained(folder)
    return folder
