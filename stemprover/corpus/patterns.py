"""Drum patterns on the GM percussion channel: full pop kits and light classical percussion.

GM drum keys used: 35/36 kick, 37 side stick, 38/40 snare, 42 closed hi-hat, 44 pedal hi-hat,
46 open hi-hat, 49 crash, 51 ride, 45/47/50 toms, 54 tambourine, 70 maracas, 82 shaker.
"""

from __future__ import annotations

import numpy as np

from stemprover.corpus.arrangement import Note

KICK, STICK, SNARE, HAT, PEDAL, OPEN_HAT, CRASH, RIDE = 36, 37, 38, 42, 44, 46, 49, 51
TOMS = (50, 47, 45)
POP_KITS = (0, 8, 16, 24, 25)  # standard, room, power, electronic, TR-808
LIGHT_KITS = (0, 8, 32, 40)  # standard, room, jazz, brush

POP_STYLES = {
    # 16 sixteenth-note steps per 4/4 bar: (kick steps, snare steps)
    "rock": ((0, 8, 10), (4, 12)),
    "four_on_floor": ((0, 4, 8, 12), (4, 12)),
    "halftime": ((0, 6, 10), (8,)),
    "syncopated": ((0, 3, 8, 11, 14), (4, 12)),
}


def _hit(time: float, key: int, velocity: float, rng: np.random.Generator) -> Note:
    # Human timing (a few ms) and velocity spread keep the pattern from sounding sequenced.
    jitter = float(rng.normal(0.0, 0.004))
    vel = int(np.clip(velocity + rng.normal(0.0, 6.0), 1, 127))
    return Note(max(0.0, time + jitter), 0.12, key, vel)


def pop_drums(bar_seconds: float, n_bars: int, rng: np.random.Generator) -> list[Note]:
    """A 4/4 pop groove with crashes on phrase starts and fills before them.

    Args:
        bar_seconds: Length of one 4/4 bar, s.
        n_bars: Bars to fill.
        rng: Seeded generator.
    """
    style = str(rng.choice(list(POP_STYLES)))
    kicks, snares = POP_STYLES[style]
    hat_step = int(rng.choice([2, 2, 1]))  # eighths usually, sometimes sixteenths
    hat_key = int(rng.choice([HAT, HAT, RIDE]))
    step = bar_seconds / 16.0
    notes: list[Note] = []
    for bar in range(n_bars):
        t0 = bar * bar_seconds
        fill = bar % 4 == 3 and rng.random() < 0.7
        for s in range(16):
            t = t0 + s * step
            if fill and s >= 12:
                notes.append(_hit(t, int(TOMS[min(2, (s - 12) * 3 // 4)]), 95, rng))
                continue
            if s in kicks:
                notes.append(_hit(t, KICK, 105, rng))
            if s in snares:
                notes.append(_hit(t, SNARE, 100, rng))
            if s % hat_step == 0:
                accent = 80 if s % 4 == 0 else 60
                key = OPEN_HAT if (s == 14 and rng.random() < 0.3) else hat_key
                notes.append(_hit(t, key, accent, rng))
        if bar % 4 == 0:
            notes.append(_hit(t0, CRASH, 100, rng))
    return notes


def light_percussion(
    beat_seconds: float, beats_per_bar: int, seconds: float, rng: np.random.Generator
) -> list[Note]:
    """Soft percussion under a classical piece: a low pulse on the downbeat, a shaker,
    ride or hi-hat on the beats (sometimes their halves) and a side stick on the off-beats.

    Args:
        beat_seconds: Length of one beat, s.
        beats_per_bar: Beats per bar (from the time signature).
        seconds: Length to fill, s.
        rng: Seeded generator.
    """
    pulse_key = int(rng.choice([KICK, 35]))
    time_key = int(rng.choice([82, 70, RIDE, HAT, 54]))
    subdivide = rng.random() < 0.4
    notes: list[Note] = []
    n_beats = int(np.ceil(seconds / beat_seconds))
    for beat in range(n_beats):
        t = beat * beat_seconds
        position = beat % max(1, beats_per_bar)
        if position == 0:
            notes.append(_hit(t, pulse_key, 70, rng))
        elif beats_per_bar >= 2 and position == beats_per_bar // 2 and beats_per_bar % 2 == 0:
            notes.append(_hit(t, STICK, 55, rng))
        notes.append(_hit(t, time_key, 55 if position == 0 else 42, rng))
        if subdivide:
            notes.append(_hit(t + beat_seconds / 2, time_key, 32, rng))
    return notes
