"""Stems that another tool wrote into a folder.

    sep = get_separator("external", folder="separated/htdemucs/song1")

The folder holds one audio file per stem named ``<stem>.<ext>`` (wav, flac, ogg, ...), as
written by ``demucs``, ``spleeter`` or ``umx``. A missing stem is silence only if
``allow_missing`` is set. Stems are resampled to the mixture rate, converted to its channel
count and cut or zero-padded to its length (separators may pad by a few samples).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stemprover.constants import STEMS
from stemprover.dsp.audio import load_audio, to_channels
from stemprover.errors import StemproverError
from stemprover.separators.base import Separator, register

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
MAX_LENGTH_MISMATCH_SECONDS = 0.5  # more than this means the stems belong to another file


@register("external")
class ExternalSeparator(Separator):
    def __init__(self, folder: str | Path, allow_missing: bool = False, name: str = "external"):
        self.folder = Path(folder)
        self.allow_missing = allow_missing
        self.name = name
        if not self.folder.is_dir():
            raise StemproverError(f"{self.folder}: stem folder not found")

    def stem_path(self, stem: str) -> Path | None:
        for suffix in AUDIO_SUFFIXES:
            path = self.folder / f"{stem}{suffix}"
            if path.is_file():
                return path
        return None

    def _separate(self, mixture, sample_rate, references):
        n_channels, n = mixture.shape
        out = {}
        for stem in STEMS:
            path = self.stem_path(stem)
            if path is None:
                if not self.allow_missing:
                    raise StemproverError(f"{self.folder}: no audio file for stem {stem!r}")
                out[stem] = np.zeros_like(mixture)
                continue
            audio, _ = load_audio(path, sample_rate)
            audio = to_channels(audio, n_channels)
            if abs(audio.shape[-1] - n) > MAX_LENGTH_MISMATCH_SECONDS * sample_rate:
                raise StemproverError(
                    f"{path}: {audio.shape[-1] / sample_rate:.2f} s long, the mixture is "
                    f"{n / sample_rate:.2f} s"
                )
            fixed = np.zeros((n_channels, n), dtype=np.float32)
            fixed[:, : min(n, audio.shape[-1])] = audio[:, :n]
            out[stem] = fixed
        return out
