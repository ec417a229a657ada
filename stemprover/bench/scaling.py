"""Scaling over processes: training and enhancement throughput with 1, 2, ... processes.

    table = scaling_table("cpu", processes=(1, 2), model_path=path, work_dir=tmp)  # notebook 07

Both measurements launch real process groups with ``torchrun`` (gloo on CPU, NCCL on GPUs),
as a user would:

* **training**: ``python -m stemprover.bench.scaling`` builds a stage's model in each process
  (:func:`stemprover.bench.throughput.training_setup`) and times optimizer steps through the
  prepared (DDP) module, each process on its own slice of a global batch of
  ``batch_size x processes`` crops. Throughput is the global batch's audio seconds per
  wall-clock second of a step.
* **enhancement**: ``stemprover enhance`` cleans a catalogue of test clips, each process its
  share. Two times are kept: the wall time of the whole launch (process start and model
  loading included, as a user waits for them) and the slowest process's own time on its files
  (``work_seconds``, from the command's per-file lines).

Efficiency is the throughput with N processes over N times the throughput with one. On a
machine with fewer free cores than processes it shows that the path is correct, not that it
is fast.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from stemprover.bench.clips import write_test_clip
from stemprover.bench.throughput import random_batch, stage_config, training_setup
from stemprover.errors import StemproverError
from stemprover.project.seed import seed_everything
from stemprover.train.loop import StepModule, make_accelerator, step_generator


def _torchrun(n_proc: int, module_args: list[str], threads: int) -> tuple[float, str]:
    """Run ``python -m <module_args>`` in ``n_proc`` processes; wall seconds and stdout."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={n_proc}", "-m", *module_args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise StemproverError(f"{n_proc}-process launch failed: {last}")
    return elapsed, done.stdout


def train_steps(profile: str, kind: str, batch_size: int, warmup: int, repeats: int,
                out: Path, seed: int = 0) -> None:
    """One process of a training launch: time ``repeats`` DDP steps after ``warmup`` ones."""
    accelerator = make_accelerator("auto")
    seed_everything(seed)
    setup = training_setup(profile, kind, str(accelerator.device), batch_size)
    trained = {id(p) for p in setup.params}
    for param in setup.model.parameters():
        param.requires_grad_(id(param) in trained)
    optimizer = torch.optim.AdamW(setup.params, lr=setup.learning_rate)
    wrapped, optimizer = accelerator.prepare(StepModule(setup.model, setup.step), optimizer)
    n_samples = setup.model.config.segment_samples
    rank, n_proc = accelerator.process_index, accelerator.num_processes
    batch = random_batch(batch_size, n_samples, str(accelerator.device), seed + rank)
    times = []
    for step in range(warmup + repeats):
        generator = step_generator(seed, "scaling", step, 0, accelerator.device, rank)
        accelerator.wait_for_everyone()
        start = time.perf_counter()
        with accelerator.autocast():
            output = wrapped(batch, generator)
        loss = output[0] if isinstance(output, tuple) else output
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        accelerator.wait_for_everyone()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    if accelerator.is_main_process:
        audio = batch_size * n_proc * n_samples / setup.model.config.sample_rate
        seconds = statistics.median(times)
        out.write_text(json.dumps({"seconds_per_step": seconds, "audio_seconds_per_step": audio,
                                   "processes": n_proc, "kind": kind}))


def training_scaling(profile: str, processes=(1, 2), kind: str = "control_lora",
                     batch_size: int | None = None, warmup: int = 1, repeats: int = 3,
                     threads: int = 1, seed: int = 0) -> pd.DataFrame:
    """Rows of training throughput per number of processes (see the module docstring)."""

    batch_size = batch_size or stage_config(profile, kind).batch_size
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_proc in processes:
            out = Path(tmp) / f"train_{n_proc}.json"
            _torchrun(n_proc, ["stemprover.bench.scaling", "train", "--profile", profile, "--kind",
                               kind, "--batch-size", str(batch_size), "--warmup", str(warmup),
                               "--repeats", str(repeats), "--seed", str(seed), "--out",
                               str(out)], threads)
            measured = json.loads(out.read_text())
            rows.append({"task": f"training ({kind})", "processes": n_proc,
                         "per_process_batch": batch_size,
                         "seconds": measured["seconds_per_step"],
                         "audio_seconds": measured["audio_seconds_per_step"]})
    return _with_throughput(rows)


