"""Saving and loading StemProver models in diffusers/peft formats.

A model folder holds::

    stemprover.json            {"kind", "version", "format", "config", "has_control", "adapters",
                                "blend"} (blend: the validated share alpha of each adapter's change)
    unet/                      diffusers UNet2DConditionModel (base weights, LoRA stripped)
    controlnet/                diffusers ControlNetModel (controlnet mode)
    control_unet/              diffusers UNet2DConditionModel, the control branch (branch mode)
    autoencoder/               diffusers AutoencoderKL (latent mode)
    adapters/<name>/           peft LoRA (adapter_config.json + adapter_model.safetensors)
    embeddings.safetensors     artifact tokens, control embedding / concat weights
    scheduler/                 diffusers scheduler config: FlowMatchEulerDiscreteScheduler
                               (bridge) or DDPMScheduler (SDEdit: prediction type, betas)

Writes go to a temporary folder next to the target, renamed into place when complete.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    FlowMatchEulerDiscreteScheduler,
    UNet2DConditionModel,
)
from safetensors.torch import load_file, save_file
from torch import nn

from stemprover.errors import StemproverError
from stemprover.model import adapters as lora
from stemprover.model.config import config_from_dict
from stemprover.model.control import load_controlnet
from stemprover.project.provenance import portable_path

FORMAT = 1
CONFIG_FILE = "stemprover.json"
EMBEDDINGS = "embeddings.safetensors"
UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"
EMBEDDING_MODULES = ("artifact_embedding", "condition_embedding", "concat_conditioning",
                     "control_out")


def version() -> str:
    try:
        return pkg_version("stemprover")
    except PackageNotFoundError:
        return "0+unknown"


def base_state_dict(unet: nn.Module) -> dict[str, torch.Tensor]:
    """The U-Net's own weights with peft LoRA layers stripped (``base_layer`` unwrapped)."""
    state = {}
    for key, value in unet.state_dict().items():
        if "lora_" in key:
            continue
        state[key.replace(".base_layer.", ".")] = value.detach().contiguous().cpu().clone()
    return state


def save_unet(unet: UNet2DConditionModel, folder: Path) -> None:
    """Write the base U-Net in diffusers format without any adapter layers."""
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_config(str(folder))
    save_file(base_state_dict(unet), folder / UNET_WEIGHTS)


def _embedding_state(model: nn.Module) -> dict[str, torch.Tensor]:
    state = {}
    for name in EMBEDDING_MODULES:
        module = getattr(model, name, None)
        if module is not None:
            for key, value in module.state_dict().items():
                state[f"{name}.{key}"] = value.detach().contiguous().cpu().clone()
    return state


