"""Cut long audio into overlapping segments and join them again with cross-fades.

    plan = plan_segments(n_samples, segment_samples=32768, overlap_samples=4096,
                         energy=frame_energy(audio, hop=441), energy_hop=441,
                         tolerance_samples=4096)
    joined = overlap_add([model(audio[:, s:e]) for s, e in plan], plan, n_samples)

Neighbouring segments share exactly ``overlap_samples`` samples. Inside that region the
earlier segment fades out and the later one fades in with complementary raised-cosine
windows, and the weighted sum is divided by the sum of the weights, so the identity model
reconstructs its input exactly (up to float rounding) for any length and overlap.

Adaptive segmentation: with a frame-energy envelope, each boundary (the centre of a
cross-fade) may move up to ``tolerance_samples`` earlier than its nominal place, to the
position whose cross-fade region holds the least energy. A join in a quiet passage (a
rest, the gap between two notes) hides any mismatch between the two segments' outputs.
Boundaries only move earlier, so no segment is ever longer than ``segment_samples``.
"""

from __future__ import annotations

import numpy as np

Plan = list[tuple[int, int]]


def frame_energy(audio: np.ndarray, hop: int) -> np.ndarray:
    """Mean power per frame of ``hop`` samples, averaged over channels.

    Args:
        audio: ``(n_channels, n_samples)`` or ``(n_samples,)``.
        hop: Frame length in samples; the last partial frame is kept.

    Returns:
        float64 ``(ceil(n_samples / hop),)``.
    """
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    n_samples = audio.shape[-1]
    n_frames = -(-n_samples // hop)
    padded = np.zeros((audio.shape[0], n_frames * hop))
    padded[:, :n_samples] = audio
    power = (padded**2).reshape(audio.shape[0], n_frames, hop).mean(axis=(0, 2))
    return power


def plan_segments(
    n_samples: int,
    segment_samples: int,
    overlap_samples: int,
    energy: np.ndarray | None = None,
    tolerance_samples: int = 0,
    energy_hop: int = 1,
) -> Plan:
    """Segment boundaries ``[(start, end), ...]`` covering ``[0, n_samples)``.

    Args:
        n_samples: Length of the signal.
        segment_samples: Longest segment.
        overlap_samples: Samples shared by neighbouring segments, at most
            ``segment_samples // 2``.
        energy: Optional frame energy (see :func:`frame_energy`); frame ``k`` covers
            samples ``[k * energy_hop, (k + 1) * energy_hop)``. None gives fixed segments.
        tolerance_samples: How far (samples) a boundary may move earlier to a quieter spot;
            clipped so that every segment still advances by more than the overlap.
        energy_hop: Frame length of ``energy`` in samples.

    Returns:
        Segments in order; neighbours overlap by exactly ``overlap_samples``; the first
        starts at 0, the last ends at ``n_samples``; none is longer than
        ``segment_samples`` and every one but the first is longer than the overlap.
    """
    if n_samples <= 0:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    if segment_samples <= 0:
        raise ValueError(f"segment_samples must be positive, got {segment_samples}")
    if not 0 <= overlap_samples <= segment_samples // 2:
        raise ValueError(
            f"overlap_samples must be in [0, {segment_samples // 2}], got {overlap_samples}"
        )
    if n_samples <= segment_samples:
        return [(0, n_samples)]
    overlap_left = overlap_samples // 2
    overlap_right = overlap_samples - overlap_left
    # Keep each segment's two cross-fade regions apart and the plan moving forward.
    tolerance = int(np.clip(tolerance_samples, 0, segment_samples - 2 * overlap_samples - 1))
    if energy is None:
        tolerance = 0
    else:
        cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(energy, dtype=np.float64))])
    plan: Plan = []
    start = 0
    while n_samples - start > segment_samples:
        latest = start + segment_samples - overlap_right
        centre = latest
        if tolerance > 0:
            candidates = np.arange(latest - tolerance, latest + 1)
            cost = _region_energy(
                cumulative, candidates - overlap_left, candidates + overlap_right, energy_hop
            )
            # Ties go to the latest candidate: the longest segment, the fewest segments.
            centre = int(candidates[len(cost) - 1 - np.argmin(cost[::-1])])
        plan.append((start, centre + overlap_right))
        start = centre - overlap_left
    plan.append((start, n_samples))
    return plan


