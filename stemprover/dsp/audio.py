"""Audio input and output: load, validate, resample, change channels, loudness, save.

    audio, sample_rate = load_audio("stem.wav", 44100)       # float32 (channels, samples)
    save_audio("out/stem.wav", audio, sample_rate, protect=["stem.wav"])

All arrays are float32 with the layout ``(n_channels, n_samples)``. Every problem with an
input (missing, empty, truncated or non-audio file, NaN samples, too many channels, a clip
that is too short) raises :class:`stemprover.errors.StemproverError` with a one-line
message that names the file; an operating-system cause is said in the words of
:func:`stemprover.errors.os_reason` ("permission denied", "no space left on device").
Writes are atomic: a temporary file in the destination folder is renamed over the target
(:func:`publish`: ``os.replace``, or a hard link that refuses an existing name), so a failed
write leaves nothing behind, and :func:`remove_stale_temporaries` clears what a killed
process left.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from stemprover.errors import StemproverError, errno_of_text, os_error, os_reason, signals_held

STEM_FILE_SUFFIX = ".stem.mp4"
STEM_NAMES = ("mixture", "drums", "bass", "other", "vocals")
"""Stream order of Native Instruments stem files (MUSDB18), as stempeg reads them."""

PathLike = str | os.PathLike


def check_audio(
    audio: np.ndarray, name: str, *, min_samples: int = 1, max_channels: int = 2
) -> np.ndarray:
    """Validate an audio array and return it as float32 ``(n_channels, n_samples)``.

    Args:
        audio: ``(n_samples,)`` or ``(n_channels, n_samples)``; float, or integer PCM
            (scaled to [-1, 1)).
        name: What to call the array in error messages (usually its file name).
        min_samples: Fewest samples accepted, e.g. one STFT frame (``n_fft``).
        max_channels: Most channels accepted.

    Returns:
        A float32 array ``(n_channels, n_samples)``; 1-D input becomes one channel.

    Raises:
        StemproverError: wrong rank or dtype, no samples, NaN/inf, too many channels,
            or fewer than ``min_samples`` samples.
    """
    array = np.asarray(audio)
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        half_range = (float(info.max) - float(info.min) + 1) / 2
        array = (array.astype(np.float64) - (float(info.max) + float(info.min) + 1) / 2) / half_range
    elif array.dtype.kind != "f":
        raise StemproverError(f"{name}: audio must be a float array, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise StemproverError(
            f"{name}: audio must be (channels, samples), got shape {tuple(array.shape)}"
        )
    n_channels, n_samples = array.shape
    if n_channels > max_channels:
        hint = " (is it (samples, channels)? transpose it)" if n_samples <= max_channels else ""
        raise StemproverError(
            f"{name}: has {n_channels} channels, at most {max_channels} are supported{hint}"
        )
    if n_channels == 0 or n_samples == 0:
        raise StemproverError(f"{name}: contains no samples")
    if not np.isfinite(array).all():
        raise StemproverError(f"{name}: contains NaN or infinite samples")
    if n_samples < min_samples:
        raise StemproverError(
            f"{name}: too short, {n_samples} samples but at least {min_samples} are needed "
            "(one analysis frame)"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def check_path(path: Path) -> None:
    """Raise StemproverError unless ``path`` is an existing, non-empty, readable file.

    A pipe (``/dev/stdin`` fed by another program, a FIFO), a device or a socket is refused:
    a file is read more than once (checked, scanned, then enhanced), a pipe only once.
    """
    try:
        info = os.stat(path)
    except OSError as err:  # missing, a symbolic link loop, a folder we may not enter
        raise os_error(err, path) from None
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise StemproverError(f"{path}: is a directory, expected an audio file")
    if stat.S_ISFIFO(mode):
        raise StemproverError(f"{path}: is a pipe, not a file; save what it carries to a "
                              "file first")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise StemproverError(f"{path}: is a device, not a file")
    if stat.S_ISSOCK(mode):
        raise StemproverError(f"{path}: is a socket, not a file")
    if info.st_size == 0:
        raise StemproverError(f"{path}: empty file (0 bytes)")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise os_error(err, path) from None


SFE_SYSTEM = 2
"""libsndfile's error code for a failed system call; its cause is in ``sf_strerror``."""