def load_embeddings(model: nn.Module, path: Path) -> None:
    state = load_file(path)
    for name in EMBEDDING_MODULES:
        module = getattr(model, name, None)
        if module is None:
            continue
        part = {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")}
        try:
            module.load_state_dict(part, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise StemproverError(f"{path}: {name} does not match the config ({first})") from None


def write_folder(folder, fill) -> Path:
    """Call ``fill(tmp)`` on a temporary folder, then move it to ``folder`` atomically."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        fill(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def save_stemprover(model, folder) -> Path:
    """Write a StemProverModel (see the module docstring for the layout)."""

    def fill(tmp: Path) -> None:
        meta = {
            "kind": model.kind,
            "version": version(),
            "format": FORMAT,
            "config": _plain(model.config),
            "has_control": model.has_control,
            "adapters": model.adapter_names,
            "blend": dict(getattr(model, "blend", {}) or {}),
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        save_unet(model.unet, tmp / "unet")
        if model.controlnet is not None:
            model.controlnet.save_pretrained(str(tmp / "controlnet"))
        if getattr(model, "control_unet", None) is not None:
            save_unet(model.control_unet, tmp / "control_unet")
        if model.autoencoder is not None:
            model.autoencoder.save_pretrained(str(tmp / "autoencoder"))
        for name in model.adapter_names:
            lora.save_adapter(model.unet, name, tmp / "adapters")
        save_file(_embedding_state(model), tmp / EMBEDDINGS)
        scheduler_class(model.config).from_config(model.scheduler_config).save_pretrained(
            str(tmp / "scheduler"))
        drop_local_paths(tmp)

    return write_folder(folder, fill)


def scheduler_class(cfg):
    """The diffusers scheduler class of a formulation."""
    if cfg.formulation == "bridge":
        return FlowMatchEulerDiscreteScheduler
    return DDPMScheduler


def drop_local_paths(folder: Path) -> None:
    """Remove the loading path diffusers records in configs: a released folder names no machine."""
    for config in Path(folder).rglob("*.json"):
        values = json.loads(config.read_text())
        if isinstance(values, dict) and "_name_or_path" in values:
            del values["_name_or_path"]
            config.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")


def _plain(cfg) -> dict[str, Any]:
    values = dataclasses.asdict(cfg)
    if values.get("base_path"):
        values["base_path"] = portable_path(values["base_path"])
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def read_meta(folder, kind: str | None = None) -> dict[str, Any]:
    """Read and check ``stemprover.json``."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.exists():
        raise StemproverError(f"{folder}: not a StemProver model (no {CONFIG_FILE})")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StemproverError(f"{path}: unreadable JSON ({exc})") from None
    if meta.get("format") != FORMAT:
        raise StemproverError(f"{path}: unsupported format {meta.get('format')!r}")
    if kind is not None and meta.get("kind") != kind:
        raise StemproverError(f"{path}: holds a {meta.get('kind')!r} model, not {kind!r}")
    return meta


def load_unet(folder: Path) -> UNet2DConditionModel:
    try:
        return UNet2DConditionModel.from_pretrained(str(folder))
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StemproverError(f"{folder}: cannot load the U-Net ({first})") from None


def load_branch(folder: Path) -> UNet2DConditionModel:
    """The control branch: a U-Net saved without its output convolution (see ``branch_copy``)."""
    state = load_file(folder / UNET_WEIGHTS)
    try:
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(folder)))
    except (OSError, ValueError) as exc:
        raise StemproverError(f"{folder}: cannot load the control branch ({exc})") from None
    unet.conv_out = nn.Identity()
    try:
        unet.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise StemproverError(f"{folder}: control branch does not match ({first})") from None
    return unet


def load_stemprover(cls, folder):
    """Rebuild a StemProverModel from :func:`save_stemprover` output."""
    folder = Path(folder)
    meta = read_meta(folder, cls.kind)
    cfg = config_from_dict(meta["config"], where=str(folder / CONFIG_FILE))
    unet = load_unet(folder / "unet")
    autoencoder = None
    if cfg.mode == "latent":
        autoencoder = AutoencoderKL.from_pretrained(str(folder / "autoencoder"))
    model = cls(cfg, unet=unet, autoencoder=autoencoder, with_control=bool(meta["has_control"]))
    if model.controlnet is not None:
        model.controlnet = load_controlnet(folder / "controlnet")
    if model.control_unet is not None:
        model.control_unet = load_branch(folder / "control_unet")
    load_embeddings(model, folder / EMBEDDINGS)
    for name in meta.get("adapters", []):
        lora.load_adapter(model.unet, folder / "adapters" / name, name)
    try:
        scheduler = scheduler_class(cfg).from_pretrained(str(folder / "scheduler"))
    except (OSError, ValueError) as exc:
        raise StemproverError(f"{folder}: cannot load the scheduler ({exc})") from None
    if cfg.formulation != "bridge" and scheduler.config.prediction_type != cfg.prediction_type:
        raise StemproverError(
            f"{folder}: scheduler predicts {scheduler.config.prediction_type!r} but the config "
            f"says {cfg.prediction_type!r}"
        )
    model.blend = {str(k): float(v) for k, v in (meta.get("blend") or {}).items()}
    model.scheduler_config = dict(scheduler.config)
    model.eval()
    return model
