"""The ablation grid, as code: one factor changed at a time from a reference setting.

    rows = grid(AblationConfig())                  # the rows, without running anything
    table = run_grid(rows, train_fn, evaluate_fn)  # train each distinct model once, score all

Every row trains under the same budget (:func:`train_row`, below) and is scored
on the same validation items: excerpts of the corpus valid split, separated by
``valid_separators`` and enhanced with :func:`stemprover.inference.enhance.enhance`, so that steps,
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
steps               ``reference_steps`` (4; the cpu profile: 1) | the values in ``steps``
strength            1.0 | the values in ``strengths``
overlap             0.25 | the values in ``overlaps`` (fraction of a segment)
==================  ==========================================================

Training one row (:func:`train_row`) under the shared budget, with the trainers of 03-04:

    model = train_row(row, cfg, profile="cpu", work_dir=cache_dir("cpu", "06_ablations"))

Budget of every row: ``cfg.base_steps`` of base pretraining on clean segments, then
``cfg.general_steps + 3 * cfg.adapter_steps`` optimizer steps on the training pairs:

* ``lora`` (reference): notebook 04's progressive schedule: control branch and ``general``
  adapter for ``general_steps``, then each specialised adapter for ``adapter_steps``;
* ``adapters=general``: the same number of steps, all spent on ``general`` (the specialised
  adapters stay copies of it, so the detectors' mix has no effect);
* ``full``: every weight of the base U-Net is trained with the control branch, for all the
  pair steps (LoRA adapters stay at their zero start);
* ``scratch``: no pretraining; the randomly initialised U-Net is trained in full for
  ``base_steps`` plus the pair steps, so it gets the same number of optimizer steps.

Bases are cached by what shapes them (representation, mode, frequency attention, losses),
so rows that change only the control branch, the LoRA rank or the adapters share one.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from diffusers import DDPMScheduler
from tqdm.auto import tqdm

from stemprover.constants import ADAPTERS
from stemprover.data.testsets import corpus_items, resolve_separator, separate_items
from stemprover.dsp.phase import mean_phase_deviation
from stemprover.dsp.spectral import StftConfig
from stemprover.errors import StemproverError
from stemprover.inference.enhance import enhance
from stemprover.metrics.signal import lsd, si_sdr
from stemprover.metrics.stats import bootstrap_ci, paired_test
from stemprover.model import load_base, load_model, model_config
from stemprover.model.adapters import control_parameters
from stemprover.project.config import COMMON_KEYS, Common
from stemprover.project.inputs import input_path, resolve_inputs
from stemprover.project.paths import cache_dir
from stemprover.project.runtime import cpu_threads
from stemprover.project.seed import seed_everything
from stemprover.separators import get_separator
from stemprover.stages.base_pretraining import pretrain_base
from stemprover.stages.lora_training import train_control_lora
from stemprover.train.config import LoraTrainConfig, PretrainConfig, manifest_path, model_overrides
from stemprover.train.data import load_pairs
from stemprover.train.loop import CsvLog, PhaseSpec, make_accelerator, run_phase
from stemprover.train.losses import LossConfig
from stemprover.train.steps import diffusion_step, loss_for

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
SCORE_COLUMNS = ("si_sdr", "si_sdr_ci_low", "si_sdr_ci_high", "phase_dev", "lsd", "n")
"""What an evaluation returns for a row: SI-SDR (dB) with its bootstrap CI, phase deviation
(rad), LSD (dB) and the number of validation scores."""
PAIRED_COLUMNS = ("delta_si_sdr", "delta_ci_low", "delta_ci_high", "delta_p_value")
"""The row minus the reference, item by item: mean SI-SDR difference (dB), its bootstrap CI
and the Wilcoxon signed-rank p-value. Every row is scored on the same items, so this paired
interval is much narrower than the rows' own intervals, which include how much the items
differ from each other."""
TABLE_COLUMNS = ("name", "factor", "setting", *SCORE_COLUMNS, "train_seconds", *PAIRED_COLUMNS)
"""Columns of ``ablations.csv``: the scores, seconds of training of the row's model, and
the paired difference from the reference row (NaN where per-item scores are missing)."""
ITEM_COLUMNS = ("name", "item", "si_sdr")
"""Columns of ``ablation_items.csv``: every row's SI-SDR on each validation score, in the
same order for every row, so that any other paired statistic can be computed from it."""


@dataclass
class AblationConfig(Common):
    seed: int = 0
    factors: list[str] = field(  # smoke: one row per code path (full grid: all FACTORS)
        default_factory=lambda: ["finetuning", "control", "adapters", "steps", "overlap"]
    )
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides of every row
    loss: dict[str, Any] = field(default_factory=dict)  # LossConfig of every row (as in 04)
    base_steps: int = 2  # base pretraining steps of every row (smoke: wiring only)
    general_steps: int = 2  # control + general adapter steps on the pairs (as notebook 04)
    adapter_steps: int = 1  # steps of each specialised adapter
    general_share: float = 0.0  # general phase: share of pairs conditioned on `general` (as 04)
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
    adapters: str = "auto"  # at inference: detector-weighted, so per-artifact rows use their adapters
    device: str = "cpu"
    torch_threads: int = 1  # CPU threads; on shared cores one thread avoids spin-waits (0: all)
    workers: int = 1  # processes that train the grid's models side by side (torch_threads each)
    n_bootstrap: int = 1000
    # inputs ("": this profile's own, filled in by project.inputs.resolve_inputs)
    corpus_dir: str = ""  # the corpus 01 renders: the validation excerpts
    separator_weights: str = ""  # 01's trained neural separators
    manifest: str = ""  # 02's pairs: every row trains on them


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
    seconds: dict[tuple, float] | None = None,
    items: dict[str, list[float]] | None = None,
) -> pd.DataFrame:
    """Train every distinct model once, score every row, and tabulate.

    Args:
        on_row: Called with the table so far after each row (e.g. to save partial results
            of a long run).
        seconds: Training seconds by ``train_key`` of models that ``train_fn`` only loads
            (trained beforehand, see :func:`train_models`); they replace the measured time.
        items: Filled with each row's per-item SI-SDR, when the evaluation returns it (as
            ``si_sdr_items``); may hold rows scored beforehand, such as the separator output.

    Returns:
        A table with :data:`TABLE_COLUMNS`, one line per row, in grid order; the paired
        columns compare each row with the first (the reference).
    """
    models: dict[tuple, tuple[Any, float]] = {}
    records = []
    per_item = items if items is not None else {}
    for row in tqdm(rows, desc="ablations", unit="row", disable=not progress):
        if row.train_key not in models:
            start = time.perf_counter()
            model = train_fn(row)
            spent = time.perf_counter() - start
            models[row.train_key] = (model, (seconds or {}).get(row.train_key, spent))
        model, spent = models[row.train_key]
        scores = evaluate_fn(model, row)
        missing = [c for c in SCORE_COLUMNS if c not in scores]
        if missing:
            raise StemproverError(f"ablation row {row.name}: no score for {', '.join(missing)}")
        if "si_sdr_items" in scores:
            per_item[row.name] = [float(v) for v in scores["si_sdr_items"]]
        records.append(
            {"name": row.name, "factor": row.factor, "setting": row.setting}
            | {c: scores[c] for c in SCORE_COLUMNS}
            | {"train_seconds": round(spent, 2)}
        )
        if on_row is not None:  # scores so far; the caller adds the paired columns it saves
            on_row(pd.DataFrame(records, columns=list(TABLE_COLUMNS)))
    return with_paired(pd.DataFrame(records), per_item, rows[0].name)


def with_paired(table: pd.DataFrame, items: dict[str, list[float]], reference: str,
                n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``table`` with :data:`PAIRED_COLUMNS` filled for every row whose per-item SI-SDR is in
    ``items`` (name to scores, in one item order), against the row named ``reference``."""
    table = table.reindex(columns=list(TABLE_COLUMNS))
    base = items.get(reference)
    for i, name in enumerate(table["name"]):
        if base is None or name not in items or name == reference:
            continue
        if len(items[name]) != len(base):
            raise StemproverError(f"ablation row {name}: {len(items[name])} item scores, "
                                  f"but the reference has {len(base)}")
        test = paired_test(items[name], base, n_resamples=n_resamples, seed=seed,
                           key=("ablation", name))
        if test["n"] < 2:  # one item gives a difference, but no interval
            test["ci_low"] = test["ci_high"] = test["p_value"] = float("nan")
        table.loc[i, list(PAIRED_COLUMNS)] = [test["mean_diff"], test["ci_low"], test["ci_high"],
                                              test["p_value"]]
    return table