def sound_error_reason(err: Exception, handle: sf.SoundFile | None = None) -> str:
    """Why soundfile failed, in the words of :func:`stemprover.errors.os_reason` where the
    cause is a system call (libsndfile itself only says "System error.").

    Args:
        err: What soundfile raised.
        handle: The open file it was working on; None after a failed open.
    """
    if isinstance(err, OSError):
        return os_reason(err)
    if getattr(err, "code", None) == SFE_SYSTEM:
        try:  # sf_strerror keeps the system's message ("System error : No space left ...")
            cdata = handle._file if handle is not None else sf._ffi.NULL
            detail = sf._ffi.string(sf._snd.sf_strerror(cdata)).decode(errors="replace")
        except (AttributeError, TypeError):
            detail = ""
        cause = detail.rpartition(":")[2]
        code = errno_of_text(cause)
        if code is not None:
            return os_reason(code)
        if cause.strip():
            return cause.strip().rstrip(".").lower()
    return str(err).split(":")[-1].strip() or type(err).__name__


def _is_system_error(err: Exception) -> bool:
    return getattr(err, "code", None) == SFE_SYSTEM


_DATA_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_STREAMED_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)  # written by tools that stream to a pipe


def _header_promises_more_data(extra_info: str) -> bool:
    """True when a WAV/AIFF data chunk claims more bytes than the file holds.

    libsndfile reads such a file up to its end and only notes "(should be N)" in its log;
    a cut-off download must not pass silently. Placeholder sizes of streamed files are fine.
    """
    match = _DATA_CHUNK.search(extra_info)
    if match is None:
        return False
    declared, actual = int(match.group(1)), int(match.group(2))
    return declared > actual and declared not in _STREAMED_SIZES


class _StreamedWav(io.FileIO):
    """A WAV file whose data chunk declares 0 bytes, read as if it declared "until the end".

    Tools that write WAV to a pipe cannot seek back to fill in the sizes; libsndfile reads
    the placeholder 0xFFFFFFFF to the end of the file but takes 0 at its word.
    """

    def __init__(self, path, size_offset: int):
        super().__init__(path, "rb")
        self._size_offset = size_offset

    def readinto(self, buffer) -> int:
        start = self.tell()
        count = super().readinto(buffer)
        lo, hi = max(start, self._size_offset), min(start + count, self._size_offset + 4)
        if lo < hi:
            view = memoryview(buffer).cast("B")
            view[lo - start : hi - start] = b"\xff" * (hi - lo)
        return count


def _zero_data_chunk(path: Path) -> int | None:
    """Offset of a RIFF/WAVE data chunk's size field when it is 0 but audio follows."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= len(head):
        chunk, size = head[offset : offset + 4], int.from_bytes(head[offset + 4 : offset + 8], "little")
        if chunk == b"data":
            has_audio = size == 0 and path.stat().st_size > offset + 8
            return offset + 4 if has_audio else None
        offset += 8 + size + (size & 1)
    return None


def open_sound(path: PathLike) -> sf.SoundFile:
    """Open an audio file for reading with soundfile.

    Any file name works (also one that is not valid UTF-8), and a WAV streamed to a pipe
    (RIFF and data sizes 0 or 0xFFFFFFFF) is read to its end.
    """
    path = Path(path)
    offset = _zero_data_chunk(path)
    if offset is not None:
        return sf.SoundFile(_StreamedWav(path, offset))
    return sf.SoundFile(os.fsencode(path))


@dataclass(frozen=True)
class SoundInfo:
    """What a file's header says: rate (Hz), channels, frames (samples), format."""

    sample_rate: int
    channels: int
    frames: int
    format: str
    extra_info: str


def sound_info(path: PathLike) -> SoundInfo:
    """The header of ``path``, checked the same way for every reader.

    Raises:
        StemproverError: for a non-audio file, or a WAV/AIFF whose header promises more
            audio than the file holds (a cut-off download).
    """
    path = Path(path)
    try:
        with open_sound(path) as handle:
            info = SoundInfo(int(handle.samplerate), int(handle.channels), int(handle.frames),
                             handle.format, handle.extra_info)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as err:
        raise _read_failure(path, err) from err
    if _header_promises_more_data(info.extra_info):
        raise StemproverError(f"{path}: truncated audio file (header and size disagree)")
    return info


