"""The paper's claims, written from the numbers: targets met or missed, and the sentences.

Every sentence whose truth depends on a result is generated here as a conditional, so the
text cannot claim more than the run shows: if the regression U-Net beats diffusion, the
sentence says so, and by how much. The targets are those of the project's headline run:
StemProver against the separator output on each test set at its best step count (the one
with the highest SI-SDR gain averaged over the stems), and the speed of enhancement and of
training measured by 07.

A target that claims an improvement is met only when its paired 95% interval (a cluster
bootstrap over excerpts, :mod:`stemprover.metrics.stats`) excludes zero in the right
direction, and a difference inside its interval is never called a win. StemProver's gain is
always stated beside its parts: the mixture projection alone (``postfilter``), the model
alone (``bridge``) and the two in cascade (``stemprover@K``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stemprover.bench.throughput import PREVIOUS_RELEASE_AUDIO_S_PER_S, TARGET_SPEEDUP
from stemprover.constants import ADAPTERS
from stemprover.errors import StemproverError
from stemprover.metrics.stats import ALL_STEMS
from stemprover.project.paths import repo_root
from stemprover.report import resultsio as rio
from stemprover.report.paper.data import NAN, PaperData, finite
from stemprover.report.paper.latex import Macros, escape, fmt

MET, MISSED, NOT_MEASURED = "met", "missed", "not measured"


@dataclass
class Target:
    key: str  # macro name part
    what: str  # LaTeX description
    criterion: str  # LaTeX
    measured: str  # LaTeX
    status: str  # MET, MISSED or NOT_MEASURED


def _status(ok: bool | None) -> str:
    return NOT_MEASURED if ok is None else (MET if ok else MISSED)


def _ci(gain, decimals: int) -> str:
    if not gain.has_interval:
        return ""
    return f" [{fmt(gain.low, decimals, True)}, {fmt(gain.high, decimals, True)}]"


def _steps_text(k: int) -> str:
    return f"{k} step{'s' if k != 1 else ''}"


def _gains_by_stem(data: PaperData, testset: str, system: str, metric: str | None) -> dict:
    gains = {s: data.gain(testset, s, system, metric).mean for s in data.stems}
    return {s: v for s, v in gains.items() if finite(v)}


def _worst_stem(data: PaperData, testset: str, system: str, metric: str | None,
                floor: float = 0.0) -> tuple[str, bool | None, str]:
    """(measured text, met or None, worst stem) of "no stem's gain below ``floor``"."""
    gains = _gains_by_stem(data, testset, system, metric)
    if not gains:
        return fmt(NAN), None, ""
    worst = min(gains, key=gains.get)
    return (f"{fmt(gains[worst], 2, True)} dB ({escape(worst)})", gains[worst] >= floor, worst)


def one_step_cost(summary: dict | None) -> float:
    """Enhancement time at one step over HTDemucs separation time, from 07's summary.

    Newer summaries store it per step count; older ones only the RTFs, whose ratio is the same.
    """
    s = summary or {}
    ratios = s.get("separator_cost_ratios") or {}
    if "1" in ratios or 1 in ratios:
        return float(ratios.get("1", ratios.get(1)))
    if s.get("separator_cost_ratio_steps") == 1 and s.get("separator_cost_ratio") is not None:
        return float(s["separator_cost_ratio"])
    rtf, separator = s.get("rtf", {}).get(1), rio.separator_rtf(s) if s else None
    return float(rtf / separator) if rtf is not None and separator else NAN


def training_throughput(summary: dict | None) -> tuple[float, float, str | None]:
    """(audio-s per s of the slowest StemProver stage, FLOPs per audio second, stage), or NaNs."""
    training = (summary or {}).get("training") or {}
    value = training.get("audio_s_per_s")
    flops = training.get("flops_per_audio_second")
    return (float(value) if value is not None else NAN,
            float(flops) if flops is not None else NAN, training.get("headline_kind"))


def training_target(summary: dict | None) -> float:
    training = (summary or {}).get("training") or {}
    previous = training.get("previous_release_audio_s_per_s", PREVIOUS_RELEASE_AUDIO_S_PER_S)
    return TARGET_SPEEDUP * float(previous)


def _resolved_text(g, higher: bool = True) -> str:
    """``", CI includes 0"`` and the like: why an improvement is or is not resolved."""
    verdict = g.verdict(higher)
    if verdict == "none":
        return ", no CI (one track)" if g.n_tracks == 1 or g.n == 1 else ", no CI"
    if verdict == "inside":
        return ", CI includes 0"
    if verdict == "untested":
        return f", Wilcoxon $p$ = {fmt(g.p, 2)}"
    return f", Wilcoxon $p$ = {fmt(g.p, 3)}" if finite(g.p) else ""


def _improved(g, threshold: float, higher: bool = True) -> bool | None:
    """Met: the mean passes ``threshold`` and the paired CI excludes 0 the right way."""
    if not finite(g.mean):
        return None
    passes = g.mean >= threshold if higher else g.mean < threshold
    return bool(passes and g.resolved(higher))


def targets(data: PaperData) -> list[Target]:
    """The targets, each measured on this profile's results at each test set's best step count.

    Targets that claim an improvement (SI-SDR, PESQ, phase, against the baselines, cross
    separator) are met only when the paired CI excludes 0 in the right direction.
    """
    t = data.main_testset
    main, k_main = data.best_system(t), data.best_steps(t)
    tset = escape(rio.testset_label(t))
    sisdr, sdr, pesq, phase = (data.metric(r) for r in ("sisdr", "sdr", "pesq", "phasehf"))
    at = f", {_steps_text(k_main)}"
    out = []
    g = data.stem_average_gain(t, main, sisdr)
    out.append(Target(
        "sisdr", f"{tset}: SI-SDR gain, mean of the stems", r"$\geq +2$ dB, CI above 0",
        fmt(g.mean, 2, True) + " dB" + _ci(g, 2) + _resolved_text(g) + at,
        _status(_improved(g, 2.0))))
    measured, ok, _ = _worst_stem(data, t, main, sisdr)
    out.append(Target("stems", f"{tset}: SI-SDR gain, worst stem", r"$\geq 0$ dB on every stem",
                      measured + at, _status(ok)))
    measured, ok, _ = _worst_stem(data, t, main, sdr)
    out.append(Target("sdr", f"{tset}: museval SDR gain, worst stem", r"$\geq 0$ dB on every stem",
                      measured + at, _status(ok)))
    deltas = {name: data.stem_average_gain(t, main, sisdr, baseline=name)
              for name in BASELINE_LABELS if name in data.systems}
    present = {name: d for name, d in deltas.items() if finite(d.mean)}
    ok = None
    if present:
        wins = [bool(_improved(d, 0.0)) for d in present.values()]
        if not all(wins):
            ok = False
        elif len(present) == len(BASELINE_LABELS):
            ok = True
    out.append(Target(
        "baselines", f"{tset}: against the regression U-Net and the post-filter",
        "higher SI-SDR than both, paired CI above 0",
        ", ".join(f"{fmt(d.mean, 2, True)} dB{_ci(d, 2)} over the "
                  f"{escape(BASELINE_LABELS[n])}{_resolved_text(d)}"
                  for n, d in present.items()) + at if present else fmt(NAN),
        _status(ok)))
    out.append(_testset_gain_target(data, "cross_separator", sisdr))
    out.append(_real_target(data, sisdr))
    p = data.gain(t, "vocals", main, pesq)
    out.append(Target(
        "pesq", f"{tset}: PESQ-WB gain on vocals", r"$\geq +0.2$, CI above 0",
        fmt(p.mean, 2, True) + _ci(p, 2) + _resolved_text(p) + at,
        _status(_improved(p, 0.2))))
    before, after = _stem_mean(data, t, "identity", phase), _stem_mean(data, t, main, phase)
    change = data.stem_average_gain(t, main, phase)
    out.append(Target(
        "phase", f"{tset}: phase deviation above 4 kHz, mean of the stems",
        "below the separator output, CI below 0",
        f"{fmt(before, 3)} $\\to$ {fmt(after, 3)} rad" + (
            f" (change{_ci(change, 3)}{_resolved_text(change, higher=False)})"
            if finite(change.mean) else "") + at,
        _status(_improved(change, 0.0, higher=False) if finite(before) and finite(after)
                else None)))
    out.append(cost_target(data.summary))
    s = data.summary or {}
    device = escape(str(s.get("device", "n/a")))
    value, _, kind = training_throughput(s)
    target = training_target(s)
    out.append(Target(
        "training", "training throughput (audio seconds per second)",
        f"$\\geq$ {fmt(target, 1)} (ten times the previous release)",
        f"{fmt(value, 2)}" + (f" ({escape(KIND_LABELS.get(kind, kind))}, {device})" if kind else ""),
        _status(value >= target if finite(value) else None)))
    return out


def four_stem_cost(summary: dict | None) -> tuple[float, int | None]:
    """07's four stems plus the projection over one HTDemucs separation of the same clip,
    and its step count (None when not recorded); NaN when the summary predates it."""
    s = summary or {}
    ratio = s.get("four_stem_separator_ratio")
    steps = s.get("four_stem_separator_ratio_steps", s.get("separator_cost_ratio_steps"))
    return (float(ratio) if ratio is not None else NAN), (int(steps) if steps else None)


def same_clip(summary: dict | None) -> bool:
    """Whether 07 timed HTDemucs on the clip it timed enhancement on."""
    s = summary or {}
    sep, clip = s.get("separator_clip_seconds"), s.get("clip_seconds")
    return sep is None or clip is None or float(sep) == float(clip)


def cost_target(summary: dict | None) -> Target:
    """The four-stem path (four stems plus the projection) against one HTDemucs separation
    of the same clip; an older summary without it is reported, not checked."""
    s = summary or {}
    device = escape(str(s.get("device", "n/a")))
    what = ("enhancing all four stems plus the mixture projection, relative to one HTDemucs "
            "separation of the same clip (same CPU)")
    ratio, steps = four_stem_cost(s)
    if finite(ratio):
        at = f", {_steps_text(steps)}" if steps else ""
        return Target("cost", what, r"$\leq 0.5$", f"{fmt(ratio, 2)}{at} ({device})",
                      _status(ratio <= 0.5 if "cpu" in str(s.get("device", "")).lower()
                              else None))
    one = one_step_cost(s)
    if not finite(one):
        return Target("cost", what, r"$\leq 0.5$", fmt(NAN), NOT_MEASURED)
    clips = ("" if same_clip(s) else
             f", HTDemucs timed on {fmt(float(s['separator_clip_seconds']), 0)}~s and "
             f"enhancement on {fmt(float(s['clip_seconds']), 0)}~s")
    return Target("cost", what, r"$\leq 0.5$",
                  f"not timed; one stem at one step without the projection: {fmt(one, 2)}"
                  f"{clips} ({device})", NOT_MEASURED)


KIND_LABELS = {"base": "base pretraining", "control_lora": "control + LoRA",
               "regression": "regression U-Net"}
BASELINE_LABELS = {"regression": "regression U-Net", "postfilter": "post-filter"}


def _testset_gain_target(data: PaperData, testset: str, sisdr: str | None) -> Target:
    name = escape(rio.testset_label(testset))
    if testset not in data.testsets:
        return Target("cross", f"{name}: SI-SDR gain, mean of the stems", r"$\geq +1$ dB",
                      fmt(NAN), NOT_MEASURED)
    k = data.best_steps(testset)
    g = data.stem_average_gain(testset, data.best_system(testset), sisdr)
    return Target("cross", f"{name}: SI-SDR gain, mean of the stems",
                  r"$\geq +1$ dB, CI above 0",
                  fmt(g.mean, 2, True) + " dB" + _ci(g, 2) + _resolved_text(g)
                  + f", {_steps_text(k)}", _status(_improved(g, 1.0)))


def _real_target(data: PaperData, sisdr: str | None) -> Target:
    what, criterion = "real track: SI-SDR gain, worst stem", r"$\geq 0$ dB on every stem"
    if "real" not in data.testsets:
        return Target("real", what, criterion, fmt(NAN), NOT_MEASURED)
    k = data.best_steps("real")
    measured, ok, _ = _worst_stem(data, "real", data.best_system("real"), sisdr)
    n, tracks, separators = data.counts("real")
    size = f", {_tracks_text(tracks, separators, n)}" if n else ""
    return Target("real", what, criterion, f"{measured}, {_steps_text(k)}{size}", _status(ok))


def _tracks_text(tracks: int, separators: int, n: int = 0) -> str:
    """``6 tracks $\\times$ 4 separators`` (``n items`` when the counts are not recorded)."""
    if tracks and separators:
        return (f"{fmt(tracks)}~track{'s' if tracks != 1 else ''} $\\times$ "
                f"{fmt(separators)}~separator{'s' if separators != 1 else ''}")
    return f"{fmt(n)}~item{'s' if n != 1 else ''}" if n else ""


def _stem_mean(data: PaperData, testset: str, system: str, metric: str | None) -> float:
    values = [data.mean(testset, s, system, metric) for s in data.stems]
    values = [v for v in values if finite(v)]
    return float(np.mean(values)) if values else NAN


def claims(data: PaperData, found: list[Target]) -> Macros:
    """``\\spClaim...`` sentences and ``\\spTarget...`` cells for the text and tables."""
    m = Macros()
    for target in found:
        m.add(["target", target.key, "measured"], target.measured)
        m.add(["target", target.key, "status"], target.status)
    checked = [x for x in found if x.status != NOT_MEASURED]
    n_met = sum(x.status == MET for x in checked)
    m.add("targets checked", fmt(len(checked)))
    m.add("targets met", fmt(n_met))
    m.add("targets total", fmt(len(found)))
    t, main = data.main_testset, data.main_system
    sisdr, sdr, pesq, phase = (data.metric(r) for r in ("sisdr", "sdr", "pesq", "phasehf"))
    label = escape(rio.system_label(main))
    tset = escape(rio.testset_label(t))
    m.add("main system", label)
    m.add("main testset", tset)
    m.add("claim headline", _headline_sentence(data, found, sisdr))
    m.add("claim abstract", _abstract_sentence(data, found, sisdr))
    gains = {s: data.gain(t, s, main, sdr).mean for s in data.stems}
    losses = {s: v for s, v in gains.items() if finite(v) and v < 0}
    m.add(
        "claim sdr",
        (
            f"Its museval SDR does not fall on any stem (smallest gain "
            f"{fmt(min(gains.values()), 2, True)}~dB)."
            if gains and not losses
            else f"Its museval SDR falls on {len(losses)} of the {len(gains)} stems ("
            + ", ".join(f"{escape(s)} {fmt(v, 2, True)}~dB" for s, v in losses.items())
            + "), so the target of no SDR loss on any stem is missed."
            if losses
            else "museval SDR was not measured in this run."
        ),
    )
    p = data.gain(t, "vocals", main, pesq)
    met = {x.key: x.status for x in found}
    m.add(
        "claim pesq",
        (
            f"On vocals, PESQ-WB changes by {fmt(p.mean, 2, True)}{_ci_text(p, 2)}, "
            f"{'meeting' if met.get('pesq') == MET else 'missing'} the target of +0.2 "
            "with a paired interval above zero."
            if finite(p.mean)
            else "PESQ-WB on vocals was not measured in this run."
        ),
    )
    m.add("claim phase", _phase_sentence(data, phase))
    m.add("claim regression", _regression_sentence(data, label))
    m.add("regression size", _size_sentence(data))
    decomposition = _decomposition_sentence(data, sisdr)
    m.add("claim decomposition", decomposition)
    m.add("claim projection", decomposition)
    m.add("projection note", _projection_note(data))
    m.add("claim sweep", _sweep_sentence(data))
    m.add("claim steps", _steps_sentence(data, sisdr))
    m.add("claim best steps", _best_steps_sentence(data))
    m.add("claim training", _training_sentence(data))
    m.add("claim budget", _budget_sentence(data))
    m.add("claim scaling", _scaling_sentence(data))
    m.add("claim formulation", _formulation_sentence(data))
    m.add("claim testsets", _testsets_sentence(data, sisdr))
    m.add("claim performance", _performance_sentence(data))
    m.add("claim data", _data_sentence(data))
    m.add("claim ablations", _ablation_provenance(data) + _ablation_sentence(data))
    m.add("ablation column note", _ablation_column_note(data))
    m.add("claim analysis", _analysis_sentence(data, sisdr, phase))
    m.add("profile note", _profile_note(data))
    return m


def _verb(value: float, up: str, down: str) -> str:
    return up if value >= 0 else down


def _ci_text(g, decimals: int) -> str:
    """`` (95% CI [a, b] over 6 tracks x 4 separators)``; no interval for one track."""
    if g.n_tracks == 1 or (g.n == 1 and not g.n_tracks):
        return " (one track: no confidence interval)"
    if not g.has_interval:
        return ""
    size = _tracks_text(g.n_tracks, g.n_separators, g.n)
    return (f" (95\\% CI [{fmt(g.low, decimals, True)}, {fmt(g.high, decimals, True)}]"
            + (f" over {size}" if size else "") + ")")


def _compare(g, ours: str, theirs: str, unit: str = "~dB", decimals: int = 2,
             higher: bool = True) -> str:
    """A clause on ``g`` = ours minus theirs that calls a side ahead only when the paired
    interval excludes zero and the Wilcoxon test over excerpts rejects equality."""
    verdict = g.verdict(higher)
    ci = (f"paired 95\\% CI of the difference [{fmt(g.low, decimals, True)}, "
          f"{fmt(g.high, decimals, True)}]{unit}")
    value, signed = fmt(abs(g.mean), decimals), fmt(g.mean, decimals, True)
    if verdict == "none":
        why = "on one track, with no interval" if g.n_tracks == 1 else "with no paired interval"
        return f"{ours} and {theirs} differ by {signed}{unit} {why}, so neither is shown better"
    if verdict == "shown":
        return f"{ours} is ahead of {theirs} by {value}{unit} ({ci})"
    if verdict == "opposite":
        return f"{theirs} is ahead of {ours} by {value}{unit} ({ci})"
    if verdict == "untested":
        return (f"{ours} and {theirs} differ by {signed}{unit} ({ci}), but the Wilcoxon test "
                f"over {_excerpts(g)} does not resolve it ($p$ = {fmt(g.p, 2)})")
    return (f"{ours} and {theirs} differ by {signed}{unit}, inside the {ci}, so neither is "
            "shown better")


def _excerpts(g) -> str:
    return f"the {fmt(g.n_tracks)} excerpts" if g.n_tracks else "the items"


def _headline_sentence(data: PaperData, found: list[Target], sisdr: str | None) -> str:
    """The main test set's gain, next to what the projection alone and the model alone give."""
    t, main = data.main_testset, data.main_system
    g = data.stem_average_gain(t, main, sisdr)
    if not finite(g.mean):
        return "SI-SDR was not measured in this run."
    label, tset = escape(rio.system_label(main)), escape(rio.testset_label(t))
    n, tracks, separators = data.counts(t)
    size = _tracks_text(tracks, separators, n)
    met = {x.key: x.status for x in found}.get("sisdr") == MET
    text = (f"On the {tset} test set{f' ({size})' if size else ''}, {label} "
            f"{_verb(g.mean, 'raises', 'lowers')} SI-SDR over the separator output by "
            f"{fmt(abs(g.mean), 2)}~dB averaged over the {len(data.stems)} stems"
            f"{_ci_text(g, 2).replace(f' over {size}', '')}, which "
            f"{'meets' if met else 'misses'} the target of +2~dB with an interval above zero.")
    return text + _parts_clause(data, t, main, sisdr)


