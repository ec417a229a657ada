"""Every paper figure, drawn from ``results/<profile>/`` alone.

    python -m stemprover.stages.figures --profile cpu      # what notebooks/08_figures.ipynb runs

Each figure has exactly one producer here, named like the file it writes
(``figures/NAME.pdf``; the paper includes it by the same name). Producers only read
files, reshape tables and plot with the shared style ``stemprover/report/style.mplstyle``;
they compute no metric. The ``smoke`` profile writes to ``build/figures/smoke/`` so
that tests never overwrite the committed figures of the ``cpu``/``gpu`` runs.

Inputs (missing ones make that figure skip with a printed note in ``smoke`` and raise
:class:`~stemprover.errors.StemproverError` otherwise):

======================  ==============================================================
figure                  reads
======================  ==============================================================
spectrograms            ``05_evaluation/**/*.npz`` holding separated/enhanced/clean
phase_error_bands       ``01_phase_analysis/*.csv`` with separator, band edges, phase_dev
metric_vs_steps         ``05_evaluation/aggregate.csv``
ablations               ``06_ablations/ablations.csv``
performance             ``07_performance/summary.json`` (+ its CSVs)
detector_maps           ``01_phase_analysis/**/*.npz`` holding one map per artifact
training_curves         loss CSVs of ``03_base_pretraining`` and ``04_lora_training``
budget_curve            ``budget_curve.csv`` of ``03_base_pretraining`` and ``04_lora_training``
gain_vs_input           ``05_evaluation/per_track.csv``, its ``quality_sweep`` test set
======================  ==============================================================

A figure whose test set this run did not evaluate (``gain_vs_input`` without a quality sweep)
is *absent*, not missing: every profile records it in the manifest and goes on, and the paper
says that the figure is not drawn. Before a figure is saved, :func:`check_log_axes` refuses a
log-scaled axis over non-positive data in every profile (matplotlib would silently drop it).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from stemprover.errors import StemproverError
from stemprover.project.config import Common
from stemprover.project.paths import repo_root, results_dir
from stemprover.report import resultsio as rio
from stemprover.report.resultsio import budget_curves
from stemprover.report.style import pyplot

STAGE = "08_figures"
QUALITY_SWEEP = "quality_sweep"
GAIN_SYSTEMS = ("bridge", "postfilter", "stemprover@1", "stemprover@2", "stemprover@4", "regression")
"""Systems of the gain figure, each against the identity on the same item."""


class FigureAbsent(StemproverError):
    """The run did not evaluate what the figure shows (not an error in any profile)."""


class LogAxisError(StemproverError):
    """A log-scaled axis holds non-positive data (an error in every profile)."""


@dataclass
class FiguresConfig(Common):
    """Parameters of 08_figures (the profile's ``common`` keys plus this stage's)."""

    seed: int = 0  # unused: drawing is deterministic; accepted because every stage gets it
    testset: str = ""  # test set of metric_vs_steps; "" picks the synthetic held-out set
    step_metrics: list[str] = field(default_factory=lambda: ["si_sdr", "phase_dev_hf"])
    ablation_metric: str = rio.ABLATION_METRIC  # metric of the ablation bars
    strict: bool | None = None  # raise on a missing input; None: all but the smoke profile
    # input SI-SDR bin edges (dB) of the quality-sweep figure; None: metrics.stats' default
    gain_bin_edges: list[float] | None = None


def figures_out_dir(profile: str) -> Path:
    """``figures/`` for cpu/gpu, ``build/figures/smoke/`` for smoke."""
    root = repo_root()
    path = root / "build" / "figures" / "smoke" if profile == "smoke" else root / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plt():
    return pyplot()


def _data_values(ax, which: str) -> np.ndarray:
    """Every finite data coordinate drawn on one axis (``"x"`` or ``"y"``) of ``ax``.

    Lines, collections (``fill_between``, scatter) and patches (bars) count; coordinates in
    axes units (the x of an ``axhline``) do not.
    """
    from matplotlib.collections import PathCollection

    index = 0 if which == "x" else 1
    chunks = []

    def in_data(artist) -> bool:
        return artist.get_transform().contains_branch_seperately(ax.transData)[index]

    for line in ax.get_lines():
        if in_data(line):
            chunks.append(np.asarray(line.get_xydata(), dtype=float)[:, index])
    for collection in ax.collections:
        if isinstance(collection, PathCollection):  # scatter: the offsets are the data
            if collection.get_offset_transform().contains_branch_seperately(ax.transData)[index]:
                chunks.append(np.asarray(collection.get_offsets(), dtype=float)[:, index])
        elif in_data(collection):  # fill_between and other polygons: their vertices
            for path in collection.get_paths():
                chunks.append(np.asarray(path.vertices, dtype=float)[:, index])
    for patch in ax.patches:
        if in_data(patch) and hasattr(patch, "get_bbox"):
            box = patch.get_bbox()
            chunks.append(np.array([box.x0, box.x1] if which == "x" else [box.y0, box.y1]))
    values = np.concatenate(chunks) if chunks else np.empty(0)
    return values[np.isfinite(values)]


def check_log_axes(fig, name: str = "figure") -> None:
    """Raise :class:`LogAxisError` when a log-scaled axis of ``fig`` holds data <= 0."""
    for k, ax in enumerate(fig.axes):
        for which in ("x", "y"):
            if getattr(ax, f"get_{which}scale")() != "log":
                continue
            values = _data_values(ax, which)
            if (values <= 0).any():
                raise LogAxisError(
                    f"{name}: panel {k + 1} has a log {which} axis over non-positive data "
                    f"(min {values.min():.3g}); use a linear or symlog axis"
                )


def _readable_log_axis(ax, which: str = "y") -> None:
    """Log ticks at 1, 2 and 5 times each power of ten, labelled as plain numbers, so a
    range under a decade still gets several labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    axis = ax.yaxis if which == "y" else ax.xaxis
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())