def _read_failure(path: Path, err: Exception) -> StemproverError:
    """A failed read: the system's cause (permission, I/O error), or not audio at all."""
    if isinstance(err, OSError) or _is_system_error(err):
        return StemproverError(f"{path}: {sound_error_reason(err)}")
    return StemproverError(f"{path}: not a readable audio file ({sound_error_reason(err)})")


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    info = sound_info(path)
    try:
        with open_sound(path) as handle:
            data = handle.read(dtype="float32", always_2d=True)
            sample_rate = handle.samplerate
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as err:
        raise _read_failure(path, err) from err
    if info.frames > 0 and data.shape[0] < info.frames:
        raise StemproverError(
            f"{path}: truncated audio file ({data.shape[0]} of {info.frames} samples read)"
        )
    return data.T, int(sample_rate)


def load_audio(
    path: PathLike,
    sample_rate: int | None = None,
    *,
    mono: bool = False,
    min_samples: int = 1,
) -> tuple[np.ndarray, int]:
    """Load an audio file as float32 ``(n_channels, n_samples)``.

    Any format libsndfile reads (wav, flac, ogg, mp3, aiff, ...). A ``.stem.mp4`` file
    yields its mixture (use :func:`load_stems` for the stems).

    Args:
        path: The file.
        sample_rate: Resample to this rate in Hz (soxr); None keeps the file's rate.
        mono: Average the channels to one.
        min_samples: Fewest samples accepted after resampling, e.g. ``n_fft``.

    Returns:
        ``(audio, sample_rate)`` with audio float32 ``(n_channels, n_samples)``.

    Raises:
        StemproverError: naming the file, for a missing file, a directory, an empty,
            unreadable, non-audio or truncated file, NaN/inf samples, more than two
            channels, or fewer than ``min_samples`` samples.
    """
    path = Path(path)
    check_path(path)
    if path.name.lower().endswith(STEM_FILE_SUFFIX):
        stems, file_rate = load_stems(path)
        audio = stems["mixture"]
    else:
        audio, file_rate = _read_soundfile(path)
    audio = check_audio(audio, str(path))
    if sample_rate is not None and sample_rate != file_rate:
        audio = resample(audio, file_rate, sample_rate)
        file_rate = int(sample_rate)
    if mono:
        audio = to_mono(audio)
    return check_audio(audio, str(path), min_samples=min_samples), file_rate


def load_stems(path: PathLike) -> tuple[dict[str, np.ndarray], int]:
    """Load a Native Instruments ``.stem.mp4`` file (MUSDB18) with stempeg.

    Args:
        path: The stem file; needs ffmpeg on the PATH.

    Returns:
        ``(stems, sample_rate)``: stems maps "mixture", "drums", "bass", "other",
        "vocals" to float32 ``(n_channels, n_samples)``.
    """
    import stempeg

    path = Path(path)
    check_path(path)
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise StemproverError(f"{path}: reading stem files needs ffmpeg and ffprobe on the PATH")
    try:
        data, rate = stempeg.read_stems(str(path), dtype=np.float32, always_3d=True)
    except Exception as err:  # stempeg wraps ffmpeg; any failure means an unreadable file
        raise StemproverError(
            f"{path}: not a readable stem file ({_last_line(err, path)})") from err
    data = np.asarray(data)
    if data.ndim != 3 or data.shape[0] != len(STEM_NAMES):
        raise StemproverError(
            f"{path}: expected {len(STEM_NAMES)} streams (mixture + 4 stems), "
            f"got array of shape {data.shape}"
        )
    stems = {
        name: check_audio(data[i].T, f"{path} [{name}]") for i, name in enumerate(STEM_NAMES)
    }
    return stems, int(rate)


