"""Speed and memory of enhancement, and its cost relative to a separator (notebook 07).

    out_dir, cfg = setup("07_performance", params, PerformanceConfig)   # the notebook's first cell
    summary, tables = run_benchmark(cfg, out_dir)     # summary.json + CSV tables in out_dir

A benchmark records; it does not pass or fail. Each measurement enhances a synthetic,
never-silent stereo clip at 44.1 kHz through :func:`stemprover.inference.enhance.enhance_file` (the
streaming path the command uses) and records wall time, the real-time factor (time /
audio duration) and peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the
peak resident set size of the process, sampled every 10 ms by a thread (tracemalloc does not
see torch's allocations). RSS never shrinks much once the allocator holds pages, so the
duration sweep runs from short to long: a flat peak across it means memory does not grow
with duration. HTDemucs (default size, random weights: the same cost as trained ones) is
timed through ``demucs.apply.apply_model`` on the separator clip, and on that same clip one
stem's enhancement (``separator_cost_ratio``) and the command's four-stem path, the streamed
mixture projection then the four stems (``four_stem_separator_ratio``). The projection alone
is timed on the RTF clip, and its peak memory against song length in fresh processes
(:mod:`stemprover.bench.memory`); start-up is timed in fresh processes
(:mod:`stemprover.bench.startup`), and torch.compile's cost and saving give the duration from
which ``--compile`` pays off. Training
throughput (seconds of audio learned per wall-clock second, FLOPs per audio second) of each
training stage is measured by :mod:`stemprover.bench.throughput` and written to ``training.csv``.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from tqdm.auto import tqdm

from stemprover.bench.clips import CLIP_RATE, write_test_clip
from stemprover.bench.memory import projection_memory
from stemprover.bench.scaling import scaling_table
from stemprover.bench.startup import startup_seconds
from stemprover.bench.throughput import throughput_summary, training_throughput
from stemprover.constants import STEMS
from stemprover.errors import StemproverError
from stemprover.inference.enhance import EnhanceOptions, Enhancer, enhance_file, resolve_model
from stemprover.inference.projection import load_projected, project
from stemprover.project.inputs import input_path, resolve_inputs
from stemprover.project.paths import cache_dir, repo_root
from stemprover.project.runtime import cpu_threads, resolve_device


@dataclass
class PerformanceConfig:
    """What 07_performance measures; the defaults are the cpu/gpu profiles' design."""

    seed: int = 0
    model_path: str | None = None  # input; None: this profile's 04 weights, else models/default
    clip_seconds: float = 30.0  # the clip of the summary's RTF (contract: 30 s)
    steps: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 25])  # RTF vs steps
    durations: list[float] = field(default_factory=lambda: [10.0, 30.0, 60.0, 180.0, 600.0])
    duration_steps: int = 1  # the sweep is about length, so the cheapest sampler
    batch_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    batch_steps: int = 1  # per-call overheads show best at one step
    cache_steps: int = 4  # the cache saves one embedding per step beyond the first
    strength: float = 1.0  # enhance()'s default: the bridge starts at the stem
    device: str = "auto"  # cuda when present
    torch_threads: int = 1  # CPU threads; on shared cores more threads spin-wait (0: all)
    separator: bool = True  # time HTDemucs on the same clip
    separator_segment: float = 10.0  # HTDemucs' default training segment in seconds
    separator_clip_seconds: float | None = None  # None: the same clip as the RTF sweep
    training: bool = True  # time one optimizer step of each training stage (training.csv)
    training_warmup: int = 1  # untimed steps first: allocation and kernel selection
    training_repeats: int = 3  # timed steps; the median is reported
    # scaling.csv: training and catalogue enhancement launched with each number of processes
    # (torchrun; on CUDA, counts above the GPUs present are left out); empty: not measured
    scaling_processes: list[int] = field(default_factory=lambda: [1, 2])
    scaling_files: int = 4  # clips of the enhanced catalogue
    scaling_clip_seconds: float = 4.0  # seconds per clip
    scaling_steps: int = 1  # sampling steps of the enhancement
    # the command's four-stem path (--project: streamed projection, then the four stems)
    # timed against one HTDemucs separation of the separator clip
    four_stems: bool = True
    compile: bool = True  # time torch.compile: compile seconds, speed with and without
    startup: bool = True  # seconds from a fresh process to a loaded model (startup_seconds)
    startup_repeats: int = 3  # fresh processes; the median is reported
    # song lengths (minutes) whose projection peak memory is measured, each in its own process
    memory_minutes: list[float] = field(default_factory=lambda: [1.0, 10.0, 30.0])


