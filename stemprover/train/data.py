"""Training data: clean segments and pairs from the paired dataset, turned into pictures.

The paired dataset (notebook 02) is a folder of ``.npz`` segments with a ``manifest.json``
(``stemprover.data.pairs``). Pretraining needs only the clean side, once per distinct segment;
the control/LoRA stage needs the pairs, by artifact type.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from stemprover.constants import ADAPTERS
from stemprover.data.pairs import PairDataset
from stemprover.errors import StemproverError

ARTIFACT_ADAPTER = {
    "hf_loss": "hf_loss",
    "musical_noise": "musical_noise",
    "bleed": "bleed",
    "phase_smear": "general",
    "mixed": "general",
}
"""Which adapter specialises in an artifact type (blind separators give "mixed")."""


def read_manifest(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise StemproverError(f"{path}: manifest not found")
    manifest = json.loads(path.read_text())
    if "pairs" not in manifest or "sample_rate" not in manifest:
        raise StemproverError(f"{path}: not a paired-dataset manifest (needs pairs, sample_rate)")
    return manifest


def _segment_file(manifest_path: Path, name: str) -> Path:
    base = Path(manifest_path).parent
    for candidate in (base / name, base / "pairs" / name):
        if candidate.exists():
            return candidate
    raise StemproverError(f"{manifest_path}: segment file {name} is missing")


class CleanSegments(torch.utils.data.Dataset):
    """Distinct clean segments of one split: items ``{"clean": Tensor (samples,)}``.

    Several separators share a clean segment; each (track, stem, offset, channel) counts once.
    """

    def __init__(self, manifest_path: Path, split: str = "train", limit: int | None = None):
        manifest = read_manifest(manifest_path)
        self.sample_rate = int(manifest["sample_rate"])
        seen: dict[tuple, str] = {}
        for pair in manifest["pairs"]:
            if pair.get("split") != split:
                continue
            key = (pair.get("track"), pair.get("stem"), pair.get("offset"), pair.get("channel"))
            seen.setdefault(key, pair["file"])
        self.files = [_segment_file(manifest_path, f) for f in seen.values()][:limit]
        if not self.files:
            raise StemproverError(f"{manifest_path}: no {split} segments")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        with np.load(self.files[index]) as data:
            return {"clean": torch.from_numpy(np.asarray(data["clean"], dtype=np.float32))}


def load_pairs(manifest_path: Path, split: str, *, families: list[str] | None = None,
               exclude_families: list[str] | tuple[str, ...] = ()):
    """The paired dataset of a split (``stemprover.data.pairs.PairDataset``), optionally only
    or without some separator families."""

    dataset = PairDataset(manifest_path, split, families=families,
                          exclude_families=exclude_families)
    if len(dataset) == 0:
        chosen = f" of families {families}" if families else ""
        raise StemproverError(f"{manifest_path}: no {split} pairs{chosen}")
    return dataset


def check_rate(dataset, sample_rate: int) -> None:
    """Refuse pairs stored at another rate than the model's (they would teach the wrong STFT)."""
    rate = getattr(dataset, "sample_rate", None)
    if rate is not None and int(rate) != int(sample_rate):
        raise StemproverError(
            f"the paired dataset is at {rate} Hz but the model runs at {sample_rate} Hz; "
            "set sample_rate to match or rebuild the pairs"
        )


def adapter_index(item: dict) -> int:
    """Adapter index of a pair item (``item["adapter"]``, an index into ADAPTERS)."""
    value = item["adapter"]
    return int(value) if not isinstance(value, str) else ADAPTERS.index(value)


def indices_by_adapter(dataset) -> dict[str, list[int]]:
    """Item indices for each adapter name (one pass over the dataset)."""
    groups: dict[str, list[int]] = {name: [] for name in ADAPTERS}
    entries = getattr(dataset, "entries", None)  # PairDataset: read labels, not audio
    if entries is not None and all("artifact" in e for e in entries):
        for index, entry in enumerate(entries):
            groups[ARTIFACT_ADAPTER.get(entry["artifact"], "general")].append(index)
        return groups
    for index in range(len(dataset)):
        groups[ADAPTERS[adapter_index(dataset[index])]].append(index)
    return groups


def spread(indices: list[int], n: int) -> list[int]:
    """Up to ``n`` indices spread evenly over ``indices`` (deterministic)."""
    if n >= len(indices):
        return list(indices)
    picks = np.linspace(0, len(indices) - 1, n).round().astype(int)
    return [indices[i] for i in picks]