def _value_scale(ax, values, which: str = "y", robust: bool = False) -> str:
    """Log for positive data spanning at least a factor of 4 (with readable ticks), linear
    otherwise; returns the scale. ``robust`` limits a linear axis to the 1st-99th percentile
    of the data (plus a margin), so that a few stray spikes do not flatten the curves."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    setter = getattr(ax, f"set_{which}scale")
    if values.size and values.min() > 0 and values.max() / values.min() >= 4:
        setter("log")
        _readable_log_axis(ax, which)
        return "log"
    setter("linear")
    if robust and values.size:
        low, high = np.percentile(values, [1, 99])
        margin = 0.1 * (high - low) or 0.1 * max(abs(high), 1e-6)
        getattr(ax, f"set_{which}lim")(low - margin, high + margin)
    return "linear"


CHECKED: set[str] = set()
"""Names of the figures whose axes :func:`_save` checked in this process (for the manifest)."""


def _save(fig, out_dir: Path, name: str) -> Path:
    check_log_axes(fig, name)
    CHECKED.add(name)
    path = out_dir / f"{name}.pdf"
    tmp = path.with_suffix(".tmp.pdf")
    # A fixed creation date keeps the committed PDFs byte-stable across reruns.
    fig.savefig(tmp, metadata={"CreationDate": None})
    tmp.replace(path)
    _plt().close(fig)
    return path


# ---------------------------------------------------------------- producers
def spectrograms(profile: str, cfg: FiguresConfig, out_dir: Path) -> tuple[Path, list[Path]]:
    """Magnitude (dB) of separated/enhanced/clean, and their phase error against clean."""
    source = rio.find_npz(profile, "05_evaluation", ("separated", "enhanced", "clean"))
    example = rio.load_spectrogram_example(source, cfg.sample_rate, cfg.n_fft, cfg.hop_length)
    plt = _plt()
    fig, axes = plt.subplots(2, 3, figsize=(6.5, 3.6), sharex=True, sharey=True)
    extent = (0.0, example.seconds, 0.0, example.sample_rate / 2000.0)
    floor = example.clean_db.max() - 80.0
    names = ("separated", "enhanced", "clean")
    image = None
    for col, name in enumerate(names):
        image = axes[0, col].imshow(
            np.maximum(example.db[name], floor), extent=extent, vmin=floor, cmap="magma"
        )
        axes[0, col].set_title(f"{name}: magnitude")
    fig.colorbar(image, ax=axes[0, :], label="dB", shrink=0.9)
    for col, name in enumerate(names[:2]):
        image = axes[1, col].imshow(
            example.phase_error[name], extent=extent, vmin=0.0, vmax=np.pi, cmap="viridis"
        )
        axes[1, col].set_title(f"{name}: |phase error|")
    phase = axes[1, 2].imshow(
        example.clean_phase, extent=extent, vmin=-np.pi, vmax=np.pi, cmap="twilight"
    )
    axes[1, 2].set_title("clean: phase")
    fig.colorbar(image, ax=axes[1, :], label="|error| (rad)", shrink=0.9)
    fig.colorbar(phase, ax=axes[1, :], label="phase (rad)", shrink=0.9)
    for ax in axes[:, 0]:
        ax.set_ylabel("kHz")
    for ax in axes[1]:
        ax.set_xlabel("time (s)")
    for ax in axes.ravel():
        ax.grid(False)
    fig.suptitle(example.title + _default_note(profile, source), fontsize=8)
    return _save(fig, out_dir, "spectrograms"), [source]


def _default_note(profile: str, source: Path) -> str:
    """``" (the default: 1 step)"`` when 05 recorded the released model's step count and the
    example shows it; a note that it does not otherwise (from ``evaluation.json``)."""
    try:
        record = json.loads(rio.stage_file(profile, "05_evaluation", "evaluation.json").read_text())
    except (StemproverError, ValueError):
        return ""
    steps = record.get("default_steps")
    if steps is None:
        return ""
    with np.load(source, allow_pickle=False) as data:
        shown = rio.system_steps(str(data["system"])) if "system" in data.files else None
    unit = "step" if int(steps) == 1 else "steps"
    if shown == int(steps):
        return f" (the default: {steps} {unit})"
    return f" (not the default of {steps} {unit})"


def phase_error_bands(profile: str, cfg: FiguresConfig, out_dir: Path) -> tuple[Path, list[Path]]:
    """Magnitude error and phase deviation per band, one line per separator (from 01)."""
    source, table = rio.phase_band_table(profile)
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(6.5, 3.0), sharex=True)
    for k, (separator, rows) in enumerate(table.groupby("separator", sort=False)):
        rows = rows.sort_values("f_center")
        # Eight colours, then the same colours dashed: every separator stays distinguishable.
        style = dict(color=f"C{k % 8}", linestyle="-" if k < 8 else "--", marker=".")
        axes[0].plot(rows["f_center"], rows["mag_error_db"], label=separator, **style)
        axes[1].plot(rows["f_center"], rows["phase_dev"], **style)
    axes[0].set_ylabel("magnitude error (dB)")
    axes[1].set_ylabel("phase deviation (rad)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("band centre (Hz)")
    axes[1].axvline(4000.0, color="0.5", linestyle=":", linewidth=0.8)
    fig.legend(loc="outside lower center", ncol=min(6, table["separator"].nunique()))
    return _save(fig, out_dir, "phase_error_bands"), [source]


def metric_vs_steps(profile: str, cfg: FiguresConfig, out_dir: Path) -> tuple[Path, list[Path]]:
    """StemProver against sampling steps, with identity/regression/post-filter as lines."""
    source = rio.stage_file(profile, "05_evaluation", "aggregate.csv")
    agg = rio.read_aggregate(source)
    testset = cfg.testset or rio.main_testset(agg)
    agg = agg[agg["testset"] == testset]
    metrics = [m for m in (rio.canonical_metric(agg, m) for m in cfg.step_metrics) if m]
    steps = rio.steps_systems(agg)
    if not metrics or not steps:
        raise StemproverError(f"{source}: no StemProver step systems or metrics {cfg.step_metrics}")
    stems = rio.ordered_stems(agg)
    plt = _plt()
    fig, axes = plt.subplots(
        len(metrics), len(stems), figsize=(6.5, 1.7 * len(metrics) + 0.4), squeeze=False
    )
    x = sorted(steps)
    for row, metric in enumerate(metrics):
        for col, stem in enumerate(stems):
            ax = axes[row, col]
            sub = agg[(agg["stem"] == stem) & (agg["metric"] == metric)].set_index("system")
            have = [s for s in x if steps[s] in sub.index]
            ys = sub.loc[[steps[s] for s in have]]
            ax.plot(have, ys["mean"], marker="o", color="C0", label="StemProver")
            ax.fill_between(have, ys["ci_low"], ys["ci_high"], color="C0", alpha=0.2, lw=0)
            for k, (system, style) in enumerate(rio.REFERENCE_LINES.items()):
                if system in sub.index:
                    label = rio.system_label(system)
                    ax.axhline(sub.loc[system, "mean"], color=f"C{k + 1}", ls=style, label=label)
            ax.set_xscale("log")
            ax.set_xticks(x, [str(s) for s in x])
            ax.minorticks_off()
            if row == 0:
                ax.set_title(stem)
            if col == 0:
                ax.set_ylabel(rio.metric_label(metric))
            if row == len(metrics) - 1:
                ax.set_xlabel("steps")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels))
    fig.suptitle(f"test set: {rio.testset_label(testset)}", fontsize=8)
    return _save(fig, out_dir, "metric_vs_steps"), [source]


def ablations(profile: str, cfg: FiguresConfig, out_dir: Path) -> tuple[Path, list[Path]]:
    """One bar per ablation row (95% CI), coloured by factor; dashed: the reference row.

    A grid with paired differences gets a second panel: each row minus the reference, item
    by item, with its paired 95% CI (the interval that says whether a change is resolved).
    """
    source = rio.stage_file(profile, "06_ablations", "ablations.csv")
    table = rio.ablation_table(source, cfg.ablation_metric)
    plt = _plt()
    height = 0.9 + 0.16 * len(table)
    paired = rio.has_paired(table)
    fig, axes = plt.subplots(1, 2 if paired else 1, figsize=(6.5, height), sharey=True,
                             squeeze=False)
    positions = np.arange(len(table))[::-1]
    colors = [f"C{i % 8}" for i in pd.factorize(table["group"])[0]]
    ax = axes[0, 0]
    _bars(ax, positions, table["mean"], table["ci_low"], table["ci_high"], colors)
    labels = [g if g == v else f"{g}: {v}" for g, v in zip(table["group"], table["variant"])]
    ax.set_yticks(positions, [label.replace("_", " ") for label in labels])
    ax.axvline(0.0, color="0.3", linewidth=0.6)
    reference = table[table["group"] == "reference"]
    if not reference.empty:
        ax.axvline(reference["mean"].iloc[0], color="0.3", linestyle="--", linewidth=0.8)
    ax.set_xlabel(rio.metric_label(table.attrs["metric"]))
    ax.grid(axis="y", visible=False)
    if paired:
        ax = axes[0, 1]
        _bars(ax, positions, table["delta_si_sdr"], table["delta_ci_low"],
              table["delta_ci_high"], colors)
        ax.axvline(0.0, color="0.3", linestyle="--", linewidth=0.8)
        name, _, unit = rio.metric_label(table.attrs["metric"]).partition(" (")
        ax.set_xlabel(f"{name} minus the reference, paired" + (f" ({unit}" if unit else ""))
        ax.grid(axis="y", visible=False)
    return _save(fig, out_dir, "ablations"), [source]


def _bars(ax, positions, mean, low, high, colors) -> None:
    """Horizontal bars with their CI as error bars (none where a bound is missing)."""
    mean, low, high = (np.asarray(v, dtype=float) for v in (mean, low, high))
    err = np.vstack([mean - low, high - mean])
    err = np.where(np.isfinite(err).all(axis=0), err, 0.0)
    ax.barh(positions, np.nan_to_num(mean), color=colors, xerr=err, height=0.7)


def performance(profile: str, cfg: FiguresConfig, out_dir: Path) -> tuple[Path, list[Path]]:
    """Real-time factor against steps, and peak memory (from 07)."""
    source = rio.stage_file(profile, "07_performance", "summary.json")
    summary = rio.read_summary(source)
    rtf = summary["rtf"]
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(6.5, 2.3))
    x = sorted(rtf)
    axes[0].plot(x, [rtf[s] for s in x], marker="o", label="StemProver")
    axes[0].set_title(f"on {summary['device']}", fontsize=7.5)
    separator_rtf = rio.separator_rtf(summary)
    if separator_rtf is not None:
        axes[0].axhline(separator_rtf, color="C1", linestyle="--", label="HTDemucs separation")
    axes[0].axhline(1.0, color="0.5", linestyle=":", linewidth=0.8, label="real time")
    axes[0].set_xscale("log")
    drawn_rtf = [rtf[s] for s in x] + [1.0] + ([separator_rtf] if separator_rtf else [])
    _value_scale(axes[0], drawn_rtf, "y")
    axes[0].set_xticks(x, [str(s) for s in x])
    axes[0].minorticks_off()
    axes[0].set_xlabel("steps")
    axes[0].set_ylabel("real-time factor")
    axes[0].legend(loc="upper left")
    inputs = [source]
    memory = rio.memory_curve(profile)
    if memory is not None:
        path, xname, table = memory
        axes[1].plot(table[xname], table["peak_mem_mb"], marker="o")
        axes[1].set_xlabel({"duration_s": "duration (s)"}.get(xname, xname.replace("_", " ")))
        inputs.append(path)
    else:
        peaks = summary["peak_mem_mb"]
        peaks = peaks if isinstance(peaks, dict) else {"4 steps": peaks}
        axes[1].bar(list(map(str, peaks)), list(peaks.values()), color="C2")
    axes[1].set_ylabel("peak memory (MB)")
    return _save(fig, out_dir, "performance"), inputs


def detector_hop_seconds(sample_rate: int) -> float:
    """Frame hop (s) of the detectors: a quarter of ``dsp.spectral.stft_size`` (tested equal).

    Restated here because importing the separators package (torch, demucs) costs seconds.
    """
    n_fft = int(2 ** round(np.log2(max(16.0, 2048 / 44100 * sample_rate))))
    return (n_fft // 4) / sample_rate


def detector_maps(profile: str, cfg: FiguresConfig, out_dir: Path) -> tuple[Path, list[Path]]:
    """Per-band, per-frame scores of the four artifact detectors on separated vocals (01)."""
    source = rio.find_npz(profile, "01_phase_analysis", ("band_edges_hz",))
    rows = rio.load_detector_maps(source)
    hop_seconds = detector_hop_seconds(cfg.sample_rate)
    n_cols = max(len(r.maps) for r in rows)
    plt = _plt()
    fig, axes = plt.subplots(
        len(rows),
        n_cols,
        figsize=(6.5, 0.4 + 1.45 * len(rows)),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    image = None
    for i, row in enumerate(rows):
        for j, (artifact, values) in enumerate(row.maps.items()):
            ax = axes[i, j]
            # Bands are uneven (critical bands): draw one row per band, label rows by edge.
            image = ax.imshow(
                values,
                extent=(0.0, values.shape[1] * hop_seconds, 0, values.shape[0]),
                vmin=0.0,
                vmax=1.0,
                cmap="magma",
            )
            ticks = np.linspace(0, values.shape[0], 5).round().astype(int)
            edges_khz = row.band_edges_hz[np.minimum(ticks, len(row.band_edges_hz) - 1)] / 1000
            ax.set_yticks(ticks, [f"{e:.1f}" for e in edges_khz])
            ax.grid(False)
            if i == 0:
                ax.set_title(artifact.replace("_", " "))
            if i == len(rows) - 1:
                ax.set_xlabel("time (s)")
        axes[i, 0].set_ylabel(f"{row.separator}\nkHz")
    fig.colorbar(image, ax=axes, label="score", shrink=0.8)
    return _save(fig, out_dir, "detector_maps"), [source]


def training_curves(profile: str, cfg: FiguresConfig, out_dir: Path) -> tuple[Path, list[Path]]:
    """Loss against step for base pretraining (03) and control/LoRA/regression (04)."""
    curves = rio.loss_curves(profile)
    plt = _plt()
    fig, axes = plt.subplots(1, len(curves), figsize=(6.5, 2.3), squeeze=False)
    inputs = []
    for ax, (stage, runs) in zip(axes[0], curves.items()):
        drawn = []
        for k, (label, path, table) in enumerate(runs):
            ax.plot(table["step"], table["loss"], color=f"C{k}", alpha=0.3, linewidth=0.6)
            window = max(1, len(table) // 25)
            smooth = table["loss"].rolling(window, min_periods=1).mean()
            ax.plot(table["step"], smooth, color=f"C{k}", label=label)
            inputs.append(path)
            drawn.append(table["loss"].to_numpy(dtype=float))
        # Losses with an SNR term go negative: a log axis would drop them.
        scale = _value_scale(ax, np.concatenate(drawn) if drawn else [], "y", robust=True)
        title = stage.split("_", 1)[1].replace("_", " ")
        ax.set_title(title + (" (1st-99th percentile)" if scale == "linear" else ""))
        ax.set_xlabel("step")
        ax.legend(fontsize=6.5)
    axes[0, 0].set_ylabel("training loss")
    return _save(fig, out_dir, "training_curves"), inputs


PHASE_LABELS = {
    "base": "base pretraining (03)",
    "general": "control + general LoRA (04)",
    "hf_loss": "hf_loss adapter",
    "musical_noise": "musical_noise adapter",
    "bleed": "bleed adapter",
    "regression": "regression U-Net",
}
PHASE_COLORS = {"base": "C0", "general": "C1", "hf_loss": "C2", "musical_noise": "C3",
                "bleed": "C5", "regression": "0.2"}


def budget_curve(profile: str, cfg: FiguresConfig, out_dir: Path) -> tuple[Path, list[Path]]:
    """Validation ΔSI-SDR against training minutes: StemProver's phases and the regression U-Net."""
    table, inputs, base_end = budget_curves(profile)
    plt = _plt()
    by_type = [c for c in table.columns if c.startswith("gain_")]
    if by_type:
        fig, (ax, ax_type) = plt.subplots(1, 2, figsize=(9.0, 2.6))
        _budget_by_type(ax_type, table, by_type)
    else:
        fig, ax = plt.subplots(figsize=(6.5, 2.6))
    for k, (phase, rows) in enumerate(table.groupby("phase", sort=False)):
        regression = phase == "regression"
        ax.plot(rows["minutes"], rows["gain"], marker="." if not regression else "x",
                color=PHASE_COLORS.get(str(phase), f"C{k % 8}"),
                linestyle="--" if regression else "-",
                label=PHASE_LABELS.get(str(phase), str(phase).replace("_", " ")))
    ax.axhline(0.0, color="0.5", linewidth=0.8, label="separator output")
    if base_end > 0:
        ax.axvline(base_end, color="0.5", linestyle=":", linewidth=0.8)
    ax.set_xlabel("training minutes")
    ax.set_ylabel("validation ΔSI-SDR (dB)")
    handles, labels = ax.get_legend_handles_labels()
    if by_type:  # colour: artifact type; line and marker: phase, named once
        handles, labels = _budget_type_key(table, by_type, handles, labels)
    fig.legend(handles, labels, loc="outside right center", fontsize=6.5)
    return _save(fig, out_dir, "budget_curve"), inputs


