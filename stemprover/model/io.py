"""Loading models: saved StemProver folders, and any local diffusers checkpoint as the base.

    model = load_model("models/default")                   # StemProverModel or RegressionModel
    model = load_base("path/to/stable-diffusion", cfg)     # SD/Riffusion folder with unet/, vae/
    model = load_base("results/cpu/03_base_pretraining/weights/base", cfg)

:func:`load_base` returns a StemProverModel with a fresh control branch around the loaded base
(built from the base's pretrained encoder, as ControlNet prescribes) and no adapters yet.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL

from stemprover.errors import StemproverError
from stemprover.model.config import ModelConfig, config_from_dict, replace
from stemprover.model.regression import RegressionModel
from stemprover.model.serialize import (
    CONFIG_FILE,
    EMBEDDINGS,
    load_embeddings,
    load_unet,
    read_meta,
)
from stemprover.model.stemprover_model import StemProverModel
from stemprover.model.unet import attention_levels

KINDS = {"stemprover": StemProverModel, "regression": RegressionModel}

BASE_KEYS = (
    "sample_rate", "n_fft", "hop_length", "representation", "mode", "latent_channels",
    "block_out_channels", "layers_per_block", "attention_head_dim", "cross_attention_dim",
    "only_cross_attention", "attention_levels",
    "norm_num_groups", "n_condition_tokens", "prediction_type", "num_train_timesteps",
    "beta_schedule", "image_scale", "formulation", "bridge_noise", "freq_fold",
)
"""Fields that belong to the base; the rest (control, adapters) come from the caller's config."""


def load_model(path, device=None, dtype=None) -> StemProverModel | RegressionModel:
    """Load a saved model folder; its ``stemprover.json`` "kind" picks the class."""
    meta = read_meta(Path(path))
    kind = meta.get("kind")
    if kind not in KINDS:
        raise StemproverError(f"{path}: unknown model kind {kind!r}")
    return KINDS[kind].from_pretrained(path, device=device, dtype=dtype)


def _load_autoencoder(folder: Path) -> AutoencoderKL:
    try:
        return AutoencoderKL.from_pretrained(str(folder))
    except (OSError, ValueError, RuntimeError) as exc:
        raise StemproverError(f"{folder}: cannot load the autoencoder ({exc})") from None


def load_base(path, cfg: ModelConfig) -> StemProverModel:
    """A StemProverModel whose base U-Net (and autoencoder) come from ``path``.

    Args:
        path: A StemProver model folder (``stemprover.json``), a diffusers pipeline folder with
            ``unet/`` (and ``vae/`` for latent bases, e.g. Stable Diffusion or Riffusion), or a
            bare diffusers U-Net folder (``config.json``).
        cfg: Settings for the parts that are not loaded (control branch, adapters). For a
            diffusers checkpoint the architecture fields are taken from the checkpoint.

    Raises:
        StemproverError: when the folder holds no usable U-Net or it cannot fit the
            representation (e.g. a latent U-Net without an autoencoder).
    """
    path = Path(path)
    if not path.is_dir():
        raise StemproverError(f"{path}: base checkpoint folder not found")
    if (path / CONFIG_FILE).exists():
        meta = read_meta(path, "stemprover")
        base_cfg = config_from_dict(meta["config"], where=str(path / CONFIG_FILE))
        merged = replace(cfg, **{k: getattr(base_cfg, k) for k in BASE_KEYS})
        merged = replace(merged, base_path=str(path))
        autoencoder = _load_autoencoder(path / "autoencoder") if merged.mode == "latent" else None
        model = StemProverModel(merged, load_unet(path / "unet"), autoencoder, with_control=False)
        load_embeddings(model, path / EMBEDDINGS)
        model.add_control()
        return model
    unet_dir = path / "unet" if (path / "unet" / "config.json").exists() else path
    if not (unet_dir / "config.json").exists():
        raise StemproverError(f"{path}: no diffusers U-Net (expected unet/config.json)")
    unet = load_unet(unet_dir)
    vae_dir = next((path / d for d in ("vae", "autoencoder") if (path / d).is_dir()), None)
    picture_channels = {"magnitude": 1, "complex": 2, "mag_if": 2}[cfg.representation]
    latent = cfg.mode == "latent" or unet.config.in_channels != picture_channels
    autoencoder = None
    if latent:
        if vae_dir is None:
            raise StemproverError(
                f"{path}: the U-Net takes {unet.config.in_channels} channels, not the "
                f"{picture_channels} of a {cfg.representation} picture, and there is no vae/"
            )
        autoencoder = _load_autoencoder(vae_dir)
    ucfg = unet.config
    head = ucfg.attention_head_dim
    merged = replace(
        cfg,
        mode="latent" if latent else "pixel",
        latent_channels=int(ucfg.in_channels) if latent else cfg.latent_channels,
        block_out_channels=tuple(ucfg.block_out_channels),
        layers_per_block=int(ucfg.layers_per_block),
        attention_head_dim=int(head if isinstance(head, int) else head[0]),
        cross_attention_dim=int(ucfg.cross_attention_dim),
        only_cross_attention=bool(ucfg.only_cross_attention is True),
        attention_levels=attention_levels(ucfg.down_block_types),
        norm_num_groups=int(ucfg.norm_num_groups),
        image_scale=float(autoencoder.config.scaling_factor) if latent else cfg.image_scale,
        base_path=str(path),
    )
    return StemProverModel(merged, unet, autoencoder, with_control=True)


