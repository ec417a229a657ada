"""Evaluation: every system on every test set, with confidence intervals.

    cfg = build(EvaluationConfig, stage_params("cpu", "05_evaluation"))
    result = run_evaluation(cfg, profile="cpu", out_dir=results_dir("cpu", "05_evaluation"))

Test sets (:mod:`stemprover.data.testsets`): ``synthetic`` (corpus test split, rendered with the
held-out soundfont, separated by the separators used for the training pairs),
``cross_separator`` (the same tracks separated by a separator never used for training
pairs), ``real`` (the MUSDB18 excerpt shipped in stempeg), ``quality_sweep`` and
``real_sweep`` (the corpus test tracks and the real track, every stem degraded by a family held
out of the pairs and the validation, ``sweep_family``, at each of ``sweep_severities``: the
separator column is ``<family>:severity=<s>``, and the identity system's SI-SDR is each item's
input quality) and ``musdb`` (a local MUSDB18 test set, only when ``musdb_root`` is set).

Systems: ``identity`` (the separator output), ``postfilter`` (classical Wiener post-filter),
``regression`` (a U-Net trained without diffusion, its widths matched to StemProver's
parameter count by 04), ``stemprover@K``
for K sampling steps, ``bridge`` (StemProver's model alone at its own step count, without
the mixture projection), and the oracles ``irm1`` and ``irm2`` as upper references. The
learned systems (``regression`` and ``stemprover@K``) share one mixture projection
(``projection``, :mod:`stemprover.inference.projection`), so they differ only in the model.

Files written to ``out_dir``:

* ``per_track.csv``: ``testset, stem, system, track, separator, metric, value``;
* ``aggregate.csv``: ``testset, stem, system, metric, mean, ci_low, ci_high, n`` (the
  contract), then ``n_tracks, n_separators`` (:func:`stemprover.metrics.stats.aggregate`).
  ``n`` counts items, an item being one excerpt separated by one separator (its ``track`` is
  ``<excerpt>@<separator>``); ``n_tracks`` counts the distinct excerpts and ``n_separators``
  the distinct separators. The 95% CI is a cluster bootstrap over excerpts (the items of one
  excerpt are resampled together), empty where ``n_tracks`` is 1;
* ``significance.csv``: paired tests, one row per (testset, stem, system, baseline, metric),
  columns :data:`stemprover.metrics.stats.SIGNIFICANCE_COLUMNS`. ``baseline`` names the system
  the row is compared with: ``identity`` for every system, and for each ``stemprover@K`` also
  ``postfilter`` (the projection alone), ``regression`` and ``bridge`` (the model alone), see
  :func:`system_pairs`. ``mean_diff`` is system minus baseline over the items, ``ci_low`` /
  ``ci_high`` its cluster-bootstrap 95% CI (empty with one excerpt), ``p_value`` the Wilcoxon
  signed-rank test on the excerpts' mean differences, ``p_fdr`` its Benjamini-Hochberg
  adjustment over the whole file, and ``better`` +1 / -1 only when the CI excludes 0 and
  ``p_fdr`` < 0.05 (0 otherwise);
* ``phase_bands.csv``: mean phase deviation per octave band (radians);
* ``examples/*.flac``: short 16-bit clips; ``spectrograms.npz``: see :func:`save_spectrograms`;
* ``evaluation.json``: config, counts and seconds per system.

Listening examples and spectrogram arrays (small, as they are committed with the results):

Both are small because they are committed with the results: the FLAC clips feed the
players of notebook 05 and the listening page (:mod:`stemprover.report.listening`), the arrays
feed the before/after/clean figure of ``08_figures``.

``examples/`` holds ``<testset>_<stem>_<system>.flac`` (16-bit FLAC with the channels of the input
at the evaluation's sample rate, ``@`` written ``_``) and
``examples.json``, their index::

    {"examples": [{"testset": "real", "stem": "vocals", "sample_rate": 22050, "channels": 2,
                   "seconds": 3.0, "track": ..., "separator": ..., "start_s": 1.5,
                   "clips": [{"system": "mixture", "file": "real_vocals_mixture.flac",
                              "si_sdr_db": -6.4}, ..., {"system": "clean", ...,
                              "si_sdr_db": null}]}]}

``si_sdr_db`` is the clip's SI-SDR against the clean clip, as heard (null for the clean one).

``spectrograms.npz`` keys (one excerpt of the first channel of one stem, time-aligned):

* ``separated``, ``enhanced``, ``clean``: ``(n_samples,)`` float32 waveforms; the figure
  takes their STFT with ``n_fft``/``hop_length`` (magnitude, and phase error to ``clean``);
* ``sample_rate``, ``n_fft``, ``hop_length`` (ints) and ``testset``, ``track``, ``stem``,
  ``system`` (strings; ``system`` is the enhancing system).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from stemprover.corpus.real import musdb_tracks, stempeg_example
from stemprover.data.testsets import (
    TestItem,
    active_excerpt,
    corpus_items,
    parse_separator,
    real_items,
    resolve_separator,
    separate_items,
    separators_in_pairs,
)
from stemprover.dsp.audio import save_audio
from stemprover.dsp.phase import phase_report
from stemprover.dsp.spectral import StftConfig
from stemprover.errors import StemproverError
from stemprover.inference.projection import check_projection, enhance_stems, project
from stemprover.metrics.bsseval import ReferenceBssEval
from stemprover.metrics.signal import evaluate_pair
from stemprover.metrics.stats import aggregate, significance
from stemprover.model import load_model
from stemprover.project.config import Common, to_dict
from stemprover.project.inputs import input_path, resolve_inputs
from stemprover.project.runtime import cpu_threads
from stemprover.report.listening import (
    CLIP_SYSTEMS,
    INDEX,
    MAX_CLIP_SECONDS,
    clip_order,
    index_examples,
)
from stemprover.separators import get_separator

SystemFn = Callable[[TestItem], dict[str, np.ndarray]]
"""A system maps a separated item to stem -> ``(2, n_samples)`` float32 estimates."""

TESTSETS = ("synthetic", "cross_separator", "real", "quality_sweep", "real_sweep")


@dataclass
class EvaluationConfig(Common):
    seed: int = 0
    testsets: list[str] = field(default_factory=lambda: ["synthetic", "real"])  # cpu/gpu: all
    n_tracks: int = 1  # corpus test tracks used by synthetic and cross_separator
    excerpt_seconds: float = 1.0  # per track, placed where all stems are active
    real_seconds: float | None = None  # real tracks: None = excerpt_seconds, <= 0 = whole track
    train_separators: list[str] = field(  # kinds of separator that made the training pairs
        default_factory=lambda: ["degraded:artifact=hf_loss,severity=0.5"]
    )
    cross_separators: list[str] = field(default_factory=lambda: ["htdemucs"])  # never in pairs
    real_separators: list[str] = field(default_factory=lambda: ["htdemucs"])
    # quality_sweep (corpus test tracks) and real_sweep (the real track): every stem degraded by
    # a family held out of the pairs and the validation, at each severity (about 0 to +20 dB in)
    sweep_family: str = "bandsplit"
    sweep_severities: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7, 0.9])
    musdb_root: str | None = None  # a local MUSDB18(-HQ) adds the "musdb" test set
    musdb_subset: str = "test"
    musdb_max_tracks: int | None = None  # None: all 50 test tracks
    stems: list[str] = field(default_factory=lambda: ["vocals", "bass"])  # cpu/gpu: all four
    systems: list[str] = field(
        default_factory=lambda: ["identity", "postfilter", "regression", "stemprover", "irm1", "irm2"]
    )
    steps: list[int] = field(default_factory=lambda: [1, 4])  # one stemprover@K each (cpu: +25)
    strength: float | None = None  # None: enhance()'s default
    adapters: str = "general"  # or "auto" (detector-weighted mix), a name or a mix: design study rows 27-28
    # the learned systems' four stems redistributed over the mixture by a Wiener filter:
    # before the model (chosen on the valid split, design study row 33), after, both or none
    projection: str = "before"
    batch_size: int = 8
    device: str = "cpu"
    torch_threads: int = 1  # CPU threads; on shared cores one thread avoids spin-waits (0: all)
    # inputs ("": this profile's own, filled in by project.inputs.resolve_inputs)
    model_dir: str = ""  # 04's StemProver weights
    regression_dir: str = ""  # 04's regression U-Net
    corpus_dir: str = ""  # the corpus 01 renders (build/cache/<profile>/corpus)
    separator_weights: str = ""  # 01's trained neural separators
    manifest: str = ""  # 02's pairs: which separators the model saw in training
    n_bootstrap: int = 200  # resamples of each CI (cpu/gpu: 2000)
    # Zimtohrli MOS on the middle of each item (about 0.2 s of CPU per audio second); None: off
    perceptual_seconds: float | None = None
    example_testsets: list[str] = field(default_factory=lambda: ["synthetic", "real"])
    example_stems: list[str] | None = None  # None: every evaluated stem
    example_seconds: float = 1.0
    examples_max_mb: float = 2.0  # the clips are committed: the whole folder stays below this
    spectrogram_seconds: float = 1.0  # keeps spectrograms.npz at a few hundred KB


def stemprover_systems(cfg: EvaluationConfig) -> list[str]:
    return [f"stemprover@{k}" for k in cfg.steps] if "stemprover" in cfg.systems else []


def make_systems(cfg: EvaluationConfig) -> dict[str, SystemFn]:
    """The systems named in ``cfg.systems``, with their models loaded from ``cfg``'s folders."""
    known = {"identity", "postfilter", "regression", "stemprover", "bridge", "irm1", "irm2", "ibm"}
    unknown = sorted(set(cfg.systems) - known)
    if unknown:
        raise StemproverError(f"unknown system(s) {', '.join(unknown)}; known: {sorted(known)}")
    check_projection(cfg.projection)
    projected = _shared_projection()
    systems: dict[str, SystemFn] = {}
    for name in cfg.systems:
        if name == "identity":
            systems[name] = lambda item: dict(item.separated)
        elif name == "postfilter":  # the Wiener filter alone: the projection itself
            systems[name] = lambda item: dict(projected(item))
        elif name in ("irm1", "irm2", "ibm"):
            systems[name] = _oracle_system(name)
        elif name == "regression":
            model = _load(cfg.regression_dir, "regression")
            systems[name] = _enhance_system(model, cfg, steps=1, projected=projected)
        elif name == "bridge":
            model = _load(cfg.model_dir, "stemprover")
            systems[name] = _enhance_system(model, cfg, steps=None, projection="none")
        else:
            model = _load(cfg.model_dir, "stemprover")
            for steps, label in zip(cfg.steps, stemprover_systems(cfg)):
                systems[label] = _enhance_system(model, cfg, steps=steps, projected=projected)
    return systems