def items_table(items: dict[str, list[float]]) -> pd.DataFrame:
    """``items`` (row name to per-item SI-SDR) in the long form of ``ablation_items.csv``."""
    records = [{"name": name, "item": k, "si_sdr": v}
               for name, values in items.items() for k, v in enumerate(values)]
    return pd.DataFrame(records, columns=list(ITEM_COLUMNS))


def rows_json(rows: list[Row]) -> str:
    """The grid as JSON (written next to the table so every row's settings are on record)."""
    return json.dumps([{"name": r.name, **r.options()} for r in rows], indent=2)


def validation_items(cfg: AblationConfig) -> list:
    """The validation excerpts shared by every row (corpus valid split, separated)."""

    corpus = input_path(cfg.corpus_dir)
    if not corpus.is_dir():
        raise StemproverError(f"no corpus at {corpus}: run 01_phase_analysis first")
    base = corpus_items(corpus, "valid", cfg.valid_tracks, cfg.valid_seconds, split="valid")
    specs = [resolve_separator(s, cfg.separator_weights) for s in cfg.valid_separators]
    return list(separate_items(base, specs, get_separator, cfg.sample_rate))


def score_outputs(pairs: list[tuple[np.ndarray, np.ndarray]], cfg: AblationConfig) -> dict:
    """SI-SDR (mean, bootstrap CI), phase deviation and LSD over ``(estimate, clean)`` pairs."""

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
        "si_sdr_items": [float(v) for v in si],
    }