def _parts_clause(data: PaperData, testset: str, system: str, sisdr: str | None) -> str:
    """`` The projection alone gives ... and the model alone ...; <cascade vs projection>.``"""
    if projection(data) == "none" or sisdr is None:
        return ""
    parts = []
    if "postfilter" in data.systems:
        alone = data.stem_average_gain(testset, "postfilter", sisdr)
        parts.append(f"the mixture projection alone (the Wiener filter, nothing learned) gives "
                     f"{fmt(alone.mean, 2, True)}~dB")
    if "bridge" in data.systems:
        model = data.stem_average_gain(testset, "bridge", sisdr)
        parts.append(f"the model alone, without the projection, {fmt(model.mean, 2, True)}~dB")
    if not parts:
        return ""
    text = " Of this, " + " and ".join(parts)
    if "postfilter" in data.systems:
        over = data.stem_average_gain(testset, system, sisdr, baseline="postfilter")
        text += "; " + _compare(over, "the cascade", "the projection alone")
    return text + "."


def _decomposition_sentence(data: PaperData, sisdr: str | None) -> str:
    """Model alone, projection alone and cascade on every test set but the main one."""
    if sisdr is None or projection(data) == "none" or not {"bridge", "postfilter"} <= set(
            data.systems):
        return ""
    sentences = []
    for t in data.testsets:
        if t == data.main_testset:
            continue
        system = data.best_system(t)
        alone, model, both = (data.stem_average_gain(t, name, sisdr)
                              for name in ("postfilter", "bridge", system))
        n, tracks, separators = data.counts(t)
        size = _tracks_text(tracks, separators, n)
        over = data.stem_average_gain(t, system, sisdr, baseline="postfilter")
        sentences.append(
            f"On the {escape(rio.testset_label(t))} set{f' ({size})' if size else ''}, the "
            f"projection alone gives {fmt(alone.mean, 2, True)}~dB, the model alone "
            f"{fmt(model.mean, 2, True)}~dB and the cascade at {_steps_text(data.best_steps(t))} "
            f"{fmt(both.mean, 2, True)}~dB; "
            + _compare(over, "the cascade", "the projection alone") + ".")
    if not sentences:
        return ""
    return " ".join(sentences) + " (SI-SDR gains over the separator output, mean of the stems.)"