def resolve_model_path(cfg: PerformanceConfig) -> Path:
    """The model to time: ``cfg.model_path`` (see :func:`~stemprover.project.inputs.resolve_inputs`)."""

    path = input_path(cfg.model_path or "")
    if not cfg.model_path or not (path / "stemprover.json").is_file():
        raise StemproverError(f"no model to benchmark at {path}: run 04_lora_training first")
    return path


class PeakMemory:
    """Peak memory of a block: CUDA allocations, or the process RSS sampled by a thread."""

    def __init__(self, device: str, interval: float = 0.01):
        self.device = device
        self.interval = interval
        self.peak_mb = 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return self
        import psutil

        self._process = psutil.Process()
        self._stop = threading.Event()
        self._peak = self._process.memory_info().rss

        def sample() -> None:
            while not self._stop.is_set():
                self._peak = max(self._peak, self._process.memory_info().rss)
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
            return
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._process.memory_info().rss)
        self.peak_mb = self._peak / 2**20


def time_enhance(model, clip: Path, device: str, **options: Any) -> dict[str, float]:
    """Enhance ``clip`` once; wall seconds, real-time factor and peak memory (MB)."""

    enhancer = Enhancer(model, device=device, **options)
    seconds_audio = sf.info(str(clip)).duration
    with tempfile.TemporaryDirectory() as out_dir, PeakMemory(device) as memory:
        start = time.perf_counter()
        enhance_file(clip, out_dir, enhancer)
        _sync(device)
        elapsed = time.perf_counter() - start
    return {"audio_seconds": seconds_audio, "time_s": elapsed,
            "rtf": elapsed / seconds_audio, "peak_mem_mb": memory.peak_mb}


def time_projection(clip: Path) -> float:
    """Seconds the mixture projection takes for four stems of ``clip``'s length.

    The stems are the clip and three time-rolled copies of it; their sum is the mixture.
    """
    audio, rate = sf.read(str(clip), dtype="float32", always_2d=True)
    audio = np.ascontiguousarray(audio.T)
    shifts = np.linspace(0, audio.shape[1], len(STEMS), endpoint=False).astype(int)
    stems = {stem: np.roll(audio, int(shift), axis=1) for stem, shift in zip(STEMS, shifts)}
    mixture = np.sum(list(stems.values()), axis=0)
    start = time.perf_counter()
    project(stems, rate, mixture)
    return time.perf_counter() - start


def time_four_stems(enhancer: Enhancer, clip: Path, device: str, folder: Path) -> dict[str, float]:
    """The ``--project`` path on ``clip``: its four stems projected, then each cleaned.

    The stems are the clip and three time-rolled copies of it (each a quarter of the clip
    apart), and the mixture their sum, written as files; the time runs from reading them to
    the fourth written output, as the command does it
    (:func:`~stemprover.inference.projection.load_projected`, then
    :func:`~stemprover.inference.enhance.enhance_file` with the mixture).
    """
    audio, rate = sf.read(str(clip), dtype="float32", always_2d=True)
    shifts = np.linspace(0, len(audio), len(STEMS), endpoint=False).astype(int)
    paths = {}
    folder.mkdir(parents=True, exist_ok=True)
    for stem, shift in zip(STEMS, shifts):
        paths[stem] = str(folder / f"song_{stem}.wav")
        sf.write(paths[stem], np.roll(audio, int(shift), axis=0), rate, subtype="FLOAT")
    mixture = str(folder / "song_mixture.wav")
    sf.write(mixture, sum(sf.read(p, dtype="float32")[0] for p in paths.values()), rate,
             subtype="FLOAT")
    seconds_audio = len(audio) / rate
    with tempfile.TemporaryDirectory() as out_dir, PeakMemory(device) as memory:
        start = time.perf_counter()
        projected, _ = load_projected(paths, mixture)
        projection = time.perf_counter() - start
        for path in paths.values():
            enhance_file(path, out_dir, enhancer, mixture=mixture,
                         audio=(projected[path], rate))
        _sync(device)
        elapsed = time.perf_counter() - start
    return {"audio_seconds": seconds_audio, "time_s": elapsed, "rtf": elapsed / seconds_audio,
            "projection_s": projection, "peak_mem_mb": memory.peak_mb}


