"""Seeded procedural pop songs: drums, a bass line, chords and a sung lead melody.

    arrangement = pop_arrangement("pop/0003", seconds=12.0, rng=rng_for(0, "arrangement", ...))

Harmony is a common four-chord progression in a random key; the bass follows the chord
roots; one or two "other" instruments comp the chords; the lead melody puts chord tones on
strong beats and moves stepwise in between, in phrases separated by breaths.
"""

from __future__ import annotations

import numpy as np

from stemprover.corpus.arrangement import Arrangement, Note, Part, fit_register, pick_syllables
from stemprover.corpus.patterns import POP_KITS, pop_drums

Scale = tuple[int, ...]
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = {
    # scale degrees (0-based) of one chord per bar
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 5)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4)),
}
BASS_PROGRAMS = (33, 34, 35, 36, 38, 39)  # finger, pick, fretless, slap, synth basses
COMP_PROGRAMS = (0, 1, 4, 5, 16, 17, 24, 25, 26, 27, 29, 30)  # pianos, organs, guitars
PAD_PROGRAMS = (48, 49, 50, 88, 89, 91, 95)  # string ensembles and synth pads
VOICE_LOW, VOICE_HIGH = 48, 67  # Festival's voice is male: C3..G4


def _scale_pitch(degree: int, key: int, scale: Scale, octave_base: int) -> int:
    octave, index = divmod(degree, len(scale))
    return octave_base + key + 12 * octave + scale[index]


def _chord(degree: int, scale: Scale, seventh: bool) -> list[int]:
    """Scale degrees of a triad (or seventh chord) on ``degree``."""
    return [degree, degree + 2, degree + 4] + ([degree + 6] if seventh else [])


def _bass_line(
    chords: list[int], key: int, scale: Scale, bar_seconds: float, rng: np.random.Generator
) -> list[Note]:
    style = int(rng.integers(3))
    notes = []
    for bar, degree in enumerate(chords):
        root = _scale_pitch(degree % 7, key, scale, 36)
        fifth = _scale_pitch(degree % 7 + 4, key, scale, 36)
        t0 = bar * bar_seconds
        if style == 0:  # driving eighths on the root
            hits = [(i / 8, root, 1 / 8) for i in range(8)]
        elif style == 1:  # root-fifth-octave-fifth quarters
            hits = [(0, root, 0.25), (0.25, fifth, 0.25), (0.5, root + 12, 0.25),
                    (0.75, fifth, 0.25)]  # fmt: skip
        else:  # syncopated: dotted quarter, eighth, half
            hits = [(0, root, 0.375), (0.375, root, 0.125), (0.5, fifth, 0.5)]
        for offset, pitch, length in hits:
            vel = int(np.clip(rng.normal(95, 8), 40, 127))
            notes.append(Note(t0 + offset * bar_seconds, 0.9 * length * bar_seconds, pitch, vel))
    return notes


def _comp(
    chords: list[int],
    key: int,
    scale: Scale,
    bar_seconds: float,
    rng: np.random.Generator,
    sustained: bool,
) -> list[Note]:
    seventh = rng.random() < 0.4
    rhythm = [(0.0, 1.0)] if sustained else [
        [(0.0, 0.5), (0.5, 0.5)],
        [(i / 8, 1 / 8) for i in range(8)],
        [(0.0, 0.375), (0.375, 0.375), (0.75, 0.25)],
    ][int(rng.integers(3))]
    arpeggio = not sustained and rng.random() < 0.3
    notes = []
    for bar, degree in enumerate(chords):
        pitches = [_scale_pitch(d, key, scale, 55) for d in _chord(degree % 7, scale, seventh)]
        t0 = bar * bar_seconds
        for i, (offset, length) in enumerate(rhythm):
            chosen = [pitches[i % len(pitches)]] if arpeggio else pitches
            for pitch in chosen:
                vel = int(np.clip(rng.normal(70 if sustained else 80, 8), 30, 127))
                onset = t0 + offset * bar_seconds
                notes.append(Note(onset, 0.95 * length * bar_seconds, pitch, vel))
    return notes


