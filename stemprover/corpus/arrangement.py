"""A song as timed note events, grouped into parts that each feed one MUSDB stem.

Scores (:mod:`stemprover.corpus.scores`) and the pop generator
(:mod:`stemprover.corpus.pop`) both produce an :class:`Arrangement`; the renderer turns it
into audio. Times are in seconds, pitches are MIDI note numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stemprover.constants import STEMS
from stemprover.errors import StemproverError

SYLLABLES = (
    "la", "da", "na", "ma", "oh", "ah", "doo", "loo", "hey", "love", "you", "me", "night",
    "day", "light", "home", "heart", "go", "now", "run", "fly", "sky", "sun", "rain", "free",
    "dream", "soul", "high", "low", "shine", "blue", "true", "way", "say", "see", "so",
)  # fmt: skip
"""One-syllable words and vocables that Festival's lexicon sings as a single syllable."""


@dataclass(frozen=True)
class Note:
    """One note: onset and duration in seconds, MIDI pitch, MIDI velocity (1-127)."""

    start: float
    duration: float
    pitch: int
    velocity: int = 90


@dataclass
class Part:
    """One instrument (or the singer) of an arrangement.

    Attributes:
        name: Human-readable part name ("soprano", "kick+snare", ...).
        stem: The MUSDB stem it belongs to.
        program: GM program 0-127; for drums the GM drum-kit preset (bank 128).
        notes: The notes, in any order.
        is_drum: Played on GM channel 10 (percussion).
        sung: The lead line; Festival sings it (``program`` is the GM fallback patch).
        gain_db: Level relative to the other parts of its stem, dB.
        pan: Stereo position, -1 (left) to 1 (right).
        reverb: FluidSynth reverb send (MIDI CC 91, 0-127).
        lyrics: One syllable per note for a sung part.
    """

    name: str
    stem: str
    program: int
    notes: list[Note]
    is_drum: bool = False
    sung: bool = False
    gain_db: float = 0.0
    pan: float = 0.0
    reverb: int = 40
    lyrics: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.stem not in STEMS:
            raise StemproverError(f"part {self.name!r}: unknown stem {self.stem!r}")


@dataclass
class Arrangement:
    """A whole song: its parts, tempo (quarter notes per minute) and length in seconds."""

    piece: str
    source: str
    tempo: float
    seconds: float
    parts: list[Part]

    def stem_parts(self, stem: str) -> list[Part]:
        """The parts that feed ``stem``."""
        return [p for p in self.parts if p.stem == stem]


def top_line(notes: list[Note]) -> list[Note]:
    """A monophonic line: at each onset keep the highest note, cut notes at the next onset.

    Args:
        notes: Possibly polyphonic notes (chords, double stops).

    Returns:
        Notes sorted by onset, non-overlapping.
    """
    by_onset: dict[float, Note] = {}
    for note in notes:
        best = by_onset.get(note.start)
        if best is None or note.pitch > best.pitch:
            by_onset[note.start] = note
    line = [by_onset[t] for t in sorted(by_onset)]
    out = []
    for i, note in enumerate(line):
        end = note.start + note.duration
        if i + 1 < len(line):
            end = min(end, line[i + 1].start)
        out.append(Note(note.start, end - note.start, note.pitch, note.velocity))
    return out


def simplify_melody(notes: list[Note], min_seconds: float) -> list[Note]:
    """Merge notes shorter than ``min_seconds`` into the note before them, for a singable line.

    A short note is absorbed only while the note before it is under ``4 * min_seconds``, so
    a fast run becomes its skeleton (about one sung note per ``4 * min_seconds``) rather
    than one endless note. Onsets of the kept notes and the line's span are unchanged.
    """
    out: list[Note] = []
    for note in sorted(notes, key=lambda n: n.start):
        last = out[-1] if out else None
        joined = last is not None and abs(last.start + last.duration - note.start) < 1e-6
        if note.duration < min_seconds and joined and last.duration < 4 * min_seconds:
            out[-1] = Note(last.start, last.duration + note.duration, last.pitch, last.velocity)
        else:
            out.append(note)
    return out


def fit_register(notes: list[Note], low: int, high: int) -> list[Note]:
    """Transpose by whole octaves so the median pitch lies in ``[low, high]``, then fold
    any remaining outliers by octaves into the range.

    Args:
        notes: The line.
        low: Lowest MIDI pitch allowed.
        high: Highest MIDI pitch allowed (``high - low >= 12``).
    """
    if not notes:
        return []
    if high - low < 12:
        raise StemproverError(f"register [{low}, {high}] is narrower than an octave")
    median = float(np.median([n.pitch for n in notes]))
    centre = (low + high) / 2.0
    shift = 12 * int(round((centre - median) / 12.0))
    out = []
    for note in notes:
        pitch = note.pitch + shift
        while pitch < low:
            pitch += 12
        while pitch > high:
            pitch -= 12
        out.append(Note(note.start, note.duration, pitch, note.velocity))
    return out


def crop(notes: list[Note], seconds: float, min_seconds: float = 0.03) -> list[Note]:
    """Drop notes that start after ``seconds``; shorten those that run past it."""
    out = []
    for note in notes:
        end = min(note.start + note.duration, seconds)
        if note.start < seconds and end - note.start >= min_seconds:
            out.append(Note(note.start, end - note.start, note.pitch, note.velocity))
    return out


def pick_syllables(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` syllables, with short repeated motifs as in sung lyrics."""
    motif = [str(s) for s in rng.choice(SYLLABLES, size=4)]
    return [motif[i % 4] if rng.random() < 0.6 else str(rng.choice(SYLLABLES)) for i in range(n)]
