"""Render the corpus: arrangement -> FluidSynth/Festival parts -> stems -> mixture -> WAV files.

    tracks = render_corpus(CorpusConfig(), Path("build/cache/smoke/corpus"))

Layout: ``<out>/<split>/<track>/{mixture,vocals,drums,bass,other}.wav`` (44.1 kHz stereo
float32), ``<track>/track.json`` (written last: the track is complete), ``<out>/corpus.json``
(the list of tracks) and ``<out>/render.json`` (config, counts and render time). The
mixture is the float32 sum ``vocals + drums + bass + other`` and is checked to be exactly
that after it is read back.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from stemprover.constants import CORPUS_SAMPLE_RATE, SPLITS, STEMS
from stemprover.corpus.arrangement import Arrangement, Part
from stemprover.corpus.config import CORPUS_VERSION, CorpusConfig
from stemprover.corpus.pop import pop_arrangement
from stemprover.corpus.render import render_part, resolve_soundfont
from stemprover.corpus.scores import score_arrangement
from stemprover.corpus.splits import TrackPlan, plan_tracks
from stemprover.corpus.voice import add_air, place, sing
from stemprover.dsp.audio import load_audio, save_audio
from stemprover.errors import StemproverError
from stemprover.project.config import build, load_profile, to_dict
from stemprover.project.paths import cache_dir
from stemprover.project.seed import rng_for

FADE_OUT_SECONDS = 0.3  # songs are excerpts; a short fade avoids a hard cut
PEAK_LIMIT = 0.9  # the mixture's peak stays below -0.9 dBFS


@dataclass
class TrackInfo:
    """One rendered track, as listed in ``corpus.json``."""

    track: str
    split: str
    piece: str
    source: str
    soundfont: str
    seconds: float
    tempo: float  # quarter notes per minute
    voice: str  # "festival" or "gm" (the GM choir/voice patch)
    render_seconds: float  # wall-clock time it took to render, s
    instruments: list[str] = field(default_factory=list)  # "stem:part:GM program"
    fingerprint: str = ""


def mix_stems(stems: dict[str, np.ndarray]) -> np.ndarray:
    """The mixture: ``vocals + drums + bass + other`` summed in this order, in float32."""
    mixture = np.asarray(stems[STEMS[0]], dtype=np.float32).copy()
    for stem in STEMS[1:]:
        mixture = mixture + np.asarray(stems[stem], dtype=np.float32)
    return mixture


def _fingerprint(cfg: CorpusConfig, plan: TrackPlan) -> str:
    material = {
        "version": CORPUS_VERSION, "seed": cfg.seed, "piece": plan.piece, "split": plan.split,
        "soundfont": cfg.soundfonts[plan.split], "seconds": cfg.song_seconds, "voice": cfg.voice,
        "classical_drums": cfg.classical_drums, "air": cfg.vocal_air_db,
        "levels": cfg.stem_levels,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def _arrangement(cfg: CorpusConfig, plan: TrackPlan) -> Arrangement:
    rng = rng_for(cfg.seed, "arrangement", plan.piece)
    if plan.source == "pop":
        return pop_arrangement(plan.piece, cfg.song_seconds, rng)

    return score_arrangement(plan.piece, cfg.song_seconds, rng, cfg.classical_drums)


def _sung(part: Part, cfg: CorpusConfig, n: int, voice_cache: Path, rng) -> np.ndarray:
    voice = sing(part.notes, part.lyrics, n, CORPUS_SAMPLE_RATE, cache_dir=voice_cache)
    voice = add_air(voice, CORPUS_SAMPLE_RATE, cfg.vocal_air_db)
    return place(voice, CORPUS_SAMPLE_RATE, part.pan, rng)


def render_stems(
    cfg: CorpusConfig, plan: TrackPlan, voice_cache: Path
) -> tuple[dict[str, np.ndarray], Arrangement, str]:
    """The four float32 ``(2, n)`` stems of one track, levelled, faded and limited.

    Returns:
        ``(stems, arrangement, voice)`` with voice "festival" or "gm".
    """
    sr = CORPUS_SAMPLE_RATE
    n = int(round(cfg.song_seconds * sr))
    arrangement = _arrangement(cfg, plan)
    soundfont = resolve_soundfont(cfg.soundfonts[plan.split])
    mix_rng = rng_for(cfg.seed, "mix", plan.piece)
    stems = {stem: np.zeros((2, n), dtype=np.float64) for stem in STEMS}
    voice = "gm"
    for part in arrangement.parts:
        audio = None
        if part.sung and cfg.voice == "festival" and part.notes:
            try:
                audio = _sung(part, cfg, n, voice_cache, rng_for(cfg.seed, "room", plan.piece))
                voice = "festival"
            except StemproverError as err:
                warnings.warn(f"{plan.track}: {err}; singing with GM patch {part.program}")
        if audio is None:
            audio = render_part(part, soundfont, n, sr)
        stems[part.stem] += 10.0 ** (part.gain_db / 20.0) * audio
    fade = np.ones(n)
    n_fade = min(n, int(FADE_OUT_SECONDS * sr))
    fade[n - n_fade :] = 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, n_fade)))
    for stem in STEMS:
        target_db = mix_rng.uniform(*cfg.stem_levels[stem])  # drawn for every stem: stable rng
        rms = float(np.sqrt(np.mean(stems[stem] ** 2)))
        if rms > 1e-7:
            stems[stem] *= 10.0 ** (target_db / 20.0) / rms
        stems[stem] *= fade
    peak = float(np.max(np.abs(sum(stems.values()))))
    scale = PEAK_LIMIT / peak if peak > PEAK_LIMIT else 1.0
    return {s: (a * scale).astype(np.float32) for s, a in stems.items()}, arrangement, voice


def _write_json(path: Path, data: Any) -> None:
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(handle, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def render_track(cfg: CorpusConfig, plan: TrackPlan, out_dir: Path) -> TrackInfo:
    """Render one track into ``out_dir/<split>/<track>/`` and return its info.

    Raises:
        StemproverError: when the written mixture is not exactly the sum of the stems.
    """
    start = time.perf_counter()
    track_dir = Path(out_dir) / plan.split / plan.track
    stems, arrangement, voice = render_stems(cfg, plan, Path(out_dir) / ".voice_cache")
    mixture = mix_stems(stems)
    (track_dir / "track.json").unlink(missing_ok=True)
    for name, audio in (("mixture", mixture), *stems.items()):
        save_audio(track_dir / f"{name}.wav", audio, CORPUS_SAMPLE_RATE)
    loaded = load_track(track_dir)
    if not np.array_equal(loaded["mixture"], mix_stems(loaded)):
        raise StemproverError(f"{track_dir}: mixture.wav is not the sum of the stems")
    info = TrackInfo(
        track=plan.track, split=plan.split, piece=plan.piece, source=plan.source,
        soundfont=resolve_soundfont(cfg.soundfonts[plan.split]).stem,
        seconds=float(cfg.song_seconds), tempo=round(float(arrangement.tempo), 2), voice=voice,
        render_seconds=round(time.perf_counter() - start, 3),
        instruments=[f"{p.stem}:{p.name}:{p.program}" for p in arrangement.parts],
        fingerprint=_fingerprint(cfg, plan),
    )  # fmt: skip
    _write_json(track_dir / "track.json", asdict(info))
    return info


def _existing(cfg: CorpusConfig, plan: TrackPlan, out_dir: Path) -> TrackInfo | None:
    track_dir = out_dir / plan.split / plan.track
    marker = track_dir / "track.json"
    if not marker.is_file() or not all(
        (track_dir / f"{n}.wav").is_file() for n in ("mixture", *STEMS)
    ):
        return None
    try:
        info = TrackInfo(**json.loads(marker.read_text()))
    except (json.JSONDecodeError, TypeError):
        return None
    return info if info.fingerprint == _fingerprint(cfg, plan) else None


def _render_job(args: tuple[CorpusConfig, TrackPlan, Path]) -> TrackInfo:
    return render_track(*args)


def render_corpus(cfg: CorpusConfig, out_dir: Path, progress: bool = True) -> list[TrackInfo]:
    """Render every track of ``cfg`` that is not already there, then write the manifests.

    Idempotent: complete tracks with a matching fingerprint are skipped; tracks of an
    older config that the plan no longer holds are removed.

    Args:
        cfg: The corpus config.
        out_dir: Corpus folder (created).
        progress: Show a tqdm bar.

    Returns:
        The tracks in split order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = plan_tracks(cfg)
    for split in SPLITS:  # a soundfont problem must surface before any work is done
        resolve_soundfont(cfg.soundfonts[split])
    infos: dict[str, TrackInfo] = {}
    todo = []
    for plan in plans:
        existing = _existing(cfg, plan, out_dir)
        if existing is not None:
            infos[plan.track] = existing
        else:
            todo.append(plan)
    wall = time.perf_counter()
    bar = tqdm(total=len(plans), initial=len(plans) - len(todo), desc="render corpus",
               unit="song", disable=not progress)  # fmt: skip
    if cfg.workers > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")
        n_workers = min(cfg.workers, len(todo), os.cpu_count() or 1)
        with ProcessPoolExecutor(n_workers, mp_context=context) as pool:
            for info in pool.map(_render_job, [(cfg, p, out_dir) for p in todo]):
                infos[info.track] = info
                bar.update()
    else:
        for plan in todo:
            infos[plan.track] = render_track(cfg, plan, out_dir)
            bar.update()
    bar.close()
    wall = time.perf_counter() - wall
    _remove_stale(out_dir, {(p.split, p.track) for p in plans})
    tracks = [infos[p.track] for p in plans]
    _write_json(out_dir / "corpus.json", [asdict(t) for t in tracks])
    summary = corpus_summary(out_dir, tracks)
    summary.update(config=to_dict(cfg), wall_seconds_last_run=round(wall, 2),
                   rendered_last_run=len(todo), cpu_count=os.cpu_count(),
                   load_average=round(os.getloadavg()[0], 2))  # fmt: skip
    _write_json(out_dir / "render.json", summary)
    return tracks


