"""Validation on held-out pairs: SI-SDR and mean phase deviation of input and outputs.

    table = evaluate_on_pairs({"regression": reg, "stemprover": model}, valid_pairs, steps=4)

Each diffusion output is sampled with the few-step sampler of ``stemprover.inference.sampler`` (the
bridge from the separated stem, or SDEdit for that ablation), with the adapter of the pair's own
artifact type; the regression model is one forward pass. "input" is the separated
stem itself, the baseline that every system must beat.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from stemprover.constants import ADAPTERS
from stemprover.data.pairs import pair_family
from stemprover.dsp.phase import mean_phase_deviation
from stemprover.dsp.spectral import StftConfig
from stemprover.inference.sampler import sample_waves
from stemprover.metrics.signal import si_sdr
from stemprover.project.inputs import resolve_inputs
from stemprover.project.paths import results_dir
from stemprover.project.runtime import cpu_threads
from stemprover.train.config import LoraTrainConfig, manifest_path
from stemprover.train.data import adapter_index, indices_by_adapter, load_pairs, spread
from stemprover.train.loop import collate
from stemprover.train.steps import one_hot

METRICS = ("si_sdr", "phase_dev")


def _score(est: np.ndarray, ref: np.ndarray, sample_rate: int, stft_cfg: StftConfig,
           metrics=METRICS) -> dict:
    scores = {"si_sdr": si_sdr(est, ref)}
    if "phase_dev" in metrics:
        scores["phase_dev"] = mean_phase_deviation(est, ref, sample_rate, stft_cfg)
    return scores


@torch.no_grad()
def evaluate_on_pairs(
    models: dict,
    dataset,
    indices: list[int] | None = None,
    *,
    sample_rate: int,
    stft_cfg: StftConfig,
    steps: int = 4,
    strength: float = 0.5,
    scheduler: str = "ddim",
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
    adapter: str | None = "own",
    metrics: tuple[str, ...] = METRICS,
) -> pd.DataFrame:
    """Per-pair metrics of the separated input and of each model.

    Args:
        models: System name -> StemProverModel or RegressionModel.
        dataset: Pair items ``{"separated", "clean", "mixture", "adapter"}`` (waves at the
            model rate).
        indices: Items to use (default: all).
        sample_rate: Model rate in Hz.
        stft_cfg: STFT of the phase-deviation metric.
        steps, strength, scheduler: Sampler settings for diffusion models.
        seed: Seed of the starting noise (one generator per item).
        batch_size: Pairs per batch.
        progress: Show a progress bar.
        adapter: "own" (the pair's artifact type), an adapter name, or None (the base's
            clean tokens, for a model without adapters).
        metrics: Metrics to compute (phase deviation is the slow one).

    Returns:
        DataFrame with columns ``system, item, adapter`` and the metrics.
    """
    indices = list(range(len(dataset))) if indices is None else list(indices)
    rows = []
    bar = tqdm(total=len(indices) * (1 + len(models)), desc="validate", disable=not progress)
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        batch = collate([dataset[i] for i in chunk])
        clean = batch["clean"].numpy()
        adapters = [ADAPTERS[adapter_index(dataset[i])] for i in chunk]
        outputs = {"input": batch["separated"]}
        for name, model in models.items():
            kwargs = {}
            if hasattr(model, "encode_condition"):
                generators = [torch.Generator().manual_seed(seed * 100003 + i) for i in chunk]
                weights = None
                if adapter == "own":
                    weights = one_hot(batch["adapter"], len(chunk), "cpu")
                elif adapter is not None:
                    weights = one_hot(adapter, len(chunk), "cpu")
                kwargs = dict(steps=steps, strength=strength, scheduler=scheduler,
                              generator=generators, adapter_weights=weights)
            mixture = batch["mixture"] if model.config.use_mixture else None
            outputs[name] = sample_waves(model, batch["separated"], mixture, **kwargs)
        inputs = batch["separated"].numpy()
        for system, waves in outputs.items():
            for j, index in enumerate(chunk):
                score = _score(waves[j].numpy(), clean[j], sample_rate, stft_cfg, metrics)
                score["level_change_db"] = level_change_db(waves[j].numpy(), inputs[j])
                rows.append({"system": system, "item": index, "adapter": adapters[j], **score})
                bar.update(1)
    bar.close()
    return pd.DataFrame(rows)


def level_change_db(output: np.ndarray, separated: np.ndarray) -> float:
    """How much louder (dB RMS) the output is than the separated input it came from."""
    power_out = float(np.mean(np.square(output, dtype=np.float64)))
    power_in = float(np.mean(np.square(separated, dtype=np.float64)))
    if power_in <= 0 or power_out <= 0:
        return float("nan")
    return 10.0 * np.log10(power_out / power_in)


def gain_on_pairs(model, dataset, indices: list[int], *, sample_rate: int,
                  stft_cfg: StftConfig, steps: int = 1, adapter: str | None = "own",
                  batch_size: int = 8) -> dict[str, float]:
    """SI-SDR gain (dB) of ``model`` over the separated input on ``indices`` (no phase).

    Returns:
        ``{"gain": mean over all items, "gain_<type>": mean over the items of each artifact
        type}``: a mean over all types can hide a gain on one of them.
    """
    table = evaluate_on_pairs({"model": model}, dataset, indices, sample_rate=sample_rate,
                              stft_cfg=stft_cfg, steps=steps, strength=1.0,
                              batch_size=batch_size, progress=False, adapter=adapter,
                              metrics=("si_sdr",))
    scores = table.pivot_table(index=["item", "adapter"], columns="system", values="si_sdr")
    change = (scores["model"] - scores["input"]).reset_index(name="change")
    gains = {"gain": float(change["change"].mean())}
    for name, group in change.groupby("adapter"):
        gains[f"gain_{name}"] = float(group["change"].mean())
    return gains


def summarize(table: pd.DataFrame) -> dict:
    """Mean (and item count) of each metric per system, plus the improvement over the input."""
    summary: dict = {}
    metrics = [m for m in (*METRICS, "level_change_db") if m in table]
    means = table.groupby("system")[metrics].mean()
    for system, row in means.iterrows():
        summary[system] = {metric: float(row[metric]) for metric in metrics}
        summary[system]["n"] = int((table["system"] == system).sum())
    if "input" in summary:
        for system in summary:
            if system != "input":
                summary[system]["si_sdr_gain"] = (
                    summary[system]["si_sdr"] - summary["input"]["si_sdr"])
                summary[system]["phase_dev_change"] = (
                    summary[system]["phase_dev"] - summary["input"]["phase_dev"])
    return summary


SUMMARY_TABLES = ("settings", "by_adapter", "by_family")
"""Keys of a validation summary that are not systems."""


def summary_systems(summary: dict) -> list[str]:
    """The systems of a validation summary (its other keys hold settings and breakdowns)."""
    return [key for key in summary if key not in SUMMARY_TABLES]


def pair_families(dataset) -> list[str] | None:
    """The separator family of every pair of a PairDataset (None for other datasets)."""
    entries = getattr(dataset, "entries", None)
    return None if entries is None else [pair_family(e) for e in entries]


def family_indices(families: list[str] | None, holdout: str, n_items: int, dataset) -> list[int]:
    """Validation items: ``n_items`` of the trained families, balanced over the adapters, plus
    ``n_items`` of the held-out family (leave-one-family-out), when one is held out."""
    if families is None or not holdout:
        return validation_indices(dataset, n_items)
    groups = [[i for i in group if families[i] != holdout]
              for group in indices_by_adapter(dataset).values()]
    groups = [group for group in groups if group]
    per_group = max(1, n_items // max(len(groups), 1))
    seen = sorted(i for group in groups for i in spread(group, per_group))[:n_items]
    unseen = [i for i, f in enumerate(families) if f == holdout]
    return sorted(seen + spread(unseen, n_items))


def family_gains(table: pd.DataFrame, holdout: str) -> dict:
    """Mean SI-SDR gain over the input per system, for each family and for seen vs held out."""
    scores = table.pivot_table(index=["item", "family"], columns="system", values="si_sdr")
    gains = scores.drop(columns="input").sub(scores["input"], axis=0).reset_index()
    gains["group"] = np.where(gains["family"] == holdout, "held out", "trained on")
    result = {}
    for column in ("family", "group"):
        for key, group in gains.groupby(column):
            result[key] = {system: float(group[system].mean()) for system in scores.columns
                           if system != "input"} | {"n": int(len(group))}
    return result


def validation_indices(dataset, n_items: int) -> list[int]:
    """About ``n_items`` held-out pairs, balanced over the adapters' artifact types."""
    groups = [g for g in indices_by_adapter(dataset).values() if g]
    per_group = max(1, n_items // max(len(groups), 1))
    picked = sorted(i for group in groups for i in spread(group, per_group))
    return picked[:n_items] if len(picked) > n_items else picked


def validate_stage(
    cfg: LoraTrainConfig,
    profile: str,
    models: dict,
    *,
    valid=None,
    out_dir: Path | None = None,
    progress: bool = True,
) -> dict:
    """Validate models on held-out pairs; write ``valid_metrics.csv`` and ``valid_summary.json``.

    Args:
        cfg: Stage config (``n_valid``, sampler settings, STFT).
        profile: Profile whose outputs fill ``cfg``'s empty inputs and ``out_dir``.
        models: System name -> model (the separated input is always added as "input").
        valid: Pair dataset to use instead.
        out_dir: Stage folder (default ``results/<profile>/04_lora_training``).
        progress: Show a progress bar.

    Returns:
        The summary: per system mean SI-SDR (dB), mean phase deviation (rad), gains.
    """
    cfg = resolve_inputs(cfg, profile)
    with cpu_threads(cfg.torch_threads):
        out_dir = Path(out_dir) if out_dir is not None else results_dir(profile, "04_lora_training")
        valid = valid if valid is not None else load_pairs(manifest_path(cfg), "valid")
        families = pair_families(valid)
        indices = family_indices(families, cfg.holdout_family, cfg.n_valid, valid)
        table = evaluate_on_pairs(
            models, valid, indices, sample_rate=cfg.sample_rate,
            stft_cfg=StftConfig(cfg.n_fft, cfg.hop_length), steps=cfg.valid_steps,
            strength=cfg.valid_strength, scheduler=cfg.valid_scheduler, seed=cfg.seed,
            batch_size=cfg.batch_size, progress=progress,
        )
        if families is not None:
            table["family"] = [families[i] for i in table["item"]]
        table.to_csv(out_dir / "valid_metrics.csv", index=False)
        summary = summarize(table)
        if families is not None:
            summary["by_family"] = family_gains(table, cfg.holdout_family)
        summary["settings"] = {"steps": cfg.valid_steps, "strength": cfg.valid_strength,
                               "scheduler": cfg.valid_scheduler, "n_pairs": len(indices),
                               "adapter_choice": "the pair's artifact type",
                               "holdout_family": cfg.holdout_family or None}
        by_adapter = table.groupby(["system", "adapter"])[["si_sdr", "phase_dev"]].mean()
        summary["by_adapter"] = {
            f"{system}/{adapter}": {k: float(v) for k, v in row.items()}
            for (system, adapter), row in by_adapter.iterrows()
        }
        (out_dir / "valid_summary.json").write_text(json.dumps(summary, indent=2))
        return summary