def make_evaluate_fn(items: list, cfg: AblationConfig) -> EvaluateFn:
    """Enhance every validation item with a row's inference settings and score it."""

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
    """Train and score the whole grid; write ``ablations.csv`` and ``ablation_items.csv`` (after
    every row) and ``grid.json``.

    The working folder ``build/cache/<profile>/06_ablations`` is emptied first, so every
    row really trains (and its ``train_seconds`` is real) on each run.
    """

    cfg = resolve_inputs(cfg, profile)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work_dir = cache_dir(profile, "06_ablations")
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    rows = grid(cfg, reference_rank=model_config(profile, **cfg.model).lora_rank)
    (out_dir / "grid.json").write_text(rows_json(rows))
    with cpu_threads(cfg.torch_threads):
        items = validation_items(cfg)
        identity = [(item.separated[s], item.clean[s]) for item in items for s in cfg.stems]
        scores = score_outputs(identity, cfg)
        per_item = {"identity": scores.pop("si_sdr_items")}
        baseline = {"name": "identity", "factor": "baseline", "setting": "separator output"}
        baseline |= scores | {"train_seconds": 0.0}

        def save(partial: pd.DataFrame) -> pd.DataFrame:
            table = pd.concat([pd.DataFrame([baseline]), partial], ignore_index=True)
            table = with_paired(table, per_item, rows[0].name, cfg.n_bootstrap, cfg.seed)
            table.to_csv(out_dir / "ablations.csv", index=False)
            items_table(per_item).to_csv(out_dir / "ablation_items.csv", index=False)
            return table

        folders, seconds = train_models(rows, cfg, profile, work_dir)
        partial = run_grid(rows, lambda row: load_model(folders[row.train_key]),
                           make_evaluate_fn(items, cfg), on_row=save, seconds=seconds,
                           items=per_item)
    return save(partial)


EXPENSIVE_FIRST = ("mode", "finetuning")
"""Factors whose models take longest (latent mode trains an autoencoder first; full and
scratch training update every weight): started first, so that the workers finish together."""