def _oracle_system(name: str) -> SystemFn:
    oracle = get_separator(name)
    cache: dict[str, dict[str, np.ndarray]] = {}

    def run(item: TestItem) -> dict[str, np.ndarray]:
        # An oracle ignores the separator output: compute it once per track.
        key = f"{item.testset}/{item.track}"
        if key not in cache:
            cache[key] = oracle.separate(item.mixture, item.sample_rate, references=item.clean)
        return cache[key]

    return run


def _shared_projection() -> Callable[[TestItem], dict[str, np.ndarray]]:
    """The projection of an item's separator output, computed once for the post-filter and
    every learned system."""
    kept: dict[tuple, dict[str, np.ndarray]] = {}

    def projected(item: TestItem) -> dict[str, np.ndarray]:
        key = (item.testset, item.track, item.separator)
        if key not in kept:
            kept.clear()  # systems run item by item: one item's projection is enough
            kept[key] = project(item.separated, item.sample_rate, item.mixture)
        return kept[key]

    return projected


def _enhance_system(
    model, cfg: EvaluationConfig, steps: int | None, projection: str | None = None,
    projected: Callable[[TestItem], dict[str, np.ndarray]] | None = None,
) -> SystemFn:
    options = {"steps": steps, "adapters": cfg.adapters, "batch_size": cfg.batch_size,
               "device": cfg.device, "seed": cfg.seed}
    if cfg.strength is not None:
        options["strength"] = cfg.strength
    projection = cfg.projection if projection is None else projection
    projected = projected or _shared_projection()

    def run(item: TestItem) -> dict[str, np.ndarray]:
        if projection in ("before", "both"):  # the shared projection, then what remains
            return enhance_stems(projected(item), item.sample_rate, model, mixture=item.mixture,
                                 projection="after" if projection == "both" else "none",
                                 **options)
        # a projection needs all four stems cleaned, whichever of them are scored
        stems = item.separated if projection != "none" else {
            stem: item.separated[stem] for stem in cfg.stems}
        return enhance_stems(stems, item.sample_rate, model, mixture=item.mixture,
                             projection=projection, **options)

    return run


