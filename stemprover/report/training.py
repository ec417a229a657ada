"""Stage outputs of 03/04 that notebooks call: validation files, adapter sizes, plots.

    summary = validate_stage(cfg, profile, {"regression": reg, "stemprover": model})
    plot_training_log(out_dir / "train_log.csv", out_dir / "training_curves.png")
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stemprover.constants import ADAPTERS
from stemprover.report.style import STYLE
from stemprover.train.validate import summary_systems


def _style() -> None:
    import matplotlib.pyplot as plt

    plt.style.use(str(STYLE))


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
    systems = summary_systems(summary)
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
