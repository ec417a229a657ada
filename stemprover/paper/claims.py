"""The paper's claims, written from the numbers: targets met or missed, and the sentences.

Every sentence whose truth depends on a result is generated here as a conditional, so the
text cannot claim more than the run shows: if the regression U-Net beats diffusion, the
sentence says so, and by how much. The targets are those of the project's headline run
(synthetic held-out set, StemProver at 4 steps against the separator output).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stemprover import resultsio as rio
from stemprover.errors import StemproverError
from stemprover.paper.data import NAN, PaperData, finite
from stemprover.paper.numbers import Macros, escape, fmt
from stemprover.paths import repo_root

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


def targets(data: PaperData) -> list[Target]:
    """The headline targets, each measured on this profile's results."""
    t, main = data.main_testset, data.main_system
    sisdr, sdr, pesq, phase = (data.metric(r) for r in ("sisdr", "sdr", "pesq", "phasehf"))
    out = []
    g = data.stem_average_gain(t, main, sisdr)
    out.append(
        Target(
            "sisdr",
            "SI-SDR gain, mean of the stems",
            r"$\geq +2$ dB",
            fmt(g.mean, 2, True) + " dB" + _ci(g, 2),
            _status(g.mean >= 2.0 if finite(g.mean) else None),
        )
    )
    gains = {s: data.gain(t, s, main, sdr).mean for s in data.stems}
    gains = {s: v for s, v in gains.items() if finite(v)}
    worst = min(gains, key=gains.get) if gains else None
    out.append(
        Target(
            "sdr",
            "museval SDR gain, worst stem",
            r"$\geq 0$ dB on every stem",
            f"{fmt(gains[worst], 2, True)} dB ({escape(worst)})" if worst else fmt(NAN),
            _status(gains[worst] >= 0.0 if worst else None),
        )
    )
    p = data.gain(t, "vocals", main, pesq)
    out.append(
        Target(
            "pesq",
            "PESQ-WB gain on vocals",
            r"$\geq +0.2$",
            fmt(p.mean, 2, True) + _ci(p, 2),
            _status(p.mean >= 0.2 if finite(p.mean) else None),
        )
    )
    before = _stem_mean(data, t, "identity", phase)
    after = _stem_mean(data, t, main, phase)
    out.append(
        Target(
            "phase",
            r"phase deviation above 4 kHz, mean of the stems",
            "below the separator output",
            f"{fmt(before, 3)} $\\to$ {fmt(after, 3)} rad",
            _status(after < before if finite(before) and finite(after) else None),
        )
    )
    d_sisdr, d_pesq = _versus_regression(data)
    ok = None
    if finite(d_sisdr) or finite(d_pesq):
        ok = bool((finite(d_sisdr) and d_sisdr > 0) or (finite(d_pesq) and d_pesq > 0))
    out.append(
        Target(
            "regression",
            "against the regression U-Net of the same size",
            "higher SI-SDR or PESQ-WB",
            f"$\\Delta$SI-SDR {fmt(d_sisdr, 2, True)} dB, $\\Delta$PESQ {fmt(d_pesq, 2, True)}",
            _status(ok),
        )
    )
    s = data.summary or {}
    rtf = s.get("rtf", {})
    steps = min(rtf, key=lambda k: (abs(k - 4), k)) if rtf else None
    device = str(s.get("device", "n/a"))
    on_h100 = "h100" in device.lower()
    value = rtf.get(steps, NAN) if steps is not None else NAN
    measured = f"{fmt(value, 4)} ({escape(device)})"
    out.append(
        Target(
            "rtf",
            "real-time factor at 4 steps on one H100",
            r"$\leq 0.01$",
            measured,
            _status(value <= 0.01 if on_h100 and finite(value) else None),
        )
    )
    ratio = float(s.get("separator_cost_ratio", NAN))
    out.append(
        Target(
            "cost",
            "enhancement cost relative to HTDemucs separation (same device)",
            r"$\leq 0.5$",
            f"{fmt(ratio, 2)} ({escape(device)})",
            _status(ratio <= 0.5 if finite(ratio) else None),
        )
    )
    return out


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
    m.add("claim steps", _steps_sentence(data, sisdr))
    m.add("claim testsets", _testsets_sentence(data, sisdr))
    m.add("claim performance", _performance_sentence(data))
    m.add("claim data", _data_sentence(data))
    m.add("claim ablations", _ablation_sentence(data))
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
        g = data.stem_average_gain(t, data.main_system, sisdr)
        parts.append(
            f"{fmt(g.mean, 2, True)}~dB on the {escape(rio.testset_label(t))} set{_ci_text(g, 2)}"
        )
    return "Averaged over the stems, the SI-SDR gain is " + "; ".join(parts) + "."


def _performance_sentence(data: PaperData) -> str:
    s = data.summary
    if not s:
        return "Speed and memory were not measured in this run."
    rtf = s["rtf"]
    steps = min(rtf, key=lambda k: (abs(k - 4), k))
    device = escape(s["device"])
    text = (
        f"At {steps} steps, enhancement runs at a real-time factor of {fmt(rtf[steps], 3)} on "
        f"{device}"
    )
    ratio = float(s.get("separator_cost_ratio", NAN))
    if finite(ratio):
        text += f", {fmt(ratio, 2)} times the time HTDemucs takes to separate the same clip there"
    text += "."
    if "h100" not in str(s["device"]).lower():
        text += (
            " The real-time-factor target (at most 0.01 on one H100) is not checked by this "
            "run, which had no GPU."
        )
    return text


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


def _ablation_sentence(data: PaperData) -> str:
    """Each one-factor change against the reference row, by SI-SDR, largest effects named."""
    table = data.ablations
    if table is None or table.empty:
        return "The ablation grid was not run for this profile."
    try:
        rows = rio.ablation_table_frame(table, "si_sdr")
    except StemproverError:  # a malformed table is reported in the text, not raised
        return "The ablation table of this run has no SI-SDR column."
    is_ref = rows["group"] == "reference"
    if not is_ref.any() or is_ref.all():
        return ""
    ref = rows[is_ref].iloc[0]
    baseline = rows[rows["group"] == "baseline"]  # the separator output on the same items
    changes = rows[~is_ref & (rows["group"] != "baseline")]
    changes = changes.assign(delta=lambda t: t["mean"] - ref["mean"])
    changes = changes[np.isfinite(changes["delta"])].sort_values("delta")
    if changes.empty:
        return ""

    def named(row) -> str:
        name = f"{escape(str(row.group).replace('_', ' '))} = {escape(row.variant)}"
        return f"{name} ({fmt(row.delta, 2, True)}~dB)"

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
        better_rows = int((changes["mean"] > base).sum())
        text += f"; {better_rows} of the {len(changes)} changed rows beat the separator output."
    if finite(ref["ci_low"]) and finite(ref["ci_high"]) and ref["ci_high"] > ref["ci_low"]:
        inside = int(changes["mean"].between(ref["ci_low"], ref["ci_high"]).sum())
        text += (
            f" {inside} of the {len(changes)} changed rows lie inside the reference's 95\\% "
            "confidence interval"
        )
        text += (
            ", so with this budget most differences are not resolved."
            if (inside > len(changes) / 2)
            else "."
        )
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
