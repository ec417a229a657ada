"""Train a tiny model for a few steps; run under ``torchrun`` or as one process.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py \
        KIND OUT BATCH STEPS [STOP_AFTER]

KIND is ``regression`` (the regression U-Net), ``lora`` (control branch and adapters on a
frozen base) or ``latent_base`` (the spectrogram autoencoder, then base pretraining in latent
mode). Every process writes its final weights to ``OUT/rank<r>.pt``; the stage's files (logs,
checkpoints, weights) go to ``OUT/stage``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from train_fakes import LOSS, TINY, FakePairs, lora_cfg, tiny_base

from stemprover.stages.base_pretraining import pretrain_base
from stemprover.stages.lora_training import train_control_lora, train_regression
from stemprover.train.config import LoraTrainConfig, PretrainConfig


def lora_config(batch: int, steps: int, adapter_steps: int = 0) -> LoraTrainConfig:
    """``steps`` in the general phase (and in all for the regression baseline)."""
    return lora_cfg(general_steps=steps, adapter_steps=adapter_steps, batch_size=batch,
                    grad_accum=1, mixture_dropout=0.0, eval_every=0, blend_grid=0,
                    torch_threads=1)


def train(kind: str, out: Path, batch: int, steps: int, stop_after: int | None):
    stage, rank = out / "stage", int(os.environ.get("RANK", "0"))
    common = dict(out_dir=stage, stop_after=stop_after, progress=False)
    if kind == "regression":
        # items no longer than the model's segment: no random crops, so the step draws nothing
        return train_regression(lora_config(batch, steps), "smoke", train=FakePairs(12),
                                base=out / "no_base", **common)
    if kind == "lora":
        base = tiny_base(out / f"base{rank}")
        return train_control_lora(lora_config(batch, steps, 1), "smoke", train=FakePairs(12),
                                  base=base, **common)
    if kind == "latent_base":
        cfg = PretrainConfig(steps=steps, batch_size=batch, checkpoint_every=1, warmup_steps=1,
                             autoencoder_steps=2, eval_every=0, torch_threads=1, loss=LOSS,
                             model=dict(TINY, mode="latent"))
        return pretrain_base(cfg, "smoke", train=FakePairs(12), valid=FakePairs(2, seed=1),
                             **common)
    raise SystemExit(f"unknown kind {kind}")


if __name__ == "__main__":
    args = sys.argv[1:]
    out = Path(args[1])
    model = train(args[0], out, int(args[2]), int(args[3]), int(args[4]) if len(args) > 4 else None)
    if model is not None:
        torch.save(model.state_dict(), out / f"rank{os.environ.get('RANK', '0')}.pt")
