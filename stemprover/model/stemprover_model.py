"""StemProverModel: frozen base U-Net + control branch + LoRA adapters + artifact tokens.

    model = StemProverModel(model_config("smoke"))            # fresh, with control branch
    cond = model.encode_condition(separated_img, mixture_img) # once per segment
    out = model(noisy, timesteps, cond, {"general": 1.0})     # every sampling step
    model.save_pretrained("weights/stemprover"); StemProverModel.from_pretrained(...)

Spaces: *pictures* are representation images ``(B, C, F, T)`` (``stemprover.dsp.spectral``);
*model space* is where noise is added: ``encode_image(picture)`` is ``picture * image_scale`` in
pixel mode and the autoencoder's scaled latents in latent mode; ``decode_image`` inverts it.
``forward`` takes and returns model-space tensors of any ``F, T`` (padded inside, cropped back).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from torch import nn

from stemprover.constants import ADAPTERS
from stemprover.dsp.spectral import StftConfig, get_representation
from stemprover.errors import StemproverError
from stemprover.model import adapters as lora
from stemprover.model.bridge import bridge_scheduler
from stemprover.model.config import ModelConfig
from stemprover.model.control import (
    ConcatConditioning,
    PhaseAwareConditioningEmbedding,
    added_to_conv_in,
    make_controlnet,
    zero_conv,
)
from stemprover.model.features import N_MASK_FEATURES, mask_features
from stemprover.model.serialize import load_stemprover, save_stemprover
from stemprover.model.unet import (
    ArtifactEmbedding,
    apply_output,
    build_unet,
    check_unet,
    crop,
    fold_freq,
    freeze,
    gain_on_mixture,
    pad_to_multiple,
    unet_downsample_factor,
    unfold_freq,
)

AdapterWeights = Mapping[str, float] | torch.Tensor | None


@dataclass
class ConditionCache:
    """A condition embedded once and reused at every sampling step.

    Attributes:
        control: ControlNet conditioning embedding ``(B, C0, H, W)`` (controlnet mode).
        concat: The condition in model space ``(B, Cc, H, W)`` (concat mode, and the
            branch's direct input).
        shape: Padded model-space ``(H, W)`` that noisy inputs must pad to.
        mixture: The mixture in model space, padded to ``shape`` (``mixture_gain`` only).
    """

    control: torch.Tensor | None
    concat: torch.Tensor | None
    shape: tuple[int, int]
    mixture: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> ConditionCache:
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return ConditionCache(pick(self.control), pick(self.concat), self.shape,
                              pick(self.mixture))

    def repeat(self, n: int) -> ConditionCache:
        """The condition repeated ``n`` times along the batch (e.g. stereo channels)."""
        rep = lambda t: None if t is None else t.repeat_interleave(n, 0)  # noqa: E731
        return ConditionCache(rep(self.control), rep(self.concat), self.shape,
                              rep(self.mixture))


def scheduler_for(cfg: ModelConfig):
    """The scheduler saved with the model.

    Bridge: a ``FlowMatchEulerDiscreteScheduler`` without shift, whose interpolation
    ``sigma * y + (1 - sigma) * x0`` is the bridge from the clean picture (sigma = 0) to the
    separated one (sigma = 1). SDEdit: the DDPM training schedule (DDIM/DPM samplers load it).
    """
    if cfg.formulation == "bridge":
        return bridge_scheduler()
    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        prediction_type=cfg.prediction_type,
        clip_sample=False,
    )


def branch_copy(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """A trainable copy of ``unet`` that returns its last features instead of a picture.

    The copy's own output convolution is dropped: its weights come from a base whose output
    starts at zero, and a small layer in front of the zero convolution would keep the branch
    from learning. The zero convolution reads the features directly, as ControlNet's do.
    """
    branch = copy.deepcopy(unet)
    branch.conv_out = nn.Identity()
    return branch


class StemProverModel(nn.Module):
    """Conditional diffusion model that turns separated-stem pictures into clean ones.

    Args:
        config: Architecture and diffusion settings.
        unet: A base U-Net (e.g. loaded from a checkpoint); a fresh one when None.
        autoencoder: The ``AutoencoderKL`` for latent mode (frozen); required there.
        with_control: Build the control branch (False for base pretraining).
    """

    kind = "stemprover"

    def __init__(
        self,
        config: ModelConfig,
        unet: UNet2DConditionModel | None = None,
        autoencoder: AutoencoderKL | None = None,
        with_control: bool = True,
    ):
        super().__init__()
        self.config = config
        self.stft = StftConfig(n_fft=config.n_fft, hop_length=config.hop_length)
        self.representation = get_representation(config.representation, self.stft)
        if config.mode == "latent" and autoencoder is None:
            raise StemproverError("latent mode needs an autoencoder (AutoencoderKL)")
        self.autoencoder = autoencoder if config.mode == "latent" else None
        if self.autoencoder is not None:
            freeze(self.autoencoder)
        channels = self.model_channels
        bridge = config.formulation == "bridge"
        mask = bridge and config.mask_output and config.mode == "pixel"
        self.unet = unet if unet is not None else build_unet(
            config, channels, channels * (2 if mask else 1), zero_output=bridge
        )
        check_unet(self.unet, channels, "StemProverModel", config)
        width = self.unet.config.cross_attention_dim
        self.artifact_embedding = ArtifactEmbedding(config.n_condition_tokens, width)
        self.scheduler_config = dict(scheduler_for(config).config)
        self.blend: dict[str, float] = {}  # adapter -> validated share of its change (alpha)
        self.controlnet = None
        self.control_unet: UNet2DConditionModel | None = None
        self.control_out: nn.ModuleList | None = None
        self.condition_embedding: PhaseAwareConditioningEmbedding | None = None
        self.concat_conditioning: ConcatConditioning | None = None
        if with_control:
            self.add_control()

    # ----- structure -------------------------------------------------------------------
    @property
    def model_channels(self) -> int:
        """Channels in model space (picture channels, or latent channels)."""
        if self.autoencoder is not None:
            return int(self.autoencoder.config.latent_channels)
        return self.representation.channels * self.config.freq_fold

    @property
    def is_bridge(self) -> bool:
        return self.config.formulation == "bridge"

    @property
    def vae_factor(self) -> int:
        if self.autoencoder is None:
            return 1
        return 2 ** (len(self.autoencoder.config.block_out_channels) - 1)

    @property
    def has_control(self) -> bool:
        return (self.controlnet is not None or self.concat_conditioning is not None
                or self.control_unet is not None)

    @property
    def adapter_names(self) -> list[str]:
        return lora.adapter_names(self.unet)

    def add_control(self) -> None:
        """Build the control branch from the current base (call before adding adapters)."""
        if self.has_control:
            raise StemproverError("the control branch already exists")
        if self.adapter_names:
            raise StemproverError("add the control branch before the LoRA adapters")
        cfg = self.config
        n_pictures = 2 if cfg.use_mixture else 1
        fold = cfg.freq_fold
        if cfg.control == "branch":
            # ControlNet's recipe applied to the whole U-Net: a trainable copy of the base,
            # with the embedded condition added after its first convolution and a zero
            # convolution on its output, so the branch adds nothing until it has learned
            self.control_unet = branch_copy(self.unet)
            width, out_channels = self.unet.config.block_out_channels[0], self.unet.config.out_channels
            # one zero-initialised output head per artifact type, mixed by the adapter weights:
            # at the start the types pull a shared head in opposite directions (the design
            # study measured a gradient cosine of -0.71 between bleed and musical noise)
            self.control_out = nn.ModuleList(
                zero_conv(width, out_channels, kernel_size=3) for _ in ADAPTERS)
        if cfg.control in ("controlnet", "branch"):
            if cfg.control == "controlnet":
                self.controlnet = make_controlnet(self.unet)
            n_features = N_MASK_FEATURES if self._uses_features else 0
            self.condition_embedding = PhaseAwareConditioningEmbedding(
                magnitude_channels=(n_pictures + n_features) * fold,
                phase_channels=2 * n_pictures * fold,
                hidden=cfg.condition_channels,
                out_channels=self.unet.config.block_out_channels[0],
                n_down=self.vae_factor.bit_length() - 1,
                freq_attention=cfg.freq_attention,
                n_heads=cfg.freq_attention_heads,
                zero_merge=cfg.control_zero_embedding or cfg.control != "branch",
            )
        if cfg.control == "concat" or self._direct_input:
            n_features = N_MASK_FEATURES * fold if self._direct_input and self._uses_features else 0
            self.concat_conditioning = ConcatConditioning(
                n_pictures * self.model_channels + n_features,
                self.unet.config.block_out_channels[0],
                self.unet.conv_in.kernel_size[0],
                zero=cfg.control == "concat",
            )
        self.artifact_embedding.init_adapter_rows()

    def add_adapters(self, names: tuple[str, ...] = ADAPTERS) -> None:
        """Inject one fresh LoRA adapter per name into the (frozen) base U-Net."""
        unknown = sorted(set(names) - set(ADAPTERS))
        if unknown:
            raise StemproverError(f"unknown adapter(s) {unknown}; choose from {ADAPTERS}")
        for name in names:
            lora.add_adapter(self.unet, name, lora.lora_config(self.config))

    def set_adapters(self, weights: Mapping[str, float]) -> None:
        """Activate adapters with mixing weights, e.g. ``{"hf_loss": 0.7, "general": 0.3}``."""
        lora.set_adapter_weights(self.unet, weights)

    # ----- spaces ----------------------------------------------------------------------
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Picture ``(B, C, F, T)`` -> model space (scaled picture, or scaled latents)."""
        scale = self.config.image_scale
        if self.autoencoder is None:
            return fold_freq(image * scale, self.config.freq_fold)
        padded, _ = pad_to_multiple(image, self.vae_factor)
        vae_in = self.autoencoder.config.in_channels
        if vae_in > padded.shape[1]:  # e.g. an RGB Stable Diffusion autoencoder: zero channels
            extra = padded.new_zeros(padded.shape[0], vae_in - padded.shape[1], *padded.shape[2:])
            padded = torch.cat([padded, extra], dim=1)
        vae_dtype = self.autoencoder.dtype
        latents = self.autoencoder.encode(padded.to(vae_dtype)).latent_dist.mean
        return latents.to(image.dtype) * scale

    def decode_image(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Model space -> picture ``(B, C, F, T)`` cropped to ``size = (F, T)``."""
        image = x / self.config.image_scale
        if self.autoencoder is not None:
            vae_dtype = self.autoencoder.dtype
            image = self.autoencoder.decode(image.to(vae_dtype)).sample.to(x.dtype)
            image = image[:, : self.representation.channels]
        return crop(unfold_freq(image, self.config.freq_fold, size[0]), size)

    # ----- conditioning ----------------------------------------------------------------
    @property
    def _direct_input(self) -> bool:
        """Whether the branch's first convolution reads the condition in model space."""
        cfg = self.config
        return cfg.control == "branch" and cfg.control_direct_input and self.autoencoder is None

    @property
    def _uses_features(self) -> bool:
        """Whether the control embedding reads :func:`mask_features` of stem and mixture."""
        return self.config.mask_features and self.config.use_mixture

    def _stack(self, separated: torch.Tensor, mixture: torch.Tensor | None) -> list[torch.Tensor]:
        if not self.config.use_mixture:
            return [separated]
        if mixture is None:  # trained with mixture dropout: zeros mean "no mixture given"
            mixture = torch.zeros_like(separated)
        if mixture.shape != separated.shape:
            raise StemproverError(
                f"mixture picture {tuple(mixture.shape)} does not match "
                f"separated picture {tuple(separated.shape)}"
            )
        return [separated, mixture]

    def encode_condition(
        self, separated_img: torch.Tensor, mixture_img: torch.Tensor | None = None
    ) -> ConditionCache:
        """Embed the condition once per segment.

        Args:
            separated_img: Picture of the separated stem ``(B, C, F, T)``.
            mixture_img: Picture of the mixture, same shape, or None.
        """
        if not self.has_control:
            raise StemproverError("this model has no control branch (a base model)")
        pictures = self._stack(separated_img, mixture_img)
        multiple = self.unet_multiple * self.vae_factor
        shape = self._model_shape(separated_img.shape[-2:])
        if self.condition_embedding is not None:
            mags, phases = [], []
            fold = self.config.freq_fold
            for picture in pictures:
                # latent mode: the embedding downsamples to the latents' size
                padded = pad_to_multiple(picture, multiple)[0] if self.vae_factor > 1 else picture
                mag, phase = self.representation.split_mag_phase(padded)
                mag, phase = fold_freq(mag * self.config.image_scale, fold), fold_freq(phase, fold)
                mags.append(pad_to_multiple(mag, multiple)[0])
                phases.append(pad_to_multiple(phase, multiple)[0])
            if self._uses_features:
                pair = [pad_to_multiple(p, multiple)[0] if self.vae_factor > 1 else p
                        for p in pictures]
                features = mask_features(*pair, self.representation, self.config.image_scale)
                mags.append(pad_to_multiple(fold_freq(features, fold), multiple)[0])
            embedded = self.condition_embedding(torch.cat(mags, 1), torch.cat(phases, 1))
            direct = self._encode_direct(pictures) if self._direct_input else None
            return ConditionCache(embedded, direct, tuple(embedded.shape[-2:]),
                                  self._encode_mixture(pictures))
        return ConditionCache(None, self._encode_direct(pictures), shape,
                              self._encode_mixture(pictures))

    def _encode_mixture(self, pictures: list[torch.Tensor]) -> torch.Tensor | None:
        """The mixture in model space for the branch's gain on it (``mixture_gain``)."""
        if not (self._mixture_gain and len(pictures) == 2):
            return None
        return pad_to_multiple(self.encode_image(pictures[1]), self.unet_multiple)[0]

    @property
    def _mixture_gain(self) -> bool:
        cfg = self.config
        return (cfg.mixture_gain and self.is_bridge and cfg.control == "branch"
                and self.autoencoder is None)

    def _encode_direct(self, pictures: list[torch.Tensor]) -> torch.Tensor:
        """The condition in model space, plus the mask features in the branch's direct input."""
        encoded = [pad_to_multiple(self.encode_image(p), self.unet_multiple)[0] for p in pictures]
        if self._direct_input and self._uses_features:
            features = mask_features(*pictures, self.representation, self.config.image_scale)
            fold = fold_freq(features, self.config.freq_fold)
            encoded.append(pad_to_multiple(fold, self.unet_multiple)[0])
        return torch.cat(encoded, 1)

    @property
    def unet_multiple(self) -> int:
        return unet_downsample_factor(self.unet)

    def _model_shape(self, picture_shape) -> tuple[int, int]:
        multiple = self.unet_multiple * self.vae_factor
        fold = self.config.freq_fold
        sizes = (-(-int(picture_shape[0]) // fold), int(picture_shape[1]))
        return tuple(((s + multiple - 1) // multiple) * multiple // self.vae_factor for s in sizes)

    # ----- forward ---------------------------------------------------------------------
    def weight_matrix(self, adapter_weights: AdapterWeights, batch: int) -> torch.Tensor | None:
        """Adapter weights as ``(batch, len(ADAPTERS))`` rows summing to 1, or None (base)."""
        if adapter_weights is None:
            if "general" not in self.adapter_names:
                return None
            adapter_weights = {"general": 1.0}
        if isinstance(adapter_weights, Mapping):
            unknown = sorted(set(adapter_weights) - set(ADAPTERS))
            if unknown:
                raise StemproverError(f"unknown adapter(s) {unknown}; choose from {ADAPTERS}")
            row = torch.tensor([float(adapter_weights.get(n, 0.0)) for n in ADAPTERS])
            matrix = row.expand(batch, -1)
        else:
            matrix = torch.as_tensor(adapter_weights, dtype=torch.float32).reshape(batch, -1)
        if matrix.shape[1] != len(ADAPTERS) or (matrix < 0).any():
            raise StemproverError(f"adapter weights must be {len(ADAPTERS)} non-negative numbers")
        total = matrix.sum(1, keepdim=True)
        if (total <= 0).any():
            raise StemproverError("adapter weights must not all be zero")
        return matrix / total

    def forward(
        self,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        condition: ConditionCache | None = None,
        adapter_weights: AdapterWeights = None,
    ) -> torch.Tensor:
        """Model output for a model-space input.

        Bridge: the clean picture in model space, ``x_t + F(x_t, t, ...)`` (F's last layer starts
        at zero, so an untrained model returns its input). SDEdit: ε or v, per
        ``config.prediction_type``.

        Args:
            noisy: ``(B, C, F, T)`` in model space, any ``F, T``: ``x_t``.
            timesteps: ``(B,)`` or scalar timesteps (bridge: ``1000 * t``, ``t`` in [0, 1]).
            condition: From :meth:`encode_condition`; None runs the base alone.
            adapter_weights: Dict by adapter name, ``(B, 4)`` tensor in ``ADAPTERS`` order, or
                None (``general`` when present, else the base without adapters).

        Returns:
            ``(B, C, F, T)``.
        """
        out = self._predict(noisy, timesteps, condition, adapter_weights)
        if not self.is_bridge:
            return out
        complex_pairs = self.autoencoder is None and self.representation.name == "complex"
        return noisy + apply_output(noisy, out, self.config.freq_fold, complex_pairs)

    def _predict(self, noisy, timesteps, condition, adapter_weights) -> torch.Tensor:
        batch = noisy.shape[0]
        x, size = pad_to_multiple(noisy, self.unet_multiple)
        if condition is not None and tuple(x.shape[-2:]) != tuple(condition.shape):
            raise StemproverError(
                f"noisy input pads to {tuple(x.shape[-2:])} but the condition was encoded "
                f"for {tuple(condition.shape)}"
            )
        timesteps = torch.as_tensor(timesteps, device=x.device).reshape(-1).expand(batch)
        weights = self.weight_matrix(adapter_weights, batch)
        if weights is None or not self.adapter_names:
            if self.adapter_names:
                self.unet.disable_adapters()
            return crop(self._run(x, timesteps, condition, weights), size)
        weights = weights.to(x.device)
        rows, groups = torch.unique(weights, dim=0, return_inverse=True)
        if len(rows) == 1:
            self.set_adapters({n: float(w) for n, w in zip(ADAPTERS, rows[0])
                               if n in self.adapter_names})
            return crop(self._run(x, timesteps, condition, weights), size)
        out = None
        for index, row in enumerate(rows):
            self.set_adapters({n: float(w) for n, w in zip(ADAPTERS, row) if n in self.adapter_names})
            pick = (groups == index).nonzero().squeeze(1)
            cond = None if condition is None else condition.select(pick)
            part = self._run(x[pick], timesteps[pick], cond, weights[pick])
            if out is None:
                out = part.new_empty((batch, *part.shape[1:]))
            out[pick] = part
        return crop(out, size)

    def _heads(self, side: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        """The branch's output: its per-artifact heads mixed by the adapter weights."""
        if weights is None:
            return self.control_out[ADAPTERS.index("general")](side)
        weights = weights.to(side.dtype)
        out = 0.0
        for index, head in enumerate(self.control_out):
            if bool((weights[:, index] != 0).any()):
                out = out + weights[:, index, None, None, None] * head(side)
        return out

    def _run(self, x, timesteps, condition, weights) -> torch.Tensor:
        tokens = self.artifact_embedding(weights, x.shape[0]).to(x.dtype)
        if condition is None or not self.has_control:
            return self.unet(x, timesteps, encoder_hidden_states=tokens).sample
        if self.control_unet is not None:
            base = self.unet(x, timesteps, encoder_hidden_states=tokens).sample
            added = condition.control.to(x.dtype)
            if condition.concat is not None:
                added = added + self.concat_conditioning(condition.concat.to(x.dtype))
            with added_to_conv_in(self.control_unet, added):
                side = self.control_unet(x, timesteps, encoder_hidden_states=tokens).sample
            side = self._heads(side, weights)
            if condition.mixture is not None:
                complex_pairs = self.representation.name == "complex"
                side = gain_on_mixture(side, condition.mixture, self.config.freq_fold,
                                       complex_pairs)
            return base + side
        if self.controlnet is not None:
            down, mid = self.controlnet(
                x, timesteps, encoder_hidden_states=tokens,
                controlnet_cond=condition.control.to(x.dtype), return_dict=False,
            )
            return self.unet(
                x, timesteps, encoder_hidden_states=tokens,
                down_block_additional_residuals=down, mid_block_additional_residual=mid,
            ).sample
        with added_to_conv_in(self.unet, self.concat_conditioning(condition.concat.to(x.dtype))):
            return self.unet(x, timesteps, encoder_hidden_states=tokens).sample

    # ----- persistence -----------------------------------------------------------------
    def save_pretrained(self, folder) -> None:
        """Write stemprover.json, unet/, controlnet/, adapters/<name>/, embeddings, scheduler/."""
        save_stemprover(self, folder)

    @classmethod
    def from_pretrained(cls, folder, device=None, dtype=None) -> StemProverModel:
        """Load a model written by :meth:`save_pretrained` (mismatches raise StemproverError)."""
        model = load_stemprover(cls, folder)
        return model.to(device=device, dtype=dtype) if (device or dtype) else model
