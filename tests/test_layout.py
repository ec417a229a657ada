"""The package's layout: each folder imports only the folders below it.

A folder's ``__init__.py`` docstring says what lives there; the order of ``LAYERS`` is the
import rule: a module may import its own folder and any folder of an earlier layer, never a
folder of its own layer or a later one. Imports inside functions count as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stemprover"

LAYERS = (
    ("errors", "constants"),
    ("project", "dsp"),            # profiles and runtime choices; signals and STFT pictures
    ("metrics",),
    ("corpus",),
    ("separators",),
    ("model",),
    ("inference",),                 # never data, train, stages or report: the user's path stays small
    ("data",),                      # pairs may hold stems after inference's mixture projection
    ("train",),
    ("bench",),
    ("report",),                    # reads results; never runs a stage
    ("stages",),
    ("cli",),
    ("__main__",),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def project_imports(path: Path) -> set[str]:
    """Top-level names of the package that ``path`` imports (``stemprover.X...`` -> ``X``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        modules = []
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
            if node.module == "stemprover":
                modules = [f"stemprover.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        found |= {m.split(".")[1] for m in modules if m.startswith("stemprover.")}
    return found


def home(path: Path) -> str:
    """The folder (or top-level module) of the package that holds ``path``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_folder_and_top_level_module_has_a_layer():
    tops = {home(p) for p in modules()}
    assert tops <= set(RANK), f"not in LAYERS: {sorted(tops - set(RANK))}"
    assert set(RANK) <= tops, f"in LAYERS but not in the package: {sorted(set(RANK) - tops)}"


def violations(path: Path, own: str) -> list[str]:
    """Folders that ``path``, living in ``own``, imports against the rule."""
    return sorted(t for t in project_imports(path) - {own} if RANK[t] >= RANK[own])


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_earlier_layers(path):
    own = home(path)
    assert not violations(path, own), f"{path.relative_to(PACKAGE)} ({own}) imports {violations(path, own)}"


def test_the_rule_sees_imports_inside_functions_and_from_the_package(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("from stemprover import errors\n\n\ndef f():\n"
                      "    from stemprover.train.loop import run_phase\n")
    assert project_imports(module) == {"errors", "train"}
    assert violations(module, "dsp") == ["train"]
    assert violations(module, "stages") == []


def test_the_top_level_holds_few_modules_and_every_folder_says_what_lives_there():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(set(top) - {"__init__.py"}) <= 6, top
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc and len(doc.split()) >= 8, f"{folder.name}/__init__.py says nothing"


def test_the_package_names_its_entry_points_the_same_before_and_after_their_modules_load():
    import stemprover
    from stemprover.inference import enhance as enhance_module

    assert stemprover.enhance is enhance_module.enhance
    assert callable(stemprover.enhance)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        stemprover.nothing  # noqa: B018
