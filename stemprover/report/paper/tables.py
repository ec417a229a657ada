"""``paper/tables/*.tex``: booktabs tabulars generated from the results (never typed).

Each function returns the body of one ``tabular``; ``main.tex`` wraps it in a ``table``
with its caption and ``\\input``s it by name. Means are the aggregate's; ``[a, b]`` is a
bootstrap 95% confidence interval over tracks.
"""

from __future__ import annotations

import numpy as np

from stemprover.report import resultsio as rio
from stemprover.report.paper.claims import (
    KIND_LABELS,
    MET,
    MISSED,
    Target,
    four_stem_cost,
    interval,
    is_paired,
    one_step_cost,
    training_throughput,
    within_ci,
)
from stemprover.report.paper.data import NAN, PaperData, finite
from stemprover.report.paper.latex import decimals_for, escape, fmt

ORACLES = ("irm1", "irm2", "ibm")


def ordered_systems(data: PaperData) -> list[str]:
    steps = data.steps
    order = ["identity", "postfilter", "regression", *(steps[k] for k in sorted(steps)), *ORACLES]
    return [s for s in order if s in data.systems] + [s for s in data.systems if s not in order]


def _tabular(spec: str, header: list[str], rows: list[list[str]], groups: list[int] = ()) -> str:
    lines = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule", " & ".join(header) + r" \\", "\\midrule"]
    for i, row in enumerate(rows):
        if i in groups and i:
            lines.append("\\midrule")
        lines.append(" & ".join(row) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


SIGNED_ERRORS = ("hfenergyerrordb",)
"""Normalised names of signed errors: the best value is the one closest to zero."""


def _bold_best(cells: list[str], values: list[float], higher: bool | None,
               skip: list[bool]) -> list[str]:
    """Bold the best cell: the highest (``higher``), the lowest (False) or, for a signed
    error (None), the one closest to zero."""
    candidates = [v if finite(v) and not s else np.nan for v, s in zip(values, skip)]
    if np.all(np.isnan(candidates)):
        return cells
    if higher is None:
        best = np.nanargmin(np.abs(candidates))
    else:
        best = np.nanargmax(candidates) if higher else np.nanargmin(candidates)
    return [f"\\textbf{{{c}}}" if i == best else c for i, c in enumerate(cells)]


def _direction(metric: str) -> bool | None:
    """True: higher is better; False: lower is better; None: closest to zero is best."""
    name = rio.norm(metric)
    if name in SIGNED_ERRORS:
        return None
    return name in ("pesqwb", "pesq", "stoi", "estoi")


def _two_lines(label: str, width: int = 11) -> tuple[str, str]:
    """A header label split into two balanced lines (the second empty when it is short)."""
    words = label.split(" ")
    if len(label) <= width or len(words) == 1:
        return label, ""
    cuts = [(abs(len(" ".join(words[:k])) - len(" ".join(words[k:]))), k)
            for k in range(1, len(words))]
    k = min(cuts)[1]
    return " ".join(words[:k]), " ".join(words[k:])


def headline(data: PaperData) -> str:
    """Main test set: SI-SDR and SDR of every system per stem (best non-oracle in bold)."""
    t = data.main_testset
    metrics = [m for m in (data.metric("sisdr"), data.metric("sdr")) if m]
    systems = ordered_systems(data)
    columns = [(stem, m) for stem in data.stems for m in metrics]
    body = [[escape(rio.system_label(s))] for s in systems]
    for stem, metric in columns:
        values = [data.mean(t, stem, s, metric) for s in systems]
        cells = _bold_best(
            [fmt(v, 2) for v in values], values, True, [s in ORACLES for s in systems]
        )
        for row, cell in zip(body, cells):
            row.append(cell)
    top = " & ".join(f"\\multicolumn{{{len(metrics)}}}{{c}}{{{escape(s)}}}" for s in data.stems)
    sub = " & ".join(escape(rio.metric_label(m).replace(" (dB)", "")) for _, m in columns)
    spec = "l" + "r" * len(columns)
    lines = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule", f" & {top} \\\\"]
    lines += [f"system & {sub} \\\\", "\\midrule"]
    for i, row in enumerate(body):
        if systems[i] in ORACLES and (i == 0 or systems[i - 1] not in ORACLES):
            lines.append("\\midrule")
        lines.append(" & ".join(row) + r" \\")
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"]) + "\n"


def gains(data: PaperData) -> str:
    """Gain of StemProver at each test set's best step count over the separator output, with CIs."""
    metrics = [m for m in (data.metric("sisdr"), data.metric("sdr")) if m]
    header = ["test set", "steps", "stem"]
    header += [f"$\\Delta${escape(rio.metric_label(m).replace(' (dB)', ''))} (dB)" for m in metrics]
    header += ["$p_\\mathrm{FDR}$"]
    rows, groups = [], []
    for t in data.testsets:
        groups.append(len(rows))
        system = data.best_system(t)
        _, tracks, separators = data.counts(t)
        size = f" ({tracks} $\\times$ {separators})" if tracks and separators else ""
        for stem in data.stems:
            row = [escape(rio.testset_label(t)) + size, fmt(data.best_steps(t)), escape(stem)]
            p = NAN
            for m in metrics:
                g = data.gain(t, stem, system, m)
                ci = (
                    f" [{fmt(g.low, 2, True)}, {fmt(g.high, 2, True)}]"
                    if finite(g.low) and finite(g.high)
                    else ""
                )
                row.append(fmt(g.mean, 2, True) + ci)
                p = g.p if finite(g.p) and not finite(p) else p
            rows.append([*row, fmt(p, 3)])
    return _tabular("lrl" + "r" * (len(metrics) + 1), header, rows, groups)


def quality(data: PaperData) -> str:
    """Main test set: the other metrics of every system (mean over stems; PESQ/STOI vocals)."""
    t = data.main_testset
    roles = [("pesq", True), ("stoi", True), ("lsd", False), ("phase", False), ("phasehf", False)]
    extra = [
        m
        for m in dict.fromkeys(data.aggregate.metric)
        if rio.norm(m) in ("mrstft", "hfenergyerrordb")
    ]
    metrics = [(data.metric(r), v) for r, v in roles if data.metric(r)] + [
        (m, False) for m in extra
    ]
    systems = ordered_systems(data)
    body = [[escape(rio.system_label(s))] for s in systems]
    for metric, vocals_only in metrics:
        stems = ["vocals"] if vocals_only else data.stems
        values = [
            float(np.nanmean([data.mean(t, st, s, metric) for st in stems] or [NAN]))
            if any(finite(data.mean(t, st, s, metric)) for st in stems)
            else NAN
            for s in systems
        ]
        cells = [fmt(v, decimals_for(metric)) for v in values]
        cells = _bold_best(cells, values, _direction(metric), [s in ORACLES for s in systems])
        for row, cell in zip(body, cells):
            row.append(cell)
    # two header lines keep the table at the text's width without shrinking its font
    labels = [_two_lines(rio.metric_label(m) + (" (voc.)" if v else "")) for m, v in metrics]
    lines = ["\\begin{tabular}{l" + "r" * len(metrics) + "}", "\\toprule",
             " & ".join(["", *(escape(a) for a, _ in labels)]) + r" \\",
             " & ".join(["system", *(escape(b) for _, b in labels)]) + r" \\", "\\midrule"]
    lines += [" & ".join(row) + r" \\" for row in body]
    return "\n".join([*lines, "\\bottomrule", "\\end{tabular}"]) + "\n"


def ablations(data: PaperData) -> str:
    """One row per ablation setting: SI-SDR with CI, phase deviation, LSD, training time."""
    table = data.ablations
    if table is None or table.empty:
        return _tabular("l", ["no ablation results in this run"], [])
    factor = next(c for c in ("factor", "ablation", "group") if c in table.columns)
    setting = next(c for c in ("setting", "variant", "name") if c in table.columns)
    numeric = [c for c in ("si_sdr", "phase_dev", "lsd", "train_seconds") if c in table.columns]
    header = ["factor", "setting"] + [
        escape(rio.metric_label(c)) if c != "train_seconds" else "train (s)" for c in numeric
    ]
    reference = _reference_si_sdr(table, factor)
    if reference is not None:
        paired = rio.has_paired(table)
        header.append("$\\Delta$ vs.\\ reference [paired CI]" if paired else "vs.\\ reference")
    rows, groups, last = [], [], None
    for r in table.itertuples(index=False):
        r = r._asdict()
        if r[factor] != last:
            groups.append(len(rows))
            last = r[factor]
        row = [escape(str(r[factor]).replace("_", " ")), escape(r[setting])]
        for c in numeric:
            cell = fmt(float(r[c]), 0 if c == "train_seconds" else decimals_for(c))
            low, high = r.get(f"{c}_ci_low"), r.get(f"{c}_ci_high")
            if low is not None and high is not None and finite(float(low)) and finite(float(high)):
                cell += f" [{fmt(float(low), 2)}, {fmt(float(high), 2)}]"
            row.append(cell)
        if reference is not None:
            row.append(_versus_reference(r, factor, reference))
        rows.append(row)
    return _tabular("ll" + "r" * len(numeric) + ("l" if reference is not None else ""),
                    header, rows, groups)


def _reference_si_sdr(table, factor: str) -> float | None:
    if "si_sdr" not in table.columns:
        return None
    ref = table[table[factor] == "reference"]
    return float(ref["si_sdr"].iloc[0]) if not ref.empty else None


def _versus_reference(r: dict, factor: str, reference: float) -> str:
    """The row's paired difference from the row it is paired with (``versus``: the reference,
    or another row, which the cell then names) with its 95% CI; for a table without one,
    whether the row's SI-SDR differs from the reference by less than its own 95% CI. A row of
    a table with ``versus`` that is paired with nothing gets no cell: its items differ from
    the reference's."""
    versus = r.get("versus", "reference")
    versus = versus if isinstance(versus, str) else ""
    if not versus:
        return ""
    bounds = {"ci_low": r.get("si_sdr_ci_low", NAN), "ci_high": r.get("si_sdr_ci_high", NAN),
              "delta_ci_low": r.get("delta_ci_low", NAN),
              "delta_ci_high": r.get("delta_ci_high", NAN)}
    bounds = {k: float(v) for k, v in bounds.items()}
    if r[factor] == "reference" or (r[factor] == "baseline" and not is_paired(bounds)):
        return ""
    if versus != "reference" and not is_paired(bounds):
        return "no paired CI"
    if is_paired(bounds):  # the difference itself, with its paired interval
        partner = "" if versus == "reference" else f" vs.\\ {escape(versus.split('=')[-1])}"
        return (f"{fmt(float(r.get('delta_si_sdr', NAN)), 2, True)} "
                f"{interval(bounds['delta_ci_low'], bounds['delta_ci_high'])}{partner}")
    return {True: "within CI", False: "outside CI", None: "no CI"}[within_ci(bounds, reference)]


def performance(data: PaperData) -> str:
    """Real-time factor per number of steps, peak memory and cost relative to HTDemucs."""
    s = data.summary
    if not s:
        return _tabular("l", ["no performance results in this run"], [])
    rows = [
        [f"real-time factor, {k} step{'s' if k > 1 else ''}", fmt(v, 3)]
        for k, v in sorted(s["rtf"].items())
    ]
    peak = s["peak_mem_mb"]
    peak = max(peak.values()) if isinstance(peak, dict) and peak else peak
    rows.append(["peak memory (MB)", fmt(float(peak), 0)])
    sep = rio.separator_rtf(s)
    if sep is not None:
        rows.append(["HTDemucs separation, real-time factor", fmt(sep, 3)])
    rows.append(["enhancement (1 step) / HTDemucs time", fmt(one_step_cost(s), 2)])
    four_stems, _ = four_stem_cost(s)
    if finite(four_stems):
        rows.append(["four stems + projection / HTDemucs time", fmt(four_stems, 2)])
    training = (s.get("training") or {}).get("kinds") or {}
    for kind, row in training.items():
        label = escape(KIND_LABELS.get(kind, kind))
        rows.append([f"training, {label}: audio s per s", fmt(float(row["audio_s_per_s"]), 2)])
        rows.append([f"training, {label}: GFLOP per audio s",
                     fmt(float(row["flops_per_audio_second"]) / 1e9, 1)])
    previous = (s.get("training") or {}).get("previous_release_audio_s_per_s")
    if training and previous is not None:
        rows.append(["training, previous release: audio s per s", fmt(float(previous), 1)])
    elif not finite(training_throughput(s)[0]):
        rows.append(["training throughput", fmt(NAN)])
    return _tabular("lr", [f"on {escape(s['device'])}", "value"], rows)


def targets(found: list[Target]) -> str:
    mark = {MET: "\\textcolor{metcolor}{met}", MISSED: "\\textcolor{missedcolor}{missed}"}
    rows = [[x.what, x.criterion, x.measured, mark.get(x.status, "not measured")] for x in found]
    # wrapped columns that sum (with the column gaps) to less than the text width
    wrap = ">{\\raggedright\\arraybackslash}p{%s\\linewidth}"
    spec = "".join(wrap % w for w in ("0.28", "0.19", "0.29")) + "l"
    return _tabular(spec, ["target", "criterion", "measured", "status"], rows)


def separators(data: PaperData) -> str:
    """Stage 01: each separator's SI-SDR, magnitude error, phase deviation and detector scores."""
    table = data.separators
    if table is None or table.empty:
        return _tabular("l", ["no phase analysis results in this run"], [])
    scores = [c for c in table.columns if c.startswith("score_")]
    columns = [c for c in ("si_sdr", "mag_error_db", "phase_dev") if c in table.columns]
    labels = {
        "si_sdr": "SI-SDR (dB)",
        "mag_error_db": "mag. error (dB)",
        "phase_dev": "phase dev. (rad)",
    }
    header = ["separator", *(labels[c] for c in columns)]
    header += [escape(c.removeprefix("score_").replace("_", " ")) for c in scores]
    rows = []
    for r in table.itertuples(index=False):
        r = r._asdict()
        cells = [fmt(float(r[c]), 3 if c == "phase_dev" else 1) for c in columns]
        values = [float(r[c]) for c in scores]
        marks = _bold_best([fmt(v, 2) for v in values], values, True, [False] * len(values))
        rows.append([escape(r["separator"]), *cells, *marks])
    return _tabular("l" + "r" * (len(columns) + len(scores)), header, rows)


def provenance(data: PaperData) -> str:
    """Each stage of the run: the code commit it ran at and when it started (its run.json)."""
    rows = []
    for stage, run in data.runs.items():
        commit = run.get("code_commit")
        started = str(run.get("started", ""))[:16].replace("T", " ")
        rows.append([escape(stage), f"\\texttt{{{escape(commit)}}}" if commit else "not recorded",
                     escape(started) if started else "not recorded"])
    return _tabular("lll", ["stage", "code commit", "started (UTC)"], rows)


def all_tables(data: PaperData, found: list[Target]) -> dict[str, str]:
    """``{file stem: tabular}`` for every generated table."""
    return {
        "separators": separators(data),
        "headline": headline(data),
        "gains": gains(data),
        "quality": quality(data),
        "ablations": ablations(data),
        "performance": performance(data),
        "targets": targets(found),
        "provenance": provenance(data),
    }
