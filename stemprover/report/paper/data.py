"""Everything the paper quotes, loaded once from ``results/<profile>/``.

:class:`PaperData` reads the stage outputs (05 is required; the others are optional in
the smoke profile and required otherwise) and answers the few questions the text asks:
a system's mean, its gain over the separator output (or over another system) with a CI,
that gain averaged over the four stems with a CI bootstrapped over excerpts (the items of one
excerpt, separated by several separators, are resampled together), and which step count of
StemProver is best on each test set (the highest SI-SDR gain averaged over the stems).
The quality sweep (:data:`SWEEP_TESTSETS`) is not one of :attr:`PaperData.testsets`: it is
read as gain against input SI-SDR (:meth:`PaperData.input_bins`), not as one mean.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from stemprover.errors import StemproverError
from stemprover.metrics.stats import gain_by_input_bin, paired_test, track_excerpt
from stemprover.project.config import load_profile
from stemprover.project.paths import repo_root
from stemprover.report import resultsio as rio
from stemprover.report.resultsio import budget_curves  # the figure's own reading of the curves

NAN = float("nan")
SWEEP_TESTSETS = ("quality_sweep",)
"""Test sets reported by input quality (gain against the input's SI-SDR), not as one mean."""
METRIC_CANDIDATES = {
    "sisdr": ("si_sdr", "sisdr"),
    "sdr": ("sdr",),
    "pesq": ("pesq_wb", "pesq"),
    "stoi": ("stoi", "estoi"),
    "phasehf": ("phase_dev_hf",),
    "phase": ("phase_dev",),
    "lsd": ("lsd",),
}
"""Roles the text refers to -> metric names that can fill them, first match wins."""


@dataclass
class Gain:
    """System minus baseline: mean with a 95% CI (NaN when unknown or with one excerpt) over
    ``n`` items, which are ``n_tracks`` excerpts under ``n_separators`` separators."""

    mean: float
    low: float = NAN
    high: float = NAN
    n: int = 0
    p: float = NAN
    n_tracks: int = 0
    n_separators: int = 0

    @property
    def has_interval(self) -> bool:
        return finite(self.low) and finite(self.high) and self.n_tracks != 1

    def verdict(self, higher: bool = True, alpha: float = 0.05) -> str:
        """``"shown"`` (CI excludes 0 the ``higher`` way and the Wilcoxon p < ``alpha``),
        ``"opposite"`` (the same the other way), ``"inside"`` (the CI contains 0),
        ``"untested"`` (the CI excludes 0 but the test does not reject), or ``"none"``."""
        if not self.has_interval:
            return "none"
        if self.low <= 0 <= self.high:
            return "inside"
        if finite(self.p) and self.p >= alpha:
            return "untested"
        return "shown" if (self.low > 0) == higher else "opposite"

    def resolved(self, higher: bool = True, alpha: float = 0.05) -> bool | None:
        """Whether the gain is shown in the ``higher`` (or lower) direction: its paired CI
        excludes 0 that way and its Wilcoxon p-value, where known, is below ``alpha``.
        None without an interval (one excerpt, or no per-item data)."""
        if not self.has_interval:
            return None
        outside = self.low > 0 if higher else self.high < 0
        return bool(outside and (not finite(self.p) or self.p < alpha))


@dataclass
class PaperData:
    profile: str
    aggregate: pd.DataFrame
    significance: pd.DataFrame | None = None
    per_track: pd.DataFrame | None = None
    ablations: pd.DataFrame | None = None
    separators: pd.DataFrame | None = None  # 01's by_separator.csv
    summary: dict | None = None
    dataset_card: dict | None = None
    budget: pd.DataFrame | None = None  # 03 + 04 budget curves (stemprover.stages.figures.budget_curves)
    params: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)  # stage -> its run.json ({} when it has none)
    missing: list[str] = field(default_factory=list)
    _gains: dict = field(default_factory=dict, repr=False)  # stem_average_gain is bootstrapped

    # ------------------------------------------------------------- naming
    @property
    def testsets(self) -> list[str]:
        """Test sets, the main (synthetic held-out) one first, then in the paper's order."""
        names = [t for t in dict.fromkeys(self.aggregate["testset"]) if t not in SWEEP_TESTSETS]
        order = [self.main_testset, "cross_separator", "real", "musdb"]
        return sorted(names, key=lambda t: (order.index(t) if t in order else len(order), str(t)))

    @property
    def main_testset(self) -> str:
        a = self.aggregate
        return rio.main_testset(a[~a["testset"].isin(SWEEP_TESTSETS)] if set(
            a["testset"]) - set(SWEEP_TESTSETS) else a)

    @property
    def sweep_testsets(self) -> list[str]:
        return [t for t in SWEEP_TESTSETS if t in set(self.aggregate["testset"])]

    def input_bins(self, systems: list[str] | None = None, metric: str | None = None):
        """Gain against input SI-SDR on the quality sweep (:func:`gain_by_input_bin`), or None."""
        sweep, pt = self.sweep_testsets, self.per_track
        metric = metric or self.metric("sisdr")
        if not sweep or pt is None or metric is None:
            return None
        key = ("bins", tuple(systems or ()), metric)
        if key not in self._gains:
            names = systems or [s for s in self.systems if s != "identity"]
            self._gains[key] = gain_by_input_bin(pt[pt["testset"].isin(sweep)], names, metric)
        return self._gains[key]

    @property
    def stems(self) -> list[str]:
        return rio.ordered_stems(self.aggregate)

    @property
    def systems(self) -> list[str]:
        return list(dict.fromkeys(self.aggregate["system"]))

    @property
    def steps(self) -> dict[int, str]:
        return rio.steps_systems(self.aggregate)

    @property
    def main_system(self) -> str:
        """StemProver at its best step count on the main test set (see :meth:`best_steps`)."""
        return self.best_system(self.main_testset)

    def best_steps(self, testset: str) -> int:
        """The step count with the highest SI-SDR gain averaged over the stems on ``testset``.

        Without SI-SDR on that set, the command line's default of 4 steps, or the closest.
        """
        steps = self.steps
        if not steps:
            raise StemproverError("aggregate.csv: no StemProver system (stemprover@K)")
        sisdr = self.metric("sisdr")
        gains = {k: self.stem_average_gain(testset, system, sisdr).mean
                 for k, system in steps.items()} if sisdr else {}
        gains = {k: g for k, g in gains.items() if finite(g)}
        if not gains:
            return min(steps, key=lambda k: (abs(k - 4), k))
        return max(sorted(gains), key=lambda k: gains[k])  # ties: the fewest steps

    def best_system(self, testset: str) -> str:
        return self.steps[self.best_steps(testset)]

    def metric(self, role: str) -> str | None:
        """The aggregate's metric name for a role (``"sisdr"``, ``"pesq"``, ...), or None."""
        for candidate in METRIC_CANDIDATES[role]:
            name = rio.canonical_metric(self.aggregate, candidate)
            if name is not None:
                return name
        return None

    # ------------------------------------------------------------- numbers
    def row(self, testset: str, stem: str, system: str, metric: str | None) -> pd.Series | None:
        a = self.aggregate
        rows = a[
            (a.testset == testset) & (a.stem == stem) & (a.system == system) & (a.metric == metric)
        ]
        return None if rows.empty else rows.iloc[0]

    def mean(self, testset: str, stem: str, system: str, metric: str | None) -> float:
        row = self.row(testset, stem, system, metric)
        return NAN if row is None else float(row["mean"])

    def gain(
        self, testset: str, stem: str, system: str, metric: str | None, baseline: str = "identity"
    ) -> Gain:
        """Paired gain over ``baseline`` (significance.csv when it has it, else mean difference)."""
        sig = self.significance
        if sig is not None and metric is not None:
            rows = sig[
                (sig.testset == testset)
                & (sig.stem == stem)
                & (sig.system == system)
                & (sig.metric == metric)
                & (sig.baseline == baseline)
            ]
            if not rows.empty:
                r = rows.iloc[0]
                p = float(r["p_fdr"]) if "p_fdr" in r else float(r.get("p_value", NAN))
                n_tracks = int(r["n_tracks"]) if "n_tracks" in r and finite(r["n_tracks"]) else 0
                n_seps = (int(r["n_separators"])
                          if "n_separators" in r and finite(r["n_separators"]) else 0)
                low, high = float(r.ci_low), float(r.ci_high)
                if n_tracks == 1 or int(r.n) == 1:  # one excerpt bounds nothing
                    low = high = NAN
                return Gain(float(r.mean_diff), low, high, int(r.n), p, n_tracks, n_seps)
        return Gain(
            self.mean(testset, stem, system, metric) - self.mean(testset, stem, baseline, metric)
        )

    def counts(self, testset: str) -> tuple[int, int, int]:
        """``(items, excerpts, separators)`` of a test set (the separator output's SI-SDR rows)."""
        a = self.aggregate
        rows = a[(a.testset == testset) & (a.system == "identity")]
        sisdr = self.metric("sisdr")
        if sisdr is not None and not rows[rows.metric == sisdr].empty:
            rows = rows[rows.metric == sisdr]
        if rows.empty:
            return 0, 0, 0
        row = rows.loc[rows["n"].idxmax()]
        n = int(row["n"])
        tracks = int(row["n_tracks"]) if "n_tracks" in row and finite(row["n_tracks"]) else 0
        seps = int(row["n_separators"]) if "n_separators" in row and finite(
            row["n_separators"]) else 0
        return n, tracks, seps

    def stem_average_gain(
        self,
        testset: str,
        system: str,
        metric: str | None,
        baseline: str = "identity",
        seed: int = 0,
    ) -> Gain:
        """Gain averaged over the stems; CI bootstrapped over the excerpts of the items that
        have every stem, and the Wilcoxon p-value of the excerpts' mean gains."""
        if metric is None:
            return Gain(NAN)
        key = (testset, system, metric, baseline, seed)
        if key not in self._gains:
            self._gains[key] = self._stem_average_gain(testset, system, metric, baseline, seed)
        return self._gains[key]

    def _stem_average_gain(self, testset: str, system: str, metric: str, baseline: str,
                           seed: int) -> Gain:
        stems = self.stems
        fallback = Gain(
            float(np.mean([self.gain(testset, s, system, metric, baseline).mean for s in stems]))
        )
        pt = self.per_track
        if pt is None:
            return fallback
        keys = ["track", "separator"] if "separator" in pt.columns else ["track"]
        sel = pt[
            (pt.testset == testset) & (pt.metric == metric) & pt.system.isin([system, baseline])
        ]
        wide = sel.pivot_table(
            index=keys, columns=["system", "stem"], values="value", aggfunc="mean"
        )
        try:
            diff = wide[system][stems] - wide[baseline][stems]
        except KeyError:
            return fallback
        per_item = diff.dropna().mean(axis=1)
        if per_item.empty:
            return fallback
        tracks = per_item.index.get_level_values("track")
        test = paired_test(per_item.to_numpy(), np.zeros(len(per_item)), seed=seed,
                           key=("paper", testset, system, metric, baseline),
                           clusters=tracks.map(track_excerpt))
        separators = (per_item.index.get_level_values("separator") if "separator" in keys
                      else tracks.map(lambda t: str(t).split("@", 1)[-1]))
        return Gain(test["mean_diff"], test["ci_low"], test["ci_high"], int(test["n"]),
                    test["p_value"], int(test["n_tracks"]), int(pd.Index(separators).nunique()))


