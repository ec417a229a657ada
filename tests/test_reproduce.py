"""The reproduce runner: profile resolution, stage names and clear failures."""

import pytest

from stemprover import reproduce
from stemprover.errors import StemproverError
from stemprover.paths import STAGES, stage_name


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
    for stage in STAGES[:2]:
        (tmp_path / f"{stage}.ipynb").write_text("{}")

    def boom(stage, profile, out_dir):
        if stage == STAGES[1]:
            raise RuntimeError("disk full")
        return 0.0

    monkeypatch.setattr(reproduce, "run_stage", boom)
    with pytest.raises(StemproverError, match=f"stage {STAGES[1]} failed: RuntimeError: disk full"):
        reproduce.run_notebooks("smoke")
    assert f"{STAGES[0]} done" in capsys.readouterr().out


def test_missing_later_stages_stop_with_a_message(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(reproduce, "notebook_path", lambda stage: tmp_path / f"{stage}.ipynb")
    (tmp_path / f"{STAGES[0]}.ipynb").write_text("{}")
    monkeypatch.setattr(reproduce, "run_stage", lambda *a: 0.0)
    assert reproduce.run_notebooks("smoke") == [STAGES[0]]
    assert "not there yet" in capsys.readouterr().out
