"""The paired dataset: (separated, clean, mixture) segments at the model rate.

    manifest = build_pairs(cfg, corpus_dir, results_dir("smoke", "02"))
    train = PairDataset(manifest, "train")     # items: dict of tensors, see PairDataset

Every track of the chosen splits is resampled to the model rate (the mixture is the sum
of the resampled stems) and separated there by each separator (the degraded oracles give
pairs labelled with their artifact type and severity; the blind classical and neural
separators give ``"mixed"`` pairs), so band-limit artifacts scale with the model's
Nyquist frequency. The result is cut into segments with overlap. Each segment of each channel is one ``.npz`` holding
float32 mono ``separated``, ``clean`` and ``mixture`` ``(segment_samples,)``. Segments whose
clean stem is silent are skipped: there is nothing to restore. Layout::

    out_dir/manifest.json   {"sample_rate", "segment_samples", "fingerprint", "config",
                             "pairs": [{"file", "track", "stem", "separator", "artifact",
                                        "severity", "offset", "channel", "split"}]}
    out_dir/pairs/<split>/<track>/<stem>-<separator>-<offset>-<channel>.npz

With ``projection = "before"`` the four separated stems of each track and separator are
first redistributed over the mixture by the Wiener filter of
:mod:`stemprover.inference.projection`, so the pairs hold what 05's StemProver feeds its
model. ``offset`` is in samples at the model rate. Blind separators have no severity; their pairs
get ``severity = 1.0`` (real, full-strength artifacts). A second call with the same config
and corpus returns the cached manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from stemprover.constants import ADAPTERS, ARTIFACTS, STEMS
from stemprover.corpus import list_tracks, load_track
from stemprover.data.testsets import separator_name
from stemprover.dsp.audio import resample
from stemprover.errors import StemproverError
from stemprover.inference.projection import project
from stemprover.project.paths import repo_root
from stemprover.project.seed import rng_for
from stemprover.separators import get_separator

PAIRS_VERSION = 3  # bumped whenever pair building changes, so cached pairs are rebuilt
BLIND_SEVERITY = 1.0  # severity recorded for classical/neural separators (unknown, real)
SILENCE_DB = -60.0  # a clean segment quieter than this (RMS, dBFS) is skipped


def _default_blind() -> list[str]:
    # HTDemucs stays out of the pairs: the evaluation's cross-separator test set uses it.
    return ["hpss", "nmf", "repet", "openunmix"]


@dataclass
class PairsConfig:
    """How :func:`build_pairs` cuts the corpus into pairs."""

    seed: int = 0  # draws the severities of each track
    sample_rate: int = 16000  # model rate, Hz
    n_fft: int = 256  # model STFT size (recorded in the dataset card)
    hop_length: int = 64  # model STFT hop (recorded in the dataset card)
    representation: str = "complex"  # model representation (recorded in the dataset card)
    segment_seconds: float = 1.0  # segment length, s
    overlap: float = 0.5  # fraction of a segment shared with the next one
    splits: list[str] = field(default_factory=lambda: ["train", "valid"])  # corpus splits used
    stems: list[str] = field(default_factory=lambda: list(STEMS))
    artifacts: list[str] = field(default_factory=lambda: list(ARTIFACTS))  # degraded oracles
    severities: list[float] = field(default_factory=lambda: [0.3, 0.6, 0.9])  # to draw from
    severities_per_track: int = 1  # severities drawn per (track, artifact)
    blind_separators: list[str] = field(default_factory=_default_blind)  # give "mixed" pairs
    weights_dir: str = ""  # trained htdemucs.pt / openunmix.pt (relative to the repo root)
    max_segments: int = 0  # per (track, stem, separator): keep this many segment-channels; 0: all
    max_tracks_per_split: int = 0  # 0: every track
    max_seconds: float = 0.0  # crop tracks to this length before separating; 0: whole track
    # "before": pairs hold the separated stems after the mixture projection (what 05 feeds
    # the model with projection "before"); "none": the separator output itself
    projection: str = "none"
    # the parametric zoo (stemprover.separators.zoo): draws per track, each at its own
    # severity u ** zoo_severity_power (u uniform in [0, 1]: a power above 1 favours mild,
    # realistic damage); a share of the draws is the clean stem itself, whose target is its input
    zoo_draws: int = 0
    zoo_severity_power: float = 2.0
    identity_share: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.overlap < 1.0:
            raise StemproverError(f"PairsConfig.overlap must be in [0, 1), got {self.overlap}")
        if self.projection not in ("none", "before"):
            raise StemproverError(
                f"PairsConfig.projection must be 'none' or 'before', got {self.projection!r}")
        if self.zoo_draws < 0 or self.zoo_severity_power <= 0:
            raise StemproverError("PairsConfig.zoo_draws must be >= 0 and zoo_severity_power > 0")
        if not 0.0 <= self.identity_share <= 1.0:
            raise StemproverError("PairsConfig.identity_share must lie in [0, 1]")
        if self.segment_seconds <= 0:
            raise StemproverError("PairsConfig.segment_seconds must be positive")
        bad = sorted(set(self.artifacts) - set(ARTIFACTS))
        if bad:
            raise StemproverError(f"PairsConfig.artifacts: unknown {bad}; known {ARTIFACTS}")
        if any(not 0.0 <= s <= 1.0 for s in self.severities):
            raise StemproverError("PairsConfig.severities must lie in [0, 1]")
        if self.artifacts and not 1 <= self.severities_per_track <= len(self.severities):
            raise StemproverError("PairsConfig.severities_per_track must be in [1, len(severities)]")

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))


def adapter_for(artifact: str) -> str:
    """The adapter trained on an artifact label: phase_smear and mixed go to ``general``."""
    return artifact if artifact in ADAPTERS else "general"


def pair_family(entry: dict[str, Any]) -> str:
    """The separator family of a manifest entry (older manifests lack the field)."""
    return entry.get("family") or separator_family(str(entry["separator"]))


def segment_offsets(n_samples: int, segment_samples: int, overlap: float) -> list[int]:
    """Start samples of full segments with the given overlap (none if the clip is shorter)."""
    hop = max(1, int(round(segment_samples * (1.0 - overlap))))
    return list(range(0, n_samples - segment_samples + 1, hop))


def separator_jobs(cfg: PairsConfig, track: str) -> list[tuple[str, dict[str, Any], str, float]]:
    """``(label, get_separator kwargs, artifact, severity)`` for one track."""
    jobs = []
    for artifact in cfg.artifacts:
        rng = rng_for(cfg.seed, "pairs", track, artifact)
        picks = rng.choice(len(cfg.severities), size=cfg.severities_per_track, replace=False)
        for severity in sorted(cfg.severities[i] for i in picks):
            kwargs = {"artifact": artifact, "severity": severity, "seed": cfg.seed}
            jobs.append((f"degraded_{artifact}_{severity:g}", {"name": "degraded", **kwargs},
                         artifact, float(severity)))
    for name in cfg.blind_separators:
        # "openunmix@150": the checkpoint 01 saved at that training step (a weaker separator)
        kwargs: dict[str, Any] = {"name": name.split("@")[0]}
        if kwargs["name"] in ("htdemucs", "openunmix"):
            path = repo_root() / cfg.weights_dir / f"{name}.pt"
            if not path.is_file():
                raise StemproverError(f"{path}: no trained {name} (run 01_phase_analysis first)")
            kwargs["checkpoint"] = str(path)
        jobs.append((name, kwargs, "mixed", BLIND_SEVERITY))
    rng = rng_for(cfg.seed, "pairs", track, "zoo")
    for _ in range(cfg.zoo_draws):
        identity = rng.random() < cfg.identity_share
        severity = 0.0 if identity else round(float(rng.random() ** cfg.zoo_severity_power), 4)
        seed = int(rng.integers(1 << 31))
        jobs.append((f"zoo-{severity:g}-{seed}", {"name": "zoo", "severity": severity,
                                                  "seed": seed}, "mixed", severity))
    return jobs


def separator_family(label: str) -> str:
    """The family (one of :data:`~stemprover.constants.FAMILIES`) of a pair's separator label."""
    name = separator_name(label)
    if name in ("degraded", "zoo"):
        return name
    return "neural" if name in ("htdemucs", "openunmix") else "classical"


