"""The ablation grid, as code: one factor changed at a time from a reference setting.

    rows = grid(AblationConfig())                  # the rows, without running anything
    table = run_grid(rows, train_fn, evaluate_fn)  # train each distinct model once, score all

Every row trains under the same budget (:mod:`stemprover.ablation_train`) and is scored
on the same validation items: excerpts of the corpus valid split, separated by
``valid_separators`` and enhanced with :func:`stemprover.enhance.enhance`, so that steps,
strength and segment overlap act exactly as they do for a user. An ``identity`` line
(the separator output, no training) is added to the table as the baseline. Rows that differ from the reference only at
inference (steps, strength, segment overlap) reuse the reference model.

The factors and their settings (reference first):

==================  ==========================================================
formulation         bridge | sdedit (noise-to-data, started from the noised stem at 0.5)
finetuning          lora | full (all weights) | scratch (no base pretraining)
phase_losses        on | off (diffusion loss only)
representation      complex | magnitude (input phase reused) | mag_if
control             branch (a trainable copy of the whole base) | controlnet (diffusers'
                    encoder-only copy) | concat (condition as extra input channels)
freq_attention      on | off
mode                pixel | latent
lora_rank           the profile's rank | the ranks in ``lora_ranks``
adapters            per_artifact | general (one adapter for every artifact)
steps               4 | the values in ``steps``
strength            1.0 | the values in ``strengths``
overlap             0.25 | the values in ``overlaps`` (fraction of a segment)
==================  ==========================================================
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from stemprover.errors import StemproverError
from stemprover.paths import cache_dir
from stemprover.stats import bootstrap_ci

FACTORS = (
    "formulation",
    "finetuning",
    "phase_losses",
    "representation",
    "control",
    "freq_attention",
    "mode",
    "lora_rank",
    "adapters",
    "steps",
    "strength",
    "overlap",
)
INFERENCE_FACTORS = ("steps", "strength", "overlap")
TABLE_COLUMNS = (
    "name",
    "factor",
    "setting",
    "si_sdr",
    "si_sdr_ci_low",
    "si_sdr_ci_high",
    "phase_dev",
    "lsd",
    "n",
    "train_seconds",
)
"""Columns of ``ablations.csv``: SI-SDR (dB) with its bootstrap CI, phase deviation (rad),
LSD (dB), number of validation scores and seconds of training of the row's model."""


@dataclass
class AblationConfig:
    seed: int = 0
    sample_rate: int = 16000  # model rate, Hz
    n_fft: int = 256
    hop_length: int = 64
    representation: str = "complex"  # the reference representation (common profile key)
    factors: list[str] = field(  # smoke: one row per code path (full grid: all FACTORS)
        default_factory=lambda: ["finetuning", "control", "adapters", "steps", "overlap"]
    )
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides of every row
    loss: dict[str, Any] = field(default_factory=dict)  # LossConfig of every row (as in 04)
    base_steps: int = 2  # base pretraining steps of every row (smoke: wiring only)
    general_steps: int = 2  # control + general adapter steps on the pairs (as notebook 04)
    adapter_steps: int = 1  # steps of each specialised adapter
    autoencoder_steps: int = 2  # latent row only: spectrogram autoencoder steps
    batch_size: int = 2
    lora_ranks: list[int] = field(default_factory=lambda: [2])  # besides the reference rank
    steps: list[int] = field(default_factory=lambda: [1])  # besides the reference 4
    strengths: list[float] = field(default_factory=lambda: [0.5])  # besides the reference 1.0
    overlaps: list[float] = field(default_factory=lambda: [0.0])  # besides 0.25
    reference_steps: int = 4
    reference_strength: float = 1.0  # enhance()'s default: the bridge starts at the stem
    reference_overlap: float = 0.25
    valid_tracks: int = 1  # corpus valid-split tracks; the same for every row
    valid_seconds: float = 1.0  # excerpt per track, long enough for several segments
    valid_separators: list[str] = field(
        default_factory=lambda: ["degraded:artifact=hf_loss,severity=0.6"]
    )
    stems: list[str] = field(default_factory=lambda: ["vocals"])
    adapters: str = "auto"  # adapters at inference: detector-weighted, as in evaluation
    device: str = "cpu"
    torch_threads: int = 1  # CPU threads; on shared cores one thread avoids spin-waits (0: all)
    n_bootstrap: int = 1000
    corpus_dir: str = ""  # "": build/cache/<profile>/corpus (rendered by 01)


