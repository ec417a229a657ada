"""peft LoRA adapters on the frozen base U-Net, one per artifact type.

Adapters are named after :data:`stemprover.constants.ADAPTERS` (``hf_loss``, ``musical_noise``,
``bleed``, ``general``). They are injected with diffusers' peft integration
(``unet.add_adapter``), chosen or mixed with ``unet.set_adapters(names, weights)``, and saved in
peft's own format: ``<folder>/<name>/adapter_config.json`` + ``adapter_model.safetensors``.
LoRA's ``B`` matrices start at zero, so a fresh adapter leaves the base unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from diffusers import UNet2DConditionModel
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from stemprover.errors import StemproverError
from stemprover.model.config import ModelConfig

if TYPE_CHECKING:  # stemprover_model imports this module; pandas is slow to import
    import pandas as pd

    from stemprover.model.stemprover_model import StemProverModel

WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"


def lora_config(cfg: ModelConfig) -> LoraConfig:
    """peft LoRA settings from the model config (rank, alpha, target module names)."""
    return LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        target_modules=list(cfg.lora_targets),
        init_lora_weights=True,  # A random, B zero: the adapter starts as a no-op
    )


def adapter_names(unet: UNet2DConditionModel) -> list[str]:
    """Names of the adapters injected into ``unet`` (in insertion order)."""
    return list(getattr(unet, "peft_config", {}) or {})


def add_adapter(unet: UNet2DConditionModel, name: str, config: LoraConfig) -> None:
    """Inject a LoRA adapter called ``name``."""
    if name in adapter_names(unet):
        raise StemproverError(f"adapter {name!r} already exists")
    try:
        with warnings.catch_warnings():  # peft warns on every adapter after the first
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            unet.add_adapter(config, adapter_name=name)
    except ValueError as exc:  # peft: no target module found
        raise StemproverError(f"cannot add LoRA adapter {name!r}: {exc}") from None


def adapter_parameters(unet: UNet2DConditionModel, name: str) -> dict[str, torch.nn.Parameter]:
    """The LoRA parameters of one adapter, by qualified name."""
    marker = f".{name}."
    params = {
        key: param
        for key, param in unet.named_parameters()
        if "lora_" in key and (marker in key or key.endswith(f".{name}"))
    }
    if not params:
        raise StemproverError(f"adapter {name!r} has no parameters (is it added?)")
    return params


def n_adapter_parameters(unet: UNet2DConditionModel, name: str) -> int:
    return sum(p.numel() for p in adapter_parameters(unet, name).values())


def n_base_parameters(unet: UNet2DConditionModel) -> int:
    """Parameters of the base U-Net, LoRA layers excluded."""
    return sum(p.numel() for key, p in unet.named_parameters() if "lora_" not in key)


@torch.no_grad()
def copy_adapter(unet: UNet2DConditionModel, source: str, target: str) -> None:
    """Copy the weights of adapter ``source`` into adapter ``target`` (same rank and targets)."""
    src = adapter_parameters(unet, source)
    dst = adapter_parameters(unet, target)
    for key, param in dst.items():
        param.copy_(src[key.replace(f".{target}.", f".{source}.")])


def set_adapter_weights(unet: UNet2DConditionModel, weights: Mapping[str, float]) -> None:
    """Activate adapters with the given mixing weights (zero-weight adapters are left out)."""
    known = adapter_names(unet)
    unknown = sorted(set(weights) - set(known))
    if unknown:
        raise StemproverError(f"unknown adapter(s) {unknown}; this model has {known}")
    active = {name: float(w) for name, w in weights.items() if float(w) != 0.0}
    if not active:
        unet.disable_adapters()
        return
    unet.enable_adapters()
    unet.set_adapters(list(active), weights=list(active.values()))


def save_adapter(unet: UNet2DConditionModel, name: str, folder: Path) -> Path:
    """Write adapter ``name`` in peft format to ``folder/name/``; return that folder."""
    out = Path(folder) / name
    out.mkdir(parents=True, exist_ok=True)
    state = get_peft_model_state_dict(unet, adapter_name=name)
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, out / WEIGHTS_NAME)
    unet.peft_config[name].save_pretrained(str(out))
    return out


def load_adapter(unet: UNet2DConditionModel, folder: Path, name: str | None = None) -> str:
    """Load a peft-format LoRA adapter from ``folder`` into ``unet``; return its name."""
    folder = Path(folder)
    name = name or folder.name
    if not (folder / CONFIG_NAME).exists() or not (folder / WEIGHTS_NAME).exists():
        raise StemproverError(f"{folder}: not a peft adapter ({CONFIG_NAME} + {WEIGHTS_NAME})")
    config = LoraConfig.from_pretrained(str(folder))
    add_adapter(unet, name, config)
    state = load_file(folder / WEIGHTS_NAME)
    result = set_peft_model_state_dict(unet, state, adapter_name=name)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    expected = adapter_parameters(unet, name)
    if unexpected or len(state) != len(expected):
        raise StemproverError(
            f"{folder}: adapter weights do not match the model "
            f"({len(state)} tensors for {len(expected)} LoRA parameters)"
        )
    return name


def control_parameters(model: StemProverModel) -> dict[str, torch.nn.Parameter]:
    """Trainable parameters of the control branch (whichever kind it is)."""
    params = {}
    for prefix in ("controlnet", "control_unet", "control_out", "condition_embedding",
                   "concat_conditioning"):
        module = getattr(model, prefix)
        if module is not None:
            params.update({f"{prefix}.{k}": p for k, p in module.named_parameters()})
    return params


def adapter_report(model: StemProverModel, weights_dir: Path | None = None) -> pd.DataFrame:
    """Size of each adapter and its share of the base U-Net's parameters."""
    import pandas as pd

    n_base = n_base_parameters(model.unet)
    rows = []
    for name in model.adapter_names:
        n_params = n_adapter_parameters(model.unet, name)
        row = {"adapter": name, "parameters": n_params, "base_parameters": n_base,
               "share_of_base_percent": 100.0 * n_params / n_base}
        file = None if weights_dir is None else weights_dir / "adapters" / name
        if file is not None and (file / WEIGHTS_NAME).exists():
            row["file_bytes"] = (file / WEIGHTS_NAME).stat().st_size
        rows.append(row)
    n_control = sum(p.numel() for p in control_parameters(model).values())
    rows.append({"adapter": "control_branch", "parameters": n_control, "base_parameters": n_base,
                 "share_of_base_percent": 100.0 * n_control / n_base})
    return pd.DataFrame(rows)
