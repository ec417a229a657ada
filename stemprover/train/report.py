"""Stage outputs of 03/04 that notebooks call: validation files, adapter sizes, plots.

    summary = validate_stage(cfg, profile, {"regression": reg, "stemprover": model})
    plot_training_log(out_dir / "train_log.csv", out_dir / "training_curves.png")
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from stemprover.constants import ADAPTERS
from stemprover.paths import results_dir
from stemprover.spectral import StftConfig
from stemprover.train.config import LoraTrainConfig, manifest_path
from stemprover.train.data import indices_by_adapter, load_pairs, spread
from stemprover.train.validate import evaluate_on_pairs, summarize


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
        profile: Profile whose ``valid`` pairs are used when ``valid`` is None.
        models: System name -> model (the separated input is always added as "input").
        valid: Pair dataset to use instead.
        out_dir: Stage folder (default ``results/<profile>/04_lora_training``).
        progress: Show a progress bar.

    Returns:
        The summary: per system mean SI-SDR (dB), mean phase deviation (rad), gains.
    """
    out_dir = Path(out_dir) if out_dir is not None else results_dir(profile, "04_lora_training")
    valid = valid if valid is not None else load_pairs(manifest_path(cfg, profile), "valid")
    indices = validation_indices(valid, cfg.n_valid)
    table = evaluate_on_pairs(
        models, valid, indices, sample_rate=cfg.sample_rate,
        stft_cfg=StftConfig(cfg.n_fft, cfg.hop_length), steps=cfg.valid_steps,
        strength=cfg.valid_strength, scheduler=cfg.valid_scheduler, seed=cfg.seed,
        batch_size=cfg.batch_size, progress=progress,
    )
    table.to_csv(out_dir / "valid_metrics.csv", index=False)
    summary = summarize(table)
    summary["settings"] = {"steps": cfg.valid_steps, "strength": cfg.valid_strength,
                           "scheduler": cfg.valid_scheduler, "n_pairs": len(indices),
                           "adapter_choice": "the pair's artifact type"}
    by_adapter = table.groupby(["system", "adapter"])[["si_sdr", "phase_dev"]].mean()
    summary["by_adapter"] = {
        f"{system}/{adapter}": {k: float(v) for k, v in row.items()}
        for (system, adapter), row in by_adapter.iterrows()
    }
    (out_dir / "valid_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _style() -> None:
    import matplotlib.pyplot as plt

    plt.style.use(str(Path(__file__).resolve().parents[1] / "style.mplstyle"))


def plot_training_log(csv_path: Path, png_path: Path | None = None, title: str = ""):
    """Loss against step, one line per phase; saved to ``png_path`` when given."""
    import matplotlib.pyplot as plt

    _style()
    log = pd.read_csv(csv_path)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for phase, rows in log.groupby("phase", sort=False):
        ax.plot(rows["step"], rows["loss"], label=str(phase))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    if png_path is not None:
        fig.savefig(png_path, dpi=120)
    return fig


def plot_validation(summary: dict, png_path: Path | None = None):
    """Bar charts of mean SI-SDR and phase deviation per system."""
    import matplotlib.pyplot as plt

    _style()
    systems = [s for s in summary if s not in ("settings", "by_adapter")]
    fig, axes = plt.subplots(1, 2, figsize=(7, 3))
    for ax, metric, label in zip(axes, ("si_sdr", "phase_dev"),
                                 ("SI-SDR (dB)", "phase deviation (rad)")):
        ax.bar(systems, [summary[s][metric] for s in systems])
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    if png_path is not None:
        fig.savefig(png_path, dpi=120)
    return fig


def adapter_table(out_dir: Path) -> pd.DataFrame:
    """``adapters.csv`` of a 04 run, in ADAPTERS order, then the control branch."""
    table = pd.read_csv(Path(out_dir) / "adapters.csv")
    order = {name: i for i, name in enumerate((*ADAPTERS, "control_branch"))}
    return table.sort_values("adapter", key=lambda s: s.map(order)).reset_index(drop=True)


def plot_budget_curve(csv_paths: dict[str, Path], png_path: Path | None = None):
    """Validation ΔSI-SDR against training minutes, one line per (stage, phase).

    Args:
        csv_paths: Label -> ``budget_curve.csv`` (03 and 04 write one each). Minutes of a
            later phase are drawn after those of the phases before it in the same file.
        png_path: Where to save the figure.
    """
    import matplotlib.pyplot as plt

    _style()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, path in csv_paths.items():
        if not Path(path).exists():
            continue
        curve = budget_curve(path)
        for phase, rows in curve.groupby("phase", sort=False):
            ax.plot(rows["minutes"], rows["gain"], marker=".", label=f"{label}: {phase}")
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    ax.set_xlabel("training minutes")
    ax.set_ylabel("validation ΔSI-SDR (dB)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    if png_path is not None:
        fig.savefig(png_path, dpi=120)
    return fig


def budget_curve(path: Path) -> pd.DataFrame:
    """A ``budget_curve.csv`` with a ``minutes`` column that runs on across the diffusion
    phases (general, then each adapter); the regression baseline starts at zero again."""
    curve = pd.read_csv(path)
    offset, minutes = 0.0, []
    for phase, rows in curve.groupby("phase", sort=False):
        start = 0.0 if phase in ("regression", "base") else offset
        minutes.append(rows["train_minutes"] + start)
        if phase not in ("regression", "base"):
            offset = start + float(rows["train_minutes"].max())
    curve["minutes"] = pd.concat(minutes).sort_index()
    return curve
