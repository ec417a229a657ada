"""Segmentation and overlap-add: exact reconstruction and adaptive boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stemprover.inference.segment import (
    OverlapAdder,
    crossfade_weights,
    frame_energy,
    overlap_add,
    plan_segments,
)


def _check_plan(plan, n_samples, segment, overlap):
    assert plan[0][0] == 0 and plan[-1][1] == n_samples
    for (s0, e0), (s1, _e1) in zip(plan, plan[1:]):
        assert e0 - s1 == overlap  # neighbours share exactly the overlap
        assert s1 > s0
    for index, (start, end) in enumerate(plan):
        assert 0 < end - start <= segment
        if index > 0:
            assert end - start > overlap


@settings(max_examples=60, deadline=None)
@given(
    n_samples=st.integers(1, 5000),
    segment=st.integers(2, 700),
    overlap_fraction=st.floats(0.0, 0.5),
    tolerance=st.integers(0, 300),
    adaptive=st.booleans(),
    n_channels=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_identity_reconstructs_exactly(
    n_samples, segment, overlap_fraction, tolerance, adaptive, n_channels, seed
):
    overlap = int(overlap_fraction * segment)
    overlap = min(overlap, segment // 2)
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal((n_channels, n_samples)).astype(np.float32)
    energy = frame_energy(audio, 16) if adaptive else None
    plan = plan_segments(n_samples, segment, overlap, energy, tolerance, energy_hop=16)
    _check_plan(plan, n_samples, segment, overlap)
    joined = overlap_add([audio[:, s:e] for s, e in plan], plan, n_samples)
    assert joined.shape == audio.shape
    error = np.linalg.norm(joined - audio) / max(np.linalg.norm(audio), 1e-12)
    assert error <= 1e-5


def test_short_clip_is_one_segment():
    assert plan_segments(100, 4096, 1024) == [(0, 100)]
    audio = np.arange(100, dtype=np.float32)
    np.testing.assert_array_equal(overlap_add([audio], [(0, 100)]), audio)


def test_fixed_plan_is_regular():
    plan = plan_segments(1000, 400, 100)
    assert plan == [(0, 400), (300, 700), (600, 1000)]


def test_weights_are_complementary_in_shared_region():
    plan = plan_segments(1000, 400, 100)
    left = crossfade_weights(plan, 0)[-100:]
    right = crossfade_weights(plan, 1)[:100]
    np.testing.assert_allclose(left + right, 1.0, atol=1e-12)
    assert np.all(np.diff(right) > 0) and right[0] > 0
    assert crossfade_weights(plan, 0)[0] == 1.0 and crossfade_weights(plan, 2)[-1] == 1.0


def test_boundary_moves_to_quiet_frames():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(4000)
    audio[700:800] = 0.0  # a rest inside the tolerance window before the nominal boundary
    energy = frame_energy(audio, 10)
    plan = plan_segments(4000, 1000, 60, energy, tolerance_samples=400, energy_hop=10)
    start, end = plan[0]
    # The cross-fade region [end - 60, end) lies inside the rest.
    assert 700 <= end - 60 and end <= 800
    fixed = plan_segments(4000, 1000, 60)
    assert fixed[0] == (0, 1000)


def test_adder_releases_samples_in_order():
    audio = np.random.default_rng(1).standard_normal((2, 3000)).astype(np.float32)
    plan = plan_segments(3000, 800, 200)
    adder = OverlapAdder(plan, 2)
    pieces = []
    for index, (start, end) in enumerate(plan):
        adder.add(index, audio[:, start:end])
        block = adder.pop()
        # Released samples stop where the next segment begins.
        next_start = plan[index + 1][0] if index + 1 < len(plan) else 3000
        assert adder.done == next_start
        pieces.append(block)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), audio, rtol=1e-6, atol=1e-6)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        plan_segments(100, 10, 6)
    with pytest.raises(ValueError):
        plan_segments(0, 10, 2)
    with pytest.raises(ValueError):
        overlap_add([np.zeros(10)], [(0, 10), (5, 15)])