def _melody(
    chords: list[int], key: int, scale: Scale, bar_seconds: float, rng: np.random.Generator
) -> list[Note]:
    """Two-bar phrases of eighth/quarter rhythms ending in a long note and a breath."""
    notes = []
    degree = int(rng.integers(4, 8))
    for phrase_start in range(0, len(chords), 2):
        t = phrase_start * bar_seconds
        phrase_end = t + 2 * bar_seconds - bar_seconds / 4  # a quarter-note breath
        if rng.random() < 0.15:  # an occasional instrumental bar pair
            continue
        while t < phrase_end - 1e-9:
            remaining = (phrase_end - t) / bar_seconds * 8
            choices = [1, 2, 2, 3, 4] if remaining > 4 else [1, 2]
            eighths = min(int(rng.choice(choices)), int(round(remaining)))
            if remaining - eighths < 1:
                eighths = int(round(remaining))
            bar = min(int(t / bar_seconds), len(chords) - 1)
            on_beat = abs((t / bar_seconds * 4) - round(t / bar_seconds * 4)) < 1e-6
            if on_beat:  # snap to the nearest chord tone on beats
                tones = [d + 7 * o for d in _chord(chords[bar] % 7, scale, False) for o in (0, 1)]
                degree = min(tones, key=lambda d: abs(d - degree))
            else:
                degree += int(rng.choice([-2, -1, -1, 1, 1, 2]))
            degree = int(np.clip(degree, 2, 11))  # about an octave and a half
            pitch = _scale_pitch(degree, key, scale, 48)
            length = eighths * bar_seconds / 8
            notes.append(Note(t, 0.97 * length, pitch, int(np.clip(rng.normal(90, 6), 50, 120))))
            t += length
    return notes


def pop_arrangement(piece: str, seconds: float, rng: np.random.Generator) -> Arrangement:
    """A procedurally generated pop song of ``seconds`` (plus one spare bar).

    Args:
        piece: Piece id, e.g. ``"pop/0003"`` (names the song; the rng decides everything).
        seconds: Song length, s.
        rng: Seeded generator (from ``rng_for(seed, "arrangement", piece)``).
    """
    tempo = float(rng.uniform(84.0, 132.0))
    bar_seconds = 4 * 60.0 / tempo
    mode = "major" if rng.random() < 0.6 else "minor"
    scale = MAJOR if mode == "major" else MINOR
    key = int(rng.integers(0, 12))
    progression = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
    n_bars = int(np.ceil(seconds / bar_seconds)) + 1
    chords = [progression[i % 4] for i in range(n_bars)]
    melody = fit_register(_melody(chords, key, scale, bar_seconds, rng), VOICE_LOW, VOICE_HIGH)
    parts = [
        Part("lead", "vocals", int(rng.choice([52, 53])), melody, sung=True,
             pan=float(rng.uniform(-0.1, 0.1)), reverb=int(rng.integers(30, 70)),
             lyrics=pick_syllables(len(melody), rng)),
        Part("kit", "drums", int(rng.choice(POP_KITS)), pop_drums(bar_seconds, n_bars, rng),
             is_drum=True, reverb=int(rng.integers(10, 50))),
        Part("bass", "bass", int(rng.choice(BASS_PROGRAMS)),
             _bass_line(chords, key, scale, bar_seconds, rng),
             pan=float(rng.uniform(-0.1, 0.1)), reverb=int(rng.integers(0, 25))),
        Part("comp", "other", int(rng.choice(COMP_PROGRAMS)),
             _comp(chords, key, scale, bar_seconds, rng, sustained=False),
             pan=float(rng.uniform(-0.6, 0.6)), reverb=int(rng.integers(20, 70))),
    ]  # fmt: skip
    if rng.random() < 0.6:
        parts.append(
            Part("pad", "other", int(rng.choice(PAD_PROGRAMS)),
                 _comp(chords, key, scale, bar_seconds, rng, sustained=True),
                 gain_db=float(rng.uniform(-9.0, -3.0)), pan=float(rng.uniform(-0.5, 0.5)),
                 reverb=int(rng.integers(40, 90)))
        )  # fmt: skip
    return Arrangement(piece=piece, source="pop", tempo=tempo, seconds=seconds, parts=parts)
