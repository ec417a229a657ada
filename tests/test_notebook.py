"""Notebook helpers: parameters are read from the kernel namespace, and every profile section
builds its stage's config (papermill injects exactly these keys)."""

import json

import pytest

from stemprover.config import PROFILES, build, stage_params
from stemprover.notebook import parameters


def test_parameters_keep_plain_values_only():
    namespace = {
        "profile": "smoke", "seed": 0, "steps": [1, 4], "model": {}, "musdb_root": None,
        "In": [""], "Out": {}, "_": 3, "_i1": "x", "json": json, "get_ipython": print,
    }
    assert parameters(namespace) == {
        "profile": "smoke", "seed": 0, "steps": [1, 4], "model": {}, "musdb_root": None,
    }


def _config_classes():
    from stemprover.ablations import AblationConfig
    from stemprover.evaluate import EvaluationConfig
    from stemprover.figures import FiguresConfig
    from stemprover.pairs import PairsConfig
    from stemprover.phase_study import PhaseStudyConfig
    from stemprover.train import LoraTrainConfig, PretrainConfig

    return {
        "01_phase_analysis": PhaseStudyConfig, "02_paired_dataset": PairsConfig,
        "03_base_pretraining": PretrainConfig, "04_lora_training": LoraTrainConfig,
        "05_evaluation": EvaluationConfig, "06_ablations": AblationConfig,
        "08_figures": FiguresConfig,
    }


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_section_builds_its_config(profile):
    for stage, config_cls in _config_classes().items():
        params = stage_params(profile, stage)
        params.pop("profile")
        assert build(config_cls, params).seed == params["seed"]
