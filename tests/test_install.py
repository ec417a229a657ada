"""The install never pulls torchaudio, and never CUDA wheels on a machine without a GPU."""

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
import torch

from stemprover.project.paths import repo_root

INSTALL_SH = repo_root() / ".ci" / "install.sh"
CUDA_PREFIXES = ("nvidia-", "cuda-")


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_pyproject_never_asks_for_torchaudio():
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    groups = [project["dependencies"], *project.get("optional-dependencies", {}).values()]
    names = {_requirement_name(r) for group in groups for r in group}
    assert "torch" in names
    assert "torchaudio" not in names
    assert not any(name.startswith(CUDA_PREFIXES) for name in names)


def _fake_tool(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _run_install(tmp_path: Path, has_gpu: bool) -> list[str]:
    """Run .ci/install.sh against a fake venv and fake system tools; return the pip calls."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(INSTALL_SH, repo / ".ci" / "install.sh")
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    log = tmp_path / "pip.log"
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    # The fake interpreter: no torch until pip installs it; pip calls are logged.
    _fake_tool(venv_bin / "python", f"""
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "$*" >> {log}; touch {tmp_path}/torch; exit 0; fi
if [ "$1" = "-c" ]; then [ -f {tmp_path}/torch ] || exit 1; echo 2.13.0; exit 0; fi
exit 1
""")
    tools = tmp_path / "bin"
    tools.mkdir()
    _fake_tool(tools / "dpkg", "exit 0\n")  # every Debian package counts as installed
    _fake_tool(tools / "nvidia-smi", "echo 'GPU 0: H100'; exit 0\n" if has_gpu else "exit 9\n")
    env = {k: v for k, v in os.environ.items() if k not in ("VENV", "TORCH_SPEC", "TORCH_CUDA")}
    env["PATH"] = f"{tools}:{env.get('PATH', '/usr/bin:/bin')}"
    result = subprocess.run(["bash", str(repo / ".ci" / "install.sh")], env=env, cwd=repo,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return log.read_text().splitlines()


@pytest.mark.skipif(platform.system() != "Linux", reason="the CPU/CUDA wheel split is Linux's")
@pytest.mark.parametrize("has_gpu", [False, True])
def test_install_script_picks_the_right_torch(tmp_path, has_gpu):
    calls = _run_install(tmp_path, has_gpu)
    torch_call = next(c for c in calls if "torch==" in c)
    assert calls.index(torch_call) == 0  # torch before anything that depends on it
    if has_gpu:
        assert "torch==2.13.0" in torch_call.split() and "+cpu" not in torch_call
    else:
        assert "torch==2.13.0+cpu" in torch_call.split()
        assert "https://download.pytorch.org/whl/cpu" in torch_call
    assert any("-e .[dev]" in c for c in calls)
    for call in calls:
        assert "torchaudio" not in call
        if "demucs" in call or "openunmix" in call:
            assert "--no-deps" in call.split()


def test_torchaudio_is_not_installed():
    assert importlib.util.find_spec("torchaudio") is None


@pytest.mark.skipif(torch.version.cuda is not None, reason="a CUDA torch brings its own wheels")
def test_no_cuda_wheels_with_a_cpu_torch():
    names = {
        (dist.metadata["Name"] or "").lower().replace("_", "-")
        for dist in importlib.metadata.distributions()
    }
    cuda = sorted(n for n in names if n.startswith(CUDA_PREFIXES) or n == "triton")
    assert cuda == []
