"""Model configuration: one dataclass, defaults per profile, and the profile YAML overlay.

    cfg = model_config("cpu")                     # profile defaults + notebooks/params/cpu.yaml
    cfg = model_config("smoke", control="concat") # with overrides, e.g. for an ablation

The dataclass defaults are a tiny model (CPU, seconds). The ``model:`` section of
``notebooks/params/<profile>.yaml`` holds what each profile changes, each with its reason, and
the profile's ``common`` section supplies ``sample_rate``, ``n_fft``, ``hop_length`` and
``representation``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from stemprover.errors import StemproverError
from stemprover.project.config import COMMON_KEYS, Common, build, load_profile, subset


@dataclass
class ModelConfig(Common):
    """Architecture of a StemProver model (base U-Net, control branch, adapters, diffusion)."""

    mode: Literal["pixel", "latent"] = "pixel"  # pixel needs no autoencoder, so it is the default
    latent_channels: int = 4  # Stable Diffusion's latent width, so SD autoencoders fit
    block_out_channels: tuple[int, ...] = (16, 32)  # tiny: the smoke run only proves the wiring
    layers_per_block: int = 1  # one ResNet per level is enough at this size
    attention_head_dim: int = 8  # heads of width 8 divide every block width used here
    cross_attention_dim: int = 32  # width of the artifact-type tokens (a text encoder's width)
    only_cross_attention: bool = True  # 2-D self-attention is quadratic in F x T (33k pixels/s)
    # where the U-Net attends to the artifact tokens: "sd" at every level but the deepest
    # (Stable Diffusion's layout), "coarsest" only at the deepest level and in the middle
    # block, where a pixel is 2^(levels-1) times cheaper (design study, row 24)
    attention_levels: Literal["sd", "coarsest"] = "sd"
    norm_num_groups: int = 8  # GroupNorm groups; must divide every block width
    n_condition_tokens: int = 4  # artifact-type "prompt" length; a few tokens beat one
    # branch: a trainable copy of the whole base U-Net (ControlNet's recipe: copy, condition
    # added after conv_in, zero convolution out) whose output is added to the base's; the
    # diffusers encoder-only ControlNet and zero-init concatenation are ablation rows
    control: Literal["branch", "controlnet", "concat"] = "branch"
    # zero merge convolutions in the control embedding (ControlNet's recipe); in branch mode the
    # zero output heads already keep the identity, and False gives the condition a gradient
    # from the first step (design study, row 19)
    control_zero_embedding: bool = True
    # branch mode: the branch's first convolution also reads the condition itself (stem,
    # mixture and mask features), as the regression U-Net's does, besides the embedding added
    # after it; the embedding alone learned bleed at a third of the regression's rate
    control_direct_input: bool = True
    condition_channels: int = 16  # width of each path (magnitude, phase) of the control embedding
    freq_attention: bool = True  # attention along frequency per frame; off for the ablation
    freq_attention_heads: int = 2  # heads of the frequency attention
    lora_rank: int = 4  # small adapters: a few thousand parameters each at smoke size
    lora_alpha: float = 4.0  # alpha = rank gives LoRA scale 1
    lora_targets: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")  # attention projections
    # The bridge starts at the separated picture (t = 1) and predicts the clean one through a
    # zero-initialised skip, so an untrained model is the identity; SDEdit (noise -> data) is
    # kept only as an ablation row.
    formulation: Literal["bridge", "sdedit"] = "bridge"
    bridge_noise: float = 0.0  # rho: std of the Brownian-bridge noise at t = 1/2 is rho / 2
    freq_fold: int = 1  # bins folded into channels (pixel mode): F/k rows cost k times less
    # pixel mode: F's output is a complex gain on x_t plus an additive term; removing bleed or
    # noise is then a gain below one, not an exact copy of the unwanted sound with its phase
    mask_output: bool = True
    # bridge branch and regression U-Net (pixel mode, with the mixture and mask_output): the
    # additive half of F is a gain on the mixture picture, F = g_m * m + g_x * x_t, so what a
    # stem lost is taken back from the mixture (design study, row 26)
    mixture_gain: bool = False
    prediction_type: Literal["epsilon", "v_prediction"] = "v_prediction"  # sdedit only
    num_train_timesteps: int = 1000  # the standard DDPM grid; DDIM samples a few of them
    beta_schedule: str = "squaredcos_cap_v2"  # cosine schedule: less time wasted at pure noise
    segment_frames: int = 64  # STFT frames of the random training crops (longer pairs are cut)
    use_mixture: bool = True  # the mixture tells what was lost to the other stems
    # stem and mixture log-magnitudes, implied mask |S|/|M| and phase-difference cosine as
    # extra inputs of the control embedding and the regression U-Net (stemprover.model.features)
    mask_features: bool = True
    image_scale: float = 1.0  # multiplies the picture so clean data has unit std (set in 03)
    base_path: str | None = None  # a local diffusers checkpoint to use as base instead of training

    def __post_init__(self) -> None:
        self.block_out_channels = tuple(self.block_out_channels)
        self.lora_targets = tuple(self.lora_targets)
        if not self.block_out_channels:
            raise StemproverError("ModelConfig.block_out_channels must not be empty")
        for width in self.block_out_channels:
            if width % self.norm_num_groups:
                raise StemproverError(
                    f"ModelConfig: width {width} is not a multiple of norm_num_groups="
                    f"{self.norm_num_groups}"
                )
        if self.n_fft < 16 or self.hop_length < 1 or self.hop_length > self.n_fft:
            raise StemproverError(
                f"ModelConfig: bad STFT n_fft={self.n_fft}, hop_length={self.hop_length}"
            )
        if self.freq_fold < 1 or self.freq_fold & (self.freq_fold - 1):
            raise StemproverError(
                f"ModelConfig.freq_fold must be a power of two, got {self.freq_fold}"
            )
        if self.mode != "pixel":
            # the autoencoder compresses frequency itself, and latents have no bins to fold or
            # to gain: a profile's fold and gain output apply to its pixel models only
            self.freq_fold = 1
            self.mask_output = False
        if not (self.mask_output and self.use_mixture):
            self.mixture_gain = False  # a gain on the mixture needs both
        if self.attention_levels not in ("sd", "coarsest"):
            raise StemproverError(
                f"ModelConfig.attention_levels must be 'sd' or 'coarsest', got "
                f"{self.attention_levels!r}"
            )
        if self.bridge_noise < 0:
            raise StemproverError(f"ModelConfig.bridge_noise must be >= 0, got {self.bridge_noise}")
        if self.lora_rank < 1:
            raise StemproverError(f"ModelConfig.lora_rank must be >= 1, got {self.lora_rank}")

    @property
    def downsample_factor(self) -> int:
        """How much the U-Net shrinks the picture (each level but the last halves it)."""
        return 2 ** (len(self.block_out_channels) - 1)

    @property
    def segment_samples(self) -> int:
        """Samples in one segment of ``segment_frames`` frames (centred STFT)."""
        return (self.segment_frames - 1) * self.hop_length


def model_config(profile: str, **overrides: Any) -> ModelConfig:
    """The ModelConfig of a profile: defaults, then the YAML ``common``/``model:`` keys, then overrides.

    Args:
        profile: "smoke", "cpu" or "gpu".
        **overrides: Any ModelConfig field.

    Raises:
        StemproverError: on an unknown profile, key or wrongly typed value.
    """
    data = load_profile(profile)
    values = {k: v for k, v in data.get("common", {}).items() if k in COMMON_KEYS}
    values.update(data.get("model", {}))
    values.update(overrides)
    return build(ModelConfig, values, where=f"{profile}.yaml model")


SAVED_BEFORE_BRIDGE = {"formulation": "sdedit", "control": "controlnet", "mask_output": False}
"""What a saved config that predates these keys meant: an SDEdit model with diffusers'
encoder-only ControlNet and a plain output (such folders still load and run as they did)."""


SAVED_BEFORE_FEATURES = {"mask_features": False}
"""Configs saved before the mask-domain input features read the pictures alone."""


def config_from_dict(values: dict[str, Any], where: str = "ModelConfig") -> ModelConfig:
    """Rebuild a saved config (``stemprover.json``), rejecting unknown keys."""
    if "formulation" not in values:
        values = {**SAVED_BEFORE_BRIDGE, **values}
    if "mask_features" not in values:
        values = {**SAVED_BEFORE_FEATURES, **values}
    return build(ModelConfig, values, where=where)


def replace(cfg: ModelConfig, **changes: Any) -> ModelConfig:
    """A copy of ``cfg`` with ``changes`` applied and checked."""
    values = dataclasses.asdict(cfg)
    values.update(changes)
    return build(ModelConfig, subset(ModelConfig, values))