def enhance_scaling(model_path: Path, processes=(1, 2), n_files: int = 4,
                    clip_seconds: float = 2.0, steps: int = 1, threads: int = 1,
                    seed: int = 0) -> pd.DataFrame:
    """Rows of catalogue enhancement throughput per number of processes."""

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = [write_test_clip(Path(tmp) / f"clip{k}.wav", clip_seconds, seed + k)
                 for k in range(n_files)]
        for n_proc in processes:
            out = Path(tmp) / f"out_{n_proc}"
            elapsed, stdout = _torchrun(
                n_proc, ["stemprover", "enhance", *map(str, clips), "-o", str(out),
                         "--model", str(model_path), "--steps", str(steps), "--device", "auto",
                         "--threads", str(threads), "-q"], threads)
            work = file_seconds(stdout)
            if sum(len(v) for v in work.values()) != n_files:
                raise StemproverError(f"{n_proc} processes cleaned "
                                      f"{sum(len(v) for v in work.values())} of {n_files} clips")
            rows.append({"task": f"enhancement ({steps} step{'s' * (steps != 1)})",
                         "processes": n_proc, "per_process_batch": None, "seconds": elapsed,
                         "work_seconds": max(sum(v) for v in work.values()),
                         "audio_seconds": n_files * clip_seconds})
    return _with_throughput(rows)


def file_seconds(stdout: str) -> dict[str, list[float]]:
    """Seconds each process spent on each file, from ``enhance``'s lines by process tag
    (``[r/n] IN -> OUT: A s of audio in T s (...)``; no tag with one process)."""
    out: dict[str, list[float]] = {}
    for line in stdout.splitlines():
        if "real-time factor" not in line:
            continue
        tag = line.split("] ", 1)[0] + "]" if line.startswith("[") else ""
        seconds = float(line.rsplit(" s of audio in ", 1)[1].split(" s ", 1)[0])
        out.setdefault(tag, []).append(seconds)
    return out


def _with_throughput(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Throughput (audio s per wall s) and efficiency against one process, for the wall time
    and, where measured, the slowest process's own work (start-up and model loading left out)."""
    table = pd.DataFrame(rows)
    for seconds, suffix in (("seconds", ""), ("work_seconds", "_work")):
        if seconds not in table:
            continue
        rate = table["audio_seconds"] / table[seconds]
        one = rate[table["processes"] == 1]
        base = float(one.iloc[0]) if len(one) else float("nan")
        table[f"audio_s_per_s{suffix}"] = rate
        table[f"efficiency{suffix}"] = rate / (table["processes"] * base)
    return table


def scaling_table(profile: str, model_path: Path, processes=(1, 2), **options) -> pd.DataFrame:
    """Training and enhancement rows together (``scaling.csv`` of notebook 07)."""
    train_keys = ("kind", "batch_size", "warmup", "repeats", "threads", "seed")
    enhance_keys = ("n_files", "clip_seconds", "steps", "threads", "seed")
    return pd.concat([
        training_scaling(profile, processes, **{k: v for k, v in options.items()
                                                if k in train_keys}),
        enhance_scaling(model_path, processes, **{k: v for k, v in options.items()
                                                  if k in enhance_keys}),
    ], ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stemprover.bench.scaling")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="one process of a timed training launch")
    train.add_argument("--profile", required=True)
    train.add_argument("--kind", default="control_lora")
    train.add_argument("--batch-size", type=int, required=True)
    train.add_argument("--warmup", type=int, default=1)
    train.add_argument("--repeats", type=int, default=3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    train_steps(args.profile, args.kind, args.batch_size, args.warmup, args.repeats, args.out,
                args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
