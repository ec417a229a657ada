"""Data-parallel training on two CPU processes (gloo) under torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def launch(out: Path, n_proc: int, batch: int, steps: int, stop_after: int | None = None,
           kind: str = "regression"):
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={n_proc}", str(WORKER), kind, str(out), str(batch), str(steps)]
    if stop_after is not None:
        command.append(str(stop_after))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    launch(root / "two", n_proc=2, batch=2, steps=4)
    launch(root / "one", n_proc=1, batch=4, steps=4)
    launch(root / "resumed", n_proc=2, batch=2, steps=4, stop_after=2)
    stopped = not (root / "resumed" / "rank0.pt").exists()
    launch(root / "resumed", n_proc=2, batch=2, steps=4)
    return root, stopped


def test_two_processes_end_with_identical_weights(runs):
    root, _ = runs
    first, second = weights(root / "two" / "rank0.pt"), weights(root / "two" / "rank1.pt")
    trained = [k for k in first if "conv_out" in k]
    assert trained and any(first[k].abs().sum() > 0 for k in trained)  # it left the identity
    for key, value in first.items():
        assert torch.equal(value, second[key]), key


def test_two_processes_match_one_process_with_the_same_global_batch(runs):
    root, _ = runs
    two_log = pd.read_csv(root / "two" / "stage" / "train_log.csv")
    one_log = pd.read_csv(root / "one" / "stage" / "train_log.csv")
    np.testing.assert_allclose(two_log["loss"], one_log["loss"], rtol=1e-4)
    # the two halves' gradient sums round differently from one sum, and Adam's first steps
    # move each weight by about the step size (1e-3) in the direction of its gradient's sign,
    # so the few weights whose gradient is near zero may move differently; on average the
    # weights agree to a few 1e-6. A missing synchronisation or a wrong slice of the batch
    # moves most weights differently, by about the step size at every step.
    two, one = weights(root / "two" / "rank0.pt"), weights(root / "one" / "rank0.pt")
    for key, value in one.items():
        assert (two[key] - value).abs().mean() < 5e-5, key


def test_two_processes_write_the_log_once_and_resume_exactly(runs):
    root, stopped = runs
    log = pd.read_csv(root / "two" / "stage" / "train_log.csv")
    assert log["step"].tolist() == [1, 2, 3, 4]
    assert stopped
    resumed = pd.read_csv(root / "resumed" / "stage" / "train_log.csv")
    assert resumed["step"].tolist() == [1, 2, 3, 4]
    full, again = weights(root / "two" / "rank0.pt"), weights(root / "resumed" / "rank1.pt")
    for key, value in full.items():
        assert torch.equal(value, again[key]), key


@pytest.mark.parametrize("kind", ["lora", "latent_base"])
def test_every_training_phase_synchronises_its_processes(kind, tmp_path):
    """Control branch + adapters, autoencoder + latent base: random draws differ per process,
    the weights do not."""
    launch(tmp_path, n_proc=2, batch=2, steps=2, kind=kind)
    first, second = weights(tmp_path / "rank0.pt"), weights(tmp_path / "rank1.pt")
    for key, value in first.items():
        assert torch.equal(value, second[key]), key
    log = pd.read_csv(tmp_path / "stage" / "train_log.csv")
    assert log.groupby("phase")["step"].apply(list).map(lambda s: s == sorted(set(s))).all()


@pytest.mark.parametrize("name", ["multi_gpu", "multi_node"])
def test_shipped_accelerate_configs_parse(name):
    """GPU launches; on CPU, accelerate launch starts one process (MPI aside), so CPU
    processes are started with torchrun, as in the tests above."""
    from accelerate.commands.config.config_args import load_config_from_file

    folder = Path(__file__).parents[1] / "notebooks" / "params" / "accelerate"
    config = load_config_from_file(str(folder / f"{name}.yaml"))
    assert config.num_processes >= 2 and not config.use_cpu
    assert config.distributed_type == "MULTI_GPU" and config.mixed_precision == "bf16"


def test_stage_script_trains_with_the_notebooks_parameters():
    from stemprover.project.config import stage_params
    from stemprover.stages.launch import main, stage_config

    cfg = stage_config("04_lora_training", "cpu")
    params = stage_params("cpu", "04_lora_training")
    assert (cfg.learning_rate, cfg.batch_size, cfg.general_minutes) == (
        params["learning_rate"], params["batch_size"], params["general_minutes"])
    with pytest.raises(SystemExit):
        main(["05_evaluation"])