def time_compile(model, clip: Path, device: str, steps: int = 1) -> dict[str, float | None]:
    """What ``--compile`` costs and saves on ``clip``.

    The compiled enhancer runs the clip twice: the first run holds the compilation, the
    second the compiled speed. Compilation pays off from ``break_even_seconds`` of audio
    per process (None: the compiled model is not faster here).
    """
    plain = time_enhance(model, clip, device, steps=steps)
    enhancer = Enhancer(model, device=device, steps=steps, compile=True)
    seconds_audio = sf.info(str(clip)).duration
    times = []
    with tempfile.TemporaryDirectory() as out_dir:
        for _ in range(2):
            start = time.perf_counter()
            enhance_file(clip, out_dir, enhancer)
            _sync(device)
            times.append(time.perf_counter() - start)
    compiled_rtf = times[1] / seconds_audio
    overhead = times[0] - times[1]
    saving = plain["rtf"] - compiled_rtf  # seconds saved per audio second
    return {"compile_seconds": overhead, "rtf_compiled": compiled_rtf, "rtf_eager": plain["rtf"],
            "break_even_seconds": overhead / saving if saving > 0 else None}


def time_htdemucs(clip: Path, device: str, segment: float = 10.0, seed: int = 0) -> float:
    """Seconds HTDemucs (default size, random weights) takes to separate ``clip``."""
    from demucs.apply import apply_model  # demucs.apply needs no torchaudio
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    model = HTDemucs(sources=list(STEMS), audio_channels=2, samplerate=CLIP_RATE,
                     segment=segment).to(device).eval()
    audio, _ = sf.read(str(clip), dtype="float32", always_2d=True)
    mixture = torch.from_numpy(audio.T.copy())[None].to(device)
    with torch.no_grad():
        start = time.perf_counter()
        apply_model(model, mixture, split=True, overlap=0.25, progress=False, device=device)
        _sync(device)
        return time.perf_counter() - start


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return (f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} torch threads")


