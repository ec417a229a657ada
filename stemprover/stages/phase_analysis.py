"""Stage 01: how each separator damages magnitude and phase, band by band.

    cfg = build(PhaseStudyConfig, stage_params("smoke", "01_phase_analysis") minus profile)
    tables = run_phase_study(cfg, "smoke", results_dir("smoke", "01"))

For every analysed track (held-out corpus songs and the real MUSDB18 excerpt shipped with
stempeg) and every separator, each stem is compared with its clean reference at the model
rate: :func:`stemprover.dsp.phase.phase_report` per octave band, SI-SDR, and the artifact
detectors. The neural separators are trained first (or reused) from the corpus train split.
Outputs, in ``out_dir``: ``per_band.csv`` (one row per track, separator, stem, band),
``summary.csv`` (per track, separator, stem), ``by_separator.csv``, ``band_means.csv``,
``findings.json`` and ``detector_maps.npz`` (maps of the first track's vocals).

The notebook's inline plots (:func:`plot_band_errors`, :func:`plot_detector_maps`) draw
from the result tables only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from stemprover.constants import ARTIFACTS, STEMS
from stemprover.corpus import ensure_corpus, list_tracks, load_track
from stemprover.corpus.real import stempeg_example
from stemprover.dsp.audio import resample
from stemprover.dsp.phase import phase_report
from stemprover.dsp.spectral import StftConfig
from stemprover.errors import StemproverError
from stemprover.inference.detectors import detect
from stemprover.metrics.signal import si_sdr
from stemprover.project.config import Common
from stemprover.project.provenance import update_run
from stemprover.project.runtime import resolve_device
from stemprover.report.style import STYLE
from stemprover.separators import get_separator, train_neural_separator

REAL_TRACK = "musdb-stempeg-example"


def _default_separators() -> list[str]:
    return ["irm1", "irm2", "ibm", *[f"degraded:{a}" for a in ARTIFACTS],
            "hpss", "nmf", "repet", "htdemucs", "openunmix"]  # fmt: skip


@dataclass
class PhaseStudyConfig(Common):
    """Settings of stage 01 (the ``common`` profile keys plus the stage's own)."""

    seed: int = 0
    separators: list[str] = field(default_factory=_default_separators)  # "degraded:<artifact>"
    degraded_severity: float = 0.5  # severity of the degraded oracles in the analysis
    split: str = "test"  # corpus split analysed
    n_tracks: int = 1  # corpus tracks analysed (0: all of the split)
    real_track: bool = True  # also analyse the stempeg MUSDB18 excerpt
    max_seconds: float = 6.0  # crop each track to this many seconds (0: whole track)
    bands: str = "octave"  # band layout of the report
    train_steps: int = 3  # optimiser steps of each neural separator
    train_batch_size: int = 2  # examples per step
    train_segment_seconds: float = 1.0  # training example length, s
    neural_size: str = "tiny"  # tiny | small | base model configs
    retrain: bool = False  # retrain even if a checkpoint with this config exists
    # earlier checkpoints kept as separators of lower quality (<kind>@<step>.pt): 02's zoo
    snapshot_steps: list[int] = field(default_factory=list)
    device: str = "auto"  # torch device of the neural separators; auto: cuda when present


def train_or_reuse(cfg: PhaseStudyConfig, corpus_dir: Path, weights_dir: Path,
                   progress: bool = True) -> dict[str, Path]:
    """Train the neural separators named in ``cfg.separators`` unless a matching checkpoint exists.

    A checkpoint is reused when its step count, size, rate and seed match ``cfg``.
    """
    paths = {}
    for kind in ("htdemucs", "openunmix"):
        if kind not in cfg.separators:
            continue
        path = weights_dir / f"{kind}.pt"
        wanted = {"steps": cfg.train_steps, "sample_rate": cfg.sample_rate, "seed": cfg.seed,
                  "size": cfg.neural_size}
        if cfg.snapshot_steps:
            wanted["snapshot_steps"] = list(cfg.snapshot_steps)
        meta_path = weights_dir / f"{kind}.json"
        if path.is_file() and meta_path.is_file() and not cfg.retrain:
            meta = json.loads(meta_path.read_text())
            if all(meta.get(k) == v for k, v in wanted.items()):
                paths[kind] = path
                continue
        train_neural_separator(
            kind, corpus_dir, path, steps=cfg.train_steps, sample_rate=cfg.sample_rate,
            seed=cfg.seed, batch_size=cfg.train_batch_size,
            segment_seconds=cfg.train_segment_seconds, size=cfg.neural_size,
            device=resolve_device(cfg.device), progress=progress,
            snapshot_steps=tuple(cfg.snapshot_steps),
        )
        state = torch.load(path, map_location="cpu", weights_only=True)
        meta = {**wanted, "train_seconds": state["train_seconds"],
                "first_loss": state["first_loss"], "final_loss": state["final_loss"],
                "n_tracks": state["n_tracks"]}
        meta_path.write_text(json.dumps(meta, indent=2))
        paths[kind] = path
    return paths


def make_separator(name: str, cfg: PhaseStudyConfig, checkpoints: dict[str, Path]):
    if name.startswith("degraded:"):
        return get_separator("degraded", artifact=name.split(":", 1)[1],
                             severity=cfg.degraded_severity, seed=cfg.seed)
    if name in checkpoints:
        return get_separator(name, checkpoint=checkpoints[name], device=resolve_device(cfg.device))
    return get_separator(name)


def analysis_tracks(cfg: PhaseStudyConfig, corpus_dir: Path):
    """Yield ``(track, audio dict at the model rate)``: corpus songs, then the real track."""

    def prepare(audio: dict[str, np.ndarray], rate: int) -> dict[str, np.ndarray]:
        if cfg.max_seconds > 0:
            audio = {k: v[..., : int(cfg.max_seconds * rate)] for k, v in audio.items()}
        out = {k: resample(np.asarray(v, np.float32), rate, cfg.sample_rate)
               for k, v in audio.items()}
        out["mixture"] = sum(out[s] for s in STEMS)  # keep the sum exact after resampling
        return out

    tracks = list_tracks(corpus_dir, split=cfg.split)
    for track_dir in tracks[: cfg.n_tracks or None]:
        yield track_dir.name, prepare(load_track(track_dir), 44100)
    if cfg.real_track:
        stems, rate = stempeg_example()
        yield REAL_TRACK, prepare(stems, rate)


def run_phase_study(
    cfg: PhaseStudyConfig, profile: str, out_dir: Path, progress: bool = True
) -> dict[str, Any]:
    """Run the whole analysis and write its tables; returns them as DataFrames."""

    out_dir = Path(out_dir)
    start = time.perf_counter()
    corpus_dir = ensure_corpus(profile, progress=progress)
    checkpoints = train_or_reuse(cfg, corpus_dir, out_dir / "weights", progress)
    train_seconds = time.perf_counter() - start
    stft_cfg = StftConfig(n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    separators = {name: make_separator(name, cfg, checkpoints) for name in cfg.separators}
    band_rows, summary_rows, maps = [], [], {}
    for track, audio in analysis_tracks(cfg, corpus_dir):
        for name, sep in tqdm(separators.items(), desc=track, disable=not progress):
            t0 = time.perf_counter()
            est = sep.separate(audio["mixture"], cfg.sample_rate, references=audio)
            seconds = time.perf_counter() - t0
            for stem in STEMS:
                ref = audio[stem]
                if np.sqrt(np.mean(ref**2)) < 1e-4:
                    continue  # a silent reference stem has no phase to compare
                report = phase_report(est[stem], ref, cfg.sample_rate, stft_cfg, bands=cfg.bands)
                report.insert(0, "stem", stem)
                report.insert(0, "separator", name)
                report.insert(0, "track", track)
                band_rows.append(report)
                det = detect(est[stem], cfg.sample_rate, audio["mixture"])
                if stem == "vocals" and name not in maps:
                    maps[name] = det
                summary_rows.append({
                    "track": track, "separator": name, "stem": stem,
                    "si_sdr": si_sdr(est[stem], ref),
                    "mag_error_db": _weighted(report, "mag_error_db"),
                    "phase_dev": _weighted(report, "phase_dev"),
                    **{f"score_{a}": det.scores[a] for a in ARTIFACTS},
                    "separate_seconds": seconds,
                })
    if not summary_rows:
        raise StemproverError("phase study: no track with a non-silent stem")
    per_band = pd.concat(band_rows, ignore_index=True)
    summary = pd.DataFrame(summary_rows)
    by_separator = summary.drop(columns=["track", "stem"]).groupby(
        "separator", sort=False).mean().reset_index()
    band_means = per_band.groupby(["separator", "band"], sort=False)[
        ["f_low", "f_high", "mag_error_db", "phase_dev", "energy_error_db", "if_dev"]
    ].mean().reset_index()
    findings = {name: finding(name, by_separator, band_means) for name in separators}
    per_band.to_csv(out_dir / "per_band.csv", index=False, float_format="%.4f")
    summary.to_csv(out_dir / "summary.csv", index=False, float_format="%.4f")
    by_separator.to_csv(out_dir / "by_separator.csv", index=False, float_format="%.4f")
    band_means.to_csv(out_dir / "band_means.csv", index=False, float_format="%.4f")
    (out_dir / "findings.json").write_text(json.dumps(findings, indent=2))
    _save_maps(out_dir / "detector_maps.npz", maps)
    neural = {kind: json.loads((out_dir / "weights" / f"{kind}.json").read_text())
              for kind in checkpoints if (out_dir / "weights" / f"{kind}.json").is_file()}
    update_run(
        out_dir,
        neural_train_seconds=round(train_seconds, 2),  # this run (0 when reused)
        neural=neural,  # steps, training time and losses of the checkpoints used
        total_seconds=round(time.perf_counter() - start, 2),
        tracks=sorted(summary["track"].unique().tolist()),
    )
    return {"per_band": per_band, "summary": summary, "by_separator": by_separator,
            "band_means": band_means, "findings": findings, "maps": maps}


def _weighted(report: pd.DataFrame, column: str) -> float:
    widths = (report["f_high"] - report["f_low"]).to_numpy()
    return float(np.average(report[column].to_numpy(), weights=np.log2(1 + widths)))


def _save_maps(path: Path, maps: dict[str, Any]) -> None:
    arrays = {}
    for name, det in maps.items():
        for artifact, values in det.maps.items():
            arrays[f"{name}/{artifact}"] = values
        arrays[f"{name}/band_edges_hz"] = det.band_edges_hz
    np.savez_compressed(path, **arrays)


def finding(name: str, by_separator: pd.DataFrame, band_means: pd.DataFrame) -> str:
    """One sentence per separator, generated from the numbers: where and how it damages."""
    row = by_separator.set_index("separator").loc[name]  # means over tracks and stems
    bands = band_means[band_means["separator"] == name]
    worst_mag = bands.loc[bands["mag_error_db"].idxmax()]
    worst_phase = bands.loc[bands["phase_dev"].idxmax()]
    lost = bands.loc[bands["energy_error_db"].idxmin()]
    gained = bands.loc[bands["energy_error_db"].idxmax()]
    table = by_separator.set_index("separator")
    # Detector scores have different baselines; the oracle Wiener mask is the reference.
    base = table.loc["irm2"] if "irm2" in table.index and name != "irm2" else None
    scores = {a: row[f"score_{a}"] - (base[f"score_{a}"] if base is not None else 0.0)
              for a in ARTIFACTS}
    top = max(scores, key=scores.get)
    detector = (f"detector most above IRM2: {top} ({scores[top]:+.2f})" if base is not None
                else f"strongest detector: {top} ({scores[top]:.2f})")
    energy = (
        f"loses most energy in {_band(lost)} ({lost['energy_error_db']:+.1f} dB)"
        if lost["energy_error_db"] < -1.0 else "keeps band energies within 1 dB where it loses"
    )
    if gained["energy_error_db"] > 1.0:
        energy += f" and adds energy in {_band(gained)} ({gained['energy_error_db']:+.1f} dB)"
    return (
        f"{name}: SI-SDR {row['si_sdr']:.1f} dB; largest magnitude error in {_band(worst_mag)} "
        f"({worst_mag['mag_error_db']:.1f} dB), largest phase deviation in {_band(worst_phase)} "
        f"({worst_phase['phase_dev']:.2f} rad, mean {row['phase_dev']:.2f} rad); {energy}; "
        f"{detector}."
    )


def _band(row: pd.Series) -> str:
    return f"{_hz(row['f_low'])}-{_hz(row['f_high'])}"


def _hz(freq: float) -> str:
    return f"{freq / 1000:.1f} kHz" if freq >= 1000 else f"{freq:.0f} Hz"


def _plt():
    import matplotlib.pyplot as plt

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
