"""Configs of the training stages (notebooks 03 and 04); notebooks build them from parameters.

Both take the profile's ``common`` keys (seed and STFT settings), the stage's training budget,
and ``model``: overrides of :class:`~stemprover.model.config.ModelConfig` (e.g. for ablations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from stemprover.constants import ADAPTERS, FAMILIES
from stemprover.errors import StemproverError
from stemprover.project.config import COMMON_KEYS, Common
from stemprover.project.inputs import require
from stemprover.train.losses import LossConfig


@dataclass
class PretrainConfig(Common):
    """Base pretraining (03): the bridge restorer from x_t alone on all pairs (SDEdit: clean)."""

    seed: int = 0
    steps: int = 40  # optimizer steps; smoke proves the loop, it does not converge
    batch_size: int = 4  # segments per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    learning_rate: float = 1e-3  # AdamW; small U-Nets take a high rate
    warmup_steps: int = 5  # linear warm-up, then cosine decay to 10 %
    checkpoint_every: int = 20  # steps between resumable checkpoints
    mixed_precision: str = "auto"  # bf16 on CUDA, full precision on CPU
    torch_threads: int = 0  # CPU intra-op threads; 0 = torch's default, 1 avoids stalls when shared
    autoencoder_steps: int = 0  # latent mode only: steps of the spectrogram autoencoder
    holdout_family: str = ""  # a separator family of the pairs kept out of training (as in 04)

    def __post_init__(self) -> None:
        check_family(self.holdout_family)
    n_valid: int = 16  # held-out segments (bridge: pairs) for the validation loss
    max_minutes: float = 0.0  # training-time cap (the plateau usually comes first); 0 = none
    eval_every: int = 0  # steps between budget-curve validations; 0 = none
    patience: int = 0  # validations without gain before stopping (plateau); 0 = run all steps
    min_delta: float = 0.05  # dB of validation gain that counts as progress
    n_monitor: int = 16  # held-out pairs of each budget-curve validation
    # bridge: each pair's artifact type as the base's prompt (its row of the token table), as
    # a text-conditioned base knows what it is asked to restore; False: the clean row for all
    artifact_tokens: bool = False
    manifest: str = ""  # input: 02's manifest.json ("": this profile's, see project.inputs)
    loss: LossConfig = field(default_factory=LossConfig)  # loss term weights
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides


@dataclass
class LoraTrainConfig(Common):
    """Control branch + LoRA adapters (04), and the regression baseline on the same budget."""

    seed: int = 0
    general_steps: int = 30  # control branch + `general` adapter, on all pairs
    adapter_steps: int = 10  # each specialised adapter, on its own artifact type
    batch_size: int = 4
    grad_accum: int = 1
    learning_rate: float = 1e-3
    warmup_steps: int = 5
    checkpoint_every: int = 20
    mixed_precision: str = "auto"
    torch_threads: int = 0  # CPU intra-op threads; 0 = torch's default
    mixture_dropout: float = 0.2  # share of items trained without the mixture (CLI may lack it)
    general_share: float = 0.0  # general phase: share of pairs conditioned on `general`, not their type
    regression: bool = True  # also train the regression baseline with the same budget
    parallel_regression: bool = False  # train it in a second process, beside the branch (a core each)
    # the regression U-Net's widths: "matched" scales them until its parameters are within 5 %
    # of StemProver's (frozen base + branch + adapters), so the comparison is at equal size;
    # "profile" keeps the profile's widths (a U-Net the size of StemProver's base alone)
    regression_size: Literal["matched", "profile"] = "matched"
    n_valid: int = 8  # held-out pairs for validation SI-SDR and phase deviation
    valid_steps: int = 4  # sampling steps used in validation
    valid_strength: float = 1.0  # bridge: start at the separated stem (SDEdit: noise level)
    eval_every: int = 0  # steps between budget-curve validations; 0 = none
    patience: int = 0  # validations without gain before stopping (plateau); 0 = run all steps
    min_delta: float = 0.05  # dB of validation gain that counts as progress
    n_monitor: int = 16  # held-out pairs of each budget-curve validation
    general_minutes: float = 0.0  # time cap of the control + general phase; 0 = none
    adapter_minutes: float = 0.0  # time cap of each specialised adapter; 0 = none
    blend_grid: int = 11  # alphas 0, 0.1, ..., 1 tried per adapter on the validation pairs
    valid_scheduler: Literal["ddim", "dpmpp"] = "ddim"
    # leave-one-family-out: the pairs of this separator family (stemprover.data.pairs.FAMILIES)
    # never train; the budget curve, the kept step and the blend are chosen on its valid pairs,
    # and validation reports it beside the families trained on. "": every family trains
    holdout_family: str = ""
    base: str = ""  # input: 03's base model folder ("": this profile's, see project.inputs)
    manifest: str = ""  # input: 02's manifest.json ("": this profile's)
    loss: LossConfig = field(default_factory=LossConfig)
    model: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_family(self.holdout_family)

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the diffusion model: the regression baseline gets the same."""

        return self.general_steps + self.adapter_steps * (len(ADAPTERS) - 1)

    @property
    def total_minutes(self) -> float:
        """Time cap of the diffusion model's phases: the regression baseline gets the same."""

        if not self.general_minutes:
            return 0.0
        return self.general_minutes + self.adapter_minutes * (len(ADAPTERS) - 1)


def check_family(name: str) -> None:
    """Refuse a held-out family that no pair can have (it would hold nothing out)."""
    if name and name not in FAMILIES:
        raise StemproverError(f"holdout_family {name!r}: choose one of {', '.join(FAMILIES)} or ''")


def manifest_path(cfg: PretrainConfig | LoraTrainConfig) -> Path:
    """The paired-dataset manifest of a stage (``cfg.manifest``, set by ``resolve_inputs``)."""

    return require(cfg.manifest, "paired dataset", "02_paired_dataset")


def model_overrides(cfg: PretrainConfig | LoraTrainConfig) -> dict[str, Any]:
    """ModelConfig overrides from a stage config: the common STFT keys plus ``cfg.model``."""
    values = {key: getattr(cfg, key) for key in COMMON_KEYS}
    values.update(cfg.model)
    return values
