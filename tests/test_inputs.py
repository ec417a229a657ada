"""Stage inputs named in configs and resolved in one place; the common keys declared once."""

from __future__ import annotations

import dataclasses

import pytest

from stemprover.errors import StemproverError
from stemprover.project.config import COMMON_KEYS, Common
from stemprover.project.inputs import INPUTS, input_path, require, resolve_inputs
from stemprover.stages.ablations import AblationConfig
from stemprover.stages.evaluation import EvaluationConfig
from stemprover.stages.performance import PerformanceConfig, resolve_model_path
from stemprover.train.config import LoraTrainConfig, PretrainConfig, manifest_path

STAGE_CONFIGS = (PretrainConfig, LoraTrainConfig, EvaluationConfig, AblationConfig)


def test_empty_inputs_become_the_profiles_own_outputs_relative_to_the_repository(tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    cfg = resolve_inputs(EvaluationConfig(), "cpu")
    assert cfg.model_dir == "results/cpu/04_lora_training/weights/stemprover"
    assert cfg.regression_dir == "results/cpu/04_lora_training/weights/regression"
    assert cfg.corpus_dir == "build/cache/cpu/corpus"
    assert cfg.separator_weights == "results/cpu/01_phase_analysis/weights"
    assert cfg.manifest == "results/cpu/02_paired_dataset/manifest.json"
    assert input_path(cfg.manifest) == tmp_path / cfg.manifest
    lora = resolve_inputs(LoraTrainConfig(), "smoke")
    assert lora.base == "results/smoke/03_base_pretraining/weights/base"
    # nothing but the inputs changes, and resolving twice changes nothing more
    assert dataclasses.replace(cfg, **{k: "" for k in INPUTS if hasattr(cfg, k)}) == \
        EvaluationConfig()
    assert resolve_inputs(cfg, "smoke") == cfg


def test_a_stage_can_read_another_runs_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    elsewhere = tmp_path.parent / "other_run" / "manifest.json"
    cfg = resolve_inputs(PretrainConfig(manifest=str(elsewhere)), "cpu")
    assert cfg.manifest == str(elsewhere)  # kept, absolute: it lies outside the repository
    with pytest.raises(StemproverError, match=r"no paired dataset at .*other_run.*02_paired"):
        manifest_path(cfg)
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_text("{}")
    assert manifest_path(cfg) == elsewhere


def test_the_timed_model_is_the_profiles_own_else_the_released_one(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    released = tmp_path / "models" / "default"
    released.mkdir(parents=True)
    (released / "stemprover.json").write_text("{}")
    cfg = resolve_inputs(PerformanceConfig(), "cpu")
    assert cfg.model_path == "models/default" and resolve_model_path(cfg) == released
    own = tmp_path / "results" / "cpu" / "04_lora_training" / "weights" / "stemprover"
    own.mkdir(parents=True)
    (own / "stemprover.json").write_text("{}")
    assert resolve_model_path(resolve_inputs(PerformanceConfig(), "cpu")) == own
    with pytest.raises(StemproverError, match="run 04_lora_training"):
        resolve_model_path(PerformanceConfig(model_path=str(tmp_path / "nothing")))


def test_require_names_the_stage_that_makes_a_missing_input(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    with pytest.raises(StemproverError, match="no base model given: set it, or run 03"):
        require("", "base model", "03_base_pretraining")
    with pytest.raises(StemproverError, match="no base model at .*: run 03_base_pretraining"):
        require("results/cpu/03_base_pretraining/weights/base", "base model", "03_base_pretraining")


def test_setup_prints_the_resolved_inputs(tmp_path, monkeypatch, capsys):
    from stemprover.project.notebook import setup

    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    out_dir, cfg = setup("05_evaluation", {"profile": "smoke", "seed": 0}, EvaluationConfig)
    assert out_dir == tmp_path / "results" / "smoke" / "05_evaluation"
    assert cfg.model_dir == "results/smoke/04_lora_training/weights/stemprover"
    assert "model_dir: 'results/smoke/04_lora_training/weights/stemprover'" in capsys.readouterr().out


def test_every_model_facing_config_takes_the_common_keys_from_one_declaration():
    from stemprover.model.config import ModelConfig
    from stemprover.stages.figures import FiguresConfig
    from stemprover.stages.phase_analysis import PhaseStudyConfig

    assert COMMON_KEYS == ("sample_rate", "n_fft", "hop_length", "representation")
    for config in (*STAGE_CONFIGS, ModelConfig, FiguresConfig, PhaseStudyConfig):
        assert issubclass(config, Common), config.__name__
        own = config.__dict__.get("__annotations__", {})
        assert not set(own) & set(COMMON_KEYS), config.__name__  # not declared again
        assert {f.name for f in dataclasses.fields(config)} >= set(COMMON_KEYS)


@pytest.mark.parametrize("stage, cls", [
    ("03_base_pretraining", PretrainConfig), ("04_lora_training", LoraTrainConfig),
    ("05_evaluation", EvaluationConfig), ("06_ablations", AblationConfig),
    ("07_performance", PerformanceConfig),
])
def test_every_input_is_a_parameter_of_its_notebook(stage, cls):
    """So that a profile (or papermill's ``-p``) can point a stage at another run's outputs."""
    import nbformat

    from stemprover.project.paths import repo_root

    nb = nbformat.read(repo_root() / "notebooks" / f"{stage}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    defaults: dict = {}
    exec(cell.source, {}, defaults)
    inputs = {f.name for f in dataclasses.fields(cls)} & set(INPUTS)
    assert inputs and inputs <= set(defaults), sorted(inputs - set(defaults))
    assert not any(defaults[name] for name in inputs)  # empty: the profile's own outputs