def _phase_sentence(data: PaperData, phase: str | None) -> str:
    t, main = data.main_testset, data.main_system
    before, after = _stem_mean(data, t, "identity", phase), _stem_mean(data, t, main, phase)
    if not (finite(before) and finite(after)):
        return "The phase deviation above 4~kHz was not measured."
    change = data.stem_average_gain(t, main, phase)
    text = (f"Above 4~kHz the mean phase deviation {_verb(before - after, 'falls', 'rises')} "
            f"from {fmt(before, 3)} to {fmt(after, 3)}~rad")
    verdict = change.verdict(higher=False)
    if verdict == "none":
        return text + ", with no paired interval, so the phase target is not shown to be met."
    ci = (f"paired 95\\% CI of the change [{fmt(change.low, 3, True)}, "
          f"{fmt(change.high, 3, True)}]~rad")
    if verdict == "shown":
        return text + f" ({ci}, below zero), which meets the phase target."
    if verdict == "untested":
        return (text + f" ({ci}), but the Wilcoxon test over {_excerpts(change)} does not "
                f"resolve it ($p$ = {fmt(change.p, 2)}), so the phase target is missed.")
    return text + f" ({ci}): the interval does not lie below zero, so the phase target is missed."


def _regression_sentence(data: PaperData, label: str) -> str:
    """StemProver against the regression U-Net, by paired tests, with the sizes named."""
    t, main = data.main_testset, data.main_system
    sisdr, pesq = data.metric("sisdr"), data.metric("pesq")
    if "regression" not in data.systems:
        return "The regression U-Net was not evaluated in this run."
    d_sisdr = data.stem_average_gain(t, main, sisdr, baseline="regression")
    d_pesq = data.gain(t, "vocals", main, pesq, baseline="regression")
    parts = []
    if finite(d_sisdr.mean):
        parts.append("on SI-SDR (mean of the stems) "
                     + _compare(d_sisdr, label, "the regression U-Net"))
    if finite(d_pesq.mean):
        parts.append("on vocal PESQ-WB " + _compare(d_pesq, label, "the regression U-Net",
                                                    unit=""))
    if not parts:
        return "The regression U-Net was not scored on SI-SDR or PESQ-WB in this run."
    verdict = d_sisdr.resolved() if finite(d_sisdr.mean) else None
    if verdict:
        tail = "On SI-SDR the diffusion model beats this regression baseline in this run."
    elif finite(d_sisdr.mean) and d_sisdr.resolved(False):
        tail = ("The regression U-Net is the better system here: the claim that diffusion "
                "beats it does not hold in this run.")
    else:
        tail = "This run therefore does not show that diffusion beats the regression U-Net."
    size = _size_sentence(data)
    return (f"Against the regression U-Net behind the same projection, on the "
            f"{escape(rio.testset_label(t))} set: " + "; ".join(parts) + ". " + tail
            + (f" {size}" if size else ""))


