"""Training throughput: seconds of audio learned per wall-clock second, and FLOPs per audio second.

    table = training_throughput("cpu")          # one row per training kind (notebook 07)

Each kind is one optimizer step of a training stage, built as that stage builds it, at the
profile's batch size and crop length (``segment_frames``):

* ``base``: base pretraining (03), :func:`~stemprover.train.steps.bridge_step` without an
  adapter, every U-Net parameter trained;
* ``control_lora``: the control branch and the ``general`` LoRA adapter on the frozen base
  (04), ``bridge_step(..., adapter="general")``;
* ``regression``: the regression U-Net baseline (04), ``regression_step``.

A step is forward, backward and AdamW update of one micro-batch; its time is the median of a
few timed steps after warm-up steps (first calls pay for allocation and kernel selection).
FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` over forward and backward
(the optimizer's element-wise update is left out, as the counter only sees matrix products
and convolutions). The batch is random waves: the cost of a step does not depend on the sound.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from stemprover.errors import StemproverError
from stemprover.model import RegressionModel, StemProverModel, model_config
from stemprover.model.adapters import adapter_parameters, control_parameters
from stemprover.model.regression import matched_config
from stemprover.model.unet import freeze
from stemprover.project.config import build, stage_params
from stemprover.project.seed import seed_everything
from stemprover.train.config import LoraTrainConfig, PretrainConfig, model_overrides
from stemprover.train.steps import bridge_step, loss_for, regression_step

PREVIOUS_RELEASE_AUDIO_S_PER_S = 0.3
"""Training throughput of the previous release (the noise-to-data design before the bridge
formulation of commit 2945d7e), in seconds of audio per wall-clock second: the value measured
for that release on the cpu profile's 2-core machine. Typed, not measured here: that code is gone."""
PREVIOUS_RELEASE_SOURCE = (
    "measured for the previous release (noise-to-data design before commit 2945d7e), cpu profile"
)
TARGET_SPEEDUP = 10.0  # the target: at least ten times the previous release's throughput
KINDS = ("base", "control_lora", "regression")
STEMPROVER_KINDS = ("base", "control_lora")  # the stages that train StemProver itself
STAGES = {"base": "03_base_pretraining", "control_lora": "04_lora_training",
          "regression": "04_lora_training"}


@dataclass
class TrainingSetup:
    """One stage's model, trainable parameters and step function, ready to time."""

    kind: str
    model: Any  # StemProverModel or RegressionModel
    params: list  # trainable torch parameters
    step: Callable  # (batch, generator) -> loss tensor
    batch_size: int
    learning_rate: float


def stage_config(profile: str, kind: str):
    """The 03 (``base``) or 04 (``control_lora``, ``regression``) config of a profile."""

    cls = PretrainConfig if kind == "base" else LoraTrainConfig
    return build(cls, stage_params(profile, STAGES[kind]), ignore=("profile",),
                 where=f"{profile}.yaml {STAGES[kind]}")


def training_setup(profile: str, kind: str, device: str = "cpu",
                   batch_size: int | None = None) -> TrainingSetup:
    """Build ``kind``'s model as its stage does (fresh weights: the cost does not depend on them).

    Args:
        profile: Profile whose ``model_config`` and 03/04 sections (batch size, ``model:``
            overrides, loss weights) are used.
        kind: One of :data:`KINDS`.
        device: torch device.
        batch_size: Overrides the stage's batch size (tests).
    """

    if kind not in KINDS:
        raise StemproverError(f"unknown training kind {kind!r}; choose one of {', '.join(KINDS)}")
    cfg = stage_config(profile, kind)
    mcfg = model_config(profile, **model_overrides(cfg))
    if kind == "base":
        model = StemProverModel(mcfg, with_control=False)
        params = list(model.unet.parameters())
    elif kind == "control_lora":
        model = StemProverModel(mcfg, with_control=True)
        model.add_adapters()
        freeze(model.unet)
        params = [*control_parameters(model).values(),
                  *adapter_parameters(model.unet, "general").values(),
                  model.artifact_embedding.table]
    else:
        model = RegressionModel(matched_config(mcfg) if cfg.regression_size == "matched" else mcfg)
        params = list(model.parameters())
    model.to(device).train()
    for p in params:
        p.requires_grad_(True)
    loss_fn = loss_for(model, cfg.loss).to(device)
    if kind == "regression":
        def step(batch, generator):
            return regression_step(model, loss_fn, batch, generator, cfg.mixture_dropout)
    else:
        adapter = "general" if kind == "control_lora" else None
        dropout = getattr(cfg, "mixture_dropout", 0.0)

        def step(batch, generator):
            return bridge_step(model, loss_fn, batch, generator, adapter=adapter,
                               mixture_dropout=dropout)
    return TrainingSetup(kind, model, params, step, batch_size or cfg.batch_size,
                         cfg.learning_rate)


