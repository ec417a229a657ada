"""Training throughput is measured on the stages' own models and steps, and reported as such."""

from pathlib import Path

import pandas as pd
import pytest

from stemprover.bench import throughput
from stemprover.project.config import config_for, stage_params
from stemprover.stages import performance as benchmark


@pytest.fixture(scope="module")
def smoke_table():
    # batch 1, one timed step: the tiny smoke model keeps this to seconds on one core
    return throughput.training_throughput("smoke", warmup=0, repeats=1, batch_size=1)


def test_every_training_kind_is_timed_and_counted(smoke_table):
    table = smoke_table.set_index("kind")
    assert list(table.index) == list(throughput.KINDS)
    assert (table["batch_size"] == 1).all() and (table["segment_frames"] == 64).all()
    audio = table["batch_size"] * table["segment_samples"] / table["sample_rate"]
    pd.testing.assert_series_equal(table["audio_seconds_per_step"], audio, check_names=False)
    pd.testing.assert_series_equal(
        table["audio_s_per_s"], audio / table["seconds_per_step"], check_names=False)
    assert (table["flops_per_step"] > 0).all()
    pd.testing.assert_series_equal(
        table["flops_per_audio_second"], table["flops_per_step"] / audio, check_names=False)
    # base pretraining trains the whole U-Net; control + LoRA leaves the base frozen
    base, lora = table.loc["base"], table.loc["control_lora"]
    assert base["trainable_parameters"] < base["parameters"]  # the embedding table stays
    assert lora["trainable_parameters"] < lora["parameters"] - base["trainable_parameters"] / 2
    # the control branch runs a second encoder: more FLOPs per step than the base alone
    assert lora["flops_per_step"] > base["flops_per_step"]


def test_flops_scale_with_the_batch():
    setup = throughput.training_setup("smoke", "regression", batch_size=2)
    two = throughput.measure(setup, warmup=0, repeats=1)
    setup = throughput.training_setup("smoke", "regression", batch_size=1)
    one = throughput.measure(setup, warmup=0, repeats=1)
    assert two["flops_per_step"] == pytest.approx(2 * one["flops_per_step"], rel=0.02)
    assert two["flops_per_audio_second"] == pytest.approx(one["flops_per_audio_second"], rel=0.02)


def test_the_stage_batch_size_comes_from_the_profile():
    setup = throughput.training_setup("smoke", "base")
    assert setup.batch_size == throughput.stage_config("smoke", "base").batch_size == 4


def test_summary_headline_is_the_slowest_stemprover_stage():
    table = pd.DataFrame({
        "kind": ["base", "control_lora", "regression"], "audio_s_per_s": [6.0, 4.5, 0.1],
        "flops_per_audio_second": [1e9, 2e9, 3e9], "seconds_per_step": [1.0, 2.0, 3.0],
        "batch_size": 8, "segment_frames": 64,
    })
    summary = throughput.throughput_summary(table)
    assert summary["headline_kind"] == "control_lora"  # regression is a baseline, not StemProver
    assert summary["audio_s_per_s"] == 4.5 and summary["flops_per_audio_second"] == 2e9
    assert summary["previous_release_audio_s_per_s"] == throughput.PREVIOUS_RELEASE_AUDIO_S_PER_S
    assert summary["target_audio_s_per_s"] == pytest.approx(10 * 0.3)
    assert summary["speedup_over_previous"] == pytest.approx(4.5 / 0.3)


def test_benchmark_summary_keeps_the_contract_and_adds_training(smoke_table):
    cfg = benchmark.PerformanceConfig(clip_seconds=2.0)
    steps = pd.DataFrame({"steps": [1, 4], "audio_seconds": 2.0, "time_s": [1.0, 4.0],
                          "rtf": [0.5, 2.0], "peak_mem_mb": [100.0, 120.0]})
    tables = {
        "steps": steps,
        "cache": pd.DataFrame({"use_cache": [True, False], "time_s": [3.0, 4.0]}),
        "batch": pd.DataFrame({"batch": [1, 4], "rtf": [0.6, 0.5]}),
        "duration": pd.DataFrame({"duration_s": [1.0, 2.0], "time_s": [0.5, 1.0],
                                  "peak_mem_mb": [100.0, 100.0]}),
        "training": smoke_table,
    }
    extra = {"separator_cost_ratio_same_clip": 0.3, "four_stem_separator_ratio": 0.45,
             "four_stem": {"time_s": 9.0}, "startup": {"startup_seconds": 3.5},
             "compile": {"break_even_seconds": 40.0}, "projection_memory": [{"minutes": 1.0}]}
    summary = benchmark.summarise(cfg, tables, separator_rtf=2.0, device="cpu",
                                  model_path=Path("models/default"), projection_rtf=0.02,
                                  extra=extra)
    assert {"device", "rtf", "peak_mem_mb", "separator_cost_ratio"} <= set(summary)
    assert summary["separator_cost_ratio"] == 0.3  # timed on the separator's own clip
    assert summary["separator_cost_ratio_steps"] == 1
    assert summary["separator_cost_ratios"] == {"1": 0.25, "4": 1.0}  # RTF over RTF
    assert summary["four_stem_separator_ratio"] == 0.45
    assert summary["startup_seconds"] == 3.5
    assert summary["compile_break_even_seconds"] == 40.0
    assert summary["projection_memory"] == [{"minutes": 1.0}]
    assert summary["projection_rtf"] == 0.02
    assert set(summary["training"]["kinds"]) == set(throughput.KINDS)
    assert summary["training"]["audio_s_per_s"] == pytest.approx(min(
        smoke_table.set_index("kind").loc[list(throughput.STEMPROVER_KINDS), "audio_s_per_s"]))


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_every_profile_asks_for_the_training_throughput(profile):

    cfg = config_for(benchmark.PerformanceConfig, stage_params(profile, "07_performance"))
    assert cfg.training and cfg.training_repeats >= 2


def test_projection_is_timed_on_four_stems_of_the_clip(tmp_path):
    from stemprover.bench.clips import write_test_clip

    clip = write_test_clip(tmp_path / "clip.wav", 1.0)
    seconds = benchmark.time_projection(clip)
    assert 0 < seconds < 60


def test_the_four_stem_path_is_timed_as_the_command_runs_it(tmp_path):
    from stemprover.bench.clips import write_test_clip
    from stemprover.inference.enhance import Enhancer
    from tests.test_enhance import RegressionFake

    clip = write_test_clip(tmp_path / "clip.wav", 0.5)
    row = benchmark.time_four_stems(Enhancer(RegressionFake()), clip, "cpu", tmp_path / "song")
    assert row["audio_seconds"] == pytest.approx(0.5)
    assert 0 < row["projection_s"] < row["time_s"] and row["peak_mem_mb"] > 0
    assert sorted(p.name for p in (tmp_path / "song").iterdir()) == [
        "song_bass.wav", "song_drums.wav", "song_mixture.wav", "song_other.wav",
        "song_vocals.wav"]


def test_the_projection_memory_probe_writes_a_song_and_projects_it(tmp_path):
    from stemprover.bench.memory import measure_projection

    row = measure_projection(0.3, tmp_path / "song")
    assert row["audio_seconds"] == 0.3 and row["time_s"] > 0
    assert row["peak_mem_mb"] >= row["baseline_mem_mb"] > 0
    assert row["input_mb"] == pytest.approx(5 * 0.3 * 44100 * 2 * 2 / 2**20, rel=0.01)