SIZE_TOLERANCE = 0.05
"""Parameter counts within 5% of each other are called matched."""


def model_sizes(data: PaperData) -> dict | None:
    """04's ``model_sizes`` (parameters and forward GFLOP per audio second of both models)."""
    sizes = (data.runs.get("04_lora_training") or {}).get("model_sizes")
    if isinstance(sizes, dict) and {"stemprover", "regression"} <= set(sizes):
        return sizes
    return None


def _size_sentence(data: PaperData) -> str:
    """How the regression U-Net's size and budget compare with StemProver's (04, else 07)."""
    sizes = model_sizes(data)
    if sizes is not None:
        ours, theirs = sizes["stemprover"], sizes["regression"]
        p_ours, p_theirs = int(ours["parameters"]), int(theirs["parameters"])
        g_ours = float(ours.get("gflops_per_audio_second", NAN))
        g_theirs = float(theirs.get("gflops_per_audio_second", NAN))
        matched = abs(p_theirs / p_ours - 1.0) <= SIZE_TOLERANCE
        text = ("The regression U-Net is matched to StemProver in size: "
                if matched else "The regression U-Net is not the same size as StemProver: ")
        text += (f"{fmt(p_theirs)} against {fmt(p_ours)} parameters (StemProver's frozen base, "
                 "control branch and adapters together)")
        if finite(g_ours) and finite(g_theirs):
            text += (f", and {fmt(g_theirs, 1)} against {fmt(g_ours, 1)}~GFLOP per audio "
                     "second of one forward pass")
        return text + "." + _budget_clause(data)
    kinds = ((data.summary or {}).get("training") or {}).get("kinds") or {}
    regression, control = kinds.get("regression") or {}, kinds.get("control_lora") or {}
    if not (regression.get("trainable_parameters") and control.get("trainable_parameters")):
        return _budget_clause(data).strip()
    p_theirs, p_ours = int(regression["trainable_parameters"]), int(
        control["trainable_parameters"])
    g_theirs = float(regression.get("flops_per_audio_second", NAN)) / 1e9
    g_ours = float(control.get("flops_per_audio_second", NAN)) / 1e9
    word = "smaller than" if p_theirs < p_ours else "larger than"
    if abs(p_theirs / p_ours - 1.0) <= SIZE_TOLERANCE:
        word = "about as large as"
    return (f"The regression U-Net is {word} StemProver: it trains {fmt(p_theirs)} parameters "
            f"against the {fmt(p_ours)} StemProver trains on its frozen base, and a training "
            f"step costs {fmt(g_theirs, 1)} against {fmt(g_ours, 1)}~GFLOP per audio second."
            + _budget_clause(data))


