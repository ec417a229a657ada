"""Listening examples and spectrogram arrays written by the evaluation.

Both are small because they are committed with the results: the WAV clips feed the
companion page, the arrays feed the before/after/clean figure of ``08_figures``.

``spectrograms.npz`` keys (one excerpt of the first channel of one stem, time-aligned):

* ``separated``, ``enhanced``, ``clean``: ``(n_samples,)`` float32 waveforms; the figure
  takes their STFT with ``n_fft``/``hop_length`` (magnitude, and phase error to ``clean``);
* ``sample_rate``, ``n_fft``, ``hop_length`` (ints) and ``testset``, ``track``, ``stem``,
  ``system`` (strings; ``system`` is the enhancing system).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CLIP_SYSTEMS = ("identity", "postfilter", "regression")
"""Systems heard next to the mixture, the clean stem and the enhanced stem."""


def clip_window(audio: np.ndarray, n_samples: int) -> tuple[int, int]:
    """The loudest window of ``n_samples`` in ``(C, N)`` audio (the whole clip if shorter)."""
    from stemprover.testsets import active_excerpt

    return active_excerpt({"x": audio}, n_samples, hop_samples=max(1, n_samples // 8))


def example_clips(item: Any, outputs: dict[str, dict[str, np.ndarray]], stem: str, enhanced: str):
    """Name -> ``(C, N)`` audio of the clips for one item: mixture, systems, clean."""
    clips = {"mixture": item.mixture}
    for name in (*CLIP_SYSTEMS, enhanced):
        if name in outputs and name not in clips:
            clips[name] = outputs[name][stem]
    clips["clean"] = item.clean[stem]
    return clips


def save_examples(kept: dict, cfg: Any, folder: Path, enhanced: str) -> list[Path]:
    """Write 16-bit mono clips, trimmed so the folder stays under ``cfg.examples_max_mb``.

    Args:
        kept: ``{testset: (item, {system: {stem: (C, N)}})}``.
        cfg: An ``EvaluationConfig``.
        folder: Output folder (its old WAVs are removed first).
        enhanced: The StemProver system to hear (e.g. ``"stemprover@4"``).

    Returns:
        The written paths.
    """
    from stemprover.audio import save_audio

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.wav"):
        old.unlink()
    sets = {t: example_clips(item, outs, cfg.example_stem, enhanced) for t, (item, outs) in kept.items()}
    n_files = sum(len(c) for c in sets.values())
    sample_rate = next(iter(kept.values()))[0].sample_rate
    # 2 bytes per mono sample plus a 44-byte header per file.
    budget_s = (cfg.examples_max_mb * 1e6 - 100 * n_files) / (2 * sample_rate * max(n_files, 1))
    n_samples = int(min(cfg.example_seconds, budget_s) * sample_rate)
    paths = []
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
    return paths


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
