"""Benchmark input: a never-silent, music-like stereo clip written block by block.

    from stemprover.bench.clips import write_test_clip
    write_test_clip(Path("clip.wav"), seconds=30.0)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from stemprover.project.seed import rng_for

CLIP_RATE = 44100  # the contract's clip: 30 s of stereo at 44.1 kHz


def write_test_clip(path: Path, seconds: float, seed: int = 0, block_seconds: float = 5.0,
                    sample_rate: int = CLIP_RATE) -> Path:
    """A stereo, never-silent music-like clip, generated and written block by block.

    Harmonic notes (random pitch every 250 ms) over pink-ish noise, so every segment
    reaches the model (silent segments are passed through and would flatter the timing).
    """

    n_total = int(round(seconds * sample_rate))
    block = int(block_seconds * sample_rate)
    note = sample_rate // 4
    with sf.SoundFile(str(path), "w", samplerate=sample_rate, channels=2,
                      subtype="FLOAT") as handle:
        for start in range(0, n_total, block):
            rng = rng_for(seed, "clip", start)
            n = min(block, n_total - start)
            t = (start + np.arange(n)) / sample_rate
            pitch = 110.0 * 2 ** (rng.integers(0, 36, size=n // note + 1) / 12)
            freq = np.repeat(pitch, note)[:n]
            phase = 2 * np.pi * np.cumsum(freq) / sample_rate
            tone = sum(np.sin(k * phase) / k for k in range(1, 6))
            envelope = np.exp(-((t * 4) % 1.0) * 3.0)
            noise = np.cumsum(rng.standard_normal((2, n)), axis=1)
            noise -= np.linspace(noise[:, :1], noise[:, -1:], n, axis=1)[:, :, 0]
            audio = 0.2 * tone * envelope + 0.002 * noise
            handle.write(np.asarray(audio, dtype=np.float32).T)
    return path