def run_benchmark(cfg: PerformanceConfig, out_dir: Path, profile: str,
                  progress: bool = True) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Run every measurement; write summary.json and steps/duration/batch/cache CSVs.

    Columns: the swept value (``steps``, ``duration_s``, ``batch``, ``use_cache``), then
    ``audio_seconds``, ``time_s`` (wall seconds), ``rtf`` and ``peak_mem_mb``.

    Returns:
        ``(summary, tables)``; the summary holds the contract keys device, rtf (steps ->
        RTF on the clip), peak_mem_mb and separator_cost_ratio, and the rest for context.
    """
    cfg = resolve_inputs(cfg, profile)
    with cpu_threads(cfg.torch_threads):
        return _run(cfg, out_dir, profile, progress)


def _run(cfg: PerformanceConfig, out_dir: Path, profile: str,
         progress: bool) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    device = resolve_device(cfg.device)
    model_path = resolve_model_path(cfg)
    model = resolve_model(model_path, device)
    clips = cache_dir(profile, "07_performance")
    clip = write_test_clip(clips / f"clip_{cfg.clip_seconds:g}s.wav", cfg.clip_seconds, cfg.seed)
    common = {"strength": cfg.strength, "seed": cfg.seed}
    default_batch = EnhanceOptions().batch_size
    jobs = ([("steps", s, {"steps": s}) for s in cfg.steps]
            + [("cache", c, {"steps": cfg.cache_steps, "use_cache": c}) for c in (True, False)]
            + [("batch", b, {"steps": cfg.batch_steps, "batch_size": b})
               for b in cfg.batch_sizes])
    rows: dict[str, list[dict[str, Any]]] = {"steps": [], "cache": [], "batch": [],
                                             "duration": []}
    processes = scaling_processes(cfg, device)
    bar = tqdm(total=len(jobs) + len(cfg.durations) + int(cfg.separator) + int(cfg.training)
               + int(bool(processes)),
               desc="07 benchmark", disable=not progress)
    # Warm-up: first calls pay for lazy imports, allocator growth and kernel selection.
    warm = min(2.0, cfg.clip_seconds)
    time_enhance(model, write_test_clip(clips / f"clip_{warm:g}s.wav", warm, cfg.seed), device,
                 steps=1, **common)
    done: dict[tuple, dict[str, float]] = {}  # identical settings are measured once
    for table, value, options in jobs:
        options = {"use_cache": True, "batch_size": default_batch, **options}
        key = tuple(sorted(options.items()))
        if key not in done:
            done[key] = time_enhance(model, clip, device, **common, **options)
        name = {"steps": "steps", "cache": "use_cache", "batch": "batch"}[table]
        rows[table].append({name: value, **done[key]})
        bar.update()
    for seconds in sorted(cfg.durations):
        path = write_test_clip(clips / f"clip_{seconds:g}s.wav", seconds, cfg.seed)
        rows["duration"].append({"duration_s": seconds, **time_enhance(
            model, path, device, steps=cfg.duration_steps, **common)})
        bar.update()
    separator_rtf, extra = None, {}
    if cfg.separator:
        # One clip for both systems: the ratio is then a ratio of times, no per-second
        # extrapolation across clip lengths.
        seconds = cfg.separator_clip_seconds or cfg.clip_seconds
        path = write_test_clip(clips / f"clip_{seconds:g}s.wav", seconds, cfg.seed)
        separator_time = time_htdemucs(path, device, cfg.separator_segment, cfg.seed)
        separator_rtf = separator_time / seconds
        one_stem = time_enhance(model, path, device, steps=1, seed=cfg.seed)
        extra["separator_cost_ratio_same_clip"] = one_stem["time_s"] / separator_time
        if cfg.four_stems:
            four = time_four_stems(Enhancer(model, device=device, steps=1, seed=cfg.seed),
                                   path, device, clips / "four_stems")
            extra["four_stem"] = four
            extra["four_stem_separator_ratio"] = four["time_s"] / separator_time
        bar.update()
    projection_rtf = time_projection(clip) / cfg.clip_seconds
    if cfg.compile:
        extra["compile"] = time_compile(model, clip, device)
    if cfg.startup:
        extra["startup"] = startup_seconds(model_path, cfg.startup_repeats)
    if cfg.memory_minutes:
        extra["projection_memory"] = projection_memory(list(cfg.memory_minutes), clips)
    tables = {name: pd.DataFrame(r) for name, r in rows.items()}
    if cfg.training:
        tables["training"] = training_throughput(
            profile, device=device, warmup=cfg.training_warmup, repeats=cfg.training_repeats,
            seed=cfg.seed)
        bar.update()
    if processes:
        tables["scaling"] = scaling_table(
            profile, model_path, processes, warmup=cfg.training_warmup,
            repeats=cfg.training_repeats, threads=max(cfg.torch_threads, 1),
            n_files=cfg.scaling_files, clip_seconds=cfg.scaling_clip_seconds,
            steps=cfg.scaling_steps, seed=cfg.seed)
        bar.update()
    bar.close()
    summary = summarise(cfg, tables, separator_rtf, device, model_path, projection_rtf, extra)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(out_dir / f"{name}.csv", index=False, float_format="%.6g")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary, tables


def scaling_processes(cfg: PerformanceConfig, device: str) -> list[int]:
    """The process counts to measure: on CUDA, one GPU per process at most."""
    counts = sorted(set(int(n) for n in cfg.scaling_processes if int(n) >= 1))
    if str(device).startswith("cuda"):
        kept = [n for n in counts if n <= torch.cuda.device_count()]
        if kept != counts:
            print(f"scaling: {torch.cuda.device_count()} GPU(s), so processes {kept} only")
        counts = kept
    return counts


def summarise(cfg: PerformanceConfig, tables: dict[str, pd.DataFrame],
              separator_rtf: float | None, device: str, model_path: Path,
              projection_rtf: float | None = None,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary.json content (see DESIGN.md's contract).

    ``separator_cost_ratio`` is enhancement time over HTDemucs separation time, both at one
    sampling step on the same clip (the separator clip); ``separator_cost_ratios`` holds
    the real-time factor of every step count on the RTF clip over HTDemucs' on its clip.
    ``four_stem_separator_ratio`` is the ``--project`` path (projection plus four stems) over
    one HTDemucs separation of the same clip. ``projection_rtf`` is the mixture projection of
    a song's four stems alone. ``startup_seconds`` is a fresh process's time to a loaded
    model; ``compile`` what torch.compile costs and saves; ``projection_memory`` the peak
    memory of the projection for each song length.
    """
    extra = extra or {}

    steps = tables["steps"].set_index("steps")
    four = steps.loc[4, "time_s"] if 4 in steps.index else None
    cache = tables["cache"].set_index("use_cache")["time_s"]
    duration = tables["duration"]
    fit = None
    if len(duration) >= 2:
        times = duration["time_s"]
        slope, intercept = np.polyfit(duration["duration_s"], times, 1)
        predicted = slope * duration["duration_s"] + intercept
        spread = ((times - times.mean()) ** 2).sum()
        r2 = 1 - ((times - predicted) ** 2).sum() / spread if spread > 0 else 1.0
        fit = {"seconds_per_audio_second": float(slope), "intercept_s": float(intercept),
               "r2": float(r2),
               "peak_mem_mb_min": float(duration["peak_mem_mb"].min()),
               "peak_mem_mb_max": float(duration["peak_mem_mb"].max())}
    try:
        model_name = str(model_path.resolve().relative_to(repo_root()))
    except ValueError:
        model_name = str(model_path)
    # Both are real-time factors, so the ratio equals the ratio of times on one clip.
    ratios = ({str(int(k)): float(r / separator_rtf) for k, r in steps["rtf"].items()}
              if separator_rtf else {})
    training = tables.get("training")
    return {
        "device": device_name(device),
        "rtf": {str(int(s)): float(r) for s, r in steps["rtf"].items()},
        "peak_mem_mb": float(steps["peak_mem_mb"].max()),
        "peak_mem_kind": "cuda_max_allocated" if device.startswith("cuda") else "process_rss",
        "separator_cost_ratio": extra.get("separator_cost_ratio_same_clip"),
        "separator_cost_ratio_steps": 1 if "separator_cost_ratio_same_clip" in extra else None,
        "separator_cost_ratios": ratios,
        "four_stem_separator_ratio": extra.get("four_stem_separator_ratio"),
        "four_stem": extra.get("four_stem"),
        "startup_seconds": (extra["startup"]["startup_seconds"] if "startup" in extra
                            else None),
        "startup": extra.get("startup"),
        "compile": extra.get("compile"),
        "compile_break_even_seconds": (extra["compile"]["break_even_seconds"]
                                       if "compile" in extra else None),
        "projection_memory": extra.get("projection_memory"),
        "separator": "htdemucs (default size, random weights, demucs.apply.apply_model)",
        "separator_rtf": separator_rtf,
        "separator_clip_seconds": cfg.separator_clip_seconds or cfg.clip_seconds,
        "enhance_seconds_4_steps": None if four is None else float(four),
        "projection_rtf": projection_rtf,
        "clip_seconds": cfg.clip_seconds,
        "clip_sample_rate": CLIP_RATE,
        "clip_channels": 2,
        "cache_saving": float(1 - cache[True] / cache[False]),
        "cache_steps": cfg.cache_steps,
        "duration_fit": fit,
        "best_batch_size": int(tables["batch"].set_index("batch")["rtf"].idxmin()),
        "model": model_name,
        "strength": cfg.strength,
        "training": (throughput_summary(training)
                     if training is not None and not training.empty else None),
        "scaling": (tables["scaling"].to_dict(orient="records")
                    if "scaling" in tables else None),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "config": asdict(cfg),
    }