def sounding_units(
    clean: np.ndarray, cfg: PairsConfig, key: tuple[str, ...]
) -> list[tuple[int, int]]:
    """``(offset, channel)`` of the segments whose clean stem is not silent.

    With ``cfg.max_segments`` a seeded random subset (keyed by track, stem and separator)
    of that many is kept, in time order.
    """
    units = []
    for offset in segment_offsets(clean.shape[-1], cfg.segment_samples, cfg.overlap):
        for channel in range(clean.shape[0]):
            segment = clean[channel, offset : offset + cfg.segment_samples].astype(np.float64)
            if 20 * np.log10(np.sqrt(np.mean(segment**2)) + 1e-12) >= SILENCE_DB:
                units.append((offset, channel))
    if cfg.max_segments and len(units) > cfg.max_segments:
        picks = rng_for(cfg.seed, "segments", *key).choice(len(units), cfg.max_segments,
                                                            replace=False)
        units = [units[i] for i in sorted(picks)]
    return units


def fingerprint(cfg: PairsConfig, corpus_dir: Path) -> str:
    """Hash of the code version, config, corpus manifest and neural checkpoints' sizes/times."""
    parts = [f"v{PAIRS_VERSION}", json.dumps(asdict(cfg), sort_keys=True)]
    manifest = Path(corpus_dir) / "corpus.json"
    parts.append(manifest.read_text() if manifest.is_file() else str(corpus_dir))

    for name in cfg.blind_separators:
        path = repo_root() / cfg.weights_dir / f"{name}.pt"
        if path.is_file():
            stat = path.stat()
            parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def build_pairs(
    cfg: PairsConfig, corpus_dir: str | Path, out_dir: str | Path, progress: bool = True
) -> Path:
    """Build (or reuse) the paired dataset; returns the path of ``manifest.json``."""

    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    manifest_path = out_dir / "manifest.json"
    key = fingerprint(cfg, corpus_dir)
    if manifest_path.is_file():
        try:
            if json.loads(manifest_path.read_text()).get("fingerprint") == key:
                return manifest_path
        except json.JSONDecodeError:
            pass
    pair_dir = out_dir / "pairs"
    if pair_dir.exists():
        shutil.rmtree(pair_dir)
    tracks = []
    for split in cfg.splits:
        found = list_tracks(corpus_dir, split=split)
        tracks += [(split, t) for t in found[: cfg.max_tracks_per_split or None]]
    if not tracks:
        raise StemproverError(f"{corpus_dir}: no tracks in splits {cfg.splits}")
    entries: list[dict[str, Any]] = []
    separators: dict[str, Any] = {}
    work = [(split, t, job) for split, t in tracks for job in separator_jobs(cfg, t.name)]
    loaded: dict[Path, dict[str, np.ndarray]] = {}
    for split, track_dir, (label, kwargs, artifact, severity) in tqdm(
        work, desc="pairs", disable=not progress
    ):
        if track_dir not in loaded:
            loaded.clear()  # keep one track in memory
            audio = load_track(track_dir)
            if cfg.max_seconds > 0:
                audio = {k: v[:, : int(cfg.max_seconds * 44100)] for k, v in audio.items()}
            audio = {s: resample(audio[s], 44100, cfg.sample_rate) for s in STEMS}
            audio["mixture"] = np.sum([audio[s] for s in STEMS], axis=0)  # exact after resampling
            loaded[track_dir] = audio
        audio = loaded[track_dir]
        if label not in separators:
            args = {k: v for k, v in kwargs.items() if k != "name"}
            separators[label] = get_separator(kwargs["name"], **args)
        separated = separators[label].separate(audio["mixture"], cfg.sample_rate, references=audio)
        mixture = audio["mixture"]
        if cfg.projection == "before":
            separated = project(separated, cfg.sample_rate, mixture)
        for stem in cfg.stems:
            clean, est = audio[stem], separated[stem]
            for offset, channel in sounding_units(clean, cfg, (track_dir.name, stem, label)):
                window = slice(offset, offset + cfg.segment_samples)
                rel = Path("pairs") / split / track_dir.name / (
                    f"{stem}-{label}-{offset}-{channel}.npz"
                )
                _save_npz(out_dir / rel, separated=est[channel, window],
                          clean=clean[channel, window], mixture=mixture[channel, window])
                entries.append({
                    "file": rel.as_posix(), "track": track_dir.name, "stem": stem,
                    "separator": label, "family": separator_family(label),
                    "artifact": artifact, "severity": severity,
                    "offset": int(offset), "channel": channel, "split": split,
                })
    manifest = {
        "sample_rate": cfg.sample_rate,
        "segment_samples": cfg.segment_samples,
        "fingerprint": key,
        "config": asdict(cfg),
        "pairs": entries,
    }
    tmp = manifest_path.with_name(".manifest.json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, manifest_path)
    return manifest_path


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **{k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()})
    os.replace(tmp, path)


