"""``paper/generated/numbers.tex``: one ``\\newcommand`` for every number the paper quotes.

Macro names are letters only (TeX control words): ``macro_name("synthetic", "vocals",
"stemprover@4", "si_sdr")`` is ``spSyntheticVocalsStemproverFourSiSdr``; digits are
spelled out. Values are typeset with a fixed number of decimals per metric, a true minus
sign and ``n/a`` for anything the run did not measure.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from stemprover.bench.throughput import KINDS, PREVIOUS_RELEASE_AUDIO_S_PER_S
from stemprover.project.paths import repo_root
from stemprover.project.provenance import code_commit
from stemprover.report import resultsio as rio
from stemprover.report.paper.claims import (
    four_stem_cost,
    model_sizes,
    one_step_cost,
    training_target,
    training_throughput,
)
from stemprover.report.paper.data import NAN, PaperData
from stemprover.report.paper.latex import Macros, decimals_for, escape, fmt, macro_name


def git_hash() -> str:
    """The code commit the paper is built from (see :mod:`stemprover.project.provenance`)."""

    return code_commit()


def add_gain(macros: Macros, parts: list[object], gain, decimals: int) -> None:
    macros.add(parts, fmt(gain.mean, decimals, signed=True))
    macros.add([*parts, "low"], fmt(gain.low, decimals, signed=True))
    macros.add([*parts, "high"], fmt(gain.high, decimals, signed=True))
    macros.add([*parts, "n"], fmt(int(gain.n)))


def build_numbers(data: PaperData) -> Macros:
    """Every macro except the targets and claims (see :mod:`stemprover.report.paper.claims`)."""
    m = Macros()
    m.add("profile", escape(data.profile))
    m.add("git hash", escape(git_hash()))
    m.add("results commit", escape(rio.results_commit(repo_root() / "results" / data.profile)))
    m.add("build date", datetime.now(UTC).strftime("%Y-%m-%d"))
    for row in data.aggregate.itertuples():
        parts = [row.testset, row.stem, row.system, row.metric]
        d = decimals_for(row.metric)
        m.add(parts, fmt(float(row.mean), d))
        m.add([*parts, "low"], fmt(float(row.ci_low), d))
        m.add([*parts, "high"], fmt(float(row.ci_high), d))
        m.add([*parts, "n"], fmt(int(row.n)))
    if data.significance is not None:
        sig = data.significance
        baselines = sig["baseline"] if "baseline" in sig.columns else ["identity"] * len(sig)
        for r, baseline in zip(sig.itertuples(), baselines):
            d = decimals_for(r.metric)
            # against the separator output: spGain...; against another system: spGain...Vs...
            versus = [] if baseline == "identity" else ["vs", baseline]
            parts = ["gain", r.testset, r.stem, r.system, *versus, r.metric]
            add_gain(m, parts, data.gain(r.testset, r.stem, r.system, r.metric, baseline), d)
            m.add([*parts, "p"], fmt(float(r.p_fdr), 3))
    for testset in data.testsets:
        n_items, n_tracks, n_separators = data.counts(testset)
        m.add(["n items", testset], fmt(int(n_items)))
        m.add(["n tracks", testset], fmt(int(n_tracks)) if n_tracks else fmt(NAN))
        m.add(["n separators", testset], fmt(int(n_separators)) if n_separators else fmt(NAN))
        m.add(["best steps", testset], fmt(int(data.best_steps(testset))))
        for system in data.systems:
            if system == "identity":
                continue
            for role in ("sisdr", "sdr", "phasehf"):
                metric = data.metric(role)
                if metric is not None:
                    gain = data.stem_average_gain(testset, system, metric)
                    add_gain(m, ["avg gain", testset, system, metric], gain, decimals_for(metric))
    m.add("steps evaluated", ", ".join(str(k) for k in sorted(data.steps)))
    add_sizes(m, data)
    m.add("n testsets", fmt(len(data.testsets)))
    m.add("n stems", fmt(len(data.stems)))
    add_performance(m, data)
    add_config(m, data)
    return m


def add_sizes(m: Macros, data: PaperData) -> None:
    """``\\spSize<Model>Parameters`` and ``...Gflops``: 04's record of both models' sizes."""
    sizes = model_sizes(data) or {}
    for name in ("stemprover", "regression"):
        row = sizes.get(name) or {}
        count = row.get("parameters")
        m.add(["size", name, "parameters"], fmt(int(count)) if count is not None else fmt(NAN))
        m.add(["size", name, "gflops"], fmt(float(row.get("gflops_per_audio_second", NAN)), 1))


def add_performance(m: Macros, data: PaperData) -> None:
    s = data.summary or {}
    rtf = s.get("rtf", {})
    for steps in sorted(rtf):
        m.add(["rtf steps", steps], fmt(float(rtf[steps]), 3))
    main_steps = min(rtf, key=lambda k: (abs(k - 4), k)) if rtf else None
    m.add("rtf main", fmt(float(rtf[main_steps]) if rtf else NAN, 3))
    m.add("rtf main steps", fmt(int(main_steps)) if rtf else r"\textit{n/a}")
    peak = s.get("peak_mem_mb", NAN)
    peak = max(peak.values()) if isinstance(peak, dict) and peak else peak
    m.add("peak mem mb", fmt(float(peak), 0))
    m.add("separator cost ratio", fmt(float(s.get("separator_cost_ratio") or NAN), 2))
    m.add("separator cost ratio one step", fmt(one_step_cost(s), 2))
    m.add("four stem separator ratio", fmt(four_stem_cost(s)[0], 2))
    sep = s.get("separator_rtf", s.get("htdemucs_rtf"))
    m.add("separator rtf", fmt(float(sep) if sep is not None else NAN, 3))
    m.add("perf device", escape(s.get("device", "n/a")))
    m.add("separator description", escape(s.get("separator", "HTDemucs")))
    clip = s.get("clip_seconds")
    m.add("clip seconds", f"{float(clip):g}" if clip is not None else r"\textit{n/a}")
    rate = s.get("clip_sample_rate")
    m.add("clip sample rate", fmt(int(rate)) if rate is not None else r"\textit{n/a}")
    add_training(m, s)


def add_training(m: Macros, summary: dict) -> None:
    """``\\spTrain...``: 07's training throughput per stage, the headline and the reference."""

    training = summary.get("training") or {}
    kinds = training.get("kinds") or {}
    for kind in KINDS:
        row = kinds.get(kind, {})
        m.add(["train", kind, "audio per second"], fmt(float(row.get("audio_s_per_s", NAN)), 2))
        gflops = float(row.get("flops_per_audio_second", NAN)) / 1e9
        m.add(["train", kind, "gflops per audio second"], fmt(gflops, 1))
    value, flops, _ = training_throughput(summary)
    m.add("train audio per second", fmt(value, 2))
    m.add("train gflops per audio second", fmt(flops / 1e9, 1))
    previous = float(training.get("previous_release_audio_s_per_s",
                                  PREVIOUS_RELEASE_AUDIO_S_PER_S))
    m.add("train previous audio per second", fmt(previous, 1))
    m.add("train target audio per second", fmt(training_target(summary), 1))
    m.add("train speedup", fmt(value / previous, 1))


def add_config(m: Macros, data: PaperData) -> None:
    """``\\spCfg<Section><Key>`` per profile YAML scalar, ``\\spData<Key>`` per card entry."""
    for section, values in data.params.items():
        for key, value in (values or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                continue
            if isinstance(value, str):
                body = escape(value)
            else:
                body = f"{value:g}"  # config values read best as written in the YAML
                body = body.replace("-", "\\ensuremath{-}")
            m.add(["cfg", section, key], body)
    card = data.dataset_card or {}
    for key, value in _flatten(card):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        name = macro_name("data", *key)
        # Card keys are free text (separator specs, severities): two may spell one macro name;
        # the first is kept, and the text quotes only the top-level counts.
        if name not in m:
            m[name] = fmt(value) if isinstance(value, int) else fmt(value, 2)


def _flatten(tree: dict, prefix: tuple = ()) -> Iterable[tuple[tuple, object]]:
    for key, value in tree.items():
        if isinstance(value, dict) and len(prefix) < 2:
            yield from _flatten(value, (*prefix, key))
        elif not isinstance(value, (dict, list)):
            yield (*prefix, key), value
