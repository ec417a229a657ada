"""Scaling over processes (07's scaling.csv): real torchrun launches of training and of a
catalogue enhancement, with 1 and 2 CPU processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import save_tiny_model

from stemprover.bench.scaling import enhance_scaling, training_scaling
from stemprover.stages import performance as benchmark


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The one-pass 16 kHz model of ``test_cli``."""
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def test_training_scaling_times_a_global_batch_per_process_count():
    table = training_scaling("smoke", (1, 2), batch_size=1, warmup=0, repeats=1)
    assert table["processes"].tolist() == [1, 2]
    one, two = table.iloc[0], table.iloc[1]
    assert two["audio_seconds"] == pytest.approx(2 * one["audio_seconds"])  # global batch
    assert (table["seconds"] > 0).all()
    assert one["efficiency"] == pytest.approx(1.0)
    assert two["efficiency"] == pytest.approx(
        two["audio_s_per_s"] / (2 * one["audio_s_per_s"]))


def test_enhance_scaling_cleans_the_whole_catalogue_with_each_process_count(tiny_model):
    table = enhance_scaling(tiny_model, (1, 2), n_files=3, clip_seconds=0.5)
    assert table["processes"].tolist() == [1, 2]
    assert table["audio_seconds"].tolist() == [1.5, 1.5]
    assert (table["audio_s_per_s"] > 0).all()


def test_scaling_counts_are_sorted_unique_and_positive():
    cfg = benchmark.PerformanceConfig(scaling_processes=[2, 1, 2, 0])
    assert benchmark.scaling_processes(cfg, "cpu") == [1, 2]
    assert benchmark.scaling_processes(benchmark.PerformanceConfig(scaling_processes=[]),
                                       "cpu") == []


def test_file_seconds_are_read_per_process_tag():
    from stemprover.bench.scaling import file_seconds

    stdout = "\n".join([
        "[1/2] 2 of 3 files",
        "[2/2] 1 of 3 files",
        "[1/2] a b.wav -> out/a b.enhanced.wav: 2.0 s of audio in 1.5 s (real-time factor 0.750)",
        "[2/2] c.wav -> out/c.enhanced.wav: 2.0 s of audio in 2.5 s (real-time factor 1.250)",
        "[1/2] d.wav -> out/d.enhanced.wav: 2.0 s of audio in 0.5 s (real-time factor 0.250)",
    ])
    assert file_seconds(stdout) == {"[1/2]": [1.5, 0.5], "[2/2]": [2.5]}
    assert file_seconds("e.wav -> f.wav: 1.0 s of audio in 0.2 s (real-time factor 0.2)") == {
        "": [0.2]}
