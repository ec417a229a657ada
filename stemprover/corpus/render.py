"""Offline FluidSynth rendering of one part through a GM soundfont, as float32 stereo.

No audio driver is started: MIDI events are sent to a synth and the samples between
events are pulled with ``fluid_synth_write_float``, so rendering runs faster than real time
and is sample-exact and deterministic. Each part gets a fresh synth (reverb and chorus
state start empty); soundfont samples are loaded on demand, which keeps the compressed
MuseScore_General.sf3 cheap to open.
"""

from __future__ import annotations

import os
from ctypes import c_int, c_void_p
from functools import lru_cache
from pathlib import Path

import numpy as np

from stemprover.corpus.arrangement import Part
from stemprover.errors import StemproverError

SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3", "/usr/share/soundfonts")
DEBIAN_PACKAGES = {
    "FluidR3_GM": "fluid-soundfont-gm",
    "MuseScore_General": "musescore-general-soundfont",
    "TimGM6mb": "timgm6mb-soundfont",
}
DRUM_CHANNEL = 9  # GM channel 10
DRUM_BANK = 128


def resolve_soundfont(name: str) -> Path:
    """Find a soundfont by name (``"FluidR3_GM"``) or path.

    Searches ``$STEMPROVER_SOUNDFONTS`` (a ``:``-separated folder list), then the Debian
    soundfont folders, for ``<name>.sf2`` or ``<name>.sf3``.

    Raises:
        StemproverError: naming the Debian package to install when it is not found.
    """
    candidate = Path(name).expanduser()
    if candidate.suffix in (".sf2", ".sf3") and candidate.is_file():
        return candidate.absolute()
    extra = [d for d in os.environ.get("STEMPROVER_SOUNDFONTS", "").split(":") if d]
    for folder in (*extra, *SOUNDFONT_DIRS):
        for suffix in (".sf2", ".sf3"):
            path = Path(folder) / f"{name}{suffix}"
            if path.is_file():
                return path.absolute()  # keep a symlink's name (the soundfont name)
    package = DEBIAN_PACKAGES.get(name, "a package providing it")
    raise StemproverError(
        f"soundfont {name!r} not found in {', '.join(SOUNDFONT_DIRS)} "
        f"(install the Debian package {package} or set STEMPROVER_SOUNDFONTS)"
    )


@lru_cache(maxsize=1)
def _fluidsynth():
    """The pyfluidsynth module plus a binding of ``fluid_synth_write_float``."""
    try:
        import fluidsynth
    except ImportError as err:  # pyfluidsynth raises ImportError when libfluidsynth is absent
        raise StemproverError(
            f"FluidSynth is not available ({err}); install the Debian package fluidsynth"
        ) from err
    write_float = fluidsynth.cfunc(
        "fluid_synth_write_float", c_int,
        ("synth", c_void_p, 1), ("len", c_int, 1),
        ("lout", c_void_p, 1), ("loff", c_int, 1), ("lincr", c_int, 1),
        ("rout", c_void_p, 1), ("roff", c_int, 1), ("rincr", c_int, 1),
    )  # fmt: skip
    if write_float is None:
        raise StemproverError("this libfluidsynth has no fluid_synth_write_float")
    return fluidsynth, write_float


def _events(part: Part, sample_rate: int, n_samples: int) -> list[tuple[int, int, int, int]]:
    """``(sample, kind, key, velocity)`` with note-offs (kind 0) before note-ons (kind 1)."""
    events = []
    for note in part.notes:
        on = int(round(note.start * sample_rate))
        off = int(round((note.start + note.duration) * sample_rate))
        if on >= n_samples or off <= on:
            continue
        events.append((on, 1, note.pitch, note.velocity))
        events.append((min(off, n_samples), 0, note.pitch, 0))
    return sorted(events)


def render_part(
    part: Part,
    soundfont: Path,
    n_samples: int,
    sample_rate: int = 44100,
    *,
    program: int | None = None,
    gain: float = 0.5,
) -> np.ndarray:
    """Render one part through ``soundfont``.

    Args:
        part: Notes, GM program (or drum kit), pan and reverb send.
        soundfont: Path of an .sf2/.sf3 file.
        n_samples: Output length; notes are cut there.
        sample_rate: Hz.
        program: Override of ``part.program`` (the GM fallback patch of a sung part).
        gain: FluidSynth master gain (the mixer rescales every stem afterwards).

    Returns:
        float32 ``(2, n_samples)``.
    """
    fluidsynth, write_float = _fluidsynth()
    synth = fluidsynth.Synth(
        gain=gain, samplerate=float(sample_rate), **{"synth.dynamic-sample-loading": 1}
    )
    try:
        sfid = synth.sfload(str(soundfont))
        if sfid < 0:
            raise StemproverError(f"{soundfont}: FluidSynth could not load this soundfont")
        channel = DRUM_CHANNEL if part.is_drum else 0
        bank = DRUM_BANK if part.is_drum else 0
        preset = part.program if program is None else program
        if synth.program_select(channel, sfid, bank, preset) != 0:
            synth.program_select(channel, sfid, bank, 0)  # a kit/patch this font lacks
        synth.cc(channel, 7, 100)
        synth.cc(channel, 10, int(np.clip(round(64 + 63 * part.pan), 0, 127)))
        synth.cc(channel, 91, int(np.clip(part.reverb, 0, 127)))
        synth.cc(channel, 93, 0)
        out = np.zeros((n_samples, 2), dtype=np.float32)
        position = 0
        for when, kind, key, velocity in [*_events(part, sample_rate, n_samples),
                                          (n_samples, -1, 0, 0)]:  # fmt: skip
            if when > position:
                block = out[position:when]
                # write_float fills interleaved L/R straight into the C-contiguous block.
                write_float(synth.synth, when - position, block.ctypes.data, 0, 2,
                            block.ctypes.data, 1, 2)  # fmt: skip
                position = when
            if kind == 1:
                synth.noteon(channel, key, velocity)
            elif kind == 0:
                synth.noteoff(channel, key)
    finally:
        synth.delete()
    if not np.isfinite(out).all():
        raise StemproverError(f"part {part.name!r}: FluidSynth produced non-finite samples")
    return np.ascontiguousarray(out.T)
