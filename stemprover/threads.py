"""CPU thread limits for torch and the BLAS/OpenMP pools.

    with cpu_threads(1):
        enhanced = enhance(...)

On a CPU shared with other jobs, OpenMP threads that spin-wait for each other make small
convolutions, LSTMs, STFTs and solves 10-100x slower than one thread; the small models of the
smoke and cpu profiles gain little from a second thread even on an idle machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


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
