"""environment.yml mirrors pyproject.toml's dependencies for conda users."""

import re
import tomllib

import yaml

from stemprover.project.paths import repo_root


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_every_dependency():
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((repo_root() / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(r) for r in pip_section if not r.startswith("-")}
    assert wanted - listed == set()
    assert "torchaudio" not in listed