def train_models(rows: list[Row], cfg: AblationConfig, profile: str, work_dir: Path
                 ) -> tuple[dict[tuple, Path], dict[tuple, float]]:
    """Train every distinct model of ``rows`` in ``cfg.workers`` processes and save it.

    Bases are pretrained first (one task per distinct base), then the rows' models. Each
    model's seconds are its own training plus its base's, so a row costs the same whether or
    not it shares a base. Every row seeds its own training, so the models do not depend on
    the number of workers or the order they run in.

    Returns:
        ``(folders, seconds)`` by ``train_key``: where each model is saved, and its seconds.
    """
    models: dict[tuple, Row] = {}  # the first row of each model names it
    for row in rows:
        models.setdefault(row.train_key, row)
    distinct = sorted(models.values(), key=lambda row: row.factor not in EXPENSIVE_FIRST)
    first: dict[str, Row] = {}
    for row in distinct:
        first.setdefault(base_key(row, cfg), row)
    bases = list(first.values())
    stages = (("base", _pretrain_task, bases), ("row", _row_task, distinct))
    done = {}
    bar = tqdm(total=len(bases) + len(distinct), desc="ablation models", unit="model")
    if cfg.workers <= 1:
        for kind, function, todo in stages:
            for row in todo:
                done[kind, row.train_key] = function(row, cfg, profile, work_dir)
                bar.update(1)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(cfg.workers, mp_context=context) as pool:
            for kind, function, todo in stages:  # rows wait for every base
                futures = {pool.submit(function, row, cfg, profile, work_dir): row.train_key
                           for row in todo}
                for future in as_completed(futures):
                    done[kind, futures[future]] = future.result()
                    bar.update(1)
    bar.close()
    base_seconds = {base_key(row, cfg): done["base", row.train_key] for row in bases}
    folders, seconds = {}, {}
    for row in distinct:
        folder, spent = done["row", row.train_key]
        folders[row.train_key] = Path(folder)
        seconds[row.train_key] = round(spent + base_seconds[base_key(row, cfg)], 2)
    return folders, seconds


def _pretrain_task(row: Row, cfg: AblationConfig, profile: str, work_dir: Path) -> float:
    """Pretrain the base of ``row`` (it is saved under ``work_dir``); returns its seconds."""
    with cpu_threads(cfg.torch_threads):
        start = time.perf_counter()
        ensure_base(row, cfg, profile, work_dir)
        return time.perf_counter() - start


def _row_task(row: Row, cfg: AblationConfig, profile: str, work_dir: Path) -> tuple[str, float]:
    """Train the model of ``row`` and save it; returns its folder and its seconds."""
    with cpu_threads(cfg.torch_threads):
        start = time.perf_counter()
        model = train_row(row, cfg, profile, work_dir)
        spent = time.perf_counter() - start
        folder = Path(work_dir) / "models" / _slug(row.options() | {"infer": {}})
        model.save_pretrained(folder)
        return str(folder), spent


BASE_CACHE_KEYS = ("representation", "mode", "freq_attention", "formulation")
"""ModelConfig fields that change the pretrained base (the rest live in control/adapters)."""
PHASE_TERMS = ("complex", "phase_cosine", "inst_freq", "mrstft")
"""LossConfig weights set to zero when the phase-aware losses are off."""


def loss_config(phase_losses: bool, base: dict | None = None,
                formulation: str = "bridge") -> LossConfig:
    """The profile's loss (``base``), without the phase-aware terms when they are off.

    An SDEdit row always keeps its denoising objective (``diffusion``), which a bridge
    profile may weigh at zero.
    """
    values = dict(base or {})
    if not phase_losses:
        values.update(dict.fromkeys(PHASE_TERMS, 0.0))
    if formulation == "sdedit":
        values["diffusion"] = 1.0
    return LossConfig(**values)


def _formulation(row: Any, cfg: Any) -> str:
    return dict(row.model).get("formulation", dict(cfg.model).get("formulation", "bridge"))


def _slug(values: dict[str, Any]) -> str:
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def common(cfg: Any) -> dict[str, Any]:
    """The profile's common keys and the shared batch settings of every row."""
    keys = ("seed", *COMMON_KEYS, "batch_size", "torch_threads")
    return {key: getattr(cfg, key) for key in keys}


def base_overrides(row: Any, cfg: Any) -> dict[str, Any]:
    """The ModelConfig overrides of a row's base: the grid's, plus the row's base-shaping ones."""
    model = dict(row.model)
    return dict(cfg.model) | {k: model[k] for k in BASE_CACHE_KEYS if k in model}


def base_key(row: Any, cfg: Any) -> str:
    """Names the base a row starts from: rows with equal keys share one pretrained base."""
    train = dict(row.train)
    key = {"model": base_overrides(row, cfg), "phase_losses": train["phase_losses"],
           "scratch": train["finetuning"] == "scratch"}
    return _slug(key)


