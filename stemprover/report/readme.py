"""The README's headline table, generated from ``results/<profile>/05_evaluation/``.

    python -m stemprover.report.paper --readme [--profile cpu]

Rewrites only the lines between ``<!-- headline:start -->`` and ``<!-- headline:end -->``
in README.md, from the best profile that has results (gpu, then cpu; smoke only when
asked for by name, since its numbers mean nothing), with a link to that profile's
listening page (:mod:`stemprover.report.listening`) once it is built.
"""

from __future__ import annotations

import re
from pathlib import Path

from stemprover.errors import StemproverError
from stemprover.project.paths import repo_root
from stemprover.report import resultsio as rio
from stemprover.report.listening import page_dir
from stemprover.report.paper.claims import MET, MISSED, NOT_MEASURED, claims, targets
from stemprover.report.paper.data import PaperData, finite, load
from stemprover.report.paper.latex import fmt

START, END = "<!-- headline:start -->", "<!-- headline:end -->"
_TEX = (
    (r"\ensuremath{-}", "−"),
    (r"$\geq", "≥ "),
    (r"$\leq", "≤ "),
    (r"$\to$", "→"),
    (r"$\times$", "×"),
    (r"$\Delta$", "Δ"),
    (r"\textit{n/a}", "n/a"),
    (r"\%", "%"),
    ("{,}", ","),
    (r"\_", "_"),
    ("~", " "),
    ("$", ""),
)


def tex_to_text(tex: str) -> str:
    """The few LaTeX constructs of generated cells as plain Markdown text."""
    for old, new in _TEX:
        tex = tex.replace(old, new)
    return re.sub(r"\\text\w+\{([^}]*)\}", r"\1", tex).replace("  ", " ").strip()


def best_profile() -> str:
    for profile in ("gpu", "cpu"):
        if (repo_root() / "results" / profile / "05_evaluation" / "aggregate.csv").is_file():
            return profile
    raise StemproverError(
        "no results/gpu or results/cpu aggregate.csv yet: run `make reproduce PROFILE=cpu` first"
    )


def _gain_text(g) -> str:
    if not finite(g.mean):
        return "n/a"
    # one excerpt has no interval: a bootstrap over a single excerpt only repeats the mean
    ci = f" [{fmt(g.low, 2, True)}, {fmt(g.high, 2, True)}]" if g.has_interval and g.n > 1 else ""
    return tex_to_text(fmt(g.mean, 2, True) + ci)


def _cell(data: PaperData, testset: str, stem: str, metric: str | None) -> str:
    return _gain_text(data.gain(testset, stem, data.best_system(testset), metric))


def _size(data: PaperData, testset: str) -> str:
    """``6 × 4`` (excerpts × separators), or the item count when the counts are not recorded."""
    n, tracks, separators = data.counts(testset)
    return f"{tracks} × {separators}" if tracks and separators else str(n)


def decomposition_markdown(data: PaperData) -> list[str]:
    """The SI-SDR gain of the projection alone, the model alone and the cascade per test set."""
    sisdr = data.metric("sisdr")
    if sisdr is None or not {"postfilter", "bridge"} <= set(data.systems):
        return []
    lines = [
        "Where the gain comes from: SI-SDR gain over the separator output (dB, mean of the "
        "stems, cluster-bootstrap 95% CI over excerpts) of the Wiener projection alone "
        "(*post-filter*), StemProver's model alone (*bridge*), the two in cascade (StemProver), "
        "and the cascade minus the projection alone, paired on the same items:",
        "",
        "| test set | tracks × separators | projection alone | model alone | StemProver "
        "(cascade) | cascade − projection |",
        "|---|---|---|---|---|---|",
    ]
    for testset in data.testsets:
        system = data.best_system(testset)
        cells = [_gain_text(data.stem_average_gain(testset, name, sisdr))
                 for name in ("postfilter", "bridge", system)]
        cells.append(_gain_text(data.stem_average_gain(testset, system, sisdr,
                                                       baseline="postfilter")))
        lines.append(f"| {rio.testset_label(testset)} | {_size(data, testset)} | "
                     + " | ".join(cells) + " |")
    return [*lines, ""]


