"""Control branch + LoRA adapters (progressive), and the regression baseline (notebook 04).

    model, regression = train_stage(cfg, profile="cpu")   # both, side by side if asked
    model = train_control_lora(cfg, profile="cpu")           # or one at a time
    regression = train_regression(cfg, profile="cpu")

Progressive adapter training on the frozen base:

1. ``general``: the control branch (ControlNet copy of the base encoder + phase-aware
   conditioning embedding, or the concat weights), the ``general`` LoRA adapter and its
   artifact tokens, on all training pairs.
2. each specialised adapter (``hf_loss``, ``musical_noise``, ``bleed``) starts as a copy of
   ``general`` and is trained alone, with its tokens, on the pairs of its artifact type; the
   control branch stays fixed. Mixing weights that sum to 1 therefore interpolate between
   fine-tuned copies of one adapter.

With ``parallel_regression`` the regression baseline trains in a second process while the
branch and adapters train in this one, so on a machine with two cores both get their full
time cap within the same wall-clock time; the shared logs are written under a folder lock.

The base U-Net is never in an optimizer, so its weights stay bit-identical. Outputs under the
stage folder: ``train_log.csv``, ``adapters.csv``, ``checkpoints/``, ``weights/stemprover/`` and
``weights/regression/``.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from diffusers import DDPMScheduler

from stemprover.constants import ADAPTERS
from stemprover.dsp.spectral import StftConfig
from stemprover.errors import StemproverError
from stemprover.inference.sampler import sample_waves
from stemprover.metrics.signal import si_sdr
from stemprover.model import (
    RegressionModel,
    StemProverModel,
    load_base,
    load_model,
    model_config,
)
from stemprover.model import adapters as lora
from stemprover.model.adapters import adapter_report, control_parameters
from stemprover.model.regression import matched_config, model_sizes
from stemprover.model.serialize import read_meta
from stemprover.model.unet import freeze
from stemprover.project.inputs import require, resolve_inputs
from stemprover.project.paths import results_dir
from stemprover.project.provenance import code_commit, data_source, update_run
from stemprover.project.runtime import cpu_threads
from stemprover.project.seed import seed_everything
from stemprover.train.config import (
    LoraTrainConfig,
    manifest_path,
    model_overrides,
)
from stemprover.train.data import check_rate, indices_by_adapter, load_pairs, spread
from stemprover.train.loop import (
    CsvLog,
    Monitor,
    PhaseSpec,
    collate,
    fingerprint,
    kept_steps,
    make_accelerator,
    run_phase,
)
from stemprover.train.steps import diffusion_step, loss_for, one_hot, regression_step
from stemprover.train.validate import gain_on_pairs, validation_indices

SPECIALISED = tuple(name for name in ADAPTERS if name != "general")


def _stage_dir(profile: str, out_dir) -> Path:
    return Path(out_dir) if out_dir is not None else results_dir(profile, "04_lora_training")


def _base_dir(cfg: LoraTrainConfig) -> Path:
    return require(cfg.base, "base model", "03_base_pretraining")


def _spec(cfg: LoraTrainConfig, name: str, steps: int, *context) -> PhaseSpec:
    minutes = {"general": cfg.general_minutes, "regression": cfg.total_minutes}
    return PhaseSpec(name, steps, cfg.batch_size, cfg.grad_accum, cfg.learning_rate,
                     cfg.warmup_steps, cfg.seed, cfg.checkpoint_every,
                     fingerprint=fingerprint(cfg, name, *context),
                     max_minutes=minutes.get(name, cfg.adapter_minutes))


def _stamp(base) -> str:
    """Identifies the base weights a run started from (path and modification time)."""
    if isinstance(base, StemProverModel):
        return "in-memory base"
    weights = Path(base) / "unet" / "diffusion_pytorch_model.safetensors"
    return f"{Path(base).resolve()}@{weights.stat().st_mtime_ns if weights.exists() else 0}"


def train_control_lora(
    cfg: LoraTrainConfig,
    profile: str,
    *,
    train=None,
    base: StemProverModel | str | Path | None = None,
    out_dir: Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> StemProverModel | None:
    """Train the control branch and the four adapters on the frozen base.

    Args:
        cfg: Budgets, loss weights, model overrides.
        profile: Profile of the ModelConfig defaults and folders.
        train: Pair dataset (items with separated/clean/mixture/adapter); default: the
            profile's training pairs.
        base: Base model folder (default ``cfg.base`` or the 03 weights).
        out_dir: Stage folder (default ``results/<profile>/04_lora_training``).
        stop_after: Stop after this many optimizer steps in total (resumable).
        progress: Show progress bars.

    Returns:
        The trained model (saved to ``out_dir/weights/stemprover``), or None when stopped early.
    """
    seed_everything(cfg.seed)
    cfg = resolve_inputs(cfg, profile)
    with cpu_threads(cfg.torch_threads):
        out_dir = _stage_dir(profile, out_dir)
        train = train if train is not None else training_pairs(cfg)
        check_rate(train, cfg.sample_rate)
        base = base if base is not None else _base_dir(cfg)
        model = load_base(base, model_config(profile, **model_overrides(cfg)))
        model.add_adapters()
        freeze(model.unet)
        accelerator = make_accelerator(cfg.mixed_precision)
        scheduler = None if model.is_bridge else DDPMScheduler.from_config(model.scheduler_config)
        valid = _valid_pairs(cfg)
        loss_fn = loss_for(model, cfg.loss).to(accelerator.device)
        log = CsvLog(out_dir / "train_log.csv")
        budget = None if stop_after is None else [stop_after]
        groups = indices_by_adapter(train)
        table = model.artifact_embedding.table
        plan = [("general", list(range(len(train))), cfg.general_steps)]
        plan += [(name, groups[name], cfg.adapter_steps) for name in SPECIALISED]
        counts = {}
        for name, indices, steps in plan:
            counts[name] = len(indices)
            if not indices or steps == 0:
                continue  # no pairs of this type: the adapter stays a copy of `general`
            params = {f"lora.{k}": p for k, p in lora.adapter_parameters(model.unet, name).items()}
            params["artifact_embedding.table"] = table
            if name == "general":
                params.update(control_parameters(model))
            else:
                # the adapter starts as `general`; its tokens and output head were already
                # trained on its own pairs in the general phase, so they are kept
                lora.copy_adapter(model.unet, "general", name)
            subset = torch.utils.data.Subset(train, indices)
            done = run_phase(
                accelerator, model, params, subset,
                lambda batch, gen, name=name: diffusion_step(
                    model, loss_fn, scheduler, batch, gen,
                    adapter=_phase_adapter(name, batch, gen, cfg.general_share),
                    mixture_dropout=cfg.mixture_dropout),
                _spec(cfg, name, steps, model.config, _stamp(base), len(indices)),
                out_dir / "checkpoints", log, budget, progress,
                monitor=_monitor(cfg, model, valid, out_dir, name),
            )
            if not done:
                return None
        for name in SPECIALISED:  # untrained specialised adapters mirror `general`
            if not counts[name] or cfg.adapter_steps == 0:
                lora.copy_adapter(model.unet, "general", name)
                with torch.no_grad():
                    table[1 + ADAPTERS.index(name)] = table[1 + ADAPTERS.index("general")]
        model = model.cpu().eval()
        if not accelerator.is_main_process:  # the main process chooses the blend and writes
            return model
        if valid is not None and model.is_bridge:
            model.blend = choose_blend(cfg, model, valid, out_dir)
        weights = out_dir / "weights" / "stemprover"
        model.save_pretrained(weights)
        report = adapter_report(model, weights)
        report["train_pairs"] = report["adapter"].map(counts).fillna(len(train)).astype(int)
        report.to_csv(out_dir / "adapters.csv", index=False)
        data = {"pairs": data_source(train), "n_train_pairs": len(train),
                "sample_rate": cfg.sample_rate, "pairs_per_adapter": counts}
        (out_dir / "data.json").write_text(json.dumps(data, indent=2))
        rows = [r for r in log.rows() if r["phase"] in counts]
        phases = {r["phase"]: {"steps": int(r["step"]), "minutes": round(float(r["seconds"]) / 60, 2)}
                  for r in rows}
        for phase, step in kept_steps(CsvLog(out_dir / "budget_curve.csv")).items():
            if phase in phases:
                phases[phase]["kept_step"] = step  # the weights of the best budget-curve point
        update_run(out_dir, pairs=data["pairs"], n_train_pairs=len(train), phases=phases,
                   blend=model.blend, code_commit=code_commit())
        return model


def _phase_adapter(phase: str, batch: dict, generator: torch.Generator | None = None,
                   general_share: float = 0.0):
    """The adapter weights a phase trains with.

    The general phase conditions every pair on its own artifact type (tokens and output head
    of that type, shared control branch): trained on one head for all types, the types'
    gradients cancel at the start (see results/design/bridge_study.md). A share
    ``general_share`` of the pairs is conditioned on ``general`` instead, whatever their
    type, so that the default adapter also learns every type (as condition dropout does for
    classifier-free guidance). Later phases train their own adapter.
    """
    if phase == "general" and "adapter" in batch:
        labels = batch["adapter"]
        if general_share > 0.0:
            labels = labels.clone()
            device = generator.device if generator is not None else labels.device
            draw = torch.rand(labels.shape[0], generator=generator, device=device)
            draw = draw.to(labels.device)
            labels[draw < general_share] = ADAPTERS.index("general")
        return labels
    return phase


def training_pairs(cfg: LoraTrainConfig):
    """The training pairs of every family but ``cfg.holdout_family``."""
    held_out = [cfg.holdout_family] if cfg.holdout_family else []
    return load_pairs(manifest_path(cfg), "train", exclude_families=held_out)


def _valid_pairs(cfg: LoraTrainConfig):
    """The held-out pairs of the budget curve and the blend choice (None when there are none):
    the valid pairs of ``cfg.holdout_family`` when one is held out, else every valid pair."""
    if not cfg.eval_every and not cfg.blend_grid:
        return None
    try:
        return load_pairs(manifest_path(cfg), "valid",
                          families=[cfg.holdout_family] if cfg.holdout_family else None)
    except StemproverError:
        return None


def _monitor(cfg: LoraTrainConfig, model, valid, out_dir: Path, phase: str) -> Monitor | None:
    """Budget curve of one phase: ΔSI-SDR on held-out pairs of the phase's artifact type.

    The diffusion phases are validated at ``valid_steps`` with the phase's adapter; the
    regression baseline in its single pass.
    """
    if not cfg.eval_every or valid is None:
        return None

    if phase in ("general", "regression"):
        indices = validation_indices(valid, cfg.n_monitor)
    else:
        indices = spread(indices_by_adapter(valid)[phase], cfg.n_monitor)
    if not indices:
        return None
    # With a general share the `general` adapter has learnt every type: it is what a user
    # gets by default, so its gain on all pairs is what the curve follows and the kept step maximises.
    general = "general" if cfg.general_share > 0 else "own"
    adapter = {"regression": None, "general": general}.get(phase, phase)
    stft_cfg = StftConfig(cfg.n_fft, cfg.hop_length)
    evaluate = lambda: gain_on_pairs(model, valid, indices, sample_rate=cfg.sample_rate,  # noqa: E731
                                     stft_cfg=stft_cfg, steps=cfg.valid_steps, adapter=adapter,
                                     batch_size=cfg.batch_size)
    return Monitor(evaluate, cfg.eval_every, CsvLog(out_dir / "budget_curve.csv"),
                   cfg.patience, cfg.min_delta, keep_best=True)


@torch.no_grad()
def choose_blend(cfg: LoraTrainConfig, model: StemProverModel, valid, out_dir: Path) -> dict:
    """The share ``alpha`` of each adapter's change that maximises held-out SI-SDR.

    The output is ``y + alpha * (x̂ - y)``; ``alpha = 0`` (the input) is always a candidate, so
    the chosen blend never scores below the separated stem on these pairs. Writes ``blend.csv``
    (mean SI-SDR gain per adapter and alpha). Returns ``{adapter: alpha}``.
    """
    alphas = np.linspace(0.0, 1.0, max(cfg.blend_grid, 2))
    groups = indices_by_adapter(valid)
    rows, blend = [], {}
    for name in model.adapter_names:
        if name == "general" and cfg.general_share > 0:
            # trained with a share of every type, it is chosen on every type's pairs
            indices = validation_indices(valid, cfg.n_valid)
        else:
            indices = spread(groups[name] if groups[name] else groups_all(groups), cfg.n_valid)
        gains = np.zeros(len(alphas))
        for start in range(0, len(indices), cfg.batch_size):
            chunk = indices[start : start + cfg.batch_size]
            batch = collate([valid[i] for i in chunk])
            mixture = batch["mixture"] if model.config.use_mixture else None
            out = sample_waves(model, batch["separated"], mixture, steps=cfg.valid_steps,
                               strength=cfg.valid_strength,
                               adapter_weights=one_hot(name, len(chunk), "cpu"))
            for j in range(len(chunk)):
                y, x_hat, ref = (batch["separated"][j].numpy(), out[j].numpy(),
                                 batch["clean"][j].numpy())
                base = si_sdr(y, ref)
                gains += [si_sdr(y + a * (x_hat - y), ref) - base for a in alphas]
        gains /= max(len(indices), 1)
        blend[name] = float(alphas[int(np.argmax(gains))])
        rows += [{"adapter": name, "alpha": float(a), "si_sdr_gain": float(g),
                  "n_pairs": len(indices)} for a, g in zip(alphas, gains)]
    pd.DataFrame(rows).to_csv(out_dir / "blend.csv", index=False)
    return blend


def groups_all(groups: dict[str, list[int]]) -> list[int]:
    return sorted(i for indices in groups.values() for i in indices)


def regression_config_from_base(cfg: LoraTrainConfig, base) -> dict:
    """Model overrides for the regression baseline: the base's picture scale and sizes."""
    overrides = model_overrides(cfg)
    if isinstance(base, StemProverModel):
        overrides["image_scale"] = base.config.image_scale
    elif base is not None and (Path(base) / "stemprover.json").exists():
        overrides["image_scale"] = read_meta(Path(base))["config"]["image_scale"]
    return overrides


