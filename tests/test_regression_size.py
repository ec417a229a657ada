"""The regression baseline is matched to StemProver's size, in parameters and forward FLOPs."""

import dataclasses

import pytest

from stemprover.bench.throughput import stage_config
from stemprover.model import RegressionModel, StemProverModel, model_config
from stemprover.model.regression import (
    SIZE_TOLERANCE,
    matched_config,
    model_sizes,
    parameter_count,
    stemprover_size,
)
from stemprover.stages.lora_training import regression_model_config
from stemprover.train.config import model_overrides


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_regression_baseline_matches_stemprover_parameters(profile):
    cfg = stage_config(profile, "regression")
    mcfg = model_config(profile, **model_overrides(cfg))
    target = stemprover_size(mcfg)
    assert cfg.regression_size == "matched"  # the default
    matched = regression_model_config(cfg, mcfg)
    assert abs(parameter_count(RegressionModel(matched)) / target - 1) <= SIZE_TOLERANCE
    # at the profile's own widths it is less than half StemProver's size
    assert parameter_count(RegressionModel(mcfg)) < 0.5 * target
    kept = regression_model_config(dataclasses.replace(cfg, regression_size="profile"), mcfg)
    assert kept.block_out_channels == mcfg.block_out_channels


def test_matched_config_finds_known_widths():
    # the target is the size of a U-Net at (32, 64): the search must land on those widths
    mcfg = model_config("smoke", **model_overrides(stage_config("smoke", "regression")))
    target = parameter_count(RegressionModel(dataclasses.replace(mcfg, block_out_channels=(32, 64))))
    assert matched_config(mcfg, target).block_out_channels == (32, 64)


def test_model_sizes_records_parameters_and_forward_flops_of_both():
    mcfg = model_config("smoke", **model_overrides(stage_config("smoke", "regression")))
    stemprover = StemProverModel(mcfg, with_control=True)
    stemprover.add_adapters()
    regression = RegressionModel(matched_config(mcfg))
    sizes = model_sizes(stemprover, regression)
    assert sizes["stemprover"]["parameters"] == parameter_count(stemprover)
    assert sizes["regression"]["parameters"] == parameter_count(regression)
    assert sizes["stemprover"]["block_out_channels"] == list(mcfg.block_out_channels)
    ours, theirs = (sizes[k]["gflops_per_audio_second"] for k in ("stemprover", "regression"))
    assert ours > 0 and abs(theirs / ours - 1) < 0.15  # matched widths: matched compute too