def _budget_clause(data: PaperData) -> str:
    """`` It trained for N minutes under the same cap (M minutes) ...`` from 04's run record."""
    run = data.runs.get("04_lora_training") or {}
    minutes = (run.get("regression") or {}).get("minutes")
    params = run.get("params") or {}
    general, adapter = params.get("general_minutes"), params.get("adapter_minutes")
    if minutes is None or not general:
        return ""
    cap = float(general) + float(adapter or 0.0) * (len(ADAPTERS) - 1)
    return (f" It trained for {fmt(float(minutes), 1)}~minutes, where its validation plateau "
            f"stopped it, under the time cap of StemProver's 04 phases ({fmt(cap, 0)}~minutes); "
            "StemProver's base had its own pretraining (03) before that.")


def _sweep_sentence(data: PaperData) -> str:
    """From which bin of input SI-SDR each system starts to lower SI-SDR (quality sweep)."""
    if not data.sweep_testsets:
        return ""
    systems = [s for s in ("postfilter", "bridge", "regression") if s in data.systems]
    systems.append(data.main_system)
    bins = data.input_bins(systems)
    if bins is None or bins.empty:
        return ""
    pooled = bins[bins["stem"] == ALL_STEMS]
    low, high = float(pooled["bin_low"].min()), float(pooled["bin_high"].max())
    n, tracks, separators = data.counts(data.sweep_testsets[0])
    size = _tracks_text(tracks, separators, n).replace("separator", "condition")
    text = [f"On the quality sweep{f' ({size})' if size else ''}, gains are grouped by the "
            f"separator output's own SI-SDR in 5~dB bins from {fmt(low, 0, True)} to "
            f"{fmt(high, 0, True)}~dB."]
    for system in systems:
        rows = pooled[pooled["system"] == system].sort_values("bin_low")
        name = escape(_system_phrase(system))
        harm = rows[(rows["mean"] < 0) & (rows["ci_high"] < 0)]
        if rows.empty:
            continue
        if harm.empty:
            text.append(f"{name} lowers SI-SDR with an interval below zero in no bin.")
            continue
        first = harm.iloc[0]
        text.append(
            f"{name} starts to harm in the bin from {fmt(float(first['bin_low']), 0, True)} to "
            f"{fmt(float(first['bin_high']), 0, True)}~dB of input SI-SDR (mean gain "
            f"{fmt(float(first['mean']), 2, True)}~dB, 95\\% CI "
            f"{interval(first['ci_low'], first['ci_high'])}, {fmt(int(first['n']))} items).")
    return " ".join(text)


def _system_phrase(system: str) -> str:
    phrases = {"postfilter": "The projection alone", "bridge": "The model alone",
               "regression": "The regression U-Net"}
    return phrases.get(system, rio.system_label(system))


PROJECTION_NOTES = {
    "none": "In this run the learned systems clean each stem on its own, without the mixture "
            "projection.",
    "before": "In this run \\sysname{} and the regression U-Net both first redistribute the "
              "mixture between the four separated stems with the post-filter's Wiener filter "
              "(the mixture projection), then clean each stem with their model.",
    "after": "In this run \\sysname{} and the regression U-Net both clean each stem with their "
             "model, then redistribute the mixture between the four cleaned stems with the "
             "post-filter's Wiener filter (the mixture projection).",
    "both": "In this run \\sysname{} and the regression U-Net both apply the post-filter's "
            "Wiener filter to the four stems before and after their model.",
}


def projection(data: PaperData) -> str:
    """The mixture projection 05 ran with (its run record; "none" before there was one)."""
    params = data.runs.get("05_evaluation", {}).get("params", {})
    return str(params.get("projection", "none"))


def _projection_note(data: PaperData) -> str:
    return PROJECTION_NOTES.get(projection(data), "")


def _steps_sentence(data: PaperData, sisdr: str | None) -> str:
    steps = data.steps
    if len(steps) < 2 or sisdr is None:
        return ""
    t = data.main_testset
    gains = {k: data.stem_average_gain(t, steps[k], sisdr).mean for k in sorted(steps)}
    listed = ", ".join(
        f"{fmt(v, 2, True)}~dB at {k} step{'s' if k > 1 else ''}" for k, v in gains.items()
    )
    best = max(gains, key=lambda k: gains[k] if finite(gains[k]) else -np.inf)
    tail = (f"{best} steps have" if best > 1 else "1 step has") + " the highest mean"
    return f"The SI-SDR gain averaged over the stems is {listed}; {tail}."


def _testsets_sentence(data: PaperData, sisdr: str | None) -> str:
    others = [x for x in data.testsets if x != data.main_testset]
    if not others or sisdr is None:
        return ""
    parts = []
    for t in others:
        g = data.stem_average_gain(t, data.best_system(t), sisdr)
        parts.append(
            f"{fmt(g.mean, 2, True)}~dB on the {escape(rio.testset_label(t))} set at "
            f"{_steps_text(data.best_steps(t))}{_ci_text(g, 2)}"
        )
    return "Averaged over the stems, the SI-SDR gain is " + "; ".join(parts) + "."


def _performance_sentence(data: PaperData) -> str:
    s = data.summary
    if not s:
        return "Speed and memory were not measured in this run."
    rtf = s["rtf"]
    device = escape(s["device"])
    listed = ", ".join(f"{fmt(rtf[k], 3)} at {_steps_text(k)}" for k in sorted(rtf))
    text = f"On {device}, the real-time factor of enhancement is {listed}"
    ratio, steps = four_stem_cost(s)
    if finite(ratio):
        text += (f". Enhancing all four stems of a clip{f' at {_steps_text(steps)}' if steps else ''}"
                 f" together with the mixture projection takes {fmt(ratio, 2)} times as long as "
                 "one HTDemucs separation of the same clip on the same device")
    elif finite(one_step_cost(s)):
        where = ("the same clip" if same_clip(s) else
                 f"a {fmt(float(s['separator_clip_seconds']), 0)}~s clip (enhancement was timed "
                 f"on {fmt(float(s['clip_seconds']), 0)}~s)")
        text += (f"; at one step, enhancing one stem, without the projection, takes "
                 f"{fmt(one_step_cost(s), 2)} times as long as HTDemucs takes to separate "
                 f"{where}. The four-stem path (four stems and the projection) was not timed "
                 "against HTDemucs in this run")
    if finite(s.get("projection_rtf") or NAN):
        text += (f". The mixture projection of a song's four stems adds a real-time factor of "
                 f"{fmt(s['projection_rtf'], 3)} per song")
    if finite(s.get("startup_seconds") or NAN):
        text += (f". Loading the model before the first clip takes "
                 f"{fmt(float(s['startup_seconds']), 2)}~s")
    return text + "."