def _last_line(err: Exception, path: Path) -> str:
    """The last line of an error, where ffmpeg puts its reason, without the file name."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    reason = lines[-1]
    for name in (str(path), path.name):
        if reason.startswith(f"{name}:"):
            reason = reason[len(name) + 1 :].strip()
    return reason[:160]


def same_path(first: PathLike, second: PathLike) -> bool:
    """Whether two names lead to one file (links followed; a link loop is its own name)."""
    return os.path.realpath(first) == os.path.realpath(second)


def save_audio(
    path: PathLike,
    audio: np.ndarray,
    sample_rate: int,
    subtype: str | None = "FLOAT",
    *,
    protect: Iterable[PathLike] = (),
) -> Path:
    """Write audio atomically: a temporary file in the same folder, then ``os.replace``.

    Args:
        path: Destination; the format comes from its extension. Parent folders are made.
        audio: ``(n_samples,)`` or ``(n_channels, n_samples)``.
        sample_rate: Hz.
        subtype: soundfile subtype; formats that cannot store it (e.g. "FLOAT" in FLAC)
            get the format's default subtype. None means the default.
        protect: Paths that must never be overwritten (the inputs of a run).

    Returns:
        The written path.

    Raises:
        StemproverError: for invalid audio, a protected destination or a failed write.
    """
    path = Path(path)
    for protected in protect:
        if same_path(path, protected):
            raise StemproverError(f"{path}: refusing to overwrite an input file")
    if path.is_dir():
        raise StemproverError(f"{path}: is a directory, expected an output file name")
    audio = check_audio(audio, str(path))
    format_name = path.suffix.lstrip(".").upper()
    if format_name not in sf.available_formats():
        raise StemproverError(f"{path}: unsupported audio file extension {path.suffix!r}")
    if subtype is None or not sf.check_format(format_name, subtype):
        subtype = sf.default_subtype(format_name)
    try:
        with signals_held():  # a signal waits until the temporary file has its name
            tmp = temporary_file(path)
    except OSError as err:
        raise os_error(err, path, "could not write audio") from err
    try:
        sf.write(os.fsencode(tmp), audio.T, int(sample_rate), subtype=subtype,
                 format=format_name)
        publish(tmp, path)
    except Exception as err:
        tmp.unlink(missing_ok=True)
        raise StemproverError(
            f"{path}: could not write audio ({sound_error_reason(err)})") from err
    except BaseException:  # a signal or an interrupt
        tmp.unlink(missing_ok=True)
        raise
    return path


TEMPORARY_SUFFIX = ".stemprover.tmp"
TEMPORARY_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}" + re.escape(TEMPORARY_SUFFIX) + "$")
"""Names :func:`temporary_file` gives: ``.<start of the name>.<8 random>.stemprover.tmp``."""
_temporary_locks: dict[Path, int] = {}  # temporary file -> open descriptor holding its lock
_locks_guard = threading.Lock()


def temporary_file(path: Path) -> Path:
    """An empty hidden file next to ``path`` (its folders are made) to write into first.

    Its name keeps only the start of ``path``'s name, so that a long but valid output
    name does not become a temporary name over the file system's limit. This process
    holds an exclusive ``flock`` on it until :func:`publish` renames it (or it is removed),
    which tells :func:`remove_stale_temporaries` of another run that it is in use; the
    kernel drops the lock when the process dies, even by SIGKILL.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=TEMPORARY_SUFFIX,
                                    dir=path.parent)
    tmp = Path(name)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a file system without locks: the file is then judged by age alone
        os.close(handle)
        return tmp
    with _locks_guard:
        for old, descriptor in list(_temporary_locks.items()):
            if os.fstat(descriptor).st_nlink == 0:  # removed after a failure: unlock it
                os.close(_temporary_locks.pop(old))
        _temporary_locks[tmp] = handle
    return tmp


def _unlock(tmp: Path) -> None:
    with _locks_guard:
        descriptor = _temporary_locks.pop(tmp, None)
    if descriptor is not None:
        os.close(descriptor)


