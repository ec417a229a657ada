"""Train HTDemucs and Open-Unmix on the corpus train split.

    python -c "from stemprover.separators import train_neural_separator as t; \
        t('htdemucs', 'build/cache/cpu/corpus', 'results/cpu/01_phase_analysis/weights/htdemucs.pt', \
          steps=300, sample_rate=22050)"

Each example remixes the stems of random training tracks (a random track, offset and gain
per stem, random channel swap), the standard Demucs augmentation that multiplies the
variety of a small corpus. HTDemucs learns with an L1 loss on the waveforms (as Demucs),
Open-Unmix with an MSE loss on magnitudes (as Open-Unmix).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from stemprover.constants import STEMS
from stemprover.corpus import list_tracks, load_track
from stemprover.dsp.audio import resample, to_channels
from stemprover.errors import StemproverError
from stemprover.project.seed import rng_for, seed_everything
from stemprover.separators.neural import (
    CHECKPOINT_VERSION,
    KINDS,
    UnmixSet,
    build_model,
    default_model_kwargs,
    torch_threads,
)


def load_training_stems(
    corpus_dir: str | Path, sample_rate: int, split: str = "train", max_tracks: int | None = None
) -> dict[str, list[np.ndarray]]:
    """stem -> list of ``(2, n)`` float32 arrays at ``sample_rate``, one per track of ``split``."""

    tracks = list_tracks(Path(corpus_dir), split=split)[:max_tracks]
    if not tracks:
        raise StemproverError(f"{corpus_dir}: no {split} tracks to train a separator on")
    stems: dict[str, list[np.ndarray]] = {s: [] for s in STEMS}
    for track_dir in tracks:
        track = load_track(track_dir)
        source_rate = int(track.get("sample_rate", 44100)) if isinstance(track, dict) else 44100
        for stem in STEMS:
            audio = to_channels(np.asarray(track[stem], dtype=np.float32), 2)
            if source_rate != sample_rate:
                audio = resample(audio, source_rate, sample_rate)
            stems[stem].append(np.ascontiguousarray(audio, dtype=np.float32))
    return stems


def remix_batch(
    stems: dict[str, list[np.ndarray]], n_samples: int, batch_size: int, rng: np.random.Generator
) -> torch.Tensor:
    """A batch of remixed stems ``(batch, S, 2, n_samples)``; their sum is the mixture."""
    batch = np.zeros((batch_size, len(STEMS), 2, n_samples), dtype=np.float32)
    for b in range(batch_size):
        for index, stem in enumerate(STEMS):
            audio = stems[stem][rng.integers(len(stems[stem]))]
            start = int(rng.integers(max(1, audio.shape[-1] - n_samples + 1)))
            piece = audio[:, start : start + n_samples]
            if rng.random() < 0.5:
                piece = piece[::-1]
            batch[b, index, :, : piece.shape[-1]] = piece * rng.uniform(0.5, 1.25)
    return torch.from_numpy(batch)


def train_neural_separator(
    kind: str,
    corpus_dir: str | Path,
    out_path: str | Path,
    *,
    steps: int,
    sample_rate: int,
    seed: int = 0,
    batch_size: int = 4,
    segment_seconds: float = 2.0,
    learning_rate: float | None = None,
    size: str = "small",
    max_tracks: int | None = None,
    device: str = "cpu",
    threads: int | None = 1,
    progress: bool = True,
    snapshot_steps: tuple[int, ...] = (),
) -> Path:
    """Train ``kind`` (``htdemucs`` | ``openunmix``) and save its checkpoint at ``out_path``.

    With ``snapshot_steps`` the model is also saved at those steps, as
    :func:`snapshot_path` (``<kind>@<step>.pt`` beside ``out_path``): one architecture then
    gives separators of several quality levels, each with its own artifact signature.

    Args:
        kind: which model.
        corpus_dir: rendered corpus (``<split>/<track>/<stem>.wav``).
        out_path: checkpoint file to write (atomically).
        steps: optimiser steps.
        sample_rate: model rate, Hz.
        seed: seeds the initialisation and the remixing.
        batch_size: examples per step.
        segment_seconds: training example length, s.
        learning_rate: Adam step size; None picks the package default (3e-4 / 1e-3).
        size: ``tiny`` | ``small`` | ``base`` (see ``default_model_kwargs``).
        max_tracks: use at most this many training tracks.
        device: torch device.
        threads: CPU threads while training (None: torch's default; see ``torch_threads``).
        progress: show a tqdm bar.
        snapshot_steps: steps (below ``steps``) at which to save an earlier checkpoint too.

    Returns:
        ``out_path``.
    """
    if kind not in KINDS:
        raise StemproverError(f"unknown neural separator {kind!r}; choose one of {KINDS}")
    if steps < 1:
        raise StemproverError(f"steps must be >= 1, got {steps}")
    if any(not 1 <= k < steps for k in snapshot_steps):
        raise StemproverError(f"snapshot_steps must lie in [1, {steps}), got {list(snapshot_steps)}")
    with torch_threads(threads if torch.device(device).type == "cpu" else None):
        return _train(kind, corpus_dir, Path(out_path), steps, sample_rate, seed, batch_size,
                      segment_seconds, learning_rate, size, max_tracks, device, progress,
                      set(snapshot_steps))


def snapshot_path(out_path: str | Path, kind: str, step: int) -> Path:
    """Where the checkpoint of ``kind`` at ``step`` is saved: ``<kind>@<step>.pt``."""
    return Path(out_path).with_name(f"{kind}@{step}.pt")


def _train(kind, corpus_dir, out_path, steps, sample_rate, seed, batch_size, segment_seconds,
           learning_rate, size, max_tracks, device, progress, snapshots=frozenset()) -> Path:
    seed_everything(seed)
    rng = rng_for(seed, "train", kind)
    stems = load_training_stems(corpus_dir, sample_rate, max_tracks=max_tracks)
    kwargs: dict[str, Any] = default_model_kwargs(kind, sample_rate, size)
    if kind == "htdemucs":
        kwargs["segment"] = float(segment_seconds)
    model = build_model(kind, sample_rate, kwargs).to(device)
    n_samples = int(round(segment_seconds * sample_rate))
    if isinstance(model, UnmixSet):
        with torch.no_grad():
            mixes = remix_batch(stems, n_samples, 8, rng).sum(1).to(device)
            mags = model.spectrogram(mixes).abs().transpose(-1, -2).reshape(-1, model.n_fft // 2 + 1)
            model.set_input_stats(mags.mean(0), mags.std(0))
    lr = learning_rate or (3e-4 if kind == "htdemucs" else 1e-3)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=f"train {kind}", disable=not progress)
    for _ in bar:
        sources = remix_batch(stems, n_samples, batch_size, rng).to(device)
        mixture = sources.sum(1)
        if isinstance(model, UnmixSet):
            target = model.spectrogram(sources.flatten(1, 2)).abs()
            target = target.reshape(*sources.shape[:3], *target.shape[-2:])
            loss = torch.nn.functional.mse_loss(model(mixture), target)
        else:
            loss = torch.nn.functional.l1_loss(model(mixture), sources)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimiser.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if len(losses) in snapshots:
            _save(snapshot_path(out_path, kind, len(losses)), kind, sample_rate, kwargs, model,
                  losses, time.perf_counter() - start, stems, seed)
    _save(out_path, kind, sample_rate, kwargs, model, losses, time.perf_counter() - start,
          stems, seed)
    return out_path


def _save(out_path, kind, sample_rate, kwargs, model, losses, elapsed, stems, seed) -> None:
    steps = len(losses)
    tail = losses[-max(1, steps // 10):]
    state = {
        "kind": kind,
        "version": CHECKPOINT_VERSION,
        "sample_rate": int(sample_rate),
        "stems": list(STEMS),
        "model_kwargs": kwargs,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "steps": int(steps),
        "train_seconds": float(elapsed),
        "final_loss": float(np.mean(tail)),
        "first_loss": float(np.mean(losses[: max(1, steps // 10)])),
        "n_tracks": len(stems[STEMS[0]]),
        "seed": int(seed),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, out_path)