def _best_steps_sentence(data: PaperData) -> str:
    """Which step count each test set is reported at, and why."""
    if data.metric("sisdr") is None or len(data.steps) < 2:
        return ""
    parts = [f"{_steps_text(data.best_steps(t))} on the {escape(rio.testset_label(t))} set"
             for t in data.testsets]
    return ("Each test set is reported at the step count with the highest SI-SDR gain averaged "
            "over the stems (among " + ", ".join(str(k) for k in sorted(data.steps)) + "): "
            + "; ".join(parts) + ".")


def _scaling_sentence(data: PaperData) -> str:
    """Throughput and efficiency with several processes (07's scaling rows), and what a
    GPU node can expect from them."""
    rows = (data.summary or {}).get("scaling") or []
    if not rows:
        return "Scaling over processes was not measured in this run."
    parts = []
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = sorted((r for r in rows if r["task"] == task), key=lambda r: r["processes"])
        several = [r for r in mine if r["processes"] > 1]
        if not several:
            continue
        listed = " and ".join(
            f"{fmt(int(r['processes']))} processes {fmt(float(r['audio_s_per_s']), 2)}"
            f"~audio-s/s (efficiency {fmt(float(r['efficiency']), 2)})" for r in several)
        parts.append(f"{escape(task)}: one process {fmt(float(mine[0]['audio_s_per_s']), 2)}, "
                     f"{listed}")
    if not parts:
        return "Scaling was measured with one process only."
    device = escape((data.summary or {}).get("device", "this machine"))
    return (
        f"Launched with several processes on {device} (torchrun; training through DDP with "
        f"the global batch split between the processes, enhancement of a catalogue with each "
        f"process taking its share of the files), throughput is {'; '.join(parts)}. "
        "Efficiency is the throughput over that of one process times the number of processes. "
        "Processes that share a few CPU cores compete for them, so these rows show that the "
        "data-parallel path runs and agrees (the tests check that the processes end with the "
        "same weights as one process with the same global batch), not that it is faster. On "
        "GPUs, one per process, a training step costs what the one-process step costs plus one "
        f"all-reduce of the gradients{_allreduce_size(data)}, so throughput grows about "
        "linearly with the GPUs while that transfer stays small beside the step; enhancement "
        "shares no state between processes.")


def _allreduce_size(data: PaperData) -> str:
    """`` (N MB of float32 gradients for the control branch and LoRA)`` from 07, or ``""``."""
    kinds = ((data.summary or {}).get("training") or {}).get("kinds") or {}
    n_params = (kinds.get("control_lora") or {}).get("trainable_parameters")
    if not n_params:
        return ""
    return (f" ({fmt(4 * int(n_params) / 1e6, 1)}~MB of float32 gradients for the control "
            "branch and its adapter)")


def _training_sentence(data: PaperData) -> str:
    """Training throughput of each stage from 07, against the previous release's."""
    training = (data.summary or {}).get("training") or {}
    kinds = training.get("kinds") or {}
    if not kinds:
        return "Training throughput was not measured in this run."
    listed = ", ".join(
        f"{escape(KIND_LABELS.get(k, k))} {fmt(float(v['audio_s_per_s']), 2)} "
        f"({fmt(float(v['flops_per_audio_second']) / 1e9, 1)}~GFLOP per audio second, "
        f"batch {fmt(int(v['batch_size']))} of {fmt(int(v['segment_frames']))} frames)"
        for k, v in kinds.items())
    value, _, kind = training_throughput(data.summary)
    previous = training.get("previous_release_audio_s_per_s")
    text = (f"One optimizer step on {escape(data.summary['device'])} learns, in seconds of audio "
            f"per wall-clock second: {listed}.")
    if finite(value) and previous:
        target = training_target(data.summary)
        text += (
            f" The slower StemProver stage ({escape(KIND_LABELS.get(kind, kind))}) runs at "
            f"{fmt(value / float(previous), 1)} times the previous release's "
            f"{fmt(float(previous), 1)}~audio-s/s, which "
            f"{'meets' if value >= target else 'misses'} the target of ten times it.")
    return text


def _budget_sentence(data: PaperData) -> str:
    """What the budget curves keep: the general phase and the regression over all artifact types,
    then each specialised adapter on its own type (its phase validates on that type alone)."""
    curve = data.budget
    if curve is None or curve.empty:
        return "The budget curve was not recorded in this run."

    def kept(phase: str):
        rows = curve[curve["phase"] == phase]
        return None if rows.empty else rows.loc[rows["gain"].idxmax()]

    general, regression = kept("general"), kept("regression")
    parts = []
    if general is not None:
        parts.append(
            f"StemProver's general phase keeps {fmt(float(general['gain']), 2, True)}~dB over all "
            "artifact types of the held-out pairs (its best evaluation, after "
            f"{fmt(float(general['minutes']), 1)}~minutes of training in 03 and 04)")
    if regression is not None:
        parts.append(
            f"the regression U-Net keeps {fmt(float(regression['gain']), 2, True)}~dB after "
            f"{fmt(float(regression['minutes']), 1)}~minutes")
    text = "; ".join(parts) + "." if parts else ""
    own = [(name, kept(name)) for name in ADAPTERS if name != "general"]
    own = [(name, row) for name, row in own if row is not None]
    if own:
        listed = [f"{escape(name.replace('_', ' '))} {fmt(float(row['gain']), 2, True)}"
                  for name, row in own]
        text += (" On its own type each specialised adapter then keeps "
                 + ", ".join(listed[:-1]) + (" and " if len(listed) > 1 else "") + listed[-1]
                 + "~dB")
        theirs = [regression.get(f"gain_{name}") if regression is not None else None
                  for name, _ in own]
        if all(v is not None and finite(float(v)) for v in theirs):
            text += (" (the regression U-Net on the same types: "
                     + ", ".join(fmt(float(v), 2, True) for v in theirs) + "~dB)")
        text += "."
    return text.strip()


def _formulation_sentence(data: PaperData) -> str:
    """The bridge against the SDEdit (from noise) row of the ablation grid."""
    rows = _ablation_rows(data)
    if rows is None:
        return ""
    ref, changes = rows
    sdedit = changes[changes["group"] == "formulation"]
    if sdedit.empty:
        return "The SDEdit formulation was not part of this run's ablation grid."
    row = sdedit.iloc[0]
    return (
        f"Starting from noise instead of the separated stem (SDEdit) gives "
        f"{fmt(float(row['mean']), 2)}~dB against the bridge's {fmt(float(ref['mean']), 2)}~dB, "
        f"{_ci_verdict(row)}.")


def _profile_note(data: PaperData) -> str:
    gpu_done = (repo_root() / "results" / "gpu" / "05_evaluation" / "aggregate.csv").is_file()
    gpu = (
        "The gpu profile, the intended headline run (one H100, about 20 minutes), was not run "
        "for this version of the paper; \\texttt{make reproduce PROFILE=gpu} on a machine "
        "with one CUDA GPU produces it and rebuilds this paper from its results."
    )
    if data.profile == "smoke":
        return (
            "These numbers come from the \\texttt{smoke} profile, which only proves that the "
            "pipeline runs: tiny models trained for seconds. They mean nothing."
        )
    if data.profile == "cpu":
        return (
            "Every number in this paper comes from the \\texttt{cpu} profile: small models "
            "trained for minutes on two CPU cores, evaluated on a few short excerpts. "
            + ("" if gpu_done else gpu)
        )
    return "Every number in this paper comes from the \\texttt{gpu} profile."