def remove_stale_temporaries(folder: Path, before: float) -> list[Path]:
    """Remove the temporary files of runs that died (SIGKILL, a power cut) from ``folder``.

    Only names of :func:`temporary_file` (``TEMPORARY_NAME``), only plain files last
    changed before ``before`` (seconds since the epoch: the start of this run), and only
    those no running process holds locked. Nothing else is touched.

    Returns:
        The removed paths.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # not made yet, or not readable: nothing of ours can be in it
        return removed
    for entry in entries:
        if not TEMPORARY_NAME.match(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or info.st_mtime >= before:
                continue
            descriptor = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while in use
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(descriptor)
    return removed


_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}
"""Errors of ``os.link`` that mean the file system has no hard links (FAT, some network
file systems), as opposed to a name that exists already."""


def publish(tmp: Path, path: Path, *, replace: bool = True) -> None:
    """Give ``tmp`` the usual permissions (0644 under umask 022) and rename it to ``path``.

    mkstemp makes owner-only files; an output file is meant to be shared like any other.

    Args:
        tmp: The written temporary file.
        path: Its final name.
        replace: Replace a file at ``path``. False: the rename fails if ``path`` exists,
            also when another process made it while this one was writing: ``tmp`` is
            hard-linked to ``path`` (which fails for an existing name) and then removed.
            Where the file system has no hard links, ``path`` is checked just before an
            ``os.replace``.

    Raises:
        FileExistsError: ``replace`` is False and ``path`` exists; ``tmp`` is left as is.
    """
    os.chmod(tmp, 0o666 & ~_umask())
    if replace:
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path, follow_symlinks=False)
        except OSError as err:
            if err.errno not in _NO_HARD_LINKS:
                raise
            if os.path.lexists(path):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST),
                                      str(path)) from None
            os.replace(tmp, path)
        else:
            os.unlink(tmp)
    _unlock(tmp)


def _umask() -> int:
    # Read once: os.umask can only be read by setting it, which is not thread-safe.
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


_UMASK: int | None = None


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample with soxr ("HQ") along the last axis.

    Args:
        audio: ``(n_samples,)`` or ``(n_channels, n_samples)``.
        orig_sr: Input rate in Hz.
        target_sr: Output rate in Hz.

    Returns:
        float32 array with the same leading shape and ``round(n * target / orig)`` samples.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if int(orig_sr) == int(target_sr):
        return audio.copy()
    if orig_sr <= 0 or target_sr <= 0:
        raise StemproverError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    out = soxr.resample(audio.T, int(orig_sr), int(target_sr), quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average channels: ``(n_channels, n)`` or ``(n,)`` -> ``(1, n)`` float32."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return audio[None, :].copy()
    return audio.mean(axis=0, keepdims=True)


def to_channels(audio: np.ndarray, n_channels: int) -> np.ndarray:
    """Convert to ``n_channels`` (1 or 2): mono is duplicated, stereo is averaged.

    Args:
        audio: ``(n,)`` or ``(c, n)``.
        n_channels: Target channel count.

    Returns:
        float32 ``(n_channels, n)``.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    current = audio.shape[0]
    if current == n_channels:
        return audio.copy()
    if current == 1:
        return np.repeat(audio, n_channels, axis=0)
    if n_channels == 1:
        return to_mono(audio)
    raise StemproverError(f"cannot convert {current} channels to {n_channels}")


def is_silent(audio: np.ndarray, threshold_db: float = -100.0) -> bool:
    """True when the RMS level over all channels is below ``threshold_db`` dBFS."""
    audio = np.asarray(audio, dtype=np.float64)
    rms = float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0
    return rms <= 0.0 or 20.0 * np.log10(rms) < threshold_db


def loudness(audio: np.ndarray, sr: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4) in LUFS with pyloudnorm; -inf for silence.

    Args:
        audio: ``(n,)`` or ``(n_channels, n)``, at least 0.4 s long (one gating block).
        sr: Sample rate in Hz.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[None, :]
    import pyloudnorm  # scipy.signal: about a second, not needed by enhancement

    meter = pyloudnorm.Meter(int(sr))
    if audio.shape[-1] < int(round(meter.block_size * sr)):
        raise StemproverError(
            f"loudness needs at least {meter.block_size:.1f} s of audio, "
            f"got {audio.shape[-1] / sr:.3f} s"
        )
    return float(meter.integrated_loudness(audio.T))


def check_mixture(mixture: np.ndarray, name: str = "mixture") -> np.ndarray:
    """``mixture`` as float32 ``(n_channels, n_samples)``; a 1-D signal becomes one channel."""
    array = np.asarray(mixture, dtype=np.float32)
    if array.ndim == 1:
        array = array[None]
    return check_audio(array, name)
