"""Test sets for evaluation: clean stems, their mixture and a separator's output.

    base = corpus_items(corpus_dir, "synthetic", n_tracks=4, excerpt_seconds=6.0)
    items = list(separate_items(base, ["hpss"], get_separator, sample_rate=22050))

A :class:`TestItem` is one excerpt of one track separated by one separator. Every
system of :mod:`stemprover.stages.evaluation` is scored on the same items, so the systems can
be compared track by track. Excerpts are placed where all the evaluated stems are
active, because SDR-type metrics are undefined on silent references.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stemprover.constants import CORPUS_SAMPLE_RATE, STEMS
from stemprover.corpus import list_tracks, load_track
from stemprover.dsp.audio import resample, to_channels
from stemprover.errors import StemproverError
from stemprover.project.inputs import config_path, input_path


@dataclass
class TestItem:
    """One separated excerpt.

    Attributes:
        testset: Test-set name, e.g. ``"synthetic"``.
        track: Source track name (corpus id or MUSDB name).
        separator: Separator spec that produced ``separated``.
        sample_rate: Hz of every array below.
        mixture: ``(2, n_samples)`` float32.
        clean: stem -> ``(2, n_samples)`` float32 reference stems.
        separated: stem -> ``(2, n_samples)`` float32 separator output.
    """

    __test__ = False  # not a pytest class despite the name

    testset: str
    track: str
    separator: str
    sample_rate: int
    mixture: np.ndarray
    clean: dict[str, np.ndarray]
    separated: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique name within a test set, used to pair systems track by track."""
        return f"{self.track}@{self.separator}"