def _card_value(card: dict, names: tuple[str, ...]) -> float | None:
    for key, value in card.items():
        if key in names and isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return None


def _data_sentence(data: PaperData) -> str:
    card = data.dataset_card or {}
    pairs = _card_value(card, ("n_pairs", "pairs", "total_pairs", "n_segments"))
    hours = _card_value(card, ("hours", "total_hours"))
    seconds = _card_value(card, ("seconds", "total_seconds", "duration_s"))
    if pairs is None:
        return ""
    tracks = _card_value(card, ("n_tracks",))
    text = f"The paired dataset of this run holds {fmt(int(pairs))} segment pairs"
    if tracks is not None:
        text += f" from {fmt(int(tracks))} tracks"
    if seconds is not None or hours is not None:
        seconds = float(seconds if seconds is not None else hours * 3600.0)
        amount = (
            f"{fmt(seconds / 3600.0, 2)}~hours"
            if seconds >= 3600
            else f"{fmt(seconds / 60.0, 1)}~minutes"
        )
        text += f" ({amount} of separated audio)"
    return text + "."


def _ablation_rows(data: PaperData):
    """(reference row, changed rows with ``delta``) by SI-SDR, or None without a usable grid."""
    table = data.ablations
    if table is None or table.empty:
        return None
    try:
        rows = rio.ablation_table_frame(table, "si_sdr")
    except StemproverError:
        return None
    is_ref = rows["group"] == "reference"
    if not is_ref.any() or is_ref.all():
        return None
    ref = rows[is_ref].iloc[0]
    changes = rows[~is_ref & (rows["group"] != "baseline")]
    changes = changes.assign(delta=lambda t: t["mean"] - ref["mean"])
    return ref, changes[np.isfinite(changes["delta"])]


def is_paired(row) -> bool:
    """Whether the row carries the paired 95% CI of its difference from the reference."""
    low, high = row.get("delta_ci_low", NAN), row.get("delta_ci_high", NAN)
    return finite(float(low)) and finite(float(high))


def interval(low: float, high: float) -> str:
    """``[low, high]`` with signs, as the paper gives a paired interval (dB)."""
    return f"[{fmt(float(low), 2, True)}, {fmt(float(high), 2, True)}]"


def within_ci(row, reference_mean: float) -> bool | None:
    """Whether a row's difference from the reference is not resolved (None: no CI).

    With the paired interval (the row minus the reference, item by item), not resolved means
    that it contains 0. A table without it falls back to whether the reference lies inside
    the row's own interval: a much wider test, as it also spans how the items differ.
    """
    if is_paired(row):
        return bool(float(row["delta_ci_low"]) <= 0.0 <= float(row["delta_ci_high"]))
    low, high = float(row["ci_low"]), float(row["ci_high"])
    if not (finite(low) and finite(high)) or high <= low:
        return None
    return bool(low <= reference_mean <= high)


def _ci_verdict(row) -> str:
    inside = within_ci(row, float(row["mean"] - row["delta"]))
    difference = f"a difference of {fmt(float(row['delta']), 2, True)}~dB"
    if inside is None:
        return f"{difference} (no confidence interval)"
    if is_paired(row):
        return (f"{difference} (paired 95\\% CI "
                f"{interval(row['delta_ci_low'], row['delta_ci_high'])}~dB"
                + (", so not resolved)" if inside else ")"))
    return (f"{difference}, "
            + ("smaller than the row's 95\\% confidence interval, so not resolved" if inside
               else "larger than the row's 95\\% confidence interval"))


def _row_name(row) -> str:
    return f"{escape(str(row.group).replace('_', ' '))} = {escape(row.variant)}"


def _ablation_provenance(data: PaperData) -> str:
    """A note when the grid was not computed at the commit of the evaluation (its run.json)."""
    grid = (data.runs.get("06_ablations") or {}).get("code_commit")
    evaluation = (data.runs.get("05_evaluation") or {}).get("code_commit")
    if data.ablations is None or data.ablations.empty or not evaluation or grid == evaluation:
        return ""
    where = f"at commit \\texttt{{{escape(grid)}}}" if grid else "by a run that recorded no commit"
    return (f"This grid was computed {where}, the evaluation at commit "
            f"\\texttt{{{escape(evaluation)}}} (Table~\\ref{{tab:provenance}}); the grid trains "
            "its own models on the same corpus and pairs, so its rows compare with each other, "
            "not with the evaluated model. ")


PAIRED_VERDICTS = {
    True: "It contains zero, so the difference is not resolved with this budget, for ",
    False: "It excludes zero for ",
}
"""How the ablation sentence names the rows, by :func:`within_ci`, with paired intervals."""
OWN_CI_VERDICTS = {
    True: ("These rows differ from the reference by less than their own 95\\% confidence "
           "interval, so the difference is not resolved with this budget: "),
    False: "These rows differ by more than their confidence interval: ",
    None: "These rows have no confidence interval: ",
}
"""The same for a table without paired intervals: each row against its own interval."""


def _ablation_column_note(data: PaperData) -> str:
    """What the last column of the ablation table gives, for the caption."""
    table = data.ablations
    if table is not None and rio.has_paired(table):
        return ("the row's SI-SDR minus the reference's, item by item, with its paired "
                "bootstrap 95\\% CI (an interval that contains zero: a difference this budget "
                "does not resolve)")
    return ("whether the row's SI-SDR differs from the reference's by less than the row's own "
            "95\\% CI (\\emph{within CI}: a difference this budget does not resolve)")