def headline_markdown(data: PaperData) -> str:
    """Markdown: gains of StemProver at each test set's best step count, and the targets."""
    sisdr, sdr = data.metric("sisdr"), data.metric("sdr")
    lines = [
        f"Profile `{data.profile}` (results computed at commit "
        f"`{rio.results_commit(repo_root() / 'results' / data.profile)}`), from "
        f"`results/{data.profile}/05_evaluation/aggregate.csv` and `significance.csv`. "
        "Gains of StemProver over the separator output (dB), paired item by item, with "
        "95% confidence intervals bootstrapped over excerpts, at each test set's best step count (*steps*: the "
        f"one of {', '.join(str(k) for k in sorted(data.steps))} with the highest SI-SDR gain "
        "averaged over the stems); *separator SI-SDR* is the separator output's own "
        "SI-SDR (dB), *tracks × separators* the test excerpts and the separators each was "
        "separated by (the intervals resample excerpts; one excerpt has none).",
        "",
        "| test set | steps | stem | ΔSI-SDR [95% CI] | ΔSDR [95% CI] | separator SI-SDR "
        "| tracks × separators |",
        "|---|---|---|---|---|---|---|",
    ]
    for testset in data.testsets:
        steps = data.best_steps(testset)
        for stem in data.stems:
            row = data.row(testset, stem, "identity", sisdr)
            base = tex_to_text(fmt(float(row["mean"]), 2)) if row is not None else "n/a"
            lines.append(
                f"| {rio.testset_label(testset)} | {steps} | {stem} "
                f"| {_cell(data, testset, stem, sisdr)} "
                f"| {_cell(data, testset, stem, sdr)} | {base} | {_size(data, testset)} |"
            )
    lines += ["", *decomposition_markdown(data)]
    found = targets(data)
    said = claims(data, found)
    for name in ("spClaimAbstract",):
        if said.get(name):
            lines += [tex_to_text(said[name]), ""]
    if lines[-1] == "":
        lines.pop()
    page = page_dir(data.profile) / "index.html"
    if page.is_file():
        link = page.relative_to(repo_root()).as_posix()
        lines += [
            "",
            f"Hear them: [{link}]({link}) plays a short clip of every system on each test set "
            "(mixture, separator output, baselines, StemProver, clean stem), with its "
            "spectrogram and SI-SDR; open it in a browser, it needs no network.",
        ]
    checked = [t for t in found if t.status != NOT_MEASURED]
    lines += [
        "",
        f"Targets ({sum(t.status == MET for t in checked)} of {len(checked)} "
        f"checked in this run are met):",
        "",
    ]
    mark = {MET: "met", MISSED: "**missed**", NOT_MEASURED: "not measured in this run"}
    for t in found:
        lines.append(
            f"- {tex_to_text(t.what)} ({tex_to_text(t.criterion)}): "
            f"{tex_to_text(t.measured)}: {mark[t.status]}"
        )
    if data.profile != "gpu":
        lines += [
            "",
            f"These are small `{data.profile}`-profile numbers; the gpu profile (the intended "
            "headline run) has not been run for this version: `make reproduce PROFILE=gpu` on a "
            "machine with one CUDA GPU produces it.",
        ]
    return "\n".join(lines)


def replace_between(text: str, body: str) -> str:
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise StemproverError(f"README.md must hold {START} once, followed by {END}")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{body}\n{END}{tail}"


def update_readme(profile: str | None = None, readme: Path | None = None) -> tuple[Path, str]:
    """Rewrite the headline section of README.md; return its path and the profile used."""
    profile = profile or best_profile()
    readme = readme or repo_root() / "README.md"
    data = load(profile, strict=False)
    text = replace_between(readme.read_text(), headline_markdown(data))
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(readme)
    return readme, profile
