"""Peak memory and time of the four-stem path's mixture projection against song length.

    python -m stemprover.bench.memory --minutes 1 10 30     # one fresh process per length
    from stemprover.bench.memory import projection_memory
    projection_memory([1.0, 10.0], folder)                  # list of dicts, one per length

Each length runs in its own process, so one measurement's pages do not hide the next's: the
peak resident set size (``ru_maxrss``) is that song's alone. The song's four stems and its
mixture are written block by block (16-bit WAV, as a user's files), then projected with
:func:`stemprover.inference.projection.load_projected`, the command's path. Flat memory
across lengths means the projection streams.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from stemprover.bench.clips import CLIP_RATE, write_test_clip
from stemprover.constants import STEMS

BLOCK_SECONDS = 5.0  # the song is written in blocks this long, never held whole


def write_song(folder: Path, seconds: float, seed: int = 0,
               subtype: str = "PCM_16") -> tuple[dict[str, str], str]:
    """Four stems (the benchmark clip, each with its own seed) and their sum, as files.

    Returns:
        ``(stem -> path, mixture path)``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    clips = {stem: write_test_clip(folder / f"clip_{stem}.wav", seconds, seed + index,
                                   block_seconds=BLOCK_SECONDS)
             for index, stem in enumerate(STEMS)}
    paths = {stem: str(folder / f"song_{stem}.wav") for stem in STEMS}
    mixture = str(folder / "song_mixture.wav")
    handles = {stem: sf.SoundFile(str(clips[stem])) for stem in STEMS}
    outs = {name: sf.SoundFile(path, "w", samplerate=CLIP_RATE, channels=2, subtype=subtype)
            for name, path in {**paths, "mixture": mixture}.items()}
    try:
        block = int(BLOCK_SECONDS * CLIP_RATE)
        while True:
            parts = {stem: 0.5 * handles[stem].read(block, dtype="float32") for stem in STEMS}
            if not len(parts[STEMS[0]]):
                break
            for stem in STEMS:
                outs[stem].write(parts[stem])
            outs["mixture"].write(np.clip(sum(parts.values()), -1.0, 1.0))
    finally:
        for handle in (*handles.values(), *outs.values()):
            handle.close()
        for clip in clips.values():
            clip.unlink()
    return paths, mixture


def measure_projection(seconds: float, folder: Path, seed: int = 0) -> dict[str, float]:
    """Project a song of ``seconds`` in this process; time and peak memory (MB)."""
    from stemprover.inference.projection import load_projected

    paths, mixture = write_song(folder, seconds, seed)
    baseline = _peak_mb()
    start = time.perf_counter()
    projected, _ = load_projected(paths, mixture)
    elapsed = time.perf_counter() - start
    del projected
    return {"audio_seconds": seconds, "time_s": elapsed, "rtf": elapsed / seconds,
            "peak_mem_mb": _peak_mb(), "baseline_mem_mb": baseline,
            "input_mb": sum(os.path.getsize(p) for p in (*paths.values(), mixture)) / 2**20}


def projection_memory(minutes: list[float], folder: Path | None = None,
                      seed: int = 0) -> list[dict[str, float]]:
    """:func:`measure_projection` for each length, each in a fresh process."""
    rows = []
    for length in minutes:
        with tempfile.TemporaryDirectory(dir=folder) as work:
            done = subprocess.run(
                [sys.executable, "-m", "stemprover.bench.memory", "--minutes", str(length),
                 "--folder", work, "--seed", str(seed), "--in-process"],
                capture_output=True, text=True, check=True, env=_env())
        rows.append({"minutes": length, **json.loads(done.stdout.strip().splitlines()[-1])})
    return rows


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", required=True)
    parser.add_argument("--folder", default=None, help="where the songs are written")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--in-process", action="store_true",
                        help="measure one length in this process (used by the others)")
    args = parser.parse_args(argv)
    if args.in_process:
        row = measure_projection(60.0 * args.minutes[0], Path(args.folder), args.seed)
        print(json.dumps(row))
        return
    for row in projection_memory(args.minutes, Path(args.folder) if args.folder else None,
                                 args.seed):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