def parse_separator(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"degraded:artifact=bleed,severity=0.5"`` into a name and keyword arguments.

    Values that parse as numbers become floats (ints stay ints); the rest stay strings.
    """
    name, _, rest = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise StemproverError(f"separator spec {spec!r}: expected key=value, got {part!r}")
        kwargs[key.strip()] = _number(value.strip())
    return name.strip(), kwargs


def _number(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def active_excerpt(
    stems: dict[str, np.ndarray], n_samples: int, hop_samples: int = 1024
) -> tuple[int, int]:
    """Start and end of the window of ``n_samples`` where the quietest stem is loudest.

    Args:
        stems: stem -> ``(C, N)`` audio, all the same length.
        n_samples: Window length; the whole track when it is shorter.
        hop_samples: Granularity of candidate starts.

    Returns:
        ``(start, end)`` sample indices.
    """
    length = next(iter(stems.values())).shape[-1]
    if length <= n_samples:
        return 0, length
    starts = np.arange(0, length - n_samples + 1, hop_samples)
    scores = np.full(starts.shape, np.inf)
    for audio in stems.values():
        power = np.concatenate([[0.0], np.cumsum(np.mean(audio.astype(np.float64) ** 2, axis=0))])
        energy = power[starts + n_samples] - power[starts]
        scores = np.minimum(scores, energy)
    start = int(starts[int(np.argmax(scores))])
    return start, start + n_samples


def make_item(
    testset: str,
    track: str,
    audio: dict[str, np.ndarray],
    audio_rate: int,
    *,
    excerpt_seconds: float,
    stems: Sequence[str] = STEMS,
) -> TestItem:
    """Crop a track to its most active excerpt, at its own rate (not yet separated).

    Args:
        audio: ``"mixture"`` and the stems, each ``(C, N)`` at ``audio_rate`` Hz.
        excerpt_seconds: Excerpt length; <= 0 keeps the whole track.
        stems: Stems whose activity places the excerpt.
    """

    missing = [s for s in ("mixture", *STEMS) if s not in audio]
    if missing:
        raise StemproverError(f"track {track}: missing {', '.join(missing)}")
    n = int(round(excerpt_seconds * audio_rate)) if excerpt_seconds > 0 else 1 << 62
    start, end = active_excerpt({s: audio[s] for s in stems}, n)
    clean = {
        s: np.ascontiguousarray(to_channels(audio[s][..., start:end], 2), dtype=np.float32)
        for s in STEMS
    }
    # The mixture is the sum of the stems, so that mixture == sum(stems) holds exactly.
    mixture = np.sum([clean[s] for s in STEMS], axis=0).astype(np.float32)
    return TestItem(testset, track, "", int(audio_rate), mixture, clean)


def resampled(item: TestItem, sample_rate: int) -> TestItem:
    """``item`` at ``sample_rate`` Hz (soxr); the mixture stays the sum of the stems."""

    if item.sample_rate == sample_rate:
        return item

    def convert(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(resample(x, item.sample_rate, sample_rate), dtype=np.float32)

    clean = {s: convert(a) for s, a in item.clean.items()}
    mixture = np.sum([clean[s] for s in STEMS], axis=0).astype(np.float32)
    separated = {s: convert(a) for s, a in item.separated.items()}
    return TestItem(item.testset, item.track, item.separator, sample_rate, mixture, clean, separated)


def separate_items(
    base: Iterable[TestItem],
    separators: Sequence[str],
    get_separator: Any,
    sample_rate: int | None = None,
) -> Iterator[TestItem]:
    """One separated copy of every item for every separator spec.

    The separators run at the items' own rate (44.1 kHz for the corpus and MUSDB, as when
    the training pairs were made); the results are then resampled to ``sample_rate``.

    Args:
        base: Unseparated items from :func:`make_item`.
        separators: Specs as in :func:`parse_separator`.
        get_separator: ``stemprover.separators.get_separator`` (or a stand-in).
        sample_rate: Evaluation rate in Hz; None keeps the items' rate.
    """
    built = {}
    for item in base:
        for spec in separators:
            if spec not in built:
                name, kwargs = parse_separator(spec)
                built[spec] = get_separator(name, **kwargs)
            separated = built[spec].separate(item.mixture, item.sample_rate, references=item.clean)
            out = {s: np.asarray(separated[s], dtype=np.float32) for s in STEMS}
            done = TestItem(
                item.testset, item.track, spec, item.sample_rate, item.mixture, item.clean, out
            )
            yield resampled(done, sample_rate or item.sample_rate)


def corpus_items(
    corpus_dir: Path, testset: str, n_tracks: int, excerpt_seconds: float, split: str = "test"
) -> list[TestItem]:
    """Unseparated items from the first ``n_tracks`` of a corpus split (sorted by name)."""

    tracks = sorted(list_tracks(Path(corpus_dir), split=split))
    if not tracks:
        raise StemproverError(f"{corpus_dir}: the corpus has no {split} tracks")
    return [
        make_item(
            testset,
            Path(t).name,
            load_track(t),
            CORPUS_SAMPLE_RATE,
            excerpt_seconds=excerpt_seconds,
        )
        for t in tracks[: max(1, n_tracks)]
    ]


def real_items(
    tracks: Iterable[tuple[str, dict[str, np.ndarray], int]],
    testset: str,
    excerpt_seconds: float,
    max_tracks: int | None = None,
) -> list[TestItem]:
    """Unseparated items from ``(name, audio, rate)`` tuples (stempeg or musdb tracks)."""
    items = []
    for index, (name, audio, rate) in enumerate(tracks):
        if max_tracks is not None and index >= max_tracks:
            break
        items.append(make_item(testset, name, audio, rate, excerpt_seconds=excerpt_seconds))
    return items


def resolve_separator(spec: str, weights_dir: str | Path) -> str:
    """Add the checkpoint trained by 01 (in ``weights_dir``) to a neural spec that names none."""
    name, kwargs = parse_separator(spec)
    if name not in ("htdemucs", "openunmix") or "checkpoint" in kwargs:
        return spec
    weights = input_path(weights_dir)
    found = [weights / f"{name}.pt"] if (weights / f"{name}.pt").is_file() else []
    if not found:
        raise StemproverError(f"no trained {name} in {weights}: run 01_phase_analysis first")
    # relative to the repository when inside it, so that the spec (a column of per_track.csv)
    # names no machine; absolute when the weights are another run's
    return f"{spec}{',' if ':' in spec else ':'}checkpoint={config_path(found[0])}"


def separators_in_pairs(manifest_file: str | Path) -> set[str] | None:
    """Names of the separators that made the training pairs (None without a manifest)."""

    try:
        manifest = json.loads(input_path(manifest_file).read_text())
    except (OSError, StemproverError, ValueError):
        return None
    labels = {str(p.get("separator", "")) for p in manifest.get("pairs", [])}
    return {separator_name(label) for label in labels}


def separator_name(label: str) -> str:
    """The registered separator behind a pair label: ``degraded_bleed_0.6`` -> ``degraded``,
    ``zoo-0.1-3`` -> ``zoo``, ``openunmix@50`` (a training snapshot) -> ``openunmix``."""
    for prefix in ("degraded", "zoo"):
        if label.startswith(prefix):
            return prefix
    return label.split("@")[0]
