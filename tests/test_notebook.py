"""Notebook helpers: parameters are read from the kernel namespace, and every profile section
builds its stage's config (papermill injects exactly these keys)."""

import json

import pytest

from stemprover.project.config import PROFILES, build, stage_params
from stemprover.project.notebook import parameters


def test_parameters_keep_plain_values_only():
    namespace = {
        "profile": "smoke", "seed": 0, "steps": [1, 4], "model": {}, "musdb_root": None,
        "In": [""], "Out": {}, "_": 3, "_i1": "x", "json": json, "get_ipython": print,
    }
    assert parameters(namespace) == {
        "profile": "smoke", "seed": 0, "steps": [1, 4], "model": {}, "musdb_root": None,
    }


def _config_classes():
    from stemprover.data.pairs import PairsConfig
    from stemprover.stages.ablations import AblationConfig
    from stemprover.stages.evaluation import EvaluationConfig
    from stemprover.stages.figures import FiguresConfig
    from stemprover.stages.phase_analysis import PhaseStudyConfig
    from stemprover.train.config import LoraTrainConfig, PretrainConfig

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


def test_checked_outputs_are_copied_to_the_sources_by_cell_id(tmp_path):
    import json

    from stemprover.project.notebook import store_checked_outputs

    def notebook(outputs):
        cells = [
            {"cell_type": "code", "id": "a", "metadata": {}, "execution_count": None,
             "source": ["# NBVAL_CHECK_OUTPUT\n", "print(1)"], "outputs": outputs},
            {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": None,
             "source": ["print(2)"], "outputs": []},
        ]
        return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}

    stream = {"name": "stdout", "output_type": "stream", "text": ["new\n"]}
    (tmp_path / "run").mkdir()
    (tmp_path / "src").mkdir()
    executed = notebook([stream])
    executed["cells"][0]["execution_count"] = 3
    executed["cells"][1]["outputs"] = [{"name": "stdout", "output_type": "stream", "text": ["2"]}]
    (tmp_path / "run" / "n.ipynb").write_text(json.dumps(executed))
    (tmp_path / "src" / "n.ipynb").write_text(json.dumps(notebook([])))
    assert store_checked_outputs(tmp_path / "run", tmp_path / "src") == ["n.ipynb"]
    stored = json.loads((tmp_path / "src" / "n.ipynb").read_text())["cells"]
    assert stored[0]["outputs"] == [stream] and stored[1]["outputs"] == []
    assert stored[0]["execution_count"] == 3  # nbval refuses outputs of a cell never run
    assert store_checked_outputs(tmp_path / "run", tmp_path / "src") == []