@dataclass(frozen=True)
class Row:
    """One row of the grid.

    Attributes:
        name: ``"reference"`` or ``"<factor>=<setting>"``.
        factor, setting: What this row changes (``"reference"`` for the reference).
        model: ModelConfig overrides.
        train: Training choices: ``finetuning``, ``phase_losses``, ``adapters``.
        infer: Inference choices: ``steps``, ``strength``, ``overlap``.
    """

    name: str
    factor: str
    setting: str
    model: tuple[tuple[str, Any], ...] = ()
    train: tuple[tuple[str, Any], ...] = ()
    infer: tuple[tuple[str, Any], ...] = ()

    @property
    def train_key(self) -> tuple:
        """Rows with equal keys share one trained model."""
        return (self.model, self.train)

    def options(self) -> dict[str, dict[str, Any]]:
        return {"model": dict(self.model), "train": dict(self.train), "infer": dict(self.infer)}


REFERENCE_TRAIN = {"finetuning": "lora", "phase_losses": True, "adapters": "per_artifact"}


def _row(factor: str, setting: Any, base: dict[str, dict[str, Any]], part: str, key: str) -> Row:
    parts = {name: dict(values) for name, values in base.items()}
    parts[part][key] = setting
    label = ("on" if setting else "off") if isinstance(setting, bool) else str(setting)
    return Row(
        f"{factor}={label}",
        factor,
        label,
        *(tuple(sorted(parts[p].items())) for p in ("model", "train", "infer")),
    )


def grid(cfg: AblationConfig, reference_rank: int | None = None) -> list[Row]:
    """The rows for ``cfg.factors``: the reference first, then each changed setting once.

    Args:
        cfg: Ablation settings.
        reference_rank: LoRA rank of the reference model (the profile's), to skip it in
            the rank factor; None keeps every rank in ``cfg.lora_ranks``.
    """
    unknown = sorted(set(cfg.factors) - set(FACTORS))
    if unknown:
        raise StemproverError(f"unknown ablation factor(s) {', '.join(unknown)}; known: {FACTORS}")
    infer = {
        "steps": cfg.reference_steps,
        "strength": cfg.reference_strength,
        "overlap": cfg.reference_overlap,
    }
    base = {"model": {}, "train": dict(REFERENCE_TRAIN), "infer": infer}
    reference = Row(
        "reference", "reference", "reference", (), tuple(sorted(REFERENCE_TRAIN.items())),
        tuple(sorted(infer.items())),
    )
    settings: dict[str, tuple[str, str, list[Any]]] = {
        "formulation": ("model", "formulation", ["sdedit"]),
        "finetuning": ("train", "finetuning", ["full", "scratch"]),
        "phase_losses": ("train", "phase_losses", [False]),
        "representation": (
            "model",
            "representation",
            [r for r in ("complex", "magnitude", "mag_if") if r != cfg.representation],
        ),
        "control": ("model", "control", ["controlnet", "concat"]),
        "freq_attention": ("model", "freq_attention", [False]),
        "mode": ("model", "mode", ["latent"]),
        "lora_rank": ("model", "lora_rank", [r for r in cfg.lora_ranks if r != reference_rank]),
        "adapters": ("train", "adapters", ["general"]),
        "steps": ("infer", "steps", [s for s in cfg.steps if s != cfg.reference_steps]),
        "strength": (
            "infer",
            "strength",
            [s for s in cfg.strengths if s != cfg.reference_strength],
        ),
        "overlap": ("infer", "overlap", [o for o in cfg.overlaps if o != cfg.reference_overlap]),
    }
    rows = [reference]
    for factor in FACTORS:
        if factor in cfg.factors:
            part, key, values = settings[factor]
            rows += [_row(factor, value, base, part, key) for value in values]
    return [_sdedit_start(row) for row in rows]


SDEDIT_STRENGTH = 0.5
"""SDEdit must start partway along its noise diffusion: from pure noise it ignores the stem."""


def _sdedit_start(row: Row) -> Row:
    if dict(row.model).get("formulation") != "sdedit":
        return row
    infer = dict(row.infer) | {"strength": SDEDIT_STRENGTH}
    return Row(row.name, row.factor, row.setting, row.model, row.train,
               tuple(sorted(infer.items())))


TrainFn = Callable[[Row], Any]
"""Trains the model of a row (only its ``model`` and ``train`` parts matter)."""
EvaluateFn = Callable[[Any, Row], dict[str, float]]
"""Scores a trained model with a row's ``infer`` settings on the validation items."""