def ensure_base(row: Any, cfg: Any, profile: str, work_dir: Path) -> Path:
    """Pretrain (or reuse) the base model of ``row``; returns its weights folder."""

    model, train = dict(row.model), dict(row.train)
    scratch = train["finetuning"] == "scratch"
    out_dir = Path(work_dir) / "bases" / base_key(row, cfg)
    weights = out_dir / "weights" / "base"
    if not (weights / "stemprover.json").exists():
        pcfg = PretrainConfig(
            **common(cfg),
            steps=0 if scratch else cfg.base_steps,
            warmup_steps=min(5, cfg.base_steps // 4),
            checkpoint_every=0,
            autoencoder_steps=cfg.autoencoder_steps if model.get("mode") == "latent" else 0,
            n_valid=cfg.batch_size,
            manifest=cfg.manifest,
            loss=loss_config(train["phase_losses"], cfg.loss, _formulation(row, cfg)),
            model=base_overrides(row, cfg),
        )
        pretrain_base(pcfg, profile, out_dir=out_dir, progress=False)
    return weights


def train_row(row: Any, cfg: Any, profile: str, work_dir: Path):
    """Train the StemProver model of one ablation row and return it (in eval mode, on CPU).

    Args:
        row: An :class:`stemprover.stages.ablations.Row`.
        cfg: An :class:`stemprover.stages.ablations.AblationConfig` (budget and batch size).
        profile: Profile whose ModelConfig, pairs and base data are used.
        work_dir: Folder for bases, checkpoints and logs (under ``build/cache``).
    """

    train = dict(row.train)
    base = ensure_base(row, cfg, profile, work_dir)
    out_dir = Path(work_dir) / "rows" / _slug({"model": dict(row.model), "train": train})
    n_specialised = len(ADAPTERS) - 1
    general_only = train["adapters"] == "general" or train["finetuning"] != "lora"
    lcfg = LoraTrainConfig(
        **common(cfg),
        general_steps=cfg.general_steps + (n_specialised * cfg.adapter_steps if general_only else 0),
        adapter_steps=0 if general_only else cfg.adapter_steps,
        warmup_steps=min(5, cfg.general_steps // 4),
        checkpoint_every=0,
        general_share=cfg.general_share,
        regression=False,
        base=str(base),
        manifest=cfg.manifest,
        loss=loss_config(train["phase_losses"], cfg.loss, _formulation(row, cfg)),
        model=dict(cfg.model) | dict(row.model),
    )
    if train["finetuning"] == "lora":
        return train_control_lora(lcfg, profile, out_dir=out_dir, progress=False)
    extra = cfg.base_steps if train["finetuning"] == "scratch" else 0
    return train_full(lcfg, profile, base, out_dir, lcfg.general_steps + extra)


def train_full(lcfg: Any, profile: str, base: Path, out_dir: Path, steps: int):
    """Train every base U-Net weight with the control branch and artifact tokens.

    The LoRA adapters are added (so the model has the usual layout) but stay at their zero
    start; the specialised tokens are copied from the trained ``general`` row.
    """
    seed_everything(lcfg.seed)  # the adapters' random start: the same in any process or order
    train = load_pairs(manifest_path(lcfg), "train")
    model = load_base(base, model_config(profile, **model_overrides(lcfg)))
    model.add_adapters()
    accelerator = make_accelerator(lcfg.mixed_precision)
    scheduler = None if model.is_bridge else DDPMScheduler.from_config(model.scheduler_config)
    loss_fn = loss_for(model, lcfg.loss).to(accelerator.device)
    params = {f"unet.{k}": p for k, p in model.unet.named_parameters() if "lora_" not in k}
    params.update(control_parameters(model))
    table = model.artifact_embedding.table
    params["artifact_embedding.table"] = table
    spec = PhaseSpec(
        "full", steps, lcfg.batch_size, lcfg.grad_accum, lcfg.learning_rate,
        lcfg.warmup_steps, lcfg.seed, lcfg.checkpoint_every,
    )
    run_phase(
        accelerator, model, params, train,
        lambda batch, gen: diffusion_step(
            model, loss_fn, scheduler, batch, gen, adapter="general",
            mixture_dropout=lcfg.mixture_dropout,
        ),
        spec, Path(out_dir) / "checkpoints", CsvLog(Path(out_dir) / "train_log.csv"),
        None, False,
    )
    with torch.no_grad():
        general = table[1 + ADAPTERS.index("general")].clone()
        for name in ADAPTERS:
            table[1 + ADAPTERS.index(name)] = general
    return model.cpu().eval()
