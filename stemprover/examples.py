"""Listening examples and spectrogram arrays written by the evaluation.

Both are small because they are committed with the results: the WAV clips feed the
players of notebook 05 and the listening page (:mod:`stemprover.listening`), the arrays
feed the before/after/clean figure of ``08_figures``.

``examples/`` holds ``<testset>_<stem>_<system>.wav`` (16-bit mono, ``@`` written ``_``) and
``examples.json``, their index::

    {"examples": [{"testset": "real", "stem": "vocals", "sample_rate": 22050,
                   "seconds": 3.0, "track": ..., "separator": ..., "start_s": 1.5,
                   "clips": [{"system": "mixture", "file": "real_vocals_mixture.wav",
                              "si_sdr_db": -6.4}, ..., {"system": "clean", ...,
                              "si_sdr_db": null}]}]}

``si_sdr_db`` is the clip's SI-SDR against the clean clip, as heard (null for the clean one).

``spectrograms.npz`` keys (one excerpt of the first channel of one stem, time-aligned):

* ``separated``, ``enhanced``, ``clean``: ``(n_samples,)`` float32 waveforms; the figure
  takes their STFT with ``n_fft``/``hop_length`` (magnitude, and phase error to ``clean``);
* ``sample_rate``, ``n_fft``, ``hop_length`` (ints) and ``testset``, ``track``, ``stem``,
  ``system`` (strings; ``system`` is the enhancing system).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from stemprover.constants import STEMS
from stemprover.errors import StemproverError

CLIP_SYSTEMS = ("identity", "postfilter", "regression")
"""Systems heard next to the mixture, the clean stem and every StemProver step count."""
MAX_CLIP_SECONDS = 4.0  # the listening page promises short clips, whatever example_seconds says
INDEX = "examples.json"
_CLIP_FILE = re.compile(rf"^(?P<testset>.+)_(?P<stem>{'|'.join(STEMS)})_(?P<system>.+)\.wav$")


def clip_window(audio: np.ndarray, n_samples: int) -> tuple[int, int]:
    """The loudest window of ``n_samples`` in ``(C, N)`` audio (the whole clip if shorter)."""
    from stemprover.testsets import active_excerpt

    return active_excerpt({"x": audio}, n_samples, hop_samples=max(1, n_samples // 8))


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


def example_clips(item: Any, outputs: dict[str, dict[str, np.ndarray]], stem: str, enhanced: str):
    """Name -> ``(C, N)`` audio of the clips for one item.

    The mixture, the baselines of :data:`CLIP_SYSTEMS`, StemProver at every step count that
    was evaluated (and ``enhanced``), and the clean stem, in :func:`clip_order`.
    """
    names = [*CLIP_SYSTEMS, *(n for n in outputs if n.startswith("stemprover@")), enhanced]
    clips = {"mixture": item.mixture}
    for name in sorted(dict.fromkeys(n for n in names if n in outputs), key=clip_order):
        clips[name] = outputs[name][stem]
    clips["clean"] = item.clean[stem]
    return clips


def save_examples(kept: dict, cfg: Any, folder: Path, enhanced: str) -> list[Path]:
    """Write 16-bit mono clips, trimmed so the folder stays under ``cfg.examples_max_mb``.

    Args:
        kept: ``{testset: (item, {system: {stem: (C, N)}})}``.
        cfg: An ``EvaluationConfig``.
        folder: Output folder (its old WAVs and index are removed first).
        enhanced: The StemProver system to hear (e.g. ``"stemprover@4"``).

    Returns:
        The written paths.
    """
    from stemprover.audio import save_audio

    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.wav"), folder / INDEX]:
        old.unlink(missing_ok=True)
    sets = {t: example_clips(item, outs, cfg.example_stem, enhanced) for t, (item, outs) in kept.items()}
    n_files = sum(len(c) for c in sets.values())
    sample_rate = next(iter(kept.values()))[0].sample_rate
    # 2 bytes per mono sample plus a 44-byte header per file.
    budget_s = (cfg.examples_max_mb * 1e6 - 100 * n_files) / (2 * sample_rate * max(n_files, 1))
    n_samples = int(min(cfg.example_seconds, budget_s, MAX_CLIP_SECONDS) * sample_rate)
    paths, found = [], {}
    for testset, clips in sets.items():
        start, end = clip_window(clips["clean"], n_samples)
        mono = {name: np.mean(audio[..., start:end], axis=0) for name, audio in clips.items()}
        # One gain per example keeps the levels comparable and avoids 16-bit clipping.
        peak = max(float(np.max(np.abs(x))) for x in mono.values())
        gain = 0.99 / peak if peak > 0.99 else 1.0
        for name, audio in mono.items():
            path = folder / f"{testset}_{cfg.example_stem}_{name.replace('@', '_')}.wav"
            save_audio(path, (gain * audio)[None].astype(np.float32), sample_rate, subtype="PCM_16")
            paths.append(path)
        item = kept[testset][0]
        found[testset] = {"track": item.track, "separator": item.separator,
                          "start_s": round(start / sample_rate, 3)}
    index = index_examples(folder)
    for example in index["examples"]:
        example.update(found.get(example["testset"], {}))
    order = list(kept)
    index["examples"].sort(key=lambda e: order.index(e["testset"]) if e["testset"] in order
                           else len(order))
    target = folder / INDEX
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    tmp.replace(target)
    return paths


def index_examples(folder: Path) -> dict:
    """The index of the clips in ``folder`` (see the module docstring), from the WAV files.

    Used by :func:`save_examples`, and for example folders written before ``examples.json``
    existed; those lack ``track``, ``separator`` and ``start_s``.

    Raises:
        StemproverError: a test set's clips lack the clean one, or differ in rate or length.
    """
    from stemprover.audio import load_audio
    from stemprover.metrics import si_sdr

    groups: dict[tuple[str, str], dict[str, Path]] = {}
    for path in sorted(Path(folder).glob("*.wav")):
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
                         "seconds": round(clean.shape[-1] / rate, 3), "clips": clips})
    return {"examples": examples}


def read_examples(folder: Path) -> dict:
    """``examples.json`` of ``folder``, else the index made from its WAV files.

    Raises:
        StemproverError: the folder holds no clips.
    """
    folder = Path(folder)
    index_path = folder / INDEX
    index = json.loads(index_path.read_text()) if index_path.is_file() else index_examples(folder)
    if not index["examples"]:
        raise StemproverError(f"missing input: no listening examples in {folder}")
    return index


def save_spectrograms(kept: dict, cfg: Any, path: Path, enhanced: str) -> Path | None:
    """Write ``spectrograms.npz`` (keys in the module docstring) for the first kept test set."""
    if not kept or not enhanced:
        return None
    testset, (item, outputs) = next(iter(kept.items()))
    if enhanced not in outputs:
        return None
    stem = cfg.example_stem
    clean = item.clean[stem][0]
    start, end = clip_window(clean[None], int(cfg.spectrogram_seconds * item.sample_rate))
    waves = {
        "separated": item.separated[stem][0, start:end],
        "enhanced": np.asarray(outputs[enhanced][stem])[0, start:end],
        "clean": clean[start:end],
    }
    meta = {"sample_rate": item.sample_rate, "n_fft": cfg.n_fft, "hop_length": cfg.hop_length}
    meta |= {"testset": testset, "track": item.track, "stem": stem, "system": enhanced}
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in waves.items()}
    np.savez_compressed(path, **arrays, **{k: np.asarray(v) for k, v in meta.items()})
    return path