def run_grid(
    rows: list[Row],
    train_fn: TrainFn,
    evaluate_fn: EvaluateFn,
    progress: bool = True,
    on_row: Callable[[pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    """Train every distinct model once, score every row, and tabulate.

    Args:
        on_row: Called with the table so far after each row (e.g. to save partial results
            of a long run).

    Returns:
        A table with :data:`TABLE_COLUMNS`, one line per row, in grid order.
    """
    models: dict[tuple, tuple[Any, float]] = {}
    records = []
    for row in tqdm(rows, desc="ablations", unit="row", disable=not progress):
        if row.train_key not in models:
            start = time.perf_counter()
            model = train_fn(row)
            models[row.train_key] = (model, time.perf_counter() - start)
        model, seconds = models[row.train_key]
        scores = evaluate_fn(model, row)
        missing = [c for c in TABLE_COLUMNS[3:-1] if c not in scores]
        if missing:
            raise StemproverError(f"ablation row {row.name}: no score for {', '.join(missing)}")
        records.append(
            {"name": row.name, "factor": row.factor, "setting": row.setting}
            | {c: scores[c] for c in TABLE_COLUMNS[3:-1]}
            | {"train_seconds": round(seconds, 2)}
        )
        if on_row is not None:
            on_row(pd.DataFrame(records, columns=list(TABLE_COLUMNS)))
    return pd.DataFrame(records, columns=list(TABLE_COLUMNS))


def rows_json(rows: list[Row]) -> str:
    """The grid as JSON (written next to the table so every row's settings are on record)."""
    return json.dumps([{"name": r.name, **r.options()} for r in rows], indent=2)


def validation_items(cfg: AblationConfig, profile: str) -> list:
    """The validation excerpts shared by every row (corpus valid split, separated)."""
    from stemprover.separators import get_separator
    from stemprover.testsets import corpus_items, resolve_separator, separate_items

    corpus = Path(cfg.corpus_dir) if cfg.corpus_dir else cache_dir(profile, "corpus", create=False)
    if not corpus.is_dir():
        raise StemproverError(f"no corpus at {corpus}: run 01_phase_analysis first")
    base = corpus_items(corpus, "valid", cfg.valid_tracks, cfg.valid_seconds, split="valid")
    specs = [resolve_separator(s, profile) for s in cfg.valid_separators]
    return list(separate_items(base, specs, get_separator, cfg.sample_rate))


def score_outputs(pairs: list[tuple[np.ndarray, np.ndarray]], cfg: AblationConfig) -> dict:
    """SI-SDR (mean, bootstrap CI), phase deviation and LSD over ``(estimate, clean)`` pairs."""
    from stemprover.metrics import lsd, si_sdr
    from stemprover.phase import mean_phase_deviation
    from stemprover.spectral import StftConfig

    stft_cfg = StftConfig(n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    si = [si_sdr(est, ref) for est, ref in pairs]
    mean, low, high, n = bootstrap_ci(si, n_resamples=cfg.n_bootstrap, seed=cfg.seed, key="si")
    phase = [mean_phase_deviation(e, r, cfg.sample_rate, stft_cfg) for e, r in pairs]
    return {
        "si_sdr": mean,
        "si_sdr_ci_low": low,
        "si_sdr_ci_high": high,
        "phase_dev": float(np.nanmean(phase)),
        "lsd": float(np.mean([lsd(e, r, stft_cfg) for e, r in pairs])),
        "n": n,
    }


def make_evaluate_fn(items: list, cfg: AblationConfig) -> EvaluateFn:
    """Enhance every validation item with a row's inference settings and score it."""
    from stemprover.enhance import enhance

    def evaluate(model: Any, row: Row) -> dict[str, float]:
        infer = dict(row.infer)
        pairs = []
        for item in items:
            for stem in cfg.stems:
                out = enhance(
                    item.separated[stem], item.sample_rate, model, mixture=item.mixture,
                    steps=int(infer["steps"]), strength=float(infer["strength"]),
                    overlap=float(infer["overlap"]), adapters=cfg.adapters,
                    device=cfg.device, seed=cfg.seed,
                )
                pairs.append((out, item.clean[stem]))
        return score_outputs(pairs, cfg)

    return evaluate


def run_ablations(cfg: AblationConfig, profile: str, out_dir: Path) -> pd.DataFrame:
    """Train and score the whole grid; write ``ablations.csv`` (after every row) and ``grid.json``.

    The working folder ``build/cache/<profile>/06_ablations`` is emptied first, so every
    row really trains (and its ``train_seconds`` is real) on each run.
    """
    from stemprover.ablation_train import train_row
    from stemprover.evaluate import cpu_threads
    from stemprover.model import model_config

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work_dir = cache_dir(profile, "06_ablations")
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    rows = grid(cfg, reference_rank=model_config(profile, **cfg.model).lora_rank)
    (out_dir / "grid.json").write_text(rows_json(rows))
    with cpu_threads(cfg.torch_threads):
        items = validation_items(cfg, profile)
        identity = [(item.separated[s], item.clean[s]) for item in items for s in cfg.stems]
        baseline = {"name": "identity", "factor": "baseline", "setting": "separator output"}
        baseline |= score_outputs(identity, cfg) | {"train_seconds": 0.0}

        def save(partial: pd.DataFrame) -> pd.DataFrame:
            table = pd.concat([pd.DataFrame([baseline]), partial], ignore_index=True)
            table.to_csv(out_dir / "ablations.csv", index=False)
            return table

        partial = run_grid(rows, lambda row: train_row(row, cfg, profile, work_dir),
                           make_evaluate_fn(items, cfg), on_row=save)
    return save(partial)
