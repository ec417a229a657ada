"""Model configuration: one dataclass, defaults per profile, and the profile YAML overlay.

    cfg = model_config("cpu")                     # profile defaults + notebooks/params/cpu.yaml
    cfg = model_config("smoke", control="concat") # with overrides, e.g. for an ablation

The dataclass defaults are a tiny model (CPU, seconds; the ``smoke`` profile folds frequency
on top of them). ``PROFILE_DEFAULTS`` holds what each profile changes, each with its reason.
The ``model:`` section of ``notebooks/params/<profile>.yaml`` overrides both, and the profile's
``common`` section supplies ``sample_rate``, ``n_fft``, ``hop_length`` and ``representation``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from stemprover.config import build, load_profile, subset
from stemprover.errors import StemproverError


@dataclass
class ModelConfig:
    """Architecture of a StemProver model (base U-Net, control branch, adapters, diffusion)."""

    sample_rate: int = 16000  # model rate in Hz; comes from the profile's `common` section
    n_fft: int = 256  # STFT size; 129 bins keep the smoke picture small
    hop_length: int = 64  # n_fft / 4: the usual 75 % overlap for a Hann window
    representation: Literal["magnitude", "complex", "mag_if"] = "complex"  # keeps the phase
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


PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    # 129 bins -> 33 rows: the middle block's self-attention (every pixel at half resolution)
    # costs ~15x less, which is most of the smoke run's time
    "smoke": {"freq_fold": 4},
    "cpu": {
        "block_out_channels": (16, 32, 32),  # a third level widens the context at little cost
        "attention_levels": "coarsest",  # 2.4x the training steps per second, learns no slower
        "mixture_gain": True,  # bleed +4.4 dB after 150 steps against +1.6 (row 26)
        "freq_fold": 8,  # 257 bins -> 33 rows: ~6x the training throughput of full rows
        "lora_rank": 8,  # room for four artifact types; still ~1 % of the base each
        "lora_alpha": 8.0,  # keeps the LoRA scale at 1
        # the output convolution too: an adapter then reaches the output directly
        "lora_targets": ("to_q", "to_k", "to_v", "to_out.0", "conv_out"),
        "segment_frames": 172,  # 1 s crops (the whole pair): 4x the audio per step of 64 frames
    },
    "gpu": {
        "block_out_channels": (64, 128, 256, 256),  # SD-like four levels, sized for 10 min on H100
        "layers_per_block": 2,  # SD's depth per level
        "attention_head_dim": 32,  # 8 heads at the widest level
        "cross_attention_dim": 256,  # token width grows with the U-Net
        "norm_num_groups": 32,  # SD's GroupNorm
        "condition_channels": 64,  # the control paths grow with the first block
        "freq_attention_heads": 4,  # 4 heads of width 32 on a 128-wide merged feature
        "lora_rank": 16,  # more capacity per artifact type
        "lora_alpha": 16.0,  # keeps the LoRA scale at 1
        "segment_frames": 256,  # about 1.5 s at 44.1 kHz and hop 256
        "freq_fold": 2,  # 513 bins -> 257 rows: half the cost, channels keep every bin
        "mixture_gain": True,  # the cpu profile's output: gains on the stem and the mixture
        "lora_targets": ("to_q", "to_k", "to_v", "to_out.0", "conv_out"),
    },
}

COMMON_KEYS = ("sample_rate", "n_fft", "hop_length", "representation")


def model_config(profile: str, **overrides: Any) -> ModelConfig:
    """The ModelConfig of a profile: defaults, then the YAML ``common``/``model:`` keys, then overrides.

    Args:
        profile: "smoke", "cpu" or "gpu".
        **overrides: Any ModelConfig field.

    Raises:
        StemproverError: on an unknown profile, key or wrongly typed value.
    """
    if profile not in PROFILE_DEFAULTS:
        raise StemproverError(f"unknown profile {profile!r}")
    data = load_profile(profile)
    values: dict[str, Any] = dict(PROFILE_DEFAULTS[profile])
    values.update({k: v for k, v in data.get("common", {}).items() if k in COMMON_KEYS})
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