def _budget_type_key(table: pd.DataFrame, columns: list[str], handles, labels):
    """The main panel's entries, then one colour per artifact type of the second panel."""
    from matplotlib.lines import Line2D

    handles, labels = list(handles), list(labels)
    for k, column in enumerate(columns):
        handles.append(Line2D([], [], color=f"C{k % 8}", marker="s", linestyle="none"))
        labels.append(f"type: {column.removeprefix('gain_').replace('_', ' ')}")
    return handles, labels


def _budget_by_type(ax, table: pd.DataFrame, columns: list[str]) -> None:
    """The general phase and the regression U-Net per artifact type of the held-out pairs
    (``gain_<adapter>`` columns; the phase-smear pairs are the general adapter's)."""
    for k, column in enumerate(columns):
        for phase, style in (("general", "-"), ("regression", "--")):
            rows = table[table["phase"] == phase].dropna(subset=[column])
            if rows.empty:
                continue
            ax.plot(rows["minutes"], rows[column], linestyle=style, color=f"C{k % 8}",
                    marker="." if phase == "general" else "x",
                    label=f"{column.removeprefix('gain_')}: {PHASE_LABELS[phase]}")
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    ax.set_xlabel("training minutes")
    ax.set_title("per artifact type (solid: general, dashed: regression)", fontsize=8)


