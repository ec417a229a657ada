"""Read and write long audio files in blocks, so memory does not grow with duration.

    source = FileSource.open("song_vocals.wav", min_samples=1024)   # validated, energy scanned
    block = source.read(44100, 88200)                              # (channels, 44100) float32
    with FileSink("out/song_vocals.enhanced.wav", 44100, 2, protect=[source.path]) as sink:
        sink.write(block)                                          # atomic on close

:meth:`FileSource.open` checks the whole file in one streaming pass (soundfile blocks):
missing, directory, empty, non-audio, truncated, more than two channels, NaN or infinite
samples, shorter than ``min_samples``; every problem is a one-line
:class:`~stemprover.errors.StemproverError` naming the file. The same pass records a
frame-energy envelope for adaptive segmentation. :class:`FileSink` writes to a hidden
temporary file in the destination folder and renames it over the target only when all
samples have been written; on any error the temporary file is removed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from stemprover.dsp.audio import (
    check_path,
    open_sound,
    publish,
    same_path,
    sound_error_reason,
    sound_info,
    temporary_file,
)
from stemprover.errors import StemproverError, os_error, signals_held

BLOCK_SAMPLES = 1 << 16  # 1.5 s at 44.1 kHz: large enough to be fast, small enough to be flat
ENERGY_HOP_SECONDS = 0.01  # 10 ms energy frames place boundaries finer than any note


def energy_hop(sample_rate: int) -> int:
    """Energy frame length in samples at ``sample_rate``."""
    return max(1, int(round(ENERGY_HOP_SECONDS * sample_rate)))


@dataclass
class ArraySource:
    """Audio already in memory, read by sample range like a file."""

    audio: np.ndarray  # (n_channels, n_samples) float32
    sample_rate: int
    name: str = "audio"
    energy: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_channels(self) -> int:
        return int(self.audio.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.audio.shape[1])

    def read(self, start: int, end: int) -> np.ndarray:
        """Samples ``[start, end)`` as float32 ``(n_channels, end - start)``."""
        return np.ascontiguousarray(self.audio[:, start:end], dtype=np.float32)


@dataclass
class FileSource:
    """An audio file read by sample range with soundfile; see :meth:`open`."""

    path: Path
    sample_rate: int
    n_channels: int
    n_samples: int
    energy: np.ndarray | None = field(default=None, repr=False)
    peak: float = 0.0

    @property
    def name(self) -> str:
        return str(self.path)

    @classmethod
    def open(cls, path: str | os.PathLike, *, min_samples: int = 1) -> FileSource:
        """Validate ``path`` in one streaming pass and record its energy envelope.

        Args:
            path: Any file libsndfile reads (wav, flac, ogg, aiff, mp3).
            min_samples: Fewest samples accepted (one analysis frame at the file's rate).

        Raises:
            StemproverError: naming the file and the problem.
        """
        path = Path(path)
        check_path(path)
        info = sound_info(path)  # also refuses a WAV/AIFF cut off before its header's end
        if info.channels > 2:
            raise StemproverError(
                f"{path}: has {info.channels} channels, only mono and stereo are supported"
            )
        if info.frames == 0:
            raise StemproverError(f"{path}: contains no samples")
        source = cls(path, info.sample_rate, info.channels, info.frames)
        source._scan(min_samples)
        return source

    def _scan(self, min_samples: int) -> None:
        hop = energy_hop(self.sample_rate)
        energies, carry, n_read, peak = [], np.zeros((self.n_channels, 0)), 0, 0.0
        try:
            with open_sound(self.path) as handle:
                for block in handle.blocks(blocksize=BLOCK_SAMPLES, dtype="float32",
                                           always_2d=True):
                    block = block.T
                    if not np.isfinite(block).all():
                        bad = n_read + int(np.argmin(np.isfinite(block).all(axis=0)))
                        raise StemproverError(
                            f"{self.path}: contains NaN or infinite samples "
                            f"(first at {bad / self.sample_rate:.3f} s)"
                        )
                    peak = max(peak, float(np.abs(block).max(initial=0.0)))
                    n_read += block.shape[1]
                    joined = np.concatenate([carry, block], axis=1)
                    whole = joined.shape[1] // hop * hop
                    if whole:
                        power = (joined[:, :whole].astype(np.float64) ** 2).reshape(
                            self.n_channels, -1, hop).mean(axis=(0, 2))
                        energies.append(power)
                    carry = joined[:, whole:]
        except StemproverError:
            raise
        except (sf.LibsndfileError, RuntimeError, ValueError) as err:
            raise StemproverError(f"{self.path}: unreadable audio data ({err})") from err
        if n_read < self.n_samples:
            raise StemproverError(
                f"{self.path}: truncated audio file ({n_read} of {self.n_samples} samples read)"
            )
        if carry.shape[1]:
            energies.append(np.array([(carry.astype(np.float64) ** 2).mean()]))
        if n_read < min_samples:
            raise StemproverError(
                f"{self.path}: too short, {n_read} samples but at least {min_samples} are "
                "needed (one analysis frame)"
            )
        self.energy = np.concatenate(energies) if energies else np.zeros(0)
        self.peak = peak

    def read(self, start: int, end: int) -> np.ndarray:
        """Samples ``[start, end)`` as float32 ``(n_channels, end - start)``."""
        with open_sound(self.path) as handle:
            handle.seek(start)
            block = handle.read(end - start, dtype="float32", always_2d=True)
        if block.shape[0] != end - start:
            raise StemproverError(f"{self.path}: could not read samples {start}..{end}")
        return np.ascontiguousarray(block.T)


class Cancelled(Exception):
    """Raised inside a write when the run was asked to stop (a signal, another job's end)."""


class FileSink:
    """Write a WAV file block by block, atomically (temporary file, then ``os.replace``).

    Every operating-system error (no permission, a file where a folder should be, a name
    too long) becomes a one-line :class:`StemproverError` naming the output path.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        sample_rate: int,
        n_channels: int,
        *,
        protect: Iterable[str | os.PathLike] = (),
        subtype: str = "FLOAT",
        cancel: threading.Event | None = None,
        overwrite: bool = True,
    ):
        self.path = Path(path)
        self.overwrite = overwrite  # False: fail if the file appears while it is written
        for protected in protect:
            if same_path(self.path, protected):
                raise StemproverError(f"{self.path}: refusing to overwrite an input file")
        if self.path.is_dir():
            raise StemproverError(f"{self.path}: is a directory, expected an output file name")
        self.sample_rate = int(sample_rate)
        self.n_channels = int(n_channels)
        self.subtype = subtype
        self.cancel = cancel
        self.n_written = 0
        self._tmp: Path | None = None
        self._handle: sf.SoundFile | None = None

    def _failed(self, err: OSError) -> StemproverError:
        if isinstance(err, FileExistsError) and not self.overwrite:
            return StemproverError(f"{self.path}: already exists (made while this run wrote "
                                   "it); pass --overwrite to replace it")
        return os_error(err, self.path, "cannot write")

    def __enter__(self) -> FileSink:
        try:
            with signals_held():  # a signal waits until the temporary file has its name
                self._tmp = temporary_file(self.path)
            self._handle = sf.SoundFile(
                os.fsencode(self._tmp), "w", samplerate=self.sample_rate,
                channels=self.n_channels, subtype=self.subtype, format="WAV",
            )
        except OSError as err:
            self._remove_tmp()
            raise self._failed(err) from err
        except (sf.LibsndfileError, RuntimeError) as err:
            self._remove_tmp()
            raise StemproverError(
                f"{self.path}: cannot write ({sound_error_reason(err)})") from err
        except BaseException:  # a signal or an interrupt: __exit__ will not run
            self._remove_tmp()
            raise
        return self

    def write(self, block: np.ndarray) -> None:
        """Append float32 ``(n_channels, n)`` samples (clipped to [-1, 1] for PCM)."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(str(self.path))
        if block.shape[0] != self.n_channels:
            raise ValueError(f"expected {self.n_channels} channels, got {block.shape[0]}")
        if block.shape[1]:
            if self.subtype.startswith("PCM"):  # integers wrap around instead of clipping
                block = np.clip(block, -1.0, 1.0)
            try:
                self._handle.write(np.ascontiguousarray(block.T, dtype=np.float32))
            except (OSError, RuntimeError) as err:  # a full disk, a vanished folder
                reason = sound_error_reason(err, self._handle)
                raise StemproverError(f"{self.path}: cannot write ({reason})") from err
            self.n_written += block.shape[1]

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._handle.close()
            if exc_type is None:
                publish(self._tmp, self.path, replace=self.overwrite)
        except (OSError, RuntimeError) as err:  # also libsndfile's final flush
            if exc_type is None:
                raise (self._failed(err) if isinstance(err, OSError) else StemproverError(
                    f"{self.path}: cannot write ({sound_error_reason(err)})")) from err
        finally:
            self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)


class ArraySink:
    """Collect written blocks into one ``(n_channels, n_samples)`` array."""

    def __init__(self, n_channels: int, n_samples: int):
        self.audio = np.zeros((n_channels, n_samples), dtype=np.float32)
        self.n_written = 0

    def write(self, block: np.ndarray) -> None:
        self.audio[:, self.n_written : self.n_written + block.shape[1]] = block
        self.n_written += block.shape[1]