def _region_energy(
    cumulative: np.ndarray, starts: np.ndarray, ends: np.ndarray, hop: int
) -> np.ndarray:
    """Energy of the frames overlapping ``[start, end)`` for each candidate region."""
    n_frames = len(cumulative) - 1
    first = np.clip(starts // hop, 0, n_frames)
    last = np.clip(-(-np.maximum(ends, starts + 1) // hop), 0, n_frames)
    return cumulative[last] - cumulative[first]


def crossfade_weights(plan: Plan, index: int) -> np.ndarray:
    """Cross-fade weights of segment ``index``: raised-cosine fades in shared regions.

    Returns:
        float64 ``(end - start,)``; 1 outside the regions shared with a neighbour.
    """
    start, end = plan[index]
    weights = np.ones(end - start)
    if index > 0:
        shared = plan[index - 1][1] - start
        if shared > 0:
            weights[:shared] = _fade_in(shared)
    if index + 1 < len(plan):
        shared = end - plan[index + 1][0]
        if shared > 0:
            weights[end - start - shared :] = 1.0 - _fade_in(shared)
    return weights


def _fade_in(length: int) -> np.ndarray:
    # Half-sample offset: both neighbours keep a non-zero weight at every shared sample.
    return np.sin(0.5 * np.pi * (np.arange(length) + 0.5) / length) ** 2


class OverlapAdder:
    """Accumulates processed segments and releases finished samples in order.

    Lets a long file be written block by block: once every segment that touches
    ``[0, t)`` has been added, :meth:`pop` returns those samples and forgets them, so
    memory stays bounded by the segments in flight.
    """

    def __init__(self, plan: Plan, n_channels: int):
        self.plan = plan
        self.n_channels = n_channels
        self.n_samples = plan[-1][1]
        self.done = 0  # samples already returned by pop()
        self._sum = np.zeros((n_channels, 0))
        self._weight = np.zeros(0)
        self._added: set[int] = set()

    def add(self, index: int, chunk: np.ndarray) -> None:
        """Add the processed segment ``index``: ``(n_channels, end - start)``."""
        start, end = self.plan[index]
        if chunk.shape != (self.n_channels, end - start):
            raise ValueError(
                f"segment {index} must have shape {(self.n_channels, end - start)}, "
                f"got {chunk.shape}"
            )
        if start < self.done:
            raise ValueError(f"segment {index} starts before samples already released")
        need = end - self.done
        if need > self._weight.shape[0]:
            grow = need - self._weight.shape[0]
            self._sum = np.concatenate([self._sum, np.zeros((self.n_channels, grow))], axis=1)
            self._weight = np.concatenate([self._weight, np.zeros(grow)])
        weights = crossfade_weights(self.plan, index)
        self._sum[:, start - self.done : end - self.done] += chunk * weights
        self._weight[start - self.done : end - self.done] += weights
        self._added.add(index)

    def ready_until(self) -> int:
        """Samples before this index are final (no pending segment touches them)."""
        pending = [s for i, (s, _) in enumerate(self.plan) if i not in self._added]
        if pending:
            return min(pending)
        return self.n_samples

    def pop(self) -> np.ndarray:
        """Return the final samples not yet returned, float32 ``(n_channels, n)``."""
        until = self.ready_until()
        count = max(0, until - self.done)
        out = self._sum[:, :count] / self._weight[:count]
        self._sum = self._sum[:, count:]
        self._weight = self._weight[count:]
        self.done += count
        return out.astype(np.float32)


def overlap_add(chunks: list[np.ndarray], plan: Plan, n_samples: int | None = None) -> np.ndarray:
    """Join processed segments with normalised cross-fades.

    Args:
        chunks: One ``(n_channels, end - start)`` array (or ``(end - start,)``) per segment.
        plan: The segments, from :func:`plan_segments`.
        n_samples: Expected total length (checked), defaults to the plan's end.

    Returns:
        float32 ``(n_channels, n_samples)`` (1-D chunks give ``(n_samples,)``).
    """
    if len(chunks) != len(plan):
        raise ValueError(f"{len(chunks)} chunks for {len(plan)} segments")
    if n_samples is not None and n_samples != plan[-1][1]:
        raise ValueError(f"plan ends at {plan[-1][1]}, expected {n_samples}")
    one_dim = chunks[0].ndim == 1
    adder = OverlapAdder(plan, 1 if one_dim else chunks[0].shape[0])
    for index, chunk in enumerate(chunks):
        adder.add(index, np.atleast_2d(chunk))
    out = adder.pop()
    return out[0] if one_dim else out
