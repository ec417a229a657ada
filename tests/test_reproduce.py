"""The reproduce runner: profile resolution, stage names and clear failures."""

import pytest

from stemprover.errors import StemproverError
from stemprover.project.paths import STAGES, stage_name
from stemprover.stages import reproduce


def test_stage_names_resolve_from_prefix():
    assert stage_name("05") == "05_evaluation"
    assert stage_name("08_figures") == "08_figures"
    with pytest.raises(KeyError):
        stage_name("09")


def test_auto_profile_follows_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert reproduce.resolve_profile("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert reproduce.resolve_profile("auto") == "gpu"
    with pytest.raises(StemproverError):
        reproduce.resolve_profile("fast")


def test_failing_stage_is_named(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(reproduce, "notebook_path", lambda stage: tmp_path / f"{stage}.ipynb")
    for stage in STAGES:
        (tmp_path / f"{stage}.ipynb").write_text("{}")

    def boom(stage, profile, out_dir):
        if stage == STAGES[1]:
            raise RuntimeError("disk full")
        return 0.0

    monkeypatch.setattr(reproduce, "run_stage", boom)
    with pytest.raises(StemproverError, match=f"stage {STAGES[1]} failed: RuntimeError: disk full"):
        reproduce.run_notebooks("smoke")
    assert f"{STAGES[0]} done" in capsys.readouterr().out


def test_a_missing_notebook_stops_the_run_before_any_stage(monkeypatch, tmp_path):
    monkeypatch.setattr(reproduce, "notebook_path", lambda stage: tmp_path / f"{stage}.ipynb")
    (tmp_path / f"{STAGES[0]}.ipynb").write_text("{}")
    ran = []
    monkeypatch.setattr(reproduce, "run_stage", lambda stage, *a: ran.append(stage) or 0.0)
    with pytest.raises(StemproverError, match=f"missing notebook: .*{STAGES[1]}.ipynb"):
        reproduce.run_notebooks("smoke")
    assert ran == []


def test_a_stage_records_its_wall_time_in_its_run_record(monkeypatch, tmp_path):
    import json
    import time

    from stemprover.project.provenance import start_run

    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    stage = STAGES[4]

    def fake_notebook(source, output, **kwargs):  # the notebook's setup() starts the record
        from stemprover.project.paths import results_dir

        start_run(results_dir(kwargs["parameters"]["profile"], stage), stage, {"profile": "smoke"})
        time.sleep(0.05)

    monkeypatch.setattr("papermill.execute_notebook", fake_notebook)
    monkeypatch.setattr(reproduce, "stage_params", lambda profile, stage: {"profile": profile})
    seconds = reproduce.run_stage(stage, "smoke", tmp_path)
    record = json.loads((tmp_path / "results" / "smoke" / stage / "run.json").read_text())
    assert seconds >= 0.05
    assert record["wall_seconds"] == round(seconds, 1) and record["stage"] == stage
