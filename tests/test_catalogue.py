"""Enhancing a catalogue: folders and list files, reruns that finish the rest, and two
processes under torchrun that share the files exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_cli import save_tiny_model

from stemprover.cli import main
from stemprover.errors import StemproverError
from stemprover.inference.catalogue import expand_inputs, read_list

RATE = 16000


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The one-pass 16 kHz model of ``test_cli``."""
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def catalogue(folder: Path, n: int = 6) -> list[Path]:
    """``n`` short stereo files in two subfolders, plus a file that is not audio."""
    t = np.arange(int(0.3 * RATE)) / RATE
    files = []
    for k in range(n):
        path = folder / f"album{k % 2}" / f"song{k}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        wave = 0.2 * np.sin(2 * np.pi * (200 + 50 * k) * t)
        sf.write(path, np.stack([wave, 0.5 * wave], 1).astype(np.float32), RATE)
        files.append(path)
    (folder / "album0" / "notes.txt").write_text("not audio")
    return files


def written(out: Path) -> list[str]:
    return sorted(p.name for p in out.rglob("*.enhanced.wav"))


def test_folders_and_lists_expand_to_sorted_unique_files(tmp_path):
    files = catalogue(tmp_path / "in")
    listed = tmp_path / "todo.txt"
    listed.write_text(f"# the rest\n\n{files[0]}\n{files[1]}\n")
    found = expand_inputs([str(tmp_path / "in")], from_list=str(listed))
    assert found == sorted(str(p) for p in files)  # the list's files are already in the folder
    assert read_list(listed) == [str(files[0]), str(files[1])]
    (tmp_path / "empty").mkdir()
    with pytest.raises(StemproverError, match="empty: no audio files"):
        expand_inputs([str(tmp_path / "empty")])
    with pytest.raises(StemproverError, match="--from-list .*missing.txt"):
        expand_inputs([], from_list=str(tmp_path / "missing.txt"))
    (tmp_path / "comments.txt").write_text("# nothing yet\n")
    with pytest.raises(StemproverError, match="no input files"):
        expand_inputs([], from_list=str(tmp_path / "comments.txt"))


def test_rerun_with_skip_existing_cleans_only_what_is_missing(tiny_model, tmp_path, capsys):
    files = catalogue(tmp_path / "in")
    out = tmp_path / "out"
    run = ["enhance", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_model),
           "--device", "cpu", "-q", "--filename", "{folder}/{track}.enhanced.wav"]
    assert main(run) == 0
    assert written(out) == sorted(f"{p.stem}.enhanced.wav" for p in files)
    # an interrupted run: two outputs never appeared
    lost = [out / "album0" / "song2.enhanced.wav", out / "album1" / "song5.enhanced.wav"]
    for path in lost:
        path.unlink()
    kept = {p: p.stat().st_mtime_ns for p in out.rglob("*.enhanced.wav")}
    capsys.readouterr()
    assert main([*run, "--skip-existing"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum("exists, skipped" in line for line in lines) == len(files) - len(lost)
    assert sorted(Path(line.split(" -> ")[0]).name for line in lines
                  if "real-time factor" in line) == ["song2.wav", "song5.wav"]
    assert all(path.exists() for path in lost)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # the rest untouched


def test_skip_existing_and_overwrite_exclude_each_other(tiny_model, tmp_path, capsys):
    files = catalogue(tmp_path / "in", n=1)
    code = main(["enhance", str(files[0]), "-o", str(tmp_path / "out"), "--skip-existing",
                 "--overwrite", "--model", str(tiny_model)])
    assert code == 1
    assert "exclude each other" in capsys.readouterr().err


def launch(tiny_model: Path, args: list[str]) -> list[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "stemprover", "enhance", *args,
               "--model", str(tiny_model), "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_two_processes_clean_every_file_once_and_a_rerun_finishes_the_rest(tiny_model,
                                                                            tmp_path):
    files = catalogue(tmp_path / "in", n=7)
    listed = tmp_path / "todo.txt"
    listed.write_text("".join(f"{p}\n" for p in files))
    out = tmp_path / "out"
    lines = launch(tiny_model, ["--from-list", str(listed), "-o", str(out)])
    done = [line.split(" -> ")[0] for line in lines if "real-time factor" in line]
    # each file once, by one process, and the first process takes the first four
    assert sorted(done) == sorted([f"[1/2] {p}" for p in files[:4]]
                                  + [f"[2/2] {p}" for p in files[4:]])
    assert sorted(line for line in lines if line.endswith(" of 7 files")) == [
        "[1/2] 4 of 7 files", "[2/2] 3 of 7 files"]
    assert written(out) == sorted(f"{p.stem}.enhanced.wav" for p in files)
    for name in ("song0", "song6"):
        (out / f"{name}.enhanced.wav").unlink()
    lines = launch(tiny_model, ["--from-list", str(listed), "-o", str(out), "--skip-existing"])
    redone = sorted(Path(line.split(" -> ")[0].split("] ")[1]).name for line in lines
                    if "real-time factor" in line)
    assert redone == ["song0.wav", "song6.wav"]
    assert sum("exists, skipped" in line for line in lines) == 5
    assert written(out) == sorted(f"{p.stem}.enhanced.wav" for p in files)


def test_a_scan_leaves_out_the_commands_own_outputs(tmp_path):
    from stemprover.inference.naming import output_path

    folder = tmp_path / "d"
    catalogue(folder, n=2)
    own = folder / "album0" / "song0.enhanced.wav"
    own.write_bytes((folder / "album0" / "song0.wav").read_bytes())
    renamed = folder / "album1" / "song1.clean.wav"  # an output under a --filename template
    renamed.write_bytes((folder / "album1" / "song1.wav").read_bytes())
    originals = [str(folder / "album0" / "song0.wav"), str(folder / "album1" / "song1.wav")]
    assert expand_inputs([str(folder)]) == sorted(originals + [str(renamed)])
    assert expand_inputs([str(folder)], output_of=lambda p: output_path(
        p, folder, filename="{folder}/{track}.clean.wav")) == originals
    # named on its own, a file is cleaned whatever its name
    assert expand_inputs([str(own)]) == [str(own)]
    outputs_only = tmp_path / "done"
    outputs_only.mkdir()
    own.rename(outputs_only / own.name)
    with pytest.raises(StemproverError, match="no audio files in this folder besides 1 output"):
        expand_inputs([str(outputs_only)])


def test_a_folder_that_cannot_be_read_is_one_error(tmp_path, monkeypatch):
    import errno

    catalogue(tmp_path / "in", n=2)

    def walk(top, onerror=None, **kwargs):
        onerror(PermissionError(errno.EACCES, "Permission denied", str(top)))
        return iter(())

    monkeypatch.setattr(os, "walk", walk)
    with pytest.raises(StemproverError, match=r"in: permission denied$"):
        expand_inputs([str(tmp_path / "in")])
    with pytest.raises(StemproverError, match=r"--from-list .*todo.txt: is a directory$"):
        (tmp_path / "todo.txt").mkdir()
        expand_inputs([], from_list=str(tmp_path / "todo.txt"))
