"""Read the stage outputs under ``results/<profile>/`` for figures, tables and the paper.

Readers only load and reshape; they never compute a metric. Each raises
:class:`~stemprover.errors.StemproverError` naming the file when an input is missing
or lacks the columns its consumer needs. Column names are matched loosely
(``si_sdr`` = ``SI-SDR`` = ``sisdr``) because they are written by several stages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import stft

from stemprover.constants import ARTIFACTS, STEMS
from stemprover.errors import StemproverError
from stemprover.project.paths import STAGES, repo_root, results_dir, stage_name
from stemprover.report.training import budget_curve

ABLATION_METRIC = "si_sdr"  # the metric the ablation table, bars and paired columns compare

AGGREGATE_COLUMNS = ("testset", "stem", "system", "metric", "mean", "ci_low", "ci_high", "n")
REFERENCE_LINES = {"identity": "--", "regression": ":", "postfilter": "-."}
"""Systems drawn as horizontal reference lines next to StemProver, with their line style."""

METRIC_LABELS = {
    "sisdr": "SI-SDR (dB)",
    "sdr": "SDR (dB)",
    "sir": "SIR (dB)",
    "sar": "SAR (dB)",
    "pesq": "PESQ-WB",
    "pesqwb": "PESQ-WB",
    "stoi": "STOI",
    "estoi": "ESTOI",
    "lsd": "LSD (dB)",
    "mrstft": "MR-STFT distance",
    "phasedev": "phase deviation (rad)",
    "phasedevhf": "phase dev. >4 kHz (rad)",
    "hfenergyerrordb": "HF energy error (dB)",
}
SYSTEM_LABELS = {
    "identity": "separator output",
    "postfilter": "post-filter",
    "regression": "regression U-Net",
    "bridge": "bridge alone (no projection)",
    "irm1": "IRM1 (oracle)",
    "irm2": "IRM2 (oracle)",
    "ibm": "IBM (oracle)",
}
_STEPS = re.compile(r"stemprover\D*?(\d+)", re.IGNORECASE)


def norm(name: str) -> str:
    """Loose key of a metric/column name: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(norm(metric), metric)


def system_label(system: str) -> str:
    steps = system_steps(system)
    if steps is not None:
        return f"StemProver ({steps} step{'s' if steps != 1 else ''})"
    return SYSTEM_LABELS.get(norm(system), system)


def testset_label(testset: str) -> str:
    return str(testset).replace("_", " ")


def system_steps(system: str) -> int | None:
    """Sampling steps of a StemProver system name (``stemprover@4`` -> 4), else None."""
    match = _STEPS.search(str(system))
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------- files
def stage_file(profile: str, stage: str, name: str) -> Path:
    path = repo_root() / "results" / profile / stage_name(stage) / name
    if not path.is_file():
        raise StemproverError(f"missing input {path.relative_to(repo_root())}")
    return path


def _stage_files(profile: str, stage: str, pattern: str) -> list[Path]:
    folder = repo_root() / "results" / profile / stage_name(stage)
    if not folder.is_dir():
        return []
    skip = ("weights", "pairs", "checkpoints", "cache")
    return sorted(
        p for p in folder.rglob(pattern) if not any(part in skip for part in p.parts[-6:-1])
    )


def find_npz(profile: str, stage: str, keys: tuple[str, ...]) -> Path:
    """The first ``.npz`` under the stage folder that holds all ``keys``."""
    for path in _stage_files(profile, stage, "*.npz"):
        with np.load(path, allow_pickle=False) as data:
            if all(any(f == k or f.endswith(f"/{k}") for f in data.files) for k in keys):
                return path
    raise StemproverError(
        f"missing input: no .npz with {', '.join(keys)} under results/{profile}/{stage_name(stage)}"
    )


def _pick(columns, candidates: tuple[str, ...], what: str, path: Path) -> str:
    by_norm = {norm(c): c for c in columns}
    for candidate in candidates:
        if norm(candidate) in by_norm:
            return by_norm[norm(candidate)]
    raise StemproverError(f"{path}: no {what} column (looked for {', '.join(candidates)})")