def _load(path: str, kind: str):
    folder = input_path(path)
    if not path or not (folder / "stemprover.json").exists():
        raise StemproverError(f"no {kind} model at {folder}: run 04_lora_training first")
    return load_model(folder)


def score_item(
    item: TestItem,
    system: str,
    estimates: dict[str, np.ndarray],
    cfg: EvaluationConfig,
    bss: ReferenceBssEval | None = None,
) -> tuple[list[dict], list[dict]]:
    """All metrics of one system on one item.

    Args:
        bss: BSSEval scorer of this item's references (built when None; pass one to
            share its factorisation between systems).

    Returns:
        ``(rows, band_rows)``: long per-track rows and per-octave-band phase deviation rows.
    """

    stft_cfg = StftConfig(n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    refs = {s: item.clean[s] for s in cfg.stems}
    ests = {s: _fit(estimates[s], refs[s]) for s in cfg.stems}
    bss = (bss or ReferenceBssEval(refs, item.sample_rate))(ests)
    base = {"testset": item.testset, "system": system, "track": item.key}
    base["separator"] = item.separator
    rows, band_rows = [], []
    for stem in cfg.stems:
        values = {k: float(v) for k, v in bss[stem].items()}
        speech = stem == "vocals"
        pair = evaluate_pair(ests[stem], refs[stem], item.sample_rate, stft_cfg=stft_cfg,
                             speech=speech, perceptual_seconds=cfg.perceptual_seconds)
        values.update({k: float(v) for k, v in pair.items()})
        rows += [{**base, "stem": stem, "metric": k, "value": v} for k, v in values.items()]
        report = phase_report(ests[stem], refs[stem], item.sample_rate, stft_cfg, bands="octave")
        for band in report.itertuples():
            band_rows.append(
                {**base, "stem": stem, "band": band.band, "f_low": band.f_low}
                | {"f_high": band.f_high, "phase_dev": float(band.phase_dev)}
            )
    return rows, band_rows


def _fit(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    estimate = np.asarray(estimate, dtype=np.float32)
    if estimate.shape != reference.shape:
        raise StemproverError(f"estimate shape {estimate.shape} != reference {reference.shape}")
    return estimate


@dataclass
class EvaluationResult:
    per_track: pd.DataFrame
    aggregate: pd.DataFrame
    significance: pd.DataFrame
    phase_bands: pd.DataFrame
    seconds: dict[str, float]


def evaluate_items(
    items: list[TestItem],
    systems: dict[str, SystemFn],
    cfg: EvaluationConfig,
    keep: Callable[[TestItem], bool] = lambda item: False,
) -> tuple[EvaluationResult, dict[str, tuple[TestItem, dict]]]:
    """Run and score every system on every item.

    Args:
        keep: Items for which the estimates are returned (for examples and figures).

    Returns:
        The result tables and ``{testset: (item, {system: estimates})}`` for kept items.
    """
    rows, band_rows, kept = [], [], {}
    seconds = dict.fromkeys(systems, 0.0)
    for item in tqdm(items, desc="evaluate", unit="item"):
        outputs = {}
        bss = ReferenceBssEval({s: item.clean[s] for s in cfg.stems}, item.sample_rate)
        for name, system in systems.items():
            start = time.perf_counter()
            outputs[name] = system(item)
            seconds[name] += time.perf_counter() - start
            new_rows, new_bands = score_item(item, name, outputs[name], cfg, bss)
            rows += new_rows
            band_rows += new_bands
        if keep(item) and item.testset not in kept:
            kept[item.testset] = (item, outputs)
    per_track = pd.DataFrame(rows)[
        ["testset", "stem", "system", "track", "separator", "metric", "value"]
    ]
    bands = pd.DataFrame(band_rows)
    phase_bands = (
        bands.groupby(["testset", "stem", "system", "band", "f_low", "f_high"], sort=False)
        .agg(phase_dev=("phase_dev", "mean"), n=("phase_dev", "count"))
        .reset_index()
    )
    result = EvaluationResult(
        per_track,
        aggregate(per_track, n_resamples=cfg.n_bootstrap, seed=cfg.seed),
        significance(per_track, "identity", n_resamples=cfg.n_bootstrap, seed=cfg.seed,
                     pairs=system_pairs(list(systems))),
        phase_bands,
        seconds,
    )
    return result, kept


PAIRED_BASELINES = ("postfilter", "regression", "bridge")
"""What each StemProver system is also tested against, beside the separator output: the
projection alone, the regression U-Net behind the same projection, and the model alone."""


def system_pairs(names: list[str]) -> list[tuple[str, str]]:
    """``(system, baseline)`` pairs of ``significance.csv`` beyond the tests against identity."""
    ours = [n for n in names if n.startswith("stemprover@")]
    return [(s, b) for s in ours for b in PAIRED_BASELINES if b in names]


def build_items(cfg: EvaluationConfig) -> list[TestItem]:
    """Every separated test item of the configured test sets (corpus and weights from ``cfg``)."""

    unknown = sorted(set(cfg.testsets) - set(TESTSETS))
    if unknown:
        raise StemproverError(f"unknown test set(s) {', '.join(unknown)}; known: {TESTSETS}")
    items: list[TestItem] = []
    sr, seconds = cfg.sample_rate, cfg.excerpt_seconds
    corpus = input_path(cfg.corpus_dir)
    for testset, specs in (
        ("synthetic", cfg.train_separators),
        ("cross_separator", cfg.cross_separators),
    ):
        if testset in cfg.testsets:
            if not corpus.is_dir():
                raise StemproverError(f"no corpus at {corpus}: run 01_phase_analysis first")
            base = corpus_items(corpus, testset, cfg.n_tracks, seconds)
            specs = [resolve_separator(s, cfg.separator_weights) for s in specs]
            items += separate_items(base, specs, get_separator, sr)
    sweep = sweep_specs(cfg)
    if {"quality_sweep", "real_sweep"} & set(cfg.testsets):
        seen = separators_in_pairs(cfg.manifest)
        if seen is not None and cfg.sweep_family in seen:
            raise StemproverError(f"the quality sweep's family {cfg.sweep_family!r} made "
                                  "training pairs: it would not be held out")
    if "quality_sweep" in cfg.testsets:
        if not corpus.is_dir():
            raise StemproverError(f"no corpus at {corpus}: run 01_phase_analysis first")
        items += separate_items(corpus_items(corpus, "quality_sweep", cfg.n_tracks, seconds),
                                sweep, get_separator, sr)
    real = []
    real_seconds = seconds if cfg.real_seconds is None else cfg.real_seconds
    if "real_sweep" in cfg.testsets:
        audio, rate = stempeg_example()
        base = real_items([("stempeg_example", audio, rate)], "real_sweep", real_seconds)
        items += separate_items(base, sweep, get_separator, sr)
    if "real" in cfg.testsets:
        audio, rate = stempeg_example()
        real += real_items([("stempeg_example", audio, rate)], "real", real_seconds)
    if cfg.musdb_root:
        tracks = musdb_tracks(cfg.musdb_root, subset=cfg.musdb_subset)
        real += real_items(tracks, "musdb", seconds, cfg.musdb_max_tracks)
    if real:
        specs = [resolve_separator(s, cfg.separator_weights) for s in cfg.real_separators]
        items += separate_items(real, specs, get_separator, sr)
    return items


def sweep_specs(cfg: EvaluationConfig) -> list[str]:
    """Separator specs of the quality sweep: the held-out family at each severity."""
    return [f"{cfg.sweep_family}:severity={severity:g}" for severity in cfg.sweep_severities]


def featured_system(names: list[str], default_steps: int | None = None) -> str:
    """The enhanced system shown in the spectrogram figure: StemProver at the released
    model's default step count, else at 4 steps, else the closest."""
    first = [f"stemprover@{default_steps}"] if default_steps else []
    candidates = [*first, "stemprover@4", *sorted(n for n in names if n.startswith("stemprover@"))]
    candidates += ["regression", "postfilter"]
    return next((n for n in candidates if n in names), "")


def default_step_count(cfg: EvaluationConfig) -> int | None:
    """The steps ``stemprover enhance`` takes with 04's model when none are given
    (:func:`stemprover.inference.enhance.default_steps`); None without that model."""
    from types import SimpleNamespace

    from stemprover.inference.enhance import default_steps

    record = input_path(cfg.model_dir) / "stemprover.json" if cfg.model_dir else None
    if record is None or not record.is_file():
        return None
    formulation = json.loads(record.read_text()).get("config", {}).get("formulation", "bridge")
    return default_steps(SimpleNamespace(is_bridge=formulation == "bridge"), None)


def headline(sig: pd.DataFrame, metrics: tuple[str, ...] = ("si_sdr", "sdr")) -> pd.DataFrame:
    """Gain of every system over identity, per test set and stem, for the headline metrics."""
    rows = sig[sig["metric"].isin(metrics) & (sig["baseline"] == "identity")]
    columns = ["testset", "stem", "system", "metric", "mean_diff", "ci_low", "ci_high", "n"]
    return rows[columns + ["p_fdr"]].reset_index(drop=True)


def run_evaluation(
    cfg: EvaluationConfig,
    profile: str,
    out_dir: Path,
    systems: dict[str, SystemFn] | None = None,
    items: list[TestItem] | None = None,
) -> EvaluationResult:
    """Build the test sets and systems, evaluate, and write every output file."""
    cfg = resolve_inputs(cfg, profile)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with cpu_threads(cfg.torch_threads):
        items = build_items(cfg) if items is None else items
        systems = make_systems(cfg) if systems is None else systems
        result, kept = evaluate_items(items, systems, cfg, keep=example_keep(cfg, items))
    result.per_track.to_csv(out_dir / "per_track.csv", index=False)
    result.aggregate.to_csv(out_dir / "aggregate.csv", index=False)
    result.significance.to_csv(out_dir / "significance.csv", index=False)
    result.phase_bands.to_csv(out_dir / "phase_bands.csv", index=False)
    default = default_step_count(cfg)
    enhanced = featured_system(list(systems), default)
    if kept:
        save_examples(kept, cfg, out_dir / "examples", enhanced)
        save_spectrograms(kept, cfg, out_dir / "spectrograms.npz", enhanced)
    seen = separators_in_pairs(cfg.manifest)
    cross = sorted({parse_separator(s)[0] for s in cfg.cross_separators})
    summary = {
        "config": to_dict(cfg),
        "separators_in_training_pairs": None if seen is None else sorted(seen),
        # a cross-separator test is only unseen if its separator made no training pair
        "cross_separators_seen_in_training": None if seen is None else sorted(seen & set(cross)),
        "n_items": {t: int(sum(i.testset == t for i in items)) for t in sorted({i.testset for i in items})},
        "systems": list(systems),
        "default_steps": default,  # the released model's step count when none is given
        "featured_system": enhanced,  # the system of spectrograms.npz
        "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
    }
    (out_dir / "evaluation.json").write_text(json.dumps(summary, indent=2, default=str))
    return result


"""Systems heard next to the mixture, the clean stem and every StemProver step count."""

QUALITY_SWEEP = "quality_sweep"


def _severity(track: str) -> float:
    """``"x@degraded:bleed:severity=0.3"`` -> 0.3 (inf when the track names none)."""
    found = re.search(r"severity=([0-9.]+)", str(track))
    return float(found.group(1)) if found else float("inf")


def example_keep(cfg: Any, items: list) -> Callable[[Any], bool]:
    """Which items are heard: the first of each of ``cfg.example_testsets``, and of a quality
    sweep, when one was evaluated, the first at its mildest severity (a good stem)."""
    wanted = set(cfg.example_testsets) | {t for t in (i.testset for i in items)
                                          if t == QUALITY_SWEEP}
    mildest = min((_severity(i.track) for i in items if i.testset == QUALITY_SWEEP),
                  default=None)
    return lambda item: item.testset in wanted and (
        item.testset != QUALITY_SWEEP or _severity(item.track) == mildest)


def clip_window(audio: np.ndarray, n_samples: int) -> tuple[int, int]:
    """The loudest window of ``n_samples`` in ``(C, N)`` audio (the whole clip if shorter)."""

    return active_excerpt({"x": audio}, n_samples, hop_samples=max(1, n_samples // 8))


def example_clips(item: Any, outputs: dict[str, dict[str, np.ndarray]], stem: str, enhanced: str):
    """Name -> ``(C, N)`` audio of the clips for one item.

    The mixture, the baselines of :data:`CLIP_SYSTEMS`, StemProver at every step count that
    was evaluated (and ``enhanced``), and the clean stem, in :func:`clip_order`.
    """
    names = [*CLIP_SYSTEMS, *(n for n in outputs if n.startswith("stemprover@")), enhanced]
    clips = {"mixture": item.mixture}
    for name in sorted(dict.fromkeys(n for n in names if n in outputs), key=clip_order):
        clips[name] = outputs[name][stem]
    clips["clean"] = item.clean[stem]
    return clips


def example_stems(cfg: Any) -> list[str]:
    """The stems heard in the examples: ``cfg.example_stems``, or every evaluated stem."""
    return list(cfg.example_stems or cfg.stems)


def best_stem(item: Any, stems: list[str]) -> list[str]:
    """The stem whose separated version is closest to its clean one (SI-SDR), as a list."""
    from stemprover.metrics.signal import si_sdr

    scores = {s: si_sdr(item.separated[s], item.clean[s]) for s in stems if s in item.clean}
    return [max(scores, key=scores.get)] if scores else []


def save_examples(kept: dict, cfg: Any, folder: Path, enhanced: str) -> list[Path]:
    """Write 16-bit clips with the channels of the input, trimmed so the folder stays under
    ``cfg.examples_max_mb``. Of a quality sweep, only its best stem is written.

    Args:
        kept: ``{testset: (item, {system: {stem: (C, N)}})}``.
        cfg: An ``EvaluationConfig``.
        folder: Output folder (its old WAVs and index are removed first).
        enhanced: The StemProver system to hear (e.g. ``"stemprover@4"``).

    Returns:
        The written paths.
    """

    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.wav"), *folder.glob("*.flac"), folder / INDEX]:
        old.unlink(missing_ok=True)
    stems = example_stems(cfg)
    sets = {(t, stem): example_clips(item, outs, stem, enhanced)
            for t, (item, outs) in kept.items()
            for stem in (best_stem(item, stems) if t == QUALITY_SWEEP else stems)
            if stem in item.clean}
    n_files = sum(len(c) for c in sets.values())
    sample_rate = next(iter(kept.values()))[0].sample_rate
    channels = max(np.asarray(c["clean"]).shape[0] for c in sets.values()) if sets else 1
    # At most 2 bytes per sample and channel (FLAC compresses below it) plus a header per file.
    budget_s = ((cfg.examples_max_mb * 1e6 - 100 * n_files)
                / (2 * channels * sample_rate * max(n_files, 1)))
    n_samples = int(min(cfg.example_seconds, budget_s, MAX_CLIP_SECONDS) * sample_rate)
    paths, found = [], {}
    for (testset, stem), clips in sets.items():
        start, end = clip_window(clips["clean"], n_samples)
        excerpt = {name: np.asarray(audio)[..., start:end] for name, audio in clips.items()}
        # One gain per example keeps the levels comparable and avoids 16-bit clipping.
        peak = max(float(np.max(np.abs(x))) for x in excerpt.values())
        gain = 0.99 / peak if peak > 0.99 else 1.0
        for name, audio in excerpt.items():
            path = folder / f"{testset}_{stem}_{name.replace('@', '_')}.flac"
            save_audio(path, (gain * audio).astype(np.float32), sample_rate, subtype="PCM_16")
            paths.append(path)
        item = kept[testset][0]
        found[testset, stem] = {"track": item.track, "separator": item.separator,
                                "start_s": round(start / sample_rate, 3)}
    index = index_examples(folder)
    for example in index["examples"]:
        example.update(found.get((example["testset"], example["stem"]), {}))
    order = list(sets)
    index["examples"].sort(key=lambda e: order.index((e["testset"], e["stem"]))
                           if (e["testset"], e["stem"]) in order else len(order))
    target = folder / INDEX
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    tmp.replace(target)
    return paths


def save_spectrograms(kept: dict, cfg: Any, path: Path, enhanced: str) -> Path | None:
    """Write ``spectrograms.npz`` (keys in the module docstring) for the first kept test set."""
    if not kept or not enhanced:
        return None
    testset, (item, outputs) = next(iter(kept.items()))
    if enhanced not in outputs:
        return None
    stem = example_stems(cfg)[0]
    clean = item.clean[stem][0]
    start, end = clip_window(clean[None], int(cfg.spectrogram_seconds * item.sample_rate))
    waves = {
        "separated": item.separated[stem][0, start:end],
        "enhanced": np.asarray(outputs[enhanced][stem])[0, start:end],
        "clean": clean[start:end],
    }
    meta = {"sample_rate": item.sample_rate, "n_fft": cfg.n_fft, "hop_length": cfg.hop_length}
    meta |= {"testset": testset, "track": item.track, "stem": stem, "system": enhanced}
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in waves.items()}
    np.savez_compressed(path, **arrays, **{k: np.asarray(v) for k, v in meta.items()})
    return path
