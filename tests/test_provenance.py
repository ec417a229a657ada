"""run.json: the code commit and parameters of every stage, merged with what stages add."""

from __future__ import annotations

import json
import re

import pytest

from stemprover.project.notebook import setup
from stemprover.project.provenance import code_commit, full_commit, start_run, update_run


def test_code_commit_names_the_last_code_change():
    commit = code_commit()
    assert commit == "unknown" or re.fullmatch(r"[0-9a-f]{7,40}(\+dirty)?", commit)


def test_stage_record_starts_fresh_and_merges(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"left": "from an older run"}))
    record = start_run(tmp_path, "03_base_pretraining", {"profile": "cpu", "steps": 10})
    assert "left" not in record
    assert record["profile"] == "cpu" and record["params"] == {"steps": 10}
    update_run(tmp_path, steps=7)
    saved = json.loads((tmp_path / "run.json").read_text())
    assert saved["steps"] == 7 and saved["code_commit"] == record["code_commit"]
    short = saved["code_commit"].removesuffix("+dirty")
    if short != "unknown":  # the full hash names the same commit as the short one
        assert len(saved["commit"].removesuffix("+dirty")) == 40
        assert saved["commit"].startswith(short)


def test_notebook_setup_writes_the_record(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    out_dir, _ = setup("08_figures", {"profile": "smoke", "seed": 0})
    saved = json.loads((out_dir / "run.json").read_text())
    assert saved["stage"] == "08_figures" and saved["code_commit"]


def test_repository_relative_checkpoints_load_from_any_folder(tmp_path, monkeypatch):
    import pytest

    from stemprover.data.testsets import resolve_separator
    from stemprover.errors import StemproverError
    from stemprover.separators.neural import load_checkpoint

    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    weights = tmp_path / "results" / "smoke" / "01_phase_analysis" / "weights"
    weights.mkdir(parents=True)
    (weights / "htdemucs.pt").write_bytes(b"not a checkpoint")
    spec = resolve_separator("htdemucs", weights)
    monkeypatch.chdir(tmp_path.parent)  # found through the repository root, not the cwd
    with pytest.raises(StemproverError, match="not a readable checkpoint"):
        load_checkpoint("htdemucs", spec.split("checkpoint=")[1])


def test_full_commit_expands_a_short_hash_and_keeps_the_dirty_mark():
    short = code_commit().removesuffix("+dirty")
    if short == "unknown":
        pytest.skip("not a git checkout")
    full = full_commit(short)
    assert len(full) == 40 and full.startswith(short)
    assert full_commit(short + "+dirty") == full + "+dirty"
    assert full_commit("nothing-like-a-commit") == "nothing-like-a-commit"


def _append_rows(path: str, phase: str, n: int) -> None:
    from pathlib import Path

    from stemprover.project.provenance import update_run
    from stemprover.train.loop import CsvLog

    log = CsvLog(Path(path) / "train_log.csv")
    for step in range(1, n + 1):
        log.append({"phase": phase, "step": step, "loss": 0.5})
        update_run(Path(path), **{f"{phase}_{step}": step})


def test_two_processes_writing_one_stage_folder_lose_no_rows(tmp_path):
    import multiprocessing

    import pandas as pd

    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_rows, args=(str(tmp_path), phase, 40))
               for phase in ("general", "regression")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [w.exitcode for w in workers] == [0, 0]
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert log.groupby("phase")["step"].apply(sorted).to_dict() == {
        "general": list(range(1, 41)), "regression": list(range(1, 41))}
    record = json.loads((tmp_path / "run.json").read_text())
    assert len(record) == 80
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "train_log.csv"]


def test_a_folder_lock_taken_again_in_the_same_process_passes_through(tmp_path):
    import threading

    from stemprover.project.paths import folder_lock

    done = threading.Event()

    def nested():
        with folder_lock(tmp_path), folder_lock(tmp_path):
            update_run(tmp_path, inner=True)  # takes it a third time
        done.set()

    worker = threading.Thread(target=nested, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert done.is_set()
    assert json.loads((tmp_path / "run.json").read_text()) == {"inner": True}