def _remove_stale(out_dir: Path, keep: set[tuple[str, str]]) -> None:
    """Delete tracks this renderer wrote (they carry a track.json with a fingerprint) that
    the current plan no longer holds; anything else in ``out_dir`` is left alone."""
    for split in SPLITS:
        for marker in sorted((out_dir / split).glob("*/track.json")):
            try:
                ours = "fingerprint" in json.loads(marker.read_text())
            except (json.JSONDecodeError, TypeError):
                ours = False
            if ours and (split, marker.parent.name) not in keep:
                shutil.rmtree(marker.parent)


def corpus_summary(corpus_dir: Path, tracks: list[TrackInfo] | None = None) -> dict[str, Any]:
    """Counts, durations and render time of a corpus (for a dataset card).

    Returns:
        ``{"n_tracks", "per_split", "per_source", "voices", "soundfonts", "seconds_total",
        "render_seconds_total"}``; render time is the sum of the tracks' own render times.
    """
    entries = [asdict(t) for t in tracks] if tracks is not None else read_manifest(corpus_dir)

    def count(key: str) -> dict[str, int]:
        values = sorted({e[key] for e in entries})
        return {v: sum(e[key] == v for e in entries) for v in values}

    return {
        "n_tracks": len(entries),
        "per_split": {s: sum(e["split"] == s for e in entries) for s in SPLITS},
        "per_source": count("source"),
        "voices": count("voice"),
        "soundfonts": {s: sorted({e["soundfont"] for e in entries if e["split"] == s})
                       for s in SPLITS},
        "seconds_total": round(sum(e["seconds"] for e in entries), 2),
        "render_seconds_total": round(sum(e["render_seconds"] for e in entries), 2),
    }  # fmt: skip