def _ablation_sentence(data: PaperData) -> str:
    """Each one-factor change against the reference row, by SI-SDR, largest effects named,
    and for every row whether it differs from the reference by less than its own CI."""
    table = data.ablations
    if table is None or table.empty:
        return "The ablation grid was not run for this profile."
    try:
        rio.ablation_table_frame(table, "si_sdr")
    except StemproverError:  # a malformed table is reported in the text, not raised
        return "The ablation table of this run has no SI-SDR column."
    found = _ablation_rows(data)
    if found is None:
        return ""
    ref, changes = found
    rows = rio.ablation_table_frame(table, "si_sdr")
    baseline = rows[rows["group"] == "baseline"]  # the separator output on the same items
    changes = changes.sort_values("delta")
    if changes.empty:
        return ""

    def named(row) -> str:
        return f"{_row_name(row)} ({fmt(row.delta, 2, True)}~dB)"

    worse, better = changes[changes.delta < 0], changes[changes.delta > 0][::-1]
    text = (
        f"The reference setting reaches {fmt(float(ref['mean']), 2)}~dB SI-SDR on the validation "
        f"items. Of the {len(changes)} one-factor changes, {len(worse)} {'lowers' if len(worse) == 1 else 'lower'} it"
    )
    if len(worse):
        text += ", most of all " + ", ".join(named(r) for r in worse.head(3).itertuples())
    text += f", and {len(better)} {'raises' if len(better) == 1 else 'raise'} it"
    if len(better):
        text += ", most of all " + ", ".join(named(r) for r in better.head(3).itertuples())
    text += "."
    if not baseline.empty and finite(float(baseline["mean"].iloc[0])):
        base = float(baseline["mean"].iloc[0])
        diff = float(ref["mean"]) - base
        text += (
            f" The separator output itself scores {fmt(base, 2)}~dB on the same items, so the "
            f"reference setting {'raises' if diff >= 0 else 'lowers'} SI-SDR by "
            f"{fmt(abs(diff), 2)}~dB"
        )
        first = baseline.iloc[0]
        if is_paired(first):  # stored as the separator output minus the reference
            change = interval(-float(first["delta_ci_high"]), -float(first["delta_ci_low"]))
            text += f" (paired 95\\% CI of the change {change}~dB)"
        better_rows = int((changes["mean"] > base).sum())
        text += f"; {better_rows} of the {len(changes)} changed rows beat the separator output."
    verdicts = {True: [], False: [], None: []}
    for row in changes.itertuples():
        verdicts[within_ci(row._asdict(), float(ref["mean"]))].append(_row_name(row))
    paired = bool(changes.apply(is_paired, axis=1).all())
    if paired:
        text += (" Every row is scored on the same items, so each difference from the "
                 "reference has a paired 95\\% confidence interval (bootstrap over items).")
    phrases = PAIRED_VERDICTS if paired else OWN_CI_VERDICTS
    for verdict, phrase in phrases.items():
        if verdicts[verdict]:
            text += f" {phrase}{', '.join(verdicts[verdict])}."
    return text


def _analysis_sentence(data: PaperData, sisdr: str | None, phase: str | None) -> str:
    """Where a missed SI-SDR target comes from, read off the other measurements of the run."""
    t, main = data.main_testset, data.main_system
    gain = data.stem_average_gain(t, main, sisdr).mean
    if not finite(gain) or gain >= 2.0:
        return ""
    parts = [
        f"{escape(rio.system_label(main))} {'lowers' if gain < 0 else 'raises only by'} "
        f"{fmt(abs(gain), 2)}~dB the SI-SDR of the separator output in this run."
    ]
    regression = data.stem_average_gain(t, "regression", sisdr).mean
    versus = data.stem_average_gain(t, main, sisdr, baseline="regression")
    if finite(regression) and versus.verdict() == "opposite":
        parts.append(
            f"The regression U-Net, trained on the same pairs with the same losses, does better "
            f"({fmt(regression, 2, True)}~dB), so the pairs and losses carry a signal that the "
            "diffusion model, sampled in a few steps from a base pretrained briefly, does not "
            "recover."
        )
    steps = data.steps
    if len(steps) >= 2:
        first, last = min(steps), max(steps)
        g_first = data.stem_average_gain(t, steps[first], sisdr).mean
        g_last = data.stem_average_gain(t, steps[last], sisdr).mean
        if finite(g_first) and finite(g_last) and g_last <= g_first:
            parts.append(
                f"More sampling steps do not help ({fmt(g_first, 2, True)}~dB at {first}, "
                f"{fmt(g_last, 2, True)}~dB at {last}): each step adds error instead of refining."
            )
    before, after = _stem_mean(data, t, "identity", phase), _stem_mean(data, t, main, phase)
    if finite(before) and finite(after) and after > before:
        parts.append(
            "The phase above 4~kHz gets worse, where the spectrogram holds least energy and a "
            "small model trained for minutes is least accurate."
        )
    if data.profile != "gpu":
        parts.append(
            f"The \\texttt{{{escape(data.profile)}}} profile trains for minutes on two CPU cores; "
            "whether the longer training of the gpu profile changes these conclusions is open "
            "until that run is made."
        )
    return " ".join(parts)


def _abstract_sentence(data: PaperData, found: list[Target], sisdr: str | None) -> str:
    """The headline, the three parts on every test set and the two paired verdicts, briefly."""
    headline = _headline_sentence(data, found, sisdr)
    if sisdr is None or not finite(data.stem_average_gain(
            data.main_testset, data.main_system, sisdr).mean):
        return headline
    text = headline.split(" Of this,")[0]
    if projection(data) != "none" and {"postfilter", "bridge"} <= set(data.systems):
        listed, verdicts = [], {}
        for t in data.testsets:
            system = data.best_system(t)
            gains = [data.stem_average_gain(t, name, sisdr).mean
                     for name in ("postfilter", "bridge", system)]
            n, tracks, _ = data.counts(t)
            one = " (one track)" if tracks == 1 else ""
            listed.append(f"{fmt(gains[0], 2, True)}, {fmt(gains[1], 2, True)} and "
                          f"{fmt(gains[2], 2, True)}~dB on the {escape(rio.testset_label(t))} "
                          f"set{one}")
            over = data.stem_average_gain(t, system, sisdr, baseline="postfilter")
            verdicts.setdefault(over.verdict(), []).append(escape(rio.testset_label(t)))
        text += (" The mixture projection alone (a Wiener filter), the model alone and the two "
                 "in cascade gain " + "; ".join(listed) + ".")
        shown, behind = verdicts.get("shown", []), verdicts.get("opposite", [])
        text += (f" The cascade beats the projection alone with a resolved paired test on "
                 f"{_and(shown) if shown else 'none of these sets'}")
        text += (f", and the projection alone beats it on {_and(behind)}." if behind else ".")
    if "regression" in data.systems:
        d = data.stem_average_gain(data.main_testset, data.main_system, sisdr,
                                   baseline="regression")
        if finite(d.mean):
            text += (" Against a regression U-Net behind the same projection"
                     f"{_size_brief(data)}, " + _compare(d, "StemProver", "the regression U-Net")
                     + ".")
    return text


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _size_brief(data: PaperData) -> str:
    """`` (N against StemProver's M parameters)`` from 04's record, or 07's trainable counts."""
    sizes = model_sizes(data)
    if sizes is not None:
        return (f" ({fmt(int(sizes['regression']['parameters']))} against StemProver's "
                f"{fmt(int(sizes['stemprover']['parameters']))} parameters)")
    kinds = ((data.summary or {}).get("training") or {}).get("kinds") or {}
    theirs = (kinds.get("regression") or {}).get("trainable_parameters")
    ours = (kinds.get("control_lora") or {}).get("trainable_parameters")
    if theirs and ours:
        return (f" ({fmt(int(theirs))} trained parameters against the {fmt(int(ours))} "
                "StemProver trains on its frozen base)")
    return ""
