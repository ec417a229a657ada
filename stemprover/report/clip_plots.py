"""Spectrogram images of audio: the listening clips and ``stemprover enhance --preview``.

    image = spectrogram(ArraySource(audio, 22050))             # magnitude (dB), (freq, frames)
    png = clip_png(image, vmin=image.db.max() - 80, vmax=image.db.max())   # PNG bytes
    write_preview("vocals.wav", "out/vocals.enhanced.wav")    # -> out/vocals.enhanced.png

Display only: a magnitude STFT of the channel mean, never a metric. A long file is read in
blocks at no more than :data:`MAX_FRAMES` evenly spaced frames, so the preview of an hour-long
stem takes no more memory than that of a minute. Images use the paper's style file and are
drawn on a bare ``Figure`` (no pyplot), so a notebook's plotting backend is left alone.
PNGs carry no software version or date, so the same audio always gives the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemprover.dsp.audio import STEM_FILE_SUFFIX, publish, sound_info, temporary_file
from stemprover.errors import StemproverError, signals_held
from stemprover.inference.enhance import open_source
from stemprover.inference.streaming import BLOCK_SAMPLES, FileSource
from stemprover.report.style import STYLE

MAX_FRAMES = 1200  # columns of a preview: more than its pixels, so nothing is lost on screen
RANGE_DB = 80.0  # shown below the loudest bin; quieter bins are drawn at the floor
DIFF_MIN_DB = 3.0  # the change panel spans at least +-3 dB, so noise is not blown up
_DRAWING = threading.Lock()  # styles set matplotlib's global rcParams: one drawing at a time


@dataclass
class Spectrogram:
    """Magnitude of one clip or file as drawn."""

    db: np.ndarray  # (n_fft // 2 + 1, n_frames) magnitude in dB
    sample_rate: int  # Hz
    seconds: float  # duration of the audio


def display_n_fft(sample_rate: int) -> int:
    """2048-point frames at 44.1 kHz (46 ms), the same duration at other rates."""
    return 2 ** int(round(math.log2(2048 * sample_rate / 44100)))


def spectrogram(source, n_fft: int | None = None, max_frames: int = MAX_FRAMES) -> Spectrogram:
    """Hann-window magnitude spectrogram (dBFS) of the channel mean of ``source``.

    Args:
        source: Anything with ``sample_rate``, ``n_samples`` and ``read(start, end)`` giving
            ``(channels, end - start)`` audio (:class:`~stemprover.inference.streaming.ArraySource`,
            :class:`~stemprover.inference.streaming.FileSource`).
        n_fft: Frame length in samples (None: :func:`display_n_fft`).
        max_frames: Most frames; the hop (about ``n_fft // 4``) grows to keep to it.
    """
    n_fft = n_fft or display_n_fft(source.sample_rate)
    n = int(source.n_samples)
    last = max(n - n_fft, 0)
    n_frames = min(max_frames, last // (n_fft // 4) + 1)
    starts = np.round(np.linspace(0, last, n_frames)).astype(int)  # evenly, first to last
    window = np.hanning(n_fft).astype(np.float32)
    columns, i = [], 0
    while i < len(starts):
        j = i  # read consecutive frames in one block of at most BLOCK_SAMPLES
        while j + 1 < len(starts) and starts[j + 1] + n_fft - starts[i] <= BLOCK_SAMPLES:
            j += 1
        end = min(n, int(starts[j]) + n_fft)
        block = source.read(int(starts[i]), end).mean(axis=0)
        block = np.pad(block, (0, int(starts[j]) + n_fft - int(starts[i]) - block.shape[0]))
        frames = np.stack([block[s - starts[i] : s - starts[i] + n_fft] for s in starts[i : j + 1]])
        columns.append(np.abs(np.fft.rfft(frames * window, axis=-1)).T)
        i = j + 1
    # a full-scale sine reads 0 dB (dBFS)
    magnitude = np.concatenate(columns, axis=1) * (2.0 / window.sum())
    db = 20.0 * np.log10(magnitude + 1e-8)
    return Spectrogram(db.astype(np.float32), int(source.sample_rate), n / source.sample_rate)


def _figure(width_in: float, height_in: float, n_rows: int = 1):
    """A bare figure and its axes; call inside :func:`_style`."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    return fig, fig.subplots(n_rows, 1, sharex=True, squeeze=False)[:, 0]


@contextlib.contextmanager
def _style():
    """The paper's style, for this drawing only (``enhance --jobs`` draws from threads)."""
    from matplotlib import style

    with _DRAWING, style.context(str(STYLE)):
        yield


def _show(ax, image: Spectrogram, values: np.ndarray, **kwargs):
    extent = (0.0, image.seconds, 0.0, image.sample_rate / 2000.0)
    shown = ax.imshow(values, extent=extent, origin="lower", aspect="auto",
                      interpolation="nearest", **kwargs)
    ax.grid(False)
    ax.set_ylabel("kHz")
    return shown


def _png(fig) -> bytes:
    from matplotlib import rc_context

    buffer = io.BytesIO()
    with rc_context({"savefig.bbox": "standard"}):  # the figure's own size, for the page
        fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def clip_png(image: Spectrogram, vmin: float, vmax: float, title: str = "") -> bytes:
    """A small (300 x 140 px) spectrogram of one clip, dB from ``vmin`` to ``vmax``."""
    with _style():
        fig, (ax,) = _figure(3.0, 1.4)
        _show(ax, image, np.clip(image.db, vmin, vmax), vmin=vmin, vmax=vmax, cmap="magma")
        ax.set_xlabel("s", labelpad=0)
        ax.tick_params(labelsize=6)
        ax.yaxis.label.set_size(6.5)
        ax.xaxis.label.set_size(6.5)
        if title:
            ax.set_title(title, fontsize=7)
        return _png(fig)


def spectrogram_change(before: Spectrogram, after: Spectrogram) -> tuple[np.ndarray, float]:
    """Output minus input (dB) per bin, and the symmetric colour limit (dB) to draw it with.

    Bins below the shown floor (:data:`RANGE_DB` under the loudest) count as the floor, so
    silencing a bin is a change of at most ``RANGE_DB``. The limit covers 99% of the
    audible bins' changes, rounded up to whole dB, and is at least :data:`DIFF_MIN_DB`.
    """
    vmin = float(max(before.db.max(), after.db.max())) - RANGE_DB
    change = np.maximum(after.db, vmin) - np.maximum(before.db, vmin)
    audible = np.maximum(before.db, after.db) > vmin
    limit = float(np.percentile(np.abs(change[audible]), 99)) if audible.any() else 0.0
    return change, min(max(DIFF_MIN_DB, math.ceil(limit)), RANGE_DB)


def preview_png(before: Spectrogram, after: Spectrogram, title: str = "") -> bytes:
    """Input and output spectrograms (dB) and their difference, output minus input (dB)."""
    vmax = float(max(before.db.max(), after.db.max()))
    vmin = vmax - RANGE_DB
    change, limit = spectrogram_change(before, after)
    with _style():
        fig, axes = _figure(8.0, 6.0, 3)
        for ax, image, name in ((axes[0], before, "input"), (axes[1], after, "output")):
            shown = _show(ax, image, np.clip(image.db, vmin, vmax), vmin=vmin, vmax=vmax,
                          cmap="magma")
            ax.set_title(name)
        fig.colorbar(shown, ax=axes[:2], label="dBFS", shrink=0.9)
        shown = _show(axes[2], after, change, vmin=-limit, vmax=limit, cmap="RdBu_r")
        axes[2].set_title("change: output - input (red: added, blue: removed)")
        axes[2].set_xlabel("time (s)")
        fig.colorbar(shown, ax=axes[2], label="dB")
        if title:
            fig.suptitle(title, fontsize=8)
        return _png(fig)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` atomically: a temporary file next to ``path``, then a rename."""
    path = Path(path)
    try:
        with signals_held():  # a signal waits until the temporary file has its name
            tmp = temporary_file(path)
    except OSError as err:
        raise StemproverError(f"{path}: could not write ({err.strerror})") from err
    try:
        tmp.write_bytes(data)
        publish(tmp, path)
    except BaseException as err:  # also Ctrl-C: never leave the temporary file
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise StemproverError(f"{path}: could not write ({err.strerror})") from err
        raise
    return path


def preview_path(output: str | os.PathLike) -> Path:
    """Where ``stemprover enhance --preview`` draws ``output``: the same name, ``.png``."""
    return Path(output).with_suffix(".png")


def _file_source(path: Path) -> FileSource:
    info = sound_info(path)  # checked before enhancing: no second validation pass
    return FileSource(path, info.sample_rate, info.channels, info.frames)


def write_preview(in_path: str | os.PathLike, out_path: str | os.PathLike,
                  stem: str | None = None) -> Path:
    """Draw the input and the enhanced output of one file into :func:`preview_path`.

    Args:
        in_path: The separated stem that was enhanced (a ``.stem.mp4`` with ``stem``).
        out_path: The enhanced file.
        stem: The stem taken from a ``.stem.mp4`` input.

    Returns:
        The PNG written.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if in_path.name.lower().endswith(STEM_FILE_SUFFIX):
        source = open_source(in_path, stem)[0]
    else:
        source = _file_source(in_path)
    before = spectrogram(source)
    after = spectrogram(_file_source(out_path))
    title = f"{in_path.name} -> {out_path.name}"
    return write_bytes(preview_path(out_path), preview_png(before, after, title))
