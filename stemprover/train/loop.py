"""A deterministic, resumable optimisation loop under Hugging Face accelerate.

Every random draw of optimizer step ``s`` (which items, which noise, which timesteps) comes from
generators seeded by ``(seed, phase, s)``, and a checkpoint holds the trainable tensors, the
optimizer and the learning-rate schedule. Stopping after any step and resuming therefore gives
bit-identical weights to an uninterrupted run on the same device. The same code runs on CPU, one
GPU in bf16, or several processes under ``accelerate launch`` or ``torchrun`` (GPUs with NCCL,
CPUs with gloo). Each process then takes its slice of the global batch from the same index
stream, the forward pass runs through the prepared (DDP) module so that gradients are averaged
over the processes, and only the main process writes logs, checkpoints and weights.

Random draws (noise, times, crops) come from one generator per process and step: process 0
uses the single-process seeds, so a one-process run is unchanged, and the others their own.
A step without random draws (e.g. the regression baseline without crops or mixture dropout)
therefore gives the same weights on N processes with batch B as on one process with batch N*B.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import broadcast
from tqdm.auto import tqdm

from stemprover.project.paths import folder_lock
from stemprover.project.runtime import training_precision
from stemprover.project.seed import hash_key

StepFn = Callable[[dict, torch.Generator], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass
class PhaseSpec:
    """One optimisation phase (e.g. pretraining, or one adapter)."""

    name: str  # used for the checkpoint file and the "phase" column of the log
    steps: int  # optimizer steps
    batch_size: int  # items per micro-batch (per process)
    grad_accum: int = 1  # micro-batches per optimizer step
    learning_rate: float = 1e-3
    warmup_steps: int = 0
    seed: int = 0
    checkpoint_every: int = 0  # steps between checkpoints; 0 = only at the end / on stop
    max_grad_norm: float = 1.0
    fingerprint: str = ""  # of the run's settings; a checkpoint of other settings is discarded
    max_minutes: float = 0.0  # training-time cap of the phase (resumes count); 0 = none


@dataclass
class Monitor:
    """Validation inside a phase: one budget-curve row every ``every`` steps, and a plateau stop.

    ``evaluate()`` returns the validation gain (higher is better, e.g. ΔSI-SDR in dB). The phase
    stops, complete, once ``patience`` evaluations in a row have not beaten the best one by
    ``min_delta``; the rows written so far decide this, so a resumed run decides the same.
    """

    evaluate: Callable[[], float | dict[str, float]]  # a dict has "gain" and may add columns
    every: int  # optimizer steps between evaluations
    log: CsvLog  # budget curve: phase, step, train_seconds, gain
    patience: int = 0  # 0: never stop early
    min_delta: float = 0.05  # dB a new evaluation must gain over the best to count
    # end the phase with the weights of its best evaluation (early stopping): a phase whose
    # gain falls after a peak keeps the peak, and one that never beats its start keeps it
    keep_best: bool = False

    def rows(self, phase: str) -> list[dict]:
        return [r for r in self.log.rows() if r["phase"] == phase]

    def record(self, phase: str, step: int, train_seconds: float) -> None:
        value = self.evaluate()
        scores = value if isinstance(value, dict) else {"gain": value}
        self.log.append({"phase": phase, "step": step, "train_seconds": train_seconds,
                         "train_minutes": train_seconds / 60.0,
                         **{k: float(v) for k, v in scores.items()}})

    def best(self, phase: str) -> dict | None:
        """The row of the phase's highest gain (the earliest of equal ones), or None."""
        return best_row(self.rows(phase))

    def plateaued(self, phase: str) -> bool:
        if self.patience <= 0:
            return False
        gains = [float(r["gain"]) for r in self.rows(phase)]
        best, since = -math.inf, 0
        for gain in gains:
            if gain > best + self.min_delta:
                best, since = max(best, gain), 0
            else:
                since += 1
        return since >= self.patience


def fingerprint(*parts) -> str:
    """A short stable hash of plain values / dataclasses (settings that shape a run)."""

    plain = [dataclasses.asdict(p) if dataclasses.is_dataclass(p) else p for p in parts]
    return f"{hash_key(json.dumps(plain, sort_keys=True, default=str)):016x}"