def read_manifest(manifest_path: str | Path) -> dict[str, Any]:
    path = Path(manifest_path)
    if not path.is_file():
        raise StemproverError(f"{path}: no pair manifest (run 02_paired_dataset first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StemproverError(f"{path}: not valid JSON ({exc.msg})") from exc


class PairDataset(torch.utils.data.Dataset):
    """Pairs of one split as tensors.

    Args:
        manifest_path: ``manifest.json`` written by :func:`build_pairs`.
        split: ``train``, ``valid`` or ``test``.
        stems: keep only these stems (None: all).
        artifacts: keep only these artifact labels, incl. ``"mixed"`` (None: all).
        families: keep only the pairs of these separator families (None: all), see
            :func:`separator_family`.
        exclude_families: drop the pairs of these families (leave-one-family-out).

    Items: ``{"separated", "clean", "mixture"}`` float32 tensors ``(segment_samples,)``,
    ``"adapter"`` (int index into :data:`~stemprover.constants.ADAPTERS`) and
    ``"severity"`` (float).
    """

    def __init__(
        self,
        manifest_path: str | Path,
        split: str,
        stems: list[str] | None = None,
        artifacts: list[str] | None = None,
        families: list[str] | None = None,
        exclude_families: list[str] | tuple[str, ...] = (),
    ):
        self.root = Path(manifest_path).parent
        manifest = read_manifest(manifest_path)
        self.sample_rate = int(manifest["sample_rate"])
        self.segment_samples = int(manifest["segment_samples"])
        self.entries = [
            e for e in manifest["pairs"]
            if e["split"] == split
            and (stems is None or e["stem"] in stems)
            and (artifacts is None or e["artifact"] in artifacts)
            and (families is None or pair_family(e) in families)
            and pair_family(e) not in exclude_families
        ]  # fmt: skip

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.entries[index]
        path = self.root / entry["file"]
        try:
            with np.load(path) as data:
                arrays = {k: torch.from_numpy(data[k].astype(np.float32))
                          for k in ("separated", "clean", "mixture")}
        except (OSError, KeyError, ValueError) as exc:
            raise StemproverError(f"{path}: unreadable pair ({type(exc).__name__})") from exc
        return {
            **arrays,
            "adapter": ADAPTERS.index(adapter_for(entry["artifact"])),
            "severity": float(entry["severity"]),
        }
