"""The paper's claims, written from the numbers: targets met or missed, and the sentences.

Every sentence whose truth depends on a result is generated here as a conditional, so the
text cannot claim more than the run shows: if the regression U-Net beats diffusion, the
sentence says so, and by how much. The targets are those of the project's headline run:
StemProver against the separator output on each test set at its best step count (the one
with the highest SI-SDR gain averaged over the stems), and the speed of enhancement and of
training measured by 07.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stemprover.bench.throughput import PREVIOUS_RELEASE_AUDIO_S_PER_S, TARGET_SPEEDUP
from stemprover.constants import ADAPTERS
from stemprover.errors import StemproverError
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
    if not (finite(gain.low) and finite(gain.high)):
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


def targets(data: PaperData) -> list[Target]:
    """The targets, each measured on this profile's results at each test set's best step count."""
    t = data.main_testset
    main, k_main = data.best_system(t), data.best_steps(t)
    tset = escape(rio.testset_label(t))
    sisdr, sdr, pesq, phase = (data.metric(r) for r in ("sisdr", "sdr", "pesq", "phasehf"))
    at = f", {_steps_text(k_main)}"
    out = []
    g = data.stem_average_gain(t, main, sisdr)
    out.append(Target(
        "sisdr", f"{tset}: SI-SDR gain, mean of the stems", r"$\geq +2$ dB",
        fmt(g.mean, 2, True) + " dB" + _ci(g, 2) + at,
        _status(g.mean >= 2.0 if finite(g.mean) else None)))
    measured, ok, _ = _worst_stem(data, t, main, sisdr)
    out.append(Target("stems", f"{tset}: SI-SDR gain, worst stem", r"$\geq 0$ dB on every stem",
                      measured + at, _status(ok)))
    measured, ok, _ = _worst_stem(data, t, main, sdr)
    out.append(Target("sdr", f"{tset}: museval SDR gain, worst stem", r"$\geq 0$ dB on every stem",
                      measured + at, _status(ok)))
    deltas = _versus_baselines(data)
    present = {name: d for name, d in deltas.items() if finite(d)}
    ok = None
    if present and (len(present) == len(deltas) or min(present.values()) <= 0):
        ok = min(present.values()) > 0
    out.append(Target(
        "baselines", f"{tset}: against the regression U-Net and the post-filter",
        "higher mean SI-SDR gain than both",
        ", ".join(f"{fmt(d, 2, True)} dB over the {escape(BASELINE_LABELS[n])}"
                  for n, d in deltas.items()) + at,
        _status(ok)))
    out.append(_testset_gain_target(data, "cross_separator", sisdr))
    out.append(_real_target(data, sisdr))
    p = data.gain(t, "vocals", main, pesq)
    out.append(Target(
        "pesq", f"{tset}: PESQ-WB gain on vocals", r"$\geq +0.2$",
        fmt(p.mean, 2, True) + _ci(p, 2) + at,
        _status(p.mean >= 0.2 if finite(p.mean) else None)))
    before, after = _stem_mean(data, t, "identity", phase), _stem_mean(data, t, main, phase)
    out.append(Target(
        "phase", f"{tset}: phase deviation above 4 kHz, mean of the stems",
        "below the separator output", f"{fmt(before, 3)} $\\to$ {fmt(after, 3)} rad" + at,
        _status(after < before if finite(before) and finite(after) else None)))
    s = data.summary or {}
    device = escape(str(s.get("device", "n/a")))
    ratio = one_step_cost(s)
    out.append(Target(
        "cost", "one-step enhancement time relative to HTDemucs separation (same CPU)",
        r"$\leq 0.5$", f"{fmt(ratio, 2)} ({device})",
        _status(ratio <= 0.5 if finite(ratio) and "cpu" in str(s.get("device", "")).lower()
                else None)))
    value, _, kind = training_throughput(s)
    target = training_target(s)
    out.append(Target(
        "training", "training throughput (audio seconds per second)",
        f"$\\geq$ {fmt(target, 1)} (ten times the previous release)",
        f"{fmt(value, 2)}" + (f" ({escape(KIND_LABELS.get(kind, kind))}, {device})" if kind else ""),
        _status(value >= target if finite(value) else None)))
    return out


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
    return Target("cross", f"{name}: SI-SDR gain, mean of the stems", r"$\geq +1$ dB",
                  fmt(g.mean, 2, True) + " dB" + _ci(g, 2) + f", {_steps_text(k)}",
                  _status(g.mean >= 1.0 if finite(g.mean) else None))


def _real_target(data: PaperData, sisdr: str | None) -> Target:
    what, criterion = "real track: SI-SDR gain, worst stem", r"$\geq 0$ dB on every stem"
    if "real" not in data.testsets:
        return Target("real", what, criterion, fmt(NAN), NOT_MEASURED)
    k = data.best_steps("real")
    measured, ok, _ = _worst_stem(data, "real", data.best_system("real"), sisdr)
    return Target("real", what, criterion, f"{measured}, {_steps_text(k)}", _status(ok))


def _stem_mean(data: PaperData, testset: str, system: str, metric: str | None) -> float:
    values = [data.mean(testset, s, system, metric) for s in data.stems]
    values = [v for v in values if finite(v)]
    return float(np.mean(values)) if values else NAN


def _versus_regression(data: PaperData) -> tuple[float, float]:
    """StemProver minus regression: SI-SDR (mean of the stems) and vocal PESQ-WB."""
    t, main = data.main_testset, data.main_system
    if "regression" not in data.systems:
        return NAN, NAN
    sisdr, pesq = data.metric("sisdr"), data.metric("pesq")
    d_sisdr = _stem_mean(data, t, main, sisdr) - _stem_mean(data, t, "regression", sisdr)
    d_pesq = data.mean(t, "vocals", main, pesq) - data.mean(t, "vocals", "regression", pesq)
    return d_sisdr, d_pesq


def _versus_baselines(data: PaperData) -> dict[str, float]:
    """Best StemProver's SI-SDR (mean of the stems) minus each baseline's, on the main set."""
    t, sisdr = data.main_testset, data.metric("sisdr")
    ours = _stem_mean(data, t, data.main_system, sisdr)
    return {name: (ours - _stem_mean(data, t, name, sisdr) if name in data.systems else NAN)
            for name in BASELINE_LABELS}


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
    g = data.stem_average_gain(t, main, sisdr)
    met = {x.key: x.status == MET for x in found}
    verdict = "meets" if met.get("sisdr", g.mean >= 2.0) else "misses"
    m.add(
        "claim headline",
        (
            f"On the {tset} test set, {label} {_verb(g.mean, 'raises', 'lowers')} SI-SDR over "
            f"the separator output by {fmt(abs(g.mean), 2)}~dB averaged over the "
            f"{len(data.stems)} stems{_ci_text(g, 2)}, which {verdict} the target of +2~dB."
            if finite(g.mean)
            else "SI-SDR was not measured in this run."
        ),
    )
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
    m.add(
        "claim pesq",
        (
            f"On vocals, PESQ-WB changes by {fmt(p.mean, 2, True)}{_ci_text(p, 2)}, "
            f"{'meeting' if p.mean >= 0.2 else 'missing'} the target of +0.2."
            if finite(p.mean)
            else "PESQ-WB on vocals was not measured in this run."
        ),
    )
    before, after = _stem_mean(data, t, "identity", phase), _stem_mean(data, t, main, phase)
    m.add(
        "claim phase",
        (
            f"Above 4~kHz the mean phase deviation {_verb(before - after, 'falls', 'rises')} from "
            f"{fmt(before, 3)} to {fmt(after, 3)}~rad."
            if finite(before) and finite(after)
            else "The phase deviation above 4~kHz was not measured."
        ),
    )
    m.add("claim regression", _regression_sentence(data, label))
    m.add("claim projection", _projection_sentence(data, sisdr))
    m.add("projection note", _projection_note(data))
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
    if not (finite(g.low) and finite(g.high)):
        return ""
    if g.n == 1:
        return " (one track: no confidence interval)"
    n = f" over {g.n} tracks" if g.n else ""
    return f" (95\\% CI [{fmt(g.low, decimals, True)}, {fmt(g.high, decimals, True)}]{n})"


def _regression_sentence(data: PaperData, label: str) -> str:
    d_sisdr, d_pesq = _versus_regression(data)
    if not (finite(d_sisdr) or finite(d_pesq)):
        return "The regression U-Net was not evaluated in this run."
    parts = []
    if finite(d_sisdr):
        who = label if d_sisdr > 0 else "the regression U-Net"
        parts.append(f"on SI-SDR {who} is ahead by {fmt(abs(d_sisdr), 2)}~dB")
    if finite(d_pesq):
        who = label if d_pesq > 0 else "the regression U-Net"
        parts.append(f"on vocal PESQ-WB {who} is ahead by {fmt(abs(d_pesq), 2)}")
    wins = (finite(d_sisdr) and d_sisdr > 0) or (finite(d_pesq) and d_pesq > 0)
    verdict = (
        "Diffusion therefore beats the regression U-Net of the same size on at least one of "
        "the two metrics."
        if wins
        else "The regression U-Net of the same size, trained on the same pairs and losses "
        "without diffusion, is the better system here: the claim that diffusion beats "
        "it does not hold in this run."
    )
    return "Against the regression U-Net, " + "; ".join(parts) + ". " + verdict


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


def _projection_sentence(data: PaperData, sisdr: str | None) -> str:
    """What the bridge and the projection each add, on every test set."""
    if sisdr is None or projection(data) == "none" or not {"bridge", "postfilter"} <= set(
            data.systems):
        return ""
    parts = []
    for t in data.testsets:
        alone, projected, both = (
            data.stem_average_gain(t, name, sisdr).mean
            for name in ("bridge", "postfilter", data.best_system(t)))
        parts.append(f"{fmt(alone, 2, True)}, {fmt(projected, 2, True)} and "
                     f"{fmt(both, 2, True)}~dB on the {escape(rio.testset_label(t))} set")
    return ("The bridge alone, the mixture projection alone (the post-filter) and the two "
            "together gain " + "; ".join(parts) + " (SI-SDR, mean of the stems).")


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
    tail = f"{best} steps are best" if best > 1 else "1 step is best"
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
    ratio = one_step_cost(s)
    if finite(ratio):
        text += (f"; at one step, enhancing takes {fmt(ratio, 2)} times as long as HTDemucs "
                 "takes to separate the same clip there")
    if finite(s.get("projection_rtf") or NAN):
        text += (f". The mixture projection of a song's four stems adds a real-time factor of "
                 f"{fmt(s['projection_rtf'], 3)} per song")
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
    if finite(regression) and regression > gain:
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