def make_accelerator(mixed_precision: str = "auto"):
    """An ``accelerate.Accelerator``: bf16 on CUDA when ``auto``, full precision on CPU.

    Without CUDA it runs on CPU, and under a multi-process launcher (``WORLD_SIZE`` > 1) that
    means one gloo process group: without ``cpu=True`` accelerate would leave every process
    believing it is the only one. DDP looks for unused parameters, because a phase's batch
    need not reach every trainable tensor (e.g. the output head of a type it does not hold).
    """
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    return Accelerator(mixed_precision=training_precision(mixed_precision),
                       cpu=not torch.cuda.is_available(), kwargs_handlers=[ddp])


def step_generator(seed: int, phase: str, step: int, micro: int, device="cpu",
                   rank: int = 0) -> torch.Generator:
    """The generator for one micro-batch of one process, independent of interruptions.

    Process 0 keeps the single-process seed; the other processes draw their own.
    """
    key = (seed, phase, step, micro) if rank == 0 else (seed, phase, step, micro, rank)
    return torch.Generator(device=device).manual_seed(hash_key(key) % (2**63))


class StepModule(torch.nn.Module):
    """The model and its step function as one module.

    DDP averages gradients only for a forward pass that runs through its wrapper; a step
    function calls the model's own methods (``encode_condition``, the sampler's pieces), so
    the whole step is the wrapped forward.
    """

    def __init__(self, model: torch.nn.Module, step_fn: StepFn):
        super().__init__()
        self.model = model
        self.step_fn = step_fn

    def forward(self, batch: dict, generator: torch.Generator):
        return self.step_fn(batch, generator)


class IndexStream:
    """Item indices of micro-batch ``k``: epochs are seeded permutations, concatenated."""

    def __init__(self, n_items: int, seed: int, phase: str):
        self.n_items, self.seed, self.phase = n_items, seed, phase
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            gen = torch.Generator().manual_seed(hash_key((self.seed, self.phase, epoch)) % 2**63)
            self._perms = {epoch: torch.randperm(self.n_items, generator=gen)}
        return self._perms[epoch]

    def batch(self, micro_index: int, size: int) -> list[int]:
        out = []
        for position in range(micro_index * size, (micro_index + 1) * size):
            epoch, offset = divmod(position, self.n_items)
            out.append(int(self._perm(epoch)[offset]))
        return out


def collate(items: list[dict]) -> dict:
    """Stack a list of dataset items (tensors, numbers) into a batch dict."""
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], (int, float)):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


