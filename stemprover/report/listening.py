"""Hear the evaluation's examples: players in notebook 05 and a static listening page.

    python -m stemprover.report.listening --profile cpu     # paper/demo/cpu/index.html (`make paper`)

    from stemprover.report.listening import show_examples   # in a notebook
    show_examples("results/cpu/05_evaluation/examples")

Both read ``results/<profile>/05_evaluation/examples/`` alone (the clips and their index,
:mod:`stemprover.stages.evaluation`). The notebook shows one player per clip. The page shows
one player per example (a test set and stem) with an A/B switch between the systems: the
mixture, the separator output, the post-filter, the regression U-Net, StemProver's model alone
on the stem, StemProver after the four-stem projection at each step count, and the clean stem.
Switching keeps the play position and keeps playing, so a listener hears the same bar through
each system. Each row says what to listen for (from its stem and the separator's artifact), and
shows the spectrogram and the SI-SDR of the chosen clip. No number is typed here.

The page (``index.html`` and ``media/``: lossless FLAC clips, PNG spectrograms) has one small
inline script for the switch, no external script, style sheet or web font, so it works
offline, from a file or any static host. cpu and gpu pages go to ``paper/demo/<profile>/``
(committed, linked from the README); the smoke page goes to ``build/demo/smoke/`` so tests
never touch committed files.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import soundfile as sf

from stemprover.constants import STEMS
from stemprover.dsp.audio import load_audio
from stemprover.errors import StemproverError
from stemprover.inference.streaming import ArraySource
from stemprover.metrics.signal import si_sdr
from stemprover.project.paths import repo_root
from stemprover.project.provenance import code_commit
from stemprover.report import resultsio as rio
from stemprover.report.clip_plots import RANGE_DB, Spectrogram, clip_png, spectrogram

PAGE_MAX_MB = 20.0  # the committed page and its stereo media stay below this
CLIP_LABELS = {"mixture": "mixture", "clean": "clean stem", "identity": "separator output",
               "bridge": "model alone"}
FIRST_HEARD = "identity"  # the switch starts at the separator output: the thing to improve on
STAGE = "05_evaluation"
STYLE = """
body { font-family: Georgia, 'DejaVu Serif', serif; margin: 2em auto; max-width: 72em;
       padding: 0 1em; color: #222; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin: 1.6em 0 0.2em; border-bottom: 1px solid #ddd; }
p.source { color: #555; font-size: 0.9em; margin: 0.2em 0 0.6em; }
div.row { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure.clip { margin: 0; padding: 0.4em; border: 1px solid #e4e4e4; border-radius: 4px;
              width: 300px; }
figure.clip img { display: block; width: 300px; height: auto; }
figure.clip audio { width: 300px; margin-top: 0.3em; }
figcaption { font-size: 0.85em; display: flex; justify-content: space-between; gap: 0.5em; }
span.score { font-variant-numeric: tabular-nums; white-space: nowrap; }
footer { margin-top: 2.5em; color: #666; font-size: 0.85em; }
code { font-size: 0.95em; }
p.listen { margin: 0.3em 0; }
div.player { border: 1px solid #e4e4e4; border-radius: 4px; padding: 0.6em; max-width: 46em; }
div.player img { display: block; width: 100%; max-width: 600px; height: auto; }
div.player audio { width: 100%; max-width: 600px; margin: 0.4em 0; }
div.choices { display: flex; flex-wrap: wrap; gap: 0.3em; }
div.choices button { font: inherit; font-size: 0.9em; padding: 0.25em 0.6em; cursor: pointer;
                     border: 1px solid #888; border-radius: 3px; background: #f6f6f6; }
div.choices button[aria-pressed="true"] { background: #0072B2; color: #fff; border-color: #0072B2; }
p.now { font-size: 0.9em; margin: 0.4em 0 0; display: flex; gap: 1em; flex-wrap: wrap; }
p.downloads { font-size: 0.8em; color: #555; margin: 0.3em 0 0; }
"""
SCRIPT = """
document.querySelectorAll('div.player').forEach(function (player) {
  var audio = player.querySelector('audio');
  var image = player.querySelector('img.spec');
  var now = player.querySelector('p.now');
  var buttons = player.querySelectorAll('button[data-src]');
  buttons.forEach(function (button) {
    button.addEventListener('click', function () {
      if (button.getAttribute('aria-pressed') === 'true') { return; }
      var time = audio.currentTime;
      var playing = !audio.paused && !audio.ended;
      buttons.forEach(function (other) {
        other.setAttribute('aria-pressed', other === button ? 'true' : 'false');
      });
      audio.addEventListener('loadedmetadata', function () {
        // a seek to the very end (or to 0, where it already is) can fail in some demuxers
        var end = isFinite(audio.duration) ? audio.duration - 0.05 : time;
        if (time > 0) { audio.currentTime = Math.max(0, Math.min(time, end)); }
        if (playing) { audio.play().catch(function () {}); }
      }, {once: true});
      audio.src = button.dataset.src;
      image.src = button.dataset.image;
      image.alt = 'spectrogram of the ' + button.textContent + ' clip';
      now.querySelector('b').textContent = button.textContent;
      now.querySelector('span.score').textContent = button.dataset.score;
    });
  });
});
"""
LISTEN_FOR_ARTIFACT = {
    "hf_loss": "the top octave: cymbals, breath and the s and t of the words, dulled in the "
               "separator output",
    "musical_noise": "a watery, twittering haze between notes (musical noise)",
    "bleed": "other instruments leaking in behind the stem (bleed)",
    "phase_smear": "soft, smeared attacks and a hollow, phasey tone",
}
LISTEN_FOR_STEM = {
    "vocals": "consonants and breaths, and the accompaniment leaking in behind the voice",
    "drums": "the snap of each hit and the shimmer of the cymbals",
    "bass": "clean note onsets, and the kick drum leaking into the low end",
    "other": "sustained chords without warble, and the voice leaking in",
}


def clip_label(system: str) -> str:
    return CLIP_LABELS.get(system) or rio.system_label(system)


def listen_for(example: dict) -> str:
    """What a listener should attend to in one row: the artifact its separator leaves (when
    the separator name says) and what goes wrong in its stem."""
    separator = str(example.get("separator") or "")
    artifact = next((text for name, text in LISTEN_FOR_ARTIFACT.items() if name in separator),
                    None)
    stem = LISTEN_FOR_STEM.get(example["stem"], "what the separator left or took away")
    if example["testset"] == "quality_sweep":
        lead = ("A stem the separator already got nearly right: a good system leaves it alone, "
                "so listen for anything it adds or takes away, and for ")
    else:
        lead = "Listen for "
    return lead + (f"{artifact}; and for {stem}." if artifact else f"{stem}.")


def score_text(value: float | None) -> str:
    """``SI-SDR 4.21 dB`` (``−`` for negatives); ``reference`` for the clean clip."""
    if value is None:
        return "reference"
    return f"SI-SDR {value:.2f} dB".replace(" -", " \u2212")


def example_title(example: dict) -> str:
    return f"{rio.testset_label(example['testset'])} \u00b7 {example['stem']}"


def example_source(example: dict) -> str:
    """Where the clips of one example come from, as far as the index says."""
    parts = []
    if example.get("track"):
        parts.append(f"track {example['track']}")
    if example.get("separator"):
        parts.append(f"separated by {example['separator']}")
    if example.get("start_s") is not None:
        parts.append(f"from {example['start_s']:.2f} s")
    channels = {1: "mono", 2: "stereo"}.get(example.get("channels", 1),
                                            f"{example.get('channels')} channels")
    parts.append(f"{example['seconds']:.2f} s at {example['sample_rate']} Hz, {channels}")
    return ", ".join(parts)


def clip_images(example: dict, folder: Path) -> dict[str, bytes]:
    """System -> PNG spectrogram of each clip, all on the scale of the loudest clip."""

    images: dict[str, Spectrogram] = {}
    for clip in example["clips"]:
        audio, rate = load_audio(folder / clip["file"])
        images[clip["system"]] = spectrogram(ArraySource(audio, rate))
    vmax = float(max(image.db.max() for image in images.values()))
    return {name: clip_png(image, vmax - RANGE_DB, vmax) for name, image in images.items()}


def show_examples(folder: str | Path, stems: Iterable[str] | None = None) -> None:
    """Display each example as a table of ``IPython.display.Audio`` players (notebook 05).

    One row per clip: its label, a player with the clip embedded, its spectrogram and its
    SI-SDR against the clean clip. ``stems`` limits the examples shown (None: all), which
    keeps the notebook's stored output small; the listening page holds every example.
    """
    from IPython.display import HTML, Audio, display

    folder = Path(folder)
    shown = None if stems is None else set(stems)
    for example in read_examples(folder)["examples"]:
        if shown is not None and example["stem"] not in shown:
            continue
        images = clip_images(example, folder)
        rows = []
        for clip in example["clips"]:
            player = Audio(filename=str(folder / clip["file"]))._repr_html_()
            image = base64.b64encode(images[clip["system"]]).decode("ascii")
            rows.append(
                f"<tr><td><b>{html.escape(clip_label(clip['system']))}</b><br>"
                f"{score_text(clip['si_sdr_db'])}</td><td>{player}</td>"
                f'<td><img src="data:image/png;base64,{image}" width="300"></td></tr>'
            )
        display(HTML(f"<h4>{html.escape(example_title(example))}</h4>"
                     f"<p>{html.escape(example_source(example))}</p>"
                     f"<table>{''.join(rows)}</table>"))


def _player(example: dict) -> str:
    """One player for an example: the chosen clip's spectrogram, the audio element, the A/B
    switch (one button per clip) and the chosen clip's label and SI-SDR."""
    esc = html.escape
    clips = example["clips"]
    first = next((c for c in clips if c["system"] == FIRST_HEARD), clips[0])
    name, label = Path(first["file"]).stem, clip_label(first["system"])
    buttons, downloads = [], []
    for clip in clips:
        stem, text = Path(clip["file"]).stem, clip_label(clip["system"])
        pressed = "true" if clip is first else "false"
        buttons.append(
            f'<button type="button" aria-pressed="{pressed}" data-src="media/{esc(stem)}.flac" '
            f'data-image="media/{esc(stem)}.png" data-score="{esc(score_text(clip["si_sdr_db"]))}"'
            f">{esc(text)}</button>")
        downloads.append(f'<a href="media/{esc(stem)}.flac" download>{esc(text)}</a>')
    return (
        '<div class="player">'
        f'<img class="spec" src="media/{esc(name)}.png" width="600" height="280" '
        f'alt="spectrogram of the {esc(label)} clip">'
        f'<audio controls loop preload="metadata" src="media/{esc(name)}.flac"></audio>'
        f'<div class="choices" role="group" aria-label="system heard">{"".join(buttons)}</div>'
        f'<p class="now">now: <b>{esc(label)}</b>'
        f'<span class="score">{esc(score_text(first["si_sdr_db"]))}</span></p>'
        f'<p class="downloads">FLAC: {" · ".join(downloads)}</p></div>'
    )


def render_page(profile: str, examples: list[dict], computed_at: str, built_at: str) -> str:
    """The page's HTML; each clip's media are ``media/<file stem>.flac`` and ``.png``."""
    esc = html.escape
    sections = []
    for example in examples:
        anchor = f"{example['testset']}-{example['stem']}"
        sections.append(
            f'<section id="{esc(anchor)}"><h2>{esc(example_title(example))}</h2>'
            f'<p class="source">{esc(example_source(example))}</p>'
            f'<p class="listen">{esc(listen_for(example))}</p>'
            f"{_player(example)}</section>"
        )
    note = (" The smoke profile is a tiny pipeline check: its clips and numbers mean nothing."
            if profile == "smoke" else "")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>StemProver listening examples ({esc(profile)})</title>
<link rel="icon" href="data:,">
<style>{STYLE}</style>
</head>
<body>
<h1>StemProver: listening examples</h1>
<p>Profile <code>{esc(profile)}</code>; results computed at commit
<code>{esc(computed_at)}</code>, page built at commit <code>{esc(built_at)}</code>.{note}</p>
<p>Each row is one excerpt of one test set and stem, with one player. Press play, then switch
between the systems with the buttons: the clip changes at the same point and keeps playing
(it loops), so you hear the same bar through each. <b>separator output</b> is the stem as
separated; <b>model alone</b> is StemProver's model on this stem only; <b>StemProver</b> is the
four-stem path, the model after the Wiener projection of all four stems over the mixture, at
each step count; <b>post-filter</b> is that projection alone. Clips are as heard, one gain per
row; above the player, the chosen clip's spectrogram (dBFS, {RANGE_DB:.0f} dB shown, the same
scale along a row), and beside its name its SI-SDR against the clean clip.</p>
{chr(10).join(sections)}
<footer>Generated by <code>stemprover.report.listening</code> from
<code>results/{esc(profile)}/{STAGE}/examples/</code>; do not edit.</footer>
<script>{SCRIPT}</script>
</body>
</html>
"""


def _write_media(example: dict, folder: Path, media: Path) -> None:
    for clip in example["clips"]:
        audio, rate = load_audio(folder / clip["file"])
        if audio.shape[-1] > MAX_CLIP_SECONDS * rate + 1:
            raise StemproverError(
                f"{folder / clip['file']}: {audio.shape[-1] / rate:.1f} s, longer than the "
                f"{MAX_CLIP_SECONDS:.0f} s a listening clip may last: rerun 05_evaluation"
            )
        sf.write(media / f"{Path(clip['file']).stem}.flac", audio.T, rate, subtype="PCM_16",
                 format="FLAC")
    for system, png in clip_images(example, folder).items():
        name = next(Path(c["file"]).stem for c in example["clips"] if c["system"] == system)
        (media / f"{name}.png").write_bytes(png)


def build_page(results: Path, out_dir: Path) -> Path:
    """Write ``out_dir/index.html`` and ``out_dir/media/`` from one profile's results.

    The page is assembled in a temporary folder next to ``out_dir`` and put in its place
    at the end, so a failed build leaves the previous page whole.

    Args:
        results: ``results/<profile>/``; its name is the profile.
        out_dir: The page's folder (replaced).

    Returns:
        The written ``index.html``.

    Raises:
        StemproverError: no examples, a clip longer than the page allows, or a page over
            :data:`PAGE_MAX_MB`.
    """

    results, out_dir = Path(results), Path(out_dir)
    folder = results / STAGE / "examples"
    if not folder.is_dir():
        raise StemproverError(f"missing input {folder}: run 05_evaluation first")
    examples = read_examples(folder)["examples"]
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "media").mkdir(parents=True)
        for example in examples:
            _write_media(example, folder, tmp / "media")
        page = render_page(results.name, examples, rio.results_commit(results), code_commit())
        (tmp / "index.html").write_text(page, encoding="utf-8")
        size_mb = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()) / 1e6
        if size_mb > PAGE_MAX_MB:
            raise StemproverError(f"listening page: {size_mb:.1f} MB, over {PAGE_MAX_MB} MB")
        old = out_dir.with_name(f".{out_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / "index.html"


def page_dir(profile: str) -> Path:
    """``build/demo/smoke/`` for smoke, ``paper/demo/<profile>/`` otherwise."""
    root = repo_root()
    return root / "build" / "demo" / "smoke" if profile == "smoke" else root / "paper" / "demo" / profile


def build_profile_page(profile: str, strict: bool | None = None) -> Path | None:
    """Build :func:`page_dir` from ``results/<profile>/``; None when smoke has no examples.

    Args:
        strict: A missing input raises (None: every profile but smoke).
    """
    strict = profile != "smoke" if strict is None else strict
    try:
        page = build_page(repo_root() / "results" / profile, page_dir(profile))
    except StemproverError as exc:
        if strict or not str(exc).startswith("missing input"):
            raise
        print(f"listening page: skipped: {exc}")
        return None
    size_mb = sum(p.stat().st_size for p in page.parent.rglob("*") if p.is_file()) / 1e6
    print(f"listening page: built {page.relative_to(repo_root())} ({size_mb:.1f} MB)")
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stemprover.report.listening",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args(argv)
    try:
        build_profile_page(args.profile)
    except StemproverError as exc:
        print(f"listening page: error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


CLIP_SYSTEMS = ("identity", "postfilter", "regression", "bridge")


MAX_CLIP_SECONDS = 4.0  # the listening page promises short clips, whatever example_seconds says


INDEX = "examples.json"


_CLIP_FILE = re.compile(rf"^(?P<testset>.+)_(?P<stem>{'|'.join(STEMS)})_(?P<system>.+)\.(?:flac|wav)$")


def _steps(system: str) -> int:
    return int(system.split("@", 1)[1]) if "@" in system else 0


def clip_order(system: str) -> tuple:
    """Sort key of the clips of one example: mixture, baselines, StemProver by steps, clean."""
    fixed = ("mixture", "identity", *CLIP_SYSTEMS[1:])
    if system in fixed:
        return (0, fixed.index(system), 0)
    if system.startswith("stemprover@"):
        return (1, 0, _steps(system))
    return (3, 0, 0) if system == "clean" else (2, 0, 0)


def index_examples(folder: Path) -> dict:
    """The index of the clips in ``folder`` (see the module docstring), from the audio files
    (FLAC, or WAV in folders written before the clips were FLAC).

    Used by :func:`save_examples`, and for example folders written before ``examples.json``
    existed; those lack ``track``, ``separator`` and ``start_s``.

    Raises:
        StemproverError: a test set's clips lack the clean one, or differ in rate or length.
    """

    groups: dict[tuple[str, str], dict[str, Path]] = {}
    for path in sorted([*Path(folder).glob("*.flac"), *Path(folder).glob("*.wav")]):
        match = _CLIP_FILE.match(path.name)
        if match:
            system = re.sub(r"^stemprover_(\d+)$", r"stemprover@\1", match["system"])
            groups.setdefault((match["testset"], match["stem"]), {})[system] = path
    examples = []
    for (testset, stem), files in groups.items():
        if "clean" not in files:
            raise StemproverError(f"{folder}: no clean clip for {testset} {stem}")
        clean, rate = load_audio(files["clean"])
        clips = []
        for system in sorted(files, key=clip_order):
            audio, clip_rate = load_audio(files[system])
            if clip_rate != rate or audio.shape != clean.shape:
                raise StemproverError(f"{files[system]}: differs in rate or length from the "
                                      f"clean clip {files['clean'].name}")
            score = None if system == "clean" else round(si_sdr(audio, clean), 2)
            clips.append({"system": system, "file": files[system].name, "si_sdr_db": score})
        examples.append({"testset": testset, "stem": stem, "sample_rate": rate,
                         "channels": int(clean.shape[0]) if clean.ndim > 1 else 1,
                         "seconds": round(clean.shape[-1] / rate, 3), "clips": clips})
    return {"examples": examples}


def read_examples(folder: Path) -> dict:
    """``examples.json`` of ``folder``, else the index made from its audio files.

    Raises:
        StemproverError: the folder holds no clips.
    """
    folder = Path(folder)
    index_path = folder / INDEX
    index = json.loads(index_path.read_text()) if index_path.is_file() else index_examples(folder)
    if not index["examples"]:
        raise StemproverError(f"missing input: no listening examples in {folder}")
    return index