def regression_model_config(cfg: LoraTrainConfig, mcfg):
    """The regression U-Net's ModelConfig: ``mcfg`` with widths matched to StemProver's
    parameter count (``cfg.regression_size == "matched"``), or ``mcfg`` itself."""
    return matched_config(mcfg) if cfg.regression_size == "matched" else mcfg


def train_regression(
    cfg: LoraTrainConfig,
    profile: str,
    *,
    train=None,
    base: StemProverModel | str | Path | None = None,
    out_dir: Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> RegressionModel | None:
    """Train the regression U-Net on the same pairs, losses, batch and number of steps.

    Returns:
        The trained model (saved to ``out_dir/weights/regression``), or None when stopped early.
    """
    seed_everything(cfg.seed)
    cfg = resolve_inputs(cfg, profile)
    with cpu_threads(cfg.torch_threads):
        out_dir = _stage_dir(profile, out_dir)
        train = train if train is not None else training_pairs(cfg)
        base = base if base is not None else _base_dir(cfg)
        check_rate(train, cfg.sample_rate)
        mcfg = model_config(profile, **regression_config_from_base(cfg, base))
        if mcfg.mode != "pixel":
            raise StemproverError("the regression baseline runs in pixel mode; set model.mode=pixel")
        torch.manual_seed(cfg.seed)
        model = RegressionModel(regression_model_config(cfg, mcfg))
        accelerator = make_accelerator(cfg.mixed_precision)
        loss_fn = loss_for(model, cfg.loss).to(accelerator.device)
        params = dict(model.named_parameters())
        done = run_phase(
            accelerator, model, params, train,
            lambda batch, gen: regression_step(model, loss_fn, batch, gen, cfg.mixture_dropout),
            _spec(cfg, "regression", cfg.total_steps, mcfg, len(train)), out_dir / "checkpoints",
            CsvLog(out_dir / "train_log.csv"), None if stop_after is None else [stop_after], progress,
            monitor=_monitor(cfg, model, _valid_pairs(cfg), out_dir, "regression"),
        )
        if not done:
            return None
        model = model.cpu().eval()
        if not accelerator.is_main_process:
            return model
        model.save_pretrained(out_dir / "weights" / "regression")
        reference = StemProverModel(mcfg, with_control=True)
        reference.add_adapters(ADAPTERS)
        update_run(out_dir, model_sizes=model_sizes(reference, model))
        last = [r for r in CsvLog(out_dir / "train_log.csv").rows() if r["phase"] == "regression"]
        if last:
            kept = kept_steps(CsvLog(out_dir / "budget_curve.csv")).get("regression")
            update_run(out_dir, regression={"steps": int(last[-1]["step"]), "kept_step": kept,
                                            "minutes": round(float(last[-1]["seconds"]) / 60, 2)})
        return model


def train_stage(
    cfg: LoraTrainConfig, profile: str, *, progress: bool = True, **data
) -> tuple[StemProverModel, RegressionModel | None]:
    """Train the branch and adapters, and the regression baseline when ``cfg.regression``.

    With ``cfg.parallel_regression`` the baseline runs in a spawned process at the same time
    (its own ``torch_threads``, no progress bar); each keeps its own checkpoint, so a stopped
    stage resumes both.

    Args:
        cfg: The stage's config.
        profile: Profile of the ModelConfig defaults and folders.
        progress: Progress bars (of this process).
        **data: ``train``, ``base`` and ``out_dir``, passed to both trainers.

    Returns:
        ``(stemprover, regression)``; ``regression`` is None when it is not trained.

    Raises:
        StemproverError: the baseline's process failed.
    """
    if not cfg.regression:
        return train_control_lora(cfg, profile, progress=progress, **data), None
    if not cfg.parallel_regression:
        model = train_control_lora(cfg, profile, progress=progress, **data)
        return model, train_regression(cfg, profile, progress=progress, **data)
    worker = multiprocessing.get_context("spawn").Process(
        target=_regression_process, args=(cfg, profile, data), name="regression"
    )
    worker.start()
    try:
        model = train_control_lora(cfg, profile, progress=progress, **data)
    except BaseException:
        worker.terminate()
        worker.join()
        raise
    worker.join()
    if worker.exitcode != 0:
        raise StemproverError(
            f"the regression baseline's process failed (exit code {worker.exitcode}); "
            "rerun the stage to resume it from its checkpoint"
        )
    out_dir = _stage_dir(profile, data.get("out_dir"))
    return model, load_model(out_dir / "weights" / "regression")


def _regression_process(cfg: LoraTrainConfig, profile: str, data: dict) -> None:
    train_regression(cfg, profile, progress=False, **data)
