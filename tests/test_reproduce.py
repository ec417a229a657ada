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


def _notebook(png_bytes: int, text: str = "SI-SDR gain +1.23 dB") -> dict:
    image = {"output_type": "display_data", "metadata": {"image/png": {"width": 600}},
             "data": {"image/png": "A" * png_bytes, "text/plain": "<Figure size 640x480>"}}
    printed = {"output_type": "stream", "name": "stdout", "text": [text]}
    table = {"output_type": "execute_result", "execution_count": 2, "metadata": {},
             "data": {"text/plain": "a table", "text/html": "<table>" + "x" * 50 + "</table>"}}
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"widgets": {"state": "big"}},
            "cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# 05"]},
                      {"cell_type": "code", "metadata": {}, "source": ["plot()"],
                       "execution_count": 1, "outputs": [printed, image, table]}]}


def test_stripping_replaces_large_media_and_keeps_the_text():
    from stemprover.report.executed import strip_outputs

    notebook = _notebook(png_bytes=10_000)
    stripped, removed = strip_outputs(notebook, "build/notebooks/cpu/05.ipynb", threshold=1_000)
    outputs = stripped["cells"][1]["outputs"]
    assert removed == 1
    assert outputs[0]["text"] == ["SI-SDR gain +1.23 dB"]  # printed numbers stay
    assert "image/png" not in outputs[1]["data"]
    assert "image/png of 10,000 bytes removed" in outputs[1]["data"]["text/plain"]
    assert "build/notebooks/cpu/05.ipynb" in outputs[1]["data"]["text/plain"]
    assert "text/html" in outputs[2]["data"]  # a small HTML table stays
    assert "widgets" not in stripped["metadata"]
    assert notebook["cells"][1]["outputs"][1]["data"]["image/png"]  # the input is untouched


def test_published_copies_fit_the_limit_together(tmp_path):
    import json

    from stemprover.report.executed import publish

    build = tmp_path / "build"
    build.mkdir()
    sources = []
    for k, size in enumerate((300_000, 300_000, 50_000)):
        path = build / f"0{k + 1}_stage.ipynb"
        path.write_text(json.dumps(_notebook(size)))
        sources.append(path)
    folder = tmp_path / "results" / "notebooks"
    written = publish(sources, folder, limit_bytes=200_000)
    assert [p.name for p in written] == [p.name for p in sources]
    assert sum(p.stat().st_size for p in written) <= 200_000
    assert all("SI-SDR gain" in p.read_text() for p in written)
    assert (build / "01_stage.ipynb").stat().st_size > 300_000  # the full copies stay
    with pytest.raises(ValueError, match="even stripped"):
        publish(sources, tmp_path / "small", limit_bytes=1_000)


def test_headline_profiles_publish_their_notebooks_after_each_stage(monkeypatch, tmp_path):
    import json

    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    monkeypatch.setattr(reproduce, "notebook_path", lambda stage: tmp_path / f"{stage}.ipynb")
    for stage in STAGES:
        (tmp_path / f"{stage}.ipynb").write_text("{}")

    def executed(stage, profile, out_dir):
        (out_dir / f"{stage}.ipynb").write_text(json.dumps(_notebook(600_000)))
        return 0.0

    monkeypatch.setattr(reproduce, "run_stage", executed)
    reproduce.run_notebooks("cpu", "07")
    copies = sorted((tmp_path / "results" / "cpu" / "notebooks").glob("*.ipynb"))
    assert [p.stem for p in copies] == list(STAGES[-2:])
    assert all(p.stat().st_size < 100_000 for p in copies)
    reproduce.run_notebooks("smoke", "08")
    assert not (tmp_path / "results" / "smoke" / "notebooks").exists()