def gain_vs_input(profile: str, cfg: FiguresConfig, out_dir: Path) -> tuple[Path, list[Path]]:
    """Gain over the separator output against the input's SI-SDR (quality sweep of 05).

    One panel for all stems pooled, then one per stem; a line per system with its 95% CI
    per bin (bootstrapped over excerpts), and the zero line: above it a system improves
    stems of that quality, below it it harms them.
    """
    from stemprover.metrics.stats import INPUT_BIN_EDGES_DB, gain_by_input_bin

    source = rio.stage_file(profile, "05_evaluation", "per_track.csv")
    per_track = pd.read_csv(source)
    if QUALITY_SWEEP not in set(per_track["testset"]):
        raise FigureAbsent(f"{source.name} has no {QUALITY_SWEEP} test set")
    sweep = per_track[per_track["testset"] == QUALITY_SWEEP]
    table = gain_by_input_bin(sweep, GAIN_SYSTEMS, edges=cfg.gain_bin_edges or INPUT_BIN_EDGES_DB,
                              seed=cfg.seed)
    if table.empty:
        raise StemproverError(f"{source}: no {QUALITY_SWEEP} item of {', '.join(GAIN_SYSTEMS)}")
    return _save(plot_gain_by_input(table), out_dir, "gain_vs_input"), [source]