def _read_optional(path: Path, reader, missing: list[str]):
    if not path.is_file():
        missing.append(str(path.relative_to(repo_root())))
        return None
    return reader(path)


def load(profile: str, strict: bool | None = None) -> PaperData:
    """Read every input of the paper for ``profile``.

    Args:
        profile: ``smoke``, ``cpu`` or ``gpu``.
        strict: Raise when an optional input is missing; None means all but smoke.

    Raises:
        StemproverError: ``05_evaluation/aggregate.csv`` (or, when strict, any input) is missing.
    """
    strict = profile != "smoke" if strict is None else strict
    results = repo_root() / "results" / profile
    aggregate = rio.read_aggregate(rio.stage_file(profile, "05_evaluation", "aggregate.csv"))
    missing: list[str] = []
    data = PaperData(profile=profile, aggregate=aggregate, missing=missing)
    evaluation = results / "05_evaluation"
    data.significance = _read_optional(evaluation / "significance.csv", pd.read_csv, missing)
    data.per_track = _read_optional(evaluation / "per_track.csv", pd.read_csv, missing)
    data.ablations = _read_optional(
        results / "06_ablations" / "ablations.csv", pd.read_csv, missing
    )
    data.separators = _read_optional(
        results / "01_phase_analysis" / "by_separator.csv", pd.read_csv, missing
    )
    data.summary = _read_optional(
        results / "07_performance" / "summary.json", rio.read_summary, missing
    )
    data.budget = _read_budget(profile)
    card = results / "02_paired_dataset" / "dataset_card.json"
    data.dataset_card = _read_optional(card, lambda p: json.loads(p.read_text()), missing)
    data.params = load_profile(profile)
    data.runs = rio.stage_runs(results)
    if missing and strict:
        raise StemproverError(f"paper inputs missing for profile {profile}: {', '.join(missing)}")
    for name in missing:
        print(f"paper: note: {name} is missing; its numbers read n/a")
    return data


def _read_budget(profile: str) -> pd.DataFrame | None:
    """The budget curves, or None: results of older runs lack them, and read "not measured"."""

    try:
        return budget_curves(profile)[0]
    except StemproverError as exc:
        print(f"paper: note: no budget curve ({exc}); it reads not measured")
        return None


def finite(value: float) -> bool:
    if value is None:
        return False
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return False