# ---------------------------------------------------------------- 05 evaluation
def read_aggregate(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    missing = [c for c in AGGREGATE_COLUMNS if c not in table.columns]
    if missing:
        raise StemproverError(f"{path}: missing column(s) {', '.join(missing)}")
    if table.empty:
        raise StemproverError(f"{path}: no rows")
    return table


def main_testset(table: pd.DataFrame) -> str:
    """The synthetic held-out test set when there is one, else the first test set."""
    names = list(dict.fromkeys(table["testset"]))
    for name in names:
        if "synth" in str(name).lower() or "held" in str(name).lower():
            return name
    return names[0]


def canonical_metric(table: pd.DataFrame, metric: str) -> str | None:
    """The table's own spelling of ``metric`` (``SI-SDR`` for ``si_sdr``), None if absent."""
    for name in dict.fromkeys(table["metric"]):
        if norm(name) == norm(metric):
            return name
    return None


def steps_systems(table: pd.DataFrame) -> dict[int, str]:
    """``{steps: system name}`` for the StemProver systems in the table."""
    found = {}
    for system in dict.fromkeys(table["system"]):
        steps = system_steps(system)
        if steps is not None and norm(system).startswith("stemprover"):
            found.setdefault(steps, system)
    return found


def ordered_stems(table: pd.DataFrame) -> list[str]:
    stems = list(dict.fromkeys(table["stem"]))
    return sorted(stems, key=lambda s: (STEMS.index(s) if s in STEMS else len(STEMS), str(s)))


@dataclass
class SpectrogramExample:
    """One before/after/clean example as shown in the spectrogram figure."""

    db: dict[str, np.ndarray]  # name -> magnitude (dB), (freq, frames)
    phase_error: dict[str, np.ndarray]  # name -> |princarg(est - clean)| (rad), NaN where silent
    clean_phase: np.ndarray  # (freq, frames), rad
    clean_db: np.ndarray
    sample_rate: int
    seconds: float
    title: str


def _spectrum(value: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """A stored complex spectrum as is; a stored waveform through a display STFT."""
    value = np.asarray(value)
    if np.iscomplexobj(value):
        return value[0] if value.ndim == 3 else value
    wave = value.mean(axis=0) if value.ndim == 2 else value
    _, _, spec = stft(wave, nperseg=n_fft, noverlap=n_fft - hop_length, boundary="even")
    return spec


def load_spectrogram_example(
    path: Path, sample_rate: int, n_fft: int, hop_length: int
) -> SpectrogramExample:
    """Read an example ``.npz`` with ``separated``, ``enhanced`` and ``clean``.

    Each entry is a complex spectrum ``(freq, frames)`` or a waveform ``(samples,)`` /
    ``(channels, samples)``; optional ``sample_rate``, ``hop_length``, ``stem``,
    ``testset``, ``track`` and ``system`` keys label the figure.
    """
    with np.load(path, allow_pickle=False) as data:
        files = set(data.files)
        sample_rate = int(data["sample_rate"]) if "sample_rate" in files else sample_rate
        hop_length = int(data["hop_length"]) if "hop_length" in files else hop_length
        n_fft = int(data["n_fft"]) if "n_fft" in files else n_fft
        specs = {
            k: _spectrum(data[k], n_fft, hop_length) for k in ("separated", "enhanced", "clean")
        }
        labels = [str(data[k]) for k in ("testset", "track", "stem", "system") if k in files]
    clean = specs["clean"]
    eps = 1e-10
    db = {k: 20.0 * np.log10(np.abs(v) + eps) for k, v in specs.items()}
    audible = db["clean"] > db["clean"].max() - 60.0
    errors = {}
    for name in ("separated", "enhanced"):
        error = np.abs(np.angle(specs[name] * np.conj(clean)))
        errors[name] = np.where(audible, error, np.nan)
    return SpectrogramExample(
        db=db,
        phase_error=errors,
        clean_phase=np.angle(clean),
        clean_db=db["clean"],
        sample_rate=sample_rate,
        seconds=clean.shape[1] * hop_length / sample_rate,
        title=" / ".join(labels),
    )


# ---------------------------------------------------------------- 01 phase analysis
def phase_band_table(profile: str) -> tuple[Path, pd.DataFrame]:
    """Per-separator, per-band mean ``mag_error_db`` and ``phase_dev`` with ``f_center``."""
    for path in _stage_files(profile, "01_phase_analysis", "*.csv"):
        table = pd.read_csv(path)
        keys = {norm(c) for c in table.columns}
        if {"separator", "phasedev", "flow", "fhigh", "magerrordb"} <= keys:
            sep, low, high, mag, phase = (
                _pick(table.columns, (name,), name, path)
                for name in ("separator", "f_low", "f_high", "mag_error_db", "phase_dev")
            )
            table = table.rename(
                columns={sep: "separator", low: "f_low", high: "f_high", mag: "mag_error_db"}
            ).rename(columns={phase: "phase_dev"})
            table = (
                table.groupby(["separator", "f_low", "f_high"], as_index=False)[
                    ["mag_error_db", "phase_dev"]
                ]
                .mean()
                .assign(f_center=lambda t: np.sqrt(np.maximum(t["f_low"], 1.0) * t["f_high"]))
            )
            return path, table
    raise StemproverError(
        f"missing input: no CSV with separator, f_low, f_high, mag_error_db, phase_dev "
        f"under results/{profile}/01_phase_analysis"
    )


DETECTOR_SEPARATORS = ("htdemucs", "openunmix", "hpss", "nmf", "repet")
"""Separators whose detector maps the figure prefers: real separators before oracles."""


@dataclass
class DetectorMaps:
    """Detector maps of one separated stem."""

    separator: str
    maps: dict[str, np.ndarray]  # artifact -> score map (n_bands, n_frames) in [0, 1]
    band_edges_hz: np.ndarray  # (n_bands + 1,)


def load_detector_maps(path: Path, max_separators: int = 3) -> list[DetectorMaps]:
    """Read ``detector_maps.npz``: keys ``<separator>/<artifact>`` and
    ``<separator>/band_edges_hz`` (or, for one separator, ``<artifact>`` and ``band_edges_hz``).

    Returns:
        Up to ``max_separators`` entries, real separators first.
    """
    with np.load(path, allow_pickle=False) as data:
        groups: dict[str, dict[str, np.ndarray]] = {}
        for key in data.files:
            separator, _, name = key.rpartition("/")
            groups.setdefault(separator, {})[name] = np.asarray(data[key], dtype=np.float64)
    found = []
    for separator, arrays in groups.items():
        maps = {a: arrays[a] for a in ARTIFACTS if a in arrays}
        if maps and "band_edges_hz" in arrays:
            found.append(DetectorMaps(separator or "separated", maps, arrays["band_edges_hz"]))
    if not found:
        raise StemproverError(f"{path}: no detector maps with band_edges_hz")
    rank = {name: i for i, name in enumerate(DETECTOR_SEPARATORS)}
    found.sort(key=lambda d: (rank.get(d.separator, len(rank)), d.separator))
    return found[:max_separators]


# ---------------------------------------------------------------- 06 and 07
def ablation_table(path: Path, metric: str) -> pd.DataFrame:
    """``group, variant, mean, ci_low, ci_high`` for ``metric`` (``attrs["metric"]``)."""
    return ablation_table_frame(pd.read_csv(path), metric, path)


def has_paired(table: pd.DataFrame) -> bool:
    """Whether an ablation table gives some row's paired interval of its difference from the
    reference (the ``delta_ci_*`` columns of 06)."""
    bounds = ["delta_ci_low", "delta_ci_high"]
    return set(bounds) <= set(table.columns) and bool(table[bounds].notna().all(axis=1).any())


def ablation_table_frame(table: pd.DataFrame, metric: str, path: Path | str = "ablations.csv"):
    """:func:`ablation_table` of an already loaded table."""
    group = _pick(table.columns, ("ablation", "axis", "group", "factor", "study"), "group", path)
    variant = _pick(
        table.columns, ("variant", "setting", "config", "name", "row", "value"), "variant", path
    )
    if "metric" in table.columns:
        name = canonical_metric(table, metric) or str(table["metric"].iloc[0])
        table = table[table["metric"] == name]
        value = _pick(table.columns, ("mean", "value", "score"), "value", path)
    else:
        name = metric
        value = _pick(table.columns, (metric, "mean", "value"), metric, path)
    out = pd.DataFrame({"group": table[group].astype(str), "variant": table[variant].astype(str)})
    out["mean"] = table[value].astype(float).to_numpy()
    for bound in ("ci_low", "ci_high"):
        column = next((c for c in (f"{value}_{bound}", bound) if c in table.columns), None)
        out[bound] = table[column].astype(float).to_numpy() if column else np.nan
    for column in ("delta_si_sdr", "delta_ci_low", "delta_ci_high"):  # paired: row - reference
        out[column] = table[column].astype(float).to_numpy() if column in table.columns else np.nan
    if out.empty:
        raise StemproverError(f"{path}: no rows for metric {metric}")
    out = out.reset_index(drop=True)
    out.attrs["metric"] = name
    return out


def read_summary(path: Path) -> dict:
    """``summary.json`` of 07 with ``rtf`` keys as ints (steps)."""
    summary = json.loads(path.read_text())
    missing = [
        k for k in ("device", "rtf", "peak_mem_mb", "separator_cost_ratio") if k not in summary
    ]
    if missing:
        raise StemproverError(f"{path}: missing key(s) {', '.join(missing)}")
    summary["rtf"] = {int(k): float(v) for k, v in summary["rtf"].items()}
    if not summary["rtf"]:
        raise StemproverError(f"{path}: empty rtf")
    return summary


def separator_rtf(summary: dict) -> float | None:
    """HTDemucs's real-time factor on the same device, when 07 recorded it."""
    for key in ("separator_rtf", "htdemucs_rtf"):
        if summary.get(key) is not None:
            return float(summary[key])
    return None


def memory_curve(profile: str) -> tuple[Path, str, pd.DataFrame] | None:
    """A 07 CSV giving ``peak_mem_mb`` against duration or batch size, if there is one."""
    for path in _stage_files(profile, "07_performance", "*.csv"):
        table = pd.read_csv(path)
        if "peak_mem_mb" not in table.columns:
            continue
        for xname in ("duration_s", "seconds", "duration", "batch_size"):
            if xname in table.columns:
                table = table.groupby(xname, as_index=False)["peak_mem_mb"].max()
                return path, xname, table
    return None


def loss_curves(profile: str) -> dict[str, list[tuple[str, Path, pd.DataFrame]]]:
    """``{stage: [(run label, csv, table with step, loss)]}`` for stages 03 and 04.

    A ``phase`` column (``train_log.csv``) splits one file into one curve per training phase.
    """
    curves: dict[str, list[tuple[str, Path, pd.DataFrame]]] = {}
    for stage in ("03_base_pretraining", "04_lora_training"):
        for path in _stage_files(profile, stage, "*.csv"):
            table = pd.read_csv(path)
            columns = {norm(c): c for c in table.columns}
            loss = next(
                (columns[k] for k in ("loss", "trainloss", "totalloss") if k in columns), None
            )
            if "step" not in columns or loss is None or table.empty:
                continue
            run = columns.get("phase")
            for name, rows in table.groupby(run, sort=False) if run else [(path.stem, table)]:
                rows = rows[[columns["step"], loss]].set_axis(["step", "loss"], axis=1)
                rows = rows.apply(pd.to_numeric, errors="coerce").dropna()
                if not rows.empty:
                    label = str(name).replace("_", " ")
                    curves.setdefault(stage, []).append((label, path, rows))
    if not curves:
        raise StemproverError(
            f"missing input: no loss CSV (columns step, loss) under results/{profile}/03 or 04"
        )
    return curves


BUDGET_STAGES = ("03_base_pretraining", "04_lora_training")


def budget_curves(profile: str) -> tuple[pd.DataFrame, list[Path], float]:
    """03 and 04 budget curves in one table with ``minutes`` of StemProver training.

    StemProver's minutes run on from base pretraining through the 04 phases (each adapter
    after the one before, :func:`stemprover.report.training.budget_curve`); the regression
    baseline starts at zero, as it is trained from scratch. Returns the table, its input
    files and the minute at which base pretraining ended (0 without a 03 curve).

    Raises:
        StemproverError: 04's curve is missing (it holds StemProver and the regression).
    """

    paths = {stage: results_dir(profile, stage, create=False) / "budget_curve.csv"
             for stage in BUDGET_STAGES}
    if not paths["04_lora_training"].is_file():
        raise StemproverError(
            f"missing input {paths['04_lora_training'].relative_to(repo_root())}")
    found = [p for p in paths.values() if p.is_file()]
    base_end = 0.0
    parts = []
    if paths["03_base_pretraining"].is_file():
        base = budget_curve(paths["03_base_pretraining"])
        base_end = float(base["minutes"].max()) if not base.empty else 0.0
        parts.append(base)
    lora = budget_curve(paths["04_lora_training"])
    diffusion = lora["phase"] != "regression"
    lora.loc[diffusion, "minutes"] += base_end
    parts.append(lora)
    table = pd.concat(parts, ignore_index=True)
    missing = {"phase", "minutes", "gain"} - set(table.columns)
    if missing or table.empty:
        raise StemproverError(f"{found[-1]}: no budget curve (missing {', '.join(missing)})")
    return table, found, base_end


def stage_runs(results: Path) -> dict[str, dict]:
    """Each stage's ``run.json`` under ``results`` (a profile's folder); ``{}`` for a stage without one."""
    runs = {}
    for stage in STAGES:
        path = Path(results) / stage / "run.json"
        runs[stage] = json.loads(path.read_text()) if path.is_file() else {}
    return runs


def results_commit(results: Path) -> str:
    """The code commit that ``05_evaluation/run.json`` records, or why there is none."""
    run = Path(results) / "05_evaluation" / "run.json"
    commit = json.loads(run.read_text()).get("code_commit") if run.is_file() else None
    return str(commit) if commit else "not recorded (no 05_evaluation/run.json)"