def plot_gain_by_input(table: pd.DataFrame):
    """Draw a table of :data:`stemprover.metrics.stats.BIN_COLUMNS` (one panel per stem,
    ``all`` first); x is each bin's centre, in dB of input SI-SDR."""
    plt = _plt()
    stems = rio.ordered_stems(table[table["stem"] != "all"])
    stems = ["all", *stems] if "all" in set(table["stem"]) else stems
    fig, axes = plt.subplots(1, len(stems), figsize=(6.5, 2.4), sharey=True, squeeze=False)
    systems = [s for s in GAIN_SYSTEMS if s in set(table["system"])]
    for ax, stem in zip(axes[0], stems):
        for k, system in enumerate(systems):
            rows = table[(table["stem"] == stem) & (table["system"] == system)]
            rows = rows.sort_values("bin_low")
            centre = (rows["bin_low"] + rows["bin_high"]) / 2
            ax.plot(centre, rows["mean"], marker="o", color=f"C{k % 8}",
                    label=rio.system_label(system))
            ax.fill_between(centre, rows["ci_low"], rows["ci_high"], color=f"C{k % 8}",
                            alpha=0.15, lw=0)
        ax.axhline(0.0, color="0.3", linewidth=0.8)
        ax.set_title("all stems" if stem == "all" else stem)
        ax.set_xlabel("input SI-SDR (dB)")
    axes[0, 0].set_ylabel("ΔSI-SDR over the input (dB)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6))
    return fig


Producer = Callable[[str, FiguresConfig, Path], tuple[Path, list[Path]]]
PRODUCERS: dict[str, Producer] = {
    "spectrograms": spectrograms,
    "phase_error_bands": phase_error_bands,
    "metric_vs_steps": metric_vs_steps,
    "ablations": ablations,
    "performance": performance,
    "detector_maps": detector_maps,
    "training_curves": training_curves,
    "budget_curve": budget_curve,
    "gain_vs_input": gain_vs_input,
}
"""Figure name -> its one producer; the paper includes ``NAME.pdf`` for each."""


def draw_all(profile: str, cfg: FiguresConfig | None = None, only=None) -> dict[str, list[str]]:
    """Draw every figure (or those in ``only``) and write the stage's manifest.

    Returns:
        ``{"made": [names], "skipped": [names], "absent": [names]}``; ``results/<profile>/
        08_figures/manifest.json`` records each figure's file and the results it was drawn
        from, and why a figure was skipped or is absent (:class:`FigureAbsent`).

    Raises:
        StemproverError: an input is missing or malformed and the run is strict, or a
            figure has a log axis over non-positive data (any profile).
    """
    cfg = cfg or FiguresConfig()
    strict = profile != "smoke" if cfg.strict is None else cfg.strict
    out_dir = figures_out_dir(profile)
    root = repo_root()
    manifest: dict[str, dict] = {"profile": profile, "figures": {}, "skipped": {}, "absent": {}}
    for name, producer in PRODUCERS.items():
        if only and name not in only:
            continue
        CHECKED.discard(name)
        try:
            path, inputs = producer(profile, cfg, out_dir)
        except FigureAbsent as exc:
            print(f"figures: {name} not drawn: {exc}")
            manifest["absent"][name] = str(exc)
            (out_dir / f"{name}.pdf").unlink(missing_ok=True)  # no stale figure from a past run
            continue
        except LogAxisError as exc:
            raise StemproverError(f"figure {name}: {exc}") from None
        except StemproverError as exc:
            if strict:
                raise StemproverError(f"figure {name}: {exc}") from None
            print(f"figures: skipped {name}: {exc}")
            manifest["skipped"][name] = str(exc)
            continue
        manifest["figures"][name] = {
            "file": str(path.relative_to(root)),
            "inputs": sorted({str(p.relative_to(root)) for p in inputs}),
            "log_axes": "checked" if name in CHECKED else "not checked",
        }
    target = results_dir(profile, STAGE) / "manifest.json"
    target.write_text(json.dumps(manifest, indent=2) + "\n")
    return {"made": list(manifest["figures"]), "skipped": list(manifest["skipped"]),
            "absent": list(manifest["absent"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stemprover.stages.figures", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--only", nargs="*", help="figure names to draw")
    args = parser.parse_args(argv)
    try:
        done = draw_all(args.profile, only=args.only)
    except StemproverError as exc:
        print(f"figures: error: {exc}")
        return 1
    print(f"figures: made {', '.join(done['made']) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
