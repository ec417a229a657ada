"""Inline plots of stage 01 (drawn from its result tables; no computation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from stemprover.constants import ARTIFACTS


def _plt():
    import matplotlib.pyplot as plt

    from stemprover.figures import STYLE

    plt.style.use(str(STYLE))
    return plt


def plot_band_errors(band_means: pd.DataFrame):
    """Magnitude error (dB) and phase deviation (rad) per octave band, one line per separator."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(6.5, 2.8), sharex=True)
    n_colors = len(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for k, (name, rows) in enumerate(band_means.groupby("separator", sort=False)):
        centre = np.sqrt(np.maximum(rows["f_low"], 1.0) * rows["f_high"])
        style = dict(color=f"C{k % n_colors}", linestyle=("-", "--", ":")[k // n_colors % 3],
                     marker=".")
        axes[0].plot(centre, rows["mag_error_db"], label=name, **style)
        axes[1].plot(centre, rows["phase_dev"], **style)
    for ax, label in zip(axes, ("magnitude error (dB)", "phase deviation (rad)")):
        ax.set_xscale("log")
        ax.set_xlabel("band centre (Hz)")
        ax.set_ylabel(label)
    fig.legend(loc="outside right center", fontsize=6)
    return fig


def plot_detector_maps(maps: dict[str, Any], separators: list[str]):
    """Detector maps ``(n_bands, n_frames)`` of the first track's vocals, one row per separator."""
    plt = _plt()
    rows = [s for s in separators if s in maps]
    fig, axes = plt.subplots(len(rows), len(ARTIFACTS), figsize=(6.5, 0.4 + 1.1 * len(rows)),
                             sharex=True, sharey=True, squeeze=False)
    for i, name in enumerate(rows):
        det = maps[name]
        for j, artifact in enumerate(ARTIFACTS):
            values = det.maps[artifact]
            ax = axes[i, j]
            ax.pcolormesh(np.arange(values.shape[1] + 1) * det.frame_seconds,
                          det.band_edges_hz / 1000.0, values, vmin=0, vmax=1, cmap="viridis")
            ax.set_title(f"{name}: {artifact} {det.scores[artifact]:.2f}", fontsize=6)
        axes[i, 0].set_ylabel("kHz")
    for ax in axes[-1]:
        ax.set_xlabel("s")
    return fig
