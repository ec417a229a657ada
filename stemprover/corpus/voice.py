"""The singer: Festival's singing mode turns the lead line into a voice.

    audio = sing(notes, syllables, n_samples, 44100, cache_dir=Path("build/voice"))

``text2wave -mode singing`` reads an XML song (one ``PITCH``/``DURATION`` element per
syllable, ``REST`` for gaps; times are given in seconds so they match the accompaniment to
the sample) and writes 16 kHz speech from the kal diphone voice. The result is resampled
to 44.1 kHz. Festival's voice stops at 8 kHz, so a harmonic exciter adds the "air" that a
recorded voice has above 6 kHz (otherwise a high-band loss in separated vocals could not
be seen at all). A short synthetic room reverb places the dry voice in the mix.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from stemprover.corpus.arrangement import Note
from stemprover.dsp.audio import resample, save_audio
from stemprover.errors import StemproverError

FESTIVAL_TIMEOUT_SECONDS = 300
MIN_REST_SECONDS = 0.01  # shorter gaps are sung through


def festival_available() -> bool:
    """Whether Festival's ``text2wave`` is on the PATH."""
    return shutil.which("text2wave") is not None


def singing_xml(notes: list[Note], syllables: list[str]) -> str:
    """The Festival singing-mode XML for a monophonic line.

    Args:
        notes: Non-overlapping notes sorted by onset (seconds, MIDI pitch).
        syllables: One single-syllable word per note.
    """
    if len(syllables) != len(notes):
        raise StemproverError(f"{len(notes)} notes but {len(syllables)} syllables")
    lines = [
        '<?xml version="1.0"?>',
        '<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" '
        '"Singing.v0_1.dtd" []>',
        '<SINGING BPM="60">',
    ]
    time = 0.0
    for note, syllable in zip(notes, syllables):
        if note.start - time >= MIN_REST_SECONDS:
            lines.append(f'<REST SECONDS="{note.start - time:.4f}"></REST>')
            time = note.start
        duration = note.start + note.duration - time
        hz = 440.0 * 2.0 ** ((note.pitch - 69) / 12.0)
        lines.append(
            f'<PITCH FREQ="{hz:.3f}"><DURATION SECONDS="{duration:.4f}">'
            f"{syllable}</DURATION></PITCH>"
        )
        time += duration
    lines.append("</SINGING>")
    return "\n".join(lines) + "\n"


def _run_festival(xml: str) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory(prefix="stemprover-sing-") as tmp:
        song, wav = Path(tmp) / "song.xml", Path(tmp) / "voice.wav"
        song.write_text(xml)
        try:
            result = subprocess.run(
                ["text2wave", "-mode", "singing", str(song), "-o", str(wav)],
                capture_output=True, text=True, timeout=FESTIVAL_TIMEOUT_SECONDS,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as err:
            raise StemproverError(f"festival singing failed ({type(err).__name__})") from err
        if result.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
            tail = (result.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise StemproverError(f"festival singing failed: {tail[0]}")
        audio, rate = sf.read(str(wav), dtype="float32")
    return audio, int(rate)


def sing(
    notes: list[Note],
    syllables: list[str],
    n_samples: int,
    sample_rate: int = 44100,
    cache_dir: Path | None = None,
) -> np.ndarray:
    """Sing a line with Festival.

    Args:
        notes: Non-overlapping notes sorted by onset.
        syllables: One syllable per note.
        n_samples: Output length at ``sample_rate``.
        sample_rate: Output rate, Hz.
        cache_dir: Keeps each distinct song (keyed by its XML) as a 16 kHz WAV, so a
            re-render does not call Festival again.

    Returns:
        float32 mono ``(n_samples,)``, peak-normalised to 0.5.

    Raises:
        StemproverError: if Festival is missing, fails, or returns silence.
    """
    if not festival_available():
        raise StemproverError("festival's text2wave is not on the PATH (Debian: festival)")
    xml = singing_xml(notes, syllables)
    key = hashlib.sha256(xml.encode()).hexdigest()[:20]
    cached = cache_dir / f"{key}.wav" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        voice, rate = sf.read(str(cached), dtype="float32")
    else:
        voice, rate = _run_festival(xml)
        if cached is not None:
            save_audio(cached, voice, rate)
    if voice.ndim > 1:
        voice = voice.mean(axis=1)
    peak = float(np.max(np.abs(voice))) if voice.size else 0.0
    if peak < 1e-4:
        raise StemproverError("festival singing returned silence")
    voice = resample((voice * (0.5 / peak)).astype(np.float32), rate, sample_rate).reshape(-1)
    out = np.zeros(n_samples, dtype=np.float32)
    out[: min(n_samples, voice.size)] = voice[:n_samples]
    return out


def add_air(voice: np.ndarray, sample_rate: int, level_db: float) -> np.ndarray:
    """Harmonic exciter: saturate the 2-8 kHz band and add its harmonics above 6 kHz.

    Args:
        voice: Mono ``(n,)``.
        sample_rate: Hz (above 16 kHz, so there is room above Festival's band).
        level_db: RMS of the added band relative to the voice's RMS, dB.

    Returns:
        float32 ``(n,)``.
    """
    band = signal.butter(4, 2000.0, "highpass", fs=sample_rate, output="sos")
    top = signal.butter(6, 6000.0, "highpass", fs=sample_rate, output="sos")
    presence = signal.sosfiltfilt(band, voice)
    scale = 3.0 / (np.max(np.abs(presence)) + 1e-9)
    harmonics = np.tanh(scale * presence)
    air = signal.sosfiltfilt(top, harmonics)
    voice_rms = np.sqrt(np.mean(voice.astype(np.float64) ** 2))
    air_rms = np.sqrt(np.mean(air**2))
    if voice_rms == 0 or air_rms == 0:
        return voice.astype(np.float32)
    air *= voice_rms / air_rms * 10.0 ** (level_db / 20.0)
    return (voice + air).astype(np.float32)


def place(
    voice: np.ndarray, sample_rate: int, pan: float, rng: np.random.Generator
) -> np.ndarray:
    """Pan a mono voice (constant power) and add a short decorrelated room reverb.

    Args:
        voice: Mono ``(n,)``.
        sample_rate: Hz.
        pan: -1 (left) to 1 (right).
        rng: Seeded generator for the room (decay time, wet level, impulse noise).

    Returns:
        float32 ``(2, n)``.
    """
    angle = (np.clip(pan, -1.0, 1.0) + 1.0) * np.pi / 4.0
    dry = np.stack([np.cos(angle) * voice, np.sin(angle) * voice])
    rt60 = float(rng.uniform(0.3, 1.0))
    wet_db = float(rng.uniform(-20.0, -12.0))
    n_ir = int(rt60 * sample_rate)
    decay = np.exp(-6.91 * np.arange(n_ir) / n_ir)  # -60 dB at rt60
    impulse = rng.standard_normal((2, n_ir)) * decay
    impulse[:, : int(0.01 * sample_rate)] = 0.0  # a 10 ms pre-delay before the room
    wet = signal.fftconvolve(dry, impulse, axes=1)[:, : voice.size]
    dry_rms, wet_rms = np.sqrt(np.mean(dry**2)), np.sqrt(np.mean(wet**2))
    if wet_rms > 0:
        wet *= dry_rms / wet_rms * 10.0 ** (wet_db / 20.0)
    return (dry + wet).astype(np.float32)