def random_batch(batch_size: int, n_samples: int, device: str, seed: int = 0) -> dict:
    """``clean``, ``separated`` and ``mixture`` waves ``(batch_size, n_samples)``, seeded."""
    generator = torch.Generator().manual_seed(seed)
    waves = {k: 0.1 * torch.randn(batch_size, n_samples, generator=generator)
             for k in ("clean", "separated", "mixture")}
    return {k: v.to(device) for k, v in waves.items()}


def _loss(output):
    return output[0] if isinstance(output, tuple) else output


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def measure(setup: TrainingSetup, device: str = "cpu", warmup: int = 1, repeats: int = 3,
            seed: int = 0) -> dict[str, Any]:
    """Time ``repeats`` optimizer steps after ``warmup`` ones, and count one step's FLOPs.

    Returns:
        ``seconds_per_step`` (median), ``step_seconds_min``/``max``, ``flops_per_step``
        (forward + backward), ``audio_seconds_per_step`` and the derived throughputs.
    """
    cfg = setup.model.config
    n_samples = cfg.segment_samples
    batch = random_batch(setup.batch_size, n_samples, device, seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.AdamW(setup.params, lr=setup.learning_rate)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=str(device).startswith("cuda"))

    def one_step() -> None:
        with autocast:
            loss = _loss(setup.step(batch, generator))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        one_step()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        one_step()
        _sync(device)
        times.append(time.perf_counter() - start)
    counter = FlopCounterMode(display=False)
    with counter:
        with autocast:
            loss = _loss(setup.step(batch, generator))
        loss.backward()
    optimizer.zero_grad(set_to_none=True)
    seconds = statistics.median(times)
    audio = setup.batch_size * n_samples / cfg.sample_rate
    flops = int(counter.get_total_flops())
    return {
        "seconds_per_step": seconds,
        "step_seconds_min": min(times),
        "step_seconds_max": max(times),
        "n_timed": repeats,
        "audio_seconds_per_step": audio,
        "audio_s_per_s": audio / seconds,
        "flops_per_step": flops,
        "flops_per_audio_second": flops / audio,
    }


def training_throughput(profile: str, kinds=KINDS, device: str = "cpu", warmup: int = 1,
                        repeats: int = 3, seed: int = 0,
                        batch_size: int | None = None) -> pd.DataFrame:
    """One row per training kind: its setting, step time and throughput.

    Columns: ``kind``, ``batch_size``, ``segment_frames``, ``segment_samples``,
    ``sample_rate`` (Hz), ``trainable_parameters``, ``parameters``, then those of
    :func:`measure` (seconds, audio seconds, ``audio_s_per_s``, FLOPs). A kind whose model
    cannot be built for this profile (the regression U-Net in latent mode) is left out.
    """
    rows = []
    for kind in kinds:
        seed_everything(seed)
        try:
            setup = training_setup(profile, kind, device, batch_size)
        except StemproverError as exc:
            print(f"throughput: skipped {kind}: {exc}")
            continue
        cfg = setup.model.config
        rows.append({
            "kind": kind,
            "batch_size": setup.batch_size,
            "segment_frames": cfg.segment_frames,
            "segment_samples": cfg.segment_samples,
            "sample_rate": cfg.sample_rate,
            "trainable_parameters": sum(p.numel() for p in setup.params),
            "parameters": sum(p.numel() for p in setup.model.parameters()),
            "torch_threads": torch.get_num_threads(),
            **measure(setup, device, warmup, repeats, seed),
        })
        del setup
    return pd.DataFrame(rows)


def throughput_summary(table: pd.DataFrame) -> dict[str, Any]:
    """summary.json's ``training`` entry: per kind, the headline and the reference.

    The headline is the slowest of the StemProver stages (base pretraining and control +
    LoRA), the one that bounds how much audio a training budget covers.
    """
    kinds = {
        row["kind"]: {
            "audio_s_per_s": float(row["audio_s_per_s"]),
            "flops_per_audio_second": float(row["flops_per_audio_second"]),
            "seconds_per_step": float(row["seconds_per_step"]),
            "batch_size": int(row["batch_size"]),
            "segment_frames": int(row["segment_frames"]),
            **({"trainable_parameters": int(row["trainable_parameters"])}
               if "trainable_parameters" in row else {}),
        }
        for _, row in table.iterrows()
    }
    own = [k for k in STEMPROVER_KINDS if k in kinds]
    slowest = min(own, key=lambda k: kinds[k]["audio_s_per_s"]) if own else None
    value = kinds[slowest]["audio_s_per_s"] if slowest else None
    return {
        "kinds": kinds,
        "headline_kind": slowest,
        "audio_s_per_s": value,
        "flops_per_audio_second": kinds[slowest]["flops_per_audio_second"] if slowest else None,
        "previous_release_audio_s_per_s": PREVIOUS_RELEASE_AUDIO_S_PER_S,
        "previous_release_source": PREVIOUS_RELEASE_SOURCE,
        "target_audio_s_per_s": TARGET_SPEEDUP * PREVIOUS_RELEASE_AUDIO_S_PER_S,
        "speedup_over_previous": None if value is None else value / PREVIOUS_RELEASE_AUDIO_S_PER_S,
    }
