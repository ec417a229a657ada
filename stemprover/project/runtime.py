"""Runtime choices, each made in one place: the device, the precision and CPU thread limits.

    device = resolve_device("auto")                 # "cuda" when present, else "cpu"
    dtype = inference_dtype(device, "auto")         # bfloat16 on CUDA, float32 on CPU
    with cpu_threads(1):
        enhanced = enhance(...)

On a CPU shared with other jobs, OpenMP threads that spin-wait for each other make small
convolutions, LSTMs, STFTs and solves 10-100x slower than one thread; the small models of the
smoke and cpu profiles gain little from a second thread even on an idle machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from stemprover.errors import StemproverError


@contextlib.contextmanager
def cpu_threads(n_threads: int | None) -> Iterator[None]:
    """Run torch and BLAS on ``n_threads`` CPU threads, then restore the previous setting.

    Args:
        n_threads: Threads to use; None or 0 (or less) leaves everything as it is.
    """
    if n_threads is None or n_threads <= 0:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        torch.set_num_threads(previous)


def available_devices() -> list[str]:
    """The devices this machine can run on: "cpu", then "cuda:0", "cuda:1", ..."""
    import torch

    return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def check_device(device: str):
    """``torch.device(device)`` if it exists here; otherwise a one-line error listing those
    that do (StemProver runs on CPU and CUDA)."""
    import torch

    present = available_devices()
    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        torch_device = None
    usable = torch_device is not None and (
        torch_device.type == "cpu"
        or (torch_device.type == "cuda" and (torch_device.index or 0) < len(present) - 1)
    )
    if not usable:
        raise StemproverError(
            f"device {device!r} is not available; this machine has: {', '.join(present)}"
        )
    return torch_device


def resolve_device(device: str = "auto") -> str:
    """``device`` itself, checked (:func:`check_device`); ``"auto"`` is CUDA when present, else CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    check_device(device)
    return device


DTYPES = ("auto", "bfloat16", "float16", "float32")


def inference_dtype(device, dtype: str = "auto"):
    """The weights' dtype for inference: float32 on CPU; on CUDA ``dtype``, with ``auto`` bfloat16."""
    import torch

    if torch.device(device).type != "cuda":
        return torch.float32
    return {"auto": torch.bfloat16, "bfloat16": torch.bfloat16, "float16": torch.float16,
            "float32": torch.float32}[dtype]


def training_precision(mixed_precision: str = "auto") -> str:
    """accelerate's ``mixed_precision``: ``auto`` is ``bf16`` on CUDA and ``no`` on CPU."""
    import torch

    if mixed_precision != "auto":
        return mixed_precision
    return "bf16" if torch.cuda.is_available() else "no"