def read_manifest(corpus_dir: Path) -> list[dict[str, Any]]:
    """The entries of ``corpus_dir/corpus.json``."""
    path = Path(corpus_dir) / "corpus.json"
    if not path.is_file():
        raise StemproverError(f"{corpus_dir}: no corpus.json (render the corpus first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise StemproverError(f"{path}: not valid JSON ({err.msg})") from err


def corpus_config(profile: str) -> CorpusConfig:
    """The ``corpus:`` section of a profile (its seed defaults to the ``common`` seed)."""

    data = load_profile(profile)
    values = dict(data.get("corpus", {}))
    if "seed" not in values and "seed" in data.get("common", {}):
        values["seed"] = data["common"]["seed"]
    return build(CorpusConfig, values, where=f"{profile}.corpus")


def ensure_corpus(profile: str, cfg: CorpusConfig | None = None, progress: bool = True) -> Path:
    """Render the profile's corpus into ``build/cache/<profile>/corpus`` unless it is there.

    Args:
        profile: "smoke", "cpu" or "gpu".
        cfg: Overrides the profile's ``corpus:`` section.
        progress: Show a tqdm bar while rendering.

    Returns:
        The corpus folder.
    """

    cfg = cfg if cfg is not None else corpus_config(profile)
    out_dir = cache_dir(profile, "corpus")
    render_corpus(cfg, out_dir, progress=progress)
    return out_dir


def load_track(track_dir: Path) -> dict[str, np.ndarray]:
    """A track's mixture and stems, float32 ``(2, n)`` at 44.1 kHz.

    Returns:
        ``{"mixture", "vocals", "drums", "bass", "other"}``.
    """
    track_dir = Path(track_dir)
    if not track_dir.is_dir():
        raise StemproverError(f"{track_dir}: no such track folder")
    audio = {}
    for name in ("mixture", *STEMS):
        data, rate = load_audio(track_dir / f"{name}.wav")
        if rate != CORPUS_SAMPLE_RATE:
            raise StemproverError(f"{track_dir}/{name}.wav: {rate} Hz, expected 44100 Hz")
        audio[name] = data
    lengths = {a.shape for a in audio.values()}
    if len(lengths) != 1:
        raise StemproverError(f"{track_dir}: stems and mixture differ in shape {sorted(lengths)}")
    return audio


def list_tracks(corpus_dir: Path, split: str | None = None) -> list[Path]:
    """Track folders of a corpus (from corpus.json when present), optionally of one split."""
    corpus_dir = Path(corpus_dir)
    if split is not None and split not in SPLITS:
        raise StemproverError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if not corpus_dir.is_dir():
        raise StemproverError(f"{corpus_dir}: no such corpus folder")
    if (corpus_dir / "corpus.json").is_file():
        dirs = [corpus_dir / e["split"] / e["track"] for e in read_manifest(corpus_dir)
                if split is None or e["split"] == split]  # fmt: skip
        return [d for d in dirs if d.is_dir()]
    splits = [split] if split else list(SPLITS)
    return sorted(p.parent for s in splits for p in (corpus_dir / s).glob("*/mixture.wav"))