class CsvLog:
    """Append-only CSV of training rows; rows past a resumed checkpoint are dropped."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as handle:
            return list(csv.DictReader(handle))

    def truncate(self, phase: str, step: int) -> None:
        """Keep rows of other phases and of ``phase`` up to ``step``."""
        with folder_lock(self.path.parent):  # another process may log another phase
            kept = [r for r in self.rows() if r["phase"] != phase or int(r["step"]) <= step]
            self._write(kept)

    def append(self, row: dict) -> None:
        with folder_lock(self.path.parent):
            rows = self.rows()
            rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
            self._write(rows)

    def _write(self, rows: list[dict]) -> None:
        fields: list[str] = []
        for row in rows:
            fields += [k for k in row if k not in fields]
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, restval="")
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.path)


def _lr_lambda(spec: PhaseSpec):
    def factor(step: int) -> float:
        if spec.warmup_steps and step < spec.warmup_steps:
            return (step + 1) / spec.warmup_steps
        progress = (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))  # cosine to 10 %

    return factor


def run_phase(
    accelerator,
    model: torch.nn.Module,
    params: dict[str, torch.nn.Parameter],
    dataset,
    step_fn: StepFn,
    spec: PhaseSpec,
    checkpoint_dir: Path,
    log: CsvLog,
    budget: list[int] | None = None,
    progress: bool = True,
    monitor: Monitor | None = None,
) -> bool:
    """Optimise ``params`` for ``spec.steps`` steps, resuming from a checkpoint if present.

    Args:
        accelerator: From :func:`make_accelerator`.
        model: The module that owns ``params`` (moved to the accelerator's device).
        params: Trainable parameters by name; everything else is left untouched.
        dataset: Indexable items (dicts of tensors/numbers).
        step_fn: ``(batch, generator) -> (loss, terms)`` for one micro-batch.
        spec: Steps, batch, learning rate, seed, checkpoint cadence.
        checkpoint_dir: Holds ``<phase>.pt``.
        log: CSV log; one row per optimizer step.
        budget: One-element list with the optimizer steps this call may still run (shared
            across phases); the phase stops early, after checkpointing, when it reaches 0.
        progress: Show a tqdm bar.
        monitor: Validation every few steps (budget curve) with an optional plateau stop.

    Returns:
        True when the phase is complete, False when it stopped on the budget.
    """
    checkpoint = Path(checkpoint_dir) / f"{spec.name}.pt"
    # only the phase's tensors take gradients: peft turns on the gradient of whichever adapters
    # the last batch activated, which differs between processes, and DDP needs the same set
    trained = {id(param) for param in params.values()}
    for param in model.parameters():
        if id(param) not in trained:
            param.requires_grad_(False)
    for param in params.values():
        param.requires_grad_(True)
        # gradients an earlier phase left on these tensors (peft turns on the gradient of
        # every active adapter) must not reach the first step: a resumed run has none
        param.grad = None
    optimizer = torch.optim.AdamW(list(params.values()), lr=spec.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(spec))
    start = 0
    state = _read_state(checkpoint, params, spec)  # None: start over
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start = int(state["step"])
        if state.get("plateau"):
            _restore_best(checkpoint, params, monitor, spec)
            return True
    main = accelerator.is_main_process
    if start >= spec.steps:
        _restore_best(checkpoint, params, monitor, spec)
        return True
    previous = [r for r in log.rows() if r["phase"] == spec.name]
    elapsed = float(previous[-1]["seconds"]) if previous and start else 0.0
    accelerator.wait_for_everyone()  # every process has read the log before it is cut
    if main:
        log.truncate(spec.name, start)
        if monitor is not None:
            monitor.log.truncate(spec.name, start)
    model.to(accelerator.device)
    wrapped, optimizer = accelerator.prepare(StepModule(model, step_fn), optimizer)
    stream = IndexStream(len(dataset), spec.seed, spec.name)
    n_proc, rank = accelerator.num_processes, accelerator.process_index
    bar = tqdm(total=spec.steps, initial=start, desc=spec.name, disable=not (progress and main))
    wrapped.train()
    step, started = start, time.perf_counter()
    plateau = False
    if main and monitor is not None and not monitor.rows(spec.name):
        _record(monitor, wrapped, spec.name, step, elapsed)
        _keep_if_best(checkpoint, params, monitor, spec, step)
    while step < spec.steps:
        if budget is not None and budget[0] <= 0:
            break
        totals: dict[str, float] = {}
        for micro in range(spec.grad_accum):
            index = stream.batch(step * spec.grad_accum + micro, spec.batch_size * n_proc)
            mine = index[rank * spec.batch_size : (rank + 1) * spec.batch_size]
            batch = {
                k: v.to(accelerator.device) if isinstance(v, torch.Tensor) else v
                for k, v in collate([dataset[i] for i in mine]).items()
            }
            generator = step_generator(spec.seed, spec.name, step, micro, accelerator.device,
                                       rank)
            last = micro == spec.grad_accum - 1
            sync = contextlib.nullcontext() if last else accelerator.no_sync(wrapped)
            with sync, accelerator.autocast():
                loss, terms = wrapped(batch, generator)
                accelerator.backward(loss / spec.grad_accum)
            for name, value in {"loss": loss, **terms}.items():
                totals[name] = totals.get(name, 0.0) + value.detach().float() / spec.grad_accum
        accelerator.clip_grad_norm_(list(params.values()), spec.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if budget is not None:
            budget[0] -= 1
        means = accelerator.reduce(torch.stack(list(totals.values())), reduction="mean")
        row = {"phase": spec.name, "step": step, "lr": schedule.get_last_lr()[0],
               **{name: float(v) for name, v in zip(totals, means)}}
        row["seconds"] = elapsed + time.perf_counter() - started
        out_of_time = bool(spec.max_minutes) and row["seconds"] >= 60.0 * spec.max_minutes
        evaluated = monitor is not None and (step % monitor.every == 0 or step == spec.steps)
        if main:
            log.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if monitor is not None and (evaluated or out_of_time):
                _record(monitor, wrapped, spec.name, step, row["seconds"])
                _keep_if_best(checkpoint, params, monitor, spec, step)
                plateau = monitor.plateaued(spec.name) and step < spec.steps
            plateau = plateau or (out_of_time and step < spec.steps)
        # the main process's clock and budget curve decide for all
        plateau = _from_main(accelerator, plateau)
        # a checkpoint at every evaluation: a resumed run never drops a budget-curve row
        if plateau or evaluated or step == spec.steps or (
            spec.checkpoint_every and step % spec.checkpoint_every == 0
        ):
            _save(checkpoint, params, optimizer, schedule, step, accelerator, spec.fingerprint,
                  plateau)
        if plateau:
            break
    bar.close()
    if step < spec.steps and not plateau:
        _save(checkpoint, params, optimizer, schedule, step, accelerator, spec.fingerprint)
    for param in params.values():
        param.requires_grad_(False)
    accelerator.wait_for_everyone()  # the checkpoint is on disk before any process goes on
    complete = plateau or step >= spec.steps
    if complete:
        _restore_best(checkpoint, params, monitor, spec)
    return complete


def best_row(rows: list[dict]) -> dict | None:
    """The budget-curve row of the highest gain (the earliest of equal ones), or None."""
    return max(rows, key=lambda r: float(r["gain"])) if rows else None


def kept_steps(curve: CsvLog) -> dict[str, int]:
    """Per phase of a budget curve, the step whose weights the phase kept (its best gain)."""
    by_phase: dict[str, list[dict]] = {}
    for row in curve.rows():
        by_phase.setdefault(row["phase"], []).append(row)
    return {phase: int(float(best_row(rows)["step"])) for phase, rows in by_phase.items()}


def best_path(checkpoint: Path) -> Path:
    """Where a phase keeps the parameters of its best evaluation: ``<phase>.best.pt``."""
    return checkpoint.with_name(f"{checkpoint.stem}.best.pt")


def _keep_if_best(checkpoint: Path, params, monitor: Monitor, spec: PhaseSpec, step: int) -> None:
    """Save the parameters (main process) when the newest evaluation is the phase's best."""
    if not monitor.keep_best or int(float(monitor.best(spec.name)["step"])) != step:
        return
    _write_state(best_path(checkpoint), {"step": step, "fingerprint": spec.fingerprint,
                                         "params": _cpu_copy(params)})


def _restore_best(checkpoint: Path, params, monitor: Monitor | None, spec: PhaseSpec) -> None:
    """Load the best evaluation's parameters into ``params`` (every process reads the file)."""
    if monitor is not None and monitor.keep_best:
        _read_state(best_path(checkpoint), params, spec)


def _read_state(path: Path, params, spec: PhaseSpec) -> dict | None:
    """Load a saved state's parameters into ``params`` and return the state; None (and
    ``params`` untouched) when there is none or a run with other settings wrote it."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fingerprint", "") != spec.fingerprint or set(state["params"]) != set(params):
        return None
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(state["params"][name].to(param.device))
    return state


def _from_main(accelerator, flag: bool) -> bool:
    """The main process's value of ``flag`` on every process."""
    if accelerator.num_processes == 1:
        return flag
    value = torch.tensor([float(flag)], device=accelerator.device)
    return bool(broadcast(value, from_process=0).item())


def _record(monitor: Monitor, wrapped, phase: str, step: int, seconds: float) -> None:
    """One budget-curve row, evaluated in eval mode (and back to training mode after)."""
    wrapped.eval()
    try:
        monitor.record(phase, step, seconds)
    finally:
        wrapped.train()


def _save(path: Path, params, optimizer, schedule, step: int, accelerator, key: str,
          plateau: bool = False) -> None:
    if not accelerator.is_main_process:
        return
    _write_state(path, {
        "step": step,
        "fingerprint": key,
        "params": _cpu_copy(params),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "plateau": plateau,
    })


def _cpu_copy(params) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in params.items()}


def _write_state(path: Path, state: dict) -> None:
    """``torch.save`` through a temporary file, so a stop never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