def plot_tables(summary: dict[str, Any], tables: dict[str, pd.DataFrame]):
    """A quick look at the four sweeps (the paper's figure is drawn by 08_figures)."""
    import matplotlib.pyplot as plt

    duration, batch, steps = tables["duration"], tables["batch"], tables["steps"]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    axes[0].plot(steps["steps"], steps["rtf"], "o-")
    axes[0].set(xscale="log", xlabel="sampling steps", ylabel="real-time factor",
                title=f"{summary['clip_seconds']:g} s stereo clip")
    axes[1].plot(duration["duration_s"], duration["time_s"], "o-")
    axes[1].set(xlabel="audio duration (s)", ylabel="processing time (s)",
                title="time against duration")
    axes[2].plot(duration["duration_s"], duration["peak_mem_mb"], "o-")
    axes[2].set(xlabel="audio duration (s)", ylabel=f"peak memory (MB, {summary['peak_mem_kind']})",
                title="memory against duration", ylim=(0, None))
    axes[3].plot(batch["batch"], batch["rtf"], "o-")
    axes[3].set(xscale="log", xlabel="batch (segment-channels per call)",
                ylabel="real-time factor",
                title=f"condition cache saves {100 * summary['cache_saving']:.0f} %")
    fig.tight_layout()
    return fig
