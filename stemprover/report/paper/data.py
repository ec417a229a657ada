"""Everything the paper quotes, loaded once from ``results/<profile>/``.

:class:`PaperData` reads the stage outputs (05 is required; the others are optional in
the smoke profile and required otherwise) and answers the few questions the text asks:
a system's mean, its gain over the separator output with a CI, that gain averaged
over the four stems with a CI bootstrapped over tracks, and which step count of StemProver
is best on each test set (the highest SI-SDR gain averaged over the stems).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from stemprover.errors import StemproverError
from stemprover.metrics.stats import bootstrap_ci
from stemprover.project.config import load_profile
from stemprover.project.paths import repo_root
from stemprover.report import resultsio as rio
from stemprover.report.resultsio import budget_curves  # the figure's own reading of the curves

NAN = float("nan")
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
    """System minus baseline: mean with a 95% CI (NaN when unknown) over ``n`` tracks."""

    mean: float
    low: float = NAN
    high: float = NAN
    n: int = 0
    p: float = NAN


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
        names = list(dict.fromkeys(self.aggregate["testset"]))
        order = [self.main_testset, "cross_separator", "real", "musdb"]
        return sorted(names, key=lambda t: (order.index(t) if t in order else len(order), str(t)))

    @property
    def main_testset(self) -> str:
        return rio.main_testset(self.aggregate)

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
        if sig is not None and baseline == "identity" and metric is not None:
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
                return Gain(float(r.mean_diff), float(r.ci_low), float(r.ci_high), int(r.n), p)
        return Gain(
            self.mean(testset, stem, system, metric) - self.mean(testset, stem, baseline, metric)
        )

    def stem_average_gain(
        self,
        testset: str,
        system: str,
        metric: str | None,
        baseline: str = "identity",
        seed: int = 0,
    ) -> Gain:
        """Gain averaged over the stems; CI bootstrapped over tracks that have every stem."""
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
        per_track = diff.dropna().mean(axis=1).to_numpy()
        mean, low, high, n = bootstrap_ci(
            per_track, seed=seed, key=("paper", testset, system, metric)
        )
        return Gain(mean, low, high, n) if n else fallback


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
    return value is not None and not (isinstance(value, float) and math.isnan(value))
