"""A training stage as a script, for several processes (GPUs, nodes, or CPU processes).

    accelerate launch --config_file notebooks/params/accelerate/multi_gpu.yaml \\
        --num_processes 4 -m stemprover.stages.launch 04_lora_training --profile gpu
    torchrun --nproc_per_node 2 -m stemprover.stages.launch 03_base_pretraining --profile cpu

(On CPU, ``accelerate launch`` starts a single process unless MPI is set up; ``torchrun``
starts the gloo processes.)

The stage reads the same parameters as its notebook (``common`` and the stage's section of
``notebooks/params/<profile>.yaml``) and trains into the same folder,
``results/<profile>/<stage>/``. Each process takes its share of every batch, so the global
batch is ``batch_size`` times the number of processes. Only the main process writes. Running
the notebook afterwards (``make reproduce``) finds every phase's checkpoint complete, skips
the training and writes the stage's reports, as it does when resuming an interrupted run.
"""

from __future__ import annotations

import argparse

from stemprover.project.config import config_for, stage_params
from stemprover.project.seed import seed_everything
from stemprover.stages.base_pretraining import pretrain_autoencoder, pretrain_base
from stemprover.stages.lora_training import train_control_lora, train_regression
from stemprover.train.config import LoraTrainConfig, PretrainConfig

STAGES = ("03_base_pretraining", "04_lora_training")


def stage_config(stage: str, profile: str):
    """The stage's config, built from the profile as its notebook builds it."""

    params = stage_params(profile, stage)
    config_cls = PretrainConfig if stage == "03_base_pretraining" else LoraTrainConfig
    return config_for(config_cls, params)


def run(stage: str, profile: str, progress: bool = True) -> None:
    """Train ``stage`` of ``profile`` in this process (one of a launch, or alone)."""

    cfg = stage_config(stage, profile)
    seed_everything(cfg.seed)
    if stage == "03_base_pretraining":
        if cfg.autoencoder_steps:
            pretrain_autoencoder(cfg, profile, progress=progress)
        pretrain_base(cfg, profile, progress=progress)
        return
    train_control_lora(cfg, profile, progress=progress)
    if cfg.regression:
        train_regression(cfg, profile, progress=progress)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stemprover.stages.launch",
                                     description="Train a stage, e.g. under accelerate launch.")
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--profile", default="cpu", help="profile of notebooks/params/")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    run(args.stage, args.profile, progress=not args.quiet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
