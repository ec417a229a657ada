"""Typed configs: unknown keys and wrong types are rejected with a clear message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from stemprover.errors import StemproverError
from stemprover.project.config import PROFILES, build, load_profile, stage_params
from stemprover.project.paths import STAGES


@dataclass
class Inner:
    rank: int = 4


@dataclass
class Example:
    steps: int = 4
    strength: float = 0.5
    name: str = "complex"
    mode: Literal["pixel", "latent"] = "pixel"
    ranks: list[int] = field(default_factory=lambda: [4, 8])
    inner: Inner = field(default_factory=Inner)
    cutoff: float | None = None


def test_build_fills_defaults_and_converts():
    cfg = build(Example, {"strength": 1, "inner": {"rank": 16}, "ranks": (1, 2)})
    assert cfg.strength == 1.0 and isinstance(cfg.strength, float)
    assert cfg.inner.rank == 16
    assert cfg.ranks == [1, 2]
    assert cfg.steps == 4


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"stepz": 3}, "unknown key(s) stepz"),
        ({"steps": "4"}, "Example.steps: expected an integer"),
        ({"steps": True}, "expected an integer"),
        ({"strength": "high"}, "expected a number"),
        ({"mode": "voxel"}, "expected one of"),
        ({"ranks": [1, "a"]}, "Example.ranks[1]"),
        ({"inner": {"rnak": 1}}, "Example.inner: unknown key(s) rnak"),
        ({"cutoff": "x"}, "does not match"),
    ],
)
def test_build_rejects_bad_values(values, fragment):
    with pytest.raises(StemproverError) as info:
        build(Example, values)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_optional_accepts_none_and_number():
    assert build(Example, {"cutoff": None}).cutoff is None
    assert build(Example, {"cutoff": 3}).cutoff == 3.0


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_have_common_and_known_sections(profile):
    data = load_profile(profile)
    assert {"seed", "sample_rate", "n_fft", "hop_length", "representation"} <= set(data["common"])
    assert set(data) - {"common", "corpus", "model", "autoencoder"} <= set(STAGES)
    params = stage_params(profile, "01_phase_analysis")
    assert params["profile"] == profile


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(StemproverError, match="unknown profile"):
        load_profile("huge")
