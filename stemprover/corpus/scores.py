"""Songs from music21's shipped corpus: Bach chorales, string quartets, Palestrina masses.

The highest part is the lead and goes to ``vocals`` (sung by Festival), the lowest part goes
to ``bass``, the inner parts to ``other``. A chorale's soprano is sung, its alto and tenor
are played by orchestral instruments, its bass by a bass instrument. Classical scores have
no drum part, so light percussion (a soft downbeat pulse, a shaker or ride keeping time)
is added with probability ``classical_drums``; this keeps every MUSDB stem non-silent in
every track, which per-stem metrics need.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from stemprover.corpus.arrangement import (
    Arrangement,
    Note,
    Part,
    crop,
    fit_register,
    pick_syllables,
    simplify_melody,
    top_line,
)
from stemprover.corpus.patterns import LIGHT_KITS, light_percussion
from stemprover.errors import StemproverError

BEATS_PER_MINUTE = {"bach": (60.0, 96.0), "quartet": (60.0, 120.0), "palestrina": (48.0, 80.0)}
INNER_PROGRAMS = {
    "bach": (19, 48, 49, 68, 70, 71, 73, 60, 0, 6, 40, 41),  # organ, strings, winds, keys
    "quartet": (40, 41, 48, 49),  # violin, viola, string ensembles
    "palestrina": (19, 20, 48, 49, 57, 60, 61, 68, 71, 73),  # organs, strings, brass, winds
}
BASS_PROGRAMS = {
    "bach": (32, 33, 35, 43, 42, 58),  # basses, contrabass, cello, tuba
    "quartet": (42, 43, 32),  # cello, contrabass, acoustic bass
    "palestrina": (32, 33, 43, 57, 58),  # basses, trombone, tuba
}
COMPOSERS = {"bach": ("bach",), "quartet": ("haydn", "mozart", "beethoven"),
             "palestrina": ("palestrina",)}  # fmt: skip
NOT_QUARTETS = ("mozart/k545",)  # a piano sonata shipped next to the quartets
MELODY_MIN_SECONDS = 0.15  # faster figuration is merged into held notes before singing
VOICE_LOW, VOICE_HIGH = 48, 67  # Festival's male voice: C3..G4


@cache
def piece_pool(source: str) -> dict[str, str]:
    """Pieces of a music21 collection: ``{piece_id: corpus file path}``, sorted by id.

    A piece id is the source and the file's corpus path without extension, e.g.
    ``"bach/bwv269"``, ``"quartet/haydn/opus74no1/movement1"``, ``"palestrina/Agnus_01"``.
    MusicXML is preferred when a piece also ships as Humdrum.
    """
    from music21 import corpus

    if source not in COMPOSERS:
        raise StemproverError(f"no score collection for source {source!r}")
    rank = {".mxl": 0, ".xml": 1, ".musicxml": 1, ".krn": 2}
    found: dict[str, tuple[int, str]] = {}
    for composer in COMPOSERS[source]:
        for path in corpus.getComposer(composer):
            path = Path(path)
            if path.suffix not in rank or "choraleAnalyses" in path.parts:
                continue
            rel = path.as_posix().split("/corpus/")[-1].rsplit(".", 1)[0]
            if rel.startswith(NOT_QUARTETS):
                continue
            head, _, tail = rel.partition("/")
            piece = f"{source}/{tail if head == source else rel}"
            if piece not in found or rank[path.suffix] < found[piece][0]:
                found[piece] = (rank[path.suffix], str(path))
    return {piece: found[piece][1] for piece in sorted(found)}


def _part_events(part: Any) -> list[tuple[float, float, int]]:
    """``(offset, duration, midi)`` in quarter notes for every sounding pitch of a part.

    Tied notes are merged here in one pass; music21's ``stripTies`` does the same but takes
    minutes on a long quartet movement.
    """
    events: list[list[Any]] = []
    tied: dict[int, int] = {}  # MIDI pitch -> index of the event its tie continues
    for element in part.flatten().notes:
        duration = float(element.duration.quarterLength)
        if duration <= 0:  # grace notes
            continue
        offset = float(element.offset)
        members = element.notes if element.isChord else (element,)
        for member in members:
            midi = int(member.pitch.midi)
            kind = member.tie.type if member.tie is not None else None
            if kind in ("stop", "continue") and midi in tied:
                event = events[tied[midi]]
                event[1] = max(event[1], offset + duration - event[0])
                if kind == "stop":
                    del tied[midi]
                continue
            events.append([offset, duration, midi])
            if kind == "start":
                tied[midi] = len(events) - 1
    return [(o, d, m) for o, d, m in events]


def _window(
    events: list[tuple[float, float, int]],
    start: float,
    span: float,
    total: float,
    seconds_per_quarter: float,
    rng: np.random.Generator,
) -> list[Note]:
    """Notes of ``[start, start + span)`` quarters; a piece shorter than that is looped."""
    notes = []
    repeats = int(np.ceil((start + span) / max(total, 1e-9)))
    for k in range(repeats):
        for offset, duration, midi in events:
            at = offset + k * total - start
            if 0 <= at < span:
                vel = int(np.clip(rng.normal(80, 10), 30, 120))
                notes.append(
                    Note(at * seconds_per_quarter, duration * seconds_per_quarter, midi, vel)
                )
    return notes


def score_arrangement(
    piece: str, seconds: float, rng: np.random.Generator, classical_drums: float = 1.0
) -> Arrangement:
    """An excerpt of a music21 corpus piece, assigned to the MUSDB stems.

    Args:
        piece: Piece id from :func:`piece_pool` (``"bach/bwv269"`` etc.).
        seconds: Excerpt length, s.
        rng: Seeded generator.
        classical_drums: Probability of adding light percussion.

    Raises:
        StemproverError: for an unknown piece or a score with fewer than three parts.
    """
    from music21 import converter, meter

    source = piece.split("/", 1)[0]
    pool = piece_pool(source)
    if piece not in pool:
        raise StemproverError(f"unknown corpus piece {piece!r}")
    score = converter.parse(pool[piece])
    events = [e for e in (_part_events(p) for p in score.parts) if e]
    if len(events) < 3:
        raise StemproverError(f"{piece}: needs at least 3 sounding parts, has {len(events)}")
    events.sort(key=lambda ev: -np.mean([m for _, _, m in ev]))  # top part first
    total = max(o + d for ev in events for o, d, _ in ev)

    signatures = list(score.recurse().getElementsByClass(meter.TimeSignature))
    signature = signatures[0] if signatures else meter.TimeSignature("4/4")
    beat_quarters = float(signature.beatDuration.quarterLength)
    bpm = float(rng.uniform(*BEATS_PER_MINUTE[source]))
    seconds_per_quarter = 60.0 / (bpm * beat_quarters)
    span = seconds / seconds_per_quarter

    measures = [float(m.offset) for m in score.parts[0].getElementsByClass("Measure")]
    starts = [s for s in measures if s + span <= total] or [0.0]
    candidates = rng.choice(starts, size=min(6, len(starts)), replace=False)

    def coverage(start: float) -> tuple[int, int]:
        # Prefer excerpts where every part plays and the lead has many notes.
        counts = [sum(start <= o < start + span for o, _, _ in ev) for ev in events]
        return sum(c > 0 for c in counts), counts[0]

    start = float(max(candidates, key=coverage))
    lines = [crop(_window(ev, start, span, total, seconds_per_quarter, rng), seconds)
             for ev in events]  # fmt: skip

    melody = fit_register(
        simplify_melody(top_line(lines[0]), MELODY_MIN_SECONDS), VOICE_LOW, VOICE_HIGH
    )
    parts = [
        Part("lead", "vocals", int(rng.choice([52, 53])), melody, sung=True,
             pan=float(rng.uniform(-0.1, 0.1)), reverb=int(rng.integers(40, 80)),
             lyrics=pick_syllables(len(melody), rng)),
        Part("bass", "bass", int(rng.choice(BASS_PROGRAMS[source])), lines[-1],
             pan=float(rng.uniform(-0.2, 0.2)), reverb=int(rng.integers(20, 60))),
    ]  # fmt: skip
    inner = INNER_PROGRAMS[source]
    for i, line in enumerate(lines[1:-1]):
        parts.append(
            Part(f"inner{i + 1}", "other", int(rng.choice(inner)), line,
                 gain_db=float(rng.uniform(-3.0, 3.0)), pan=float(rng.uniform(-0.7, 0.7)),
                 reverb=int(rng.integers(30, 80)))
        )  # fmt: skip
    drums: list[Note] = []
    if rng.random() < classical_drums:
        beat_seconds = beat_quarters * seconds_per_quarter
        drums = light_percussion(beat_seconds, int(signature.beatCount), seconds, rng)
    parts.append(Part("percussion", "drums", int(rng.choice(LIGHT_KITS)), crop(drums, seconds),
                      is_drum=True, reverb=int(rng.integers(20, 60))))  # fmt: skip
    tempo = bpm * beat_quarters
    return Arrangement(piece=piece, source=source, tempo=tempo, seconds=seconds, parts=parts)
