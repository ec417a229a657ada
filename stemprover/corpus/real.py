"""Real stems: the MUSDB18 track shipped inside stempeg, and a local MUSDB18(-HQ) via musdb.

    audio, rate = stempeg_example()                  # 6 s of a real MUSDB18 song
    for name, audio, rate in musdb_tracks("~/data/musdb18hq", subset="test"):
        ...

Every ``audio`` is a dict with "mixture" and the four MUSDB stems, float32 ``(2, n)``.
MUSDB18's stems are AAC-coded separately from its mixture, so they sum to the mixture only
approximately (about 22 dB signal-to-residual on the stempeg track); MUSDB18-HQ's WAV
stems sum to the mixture up to rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from stemprover.constants import STEMS
from stemprover.dsp.audio import load_audio, load_stems
from stemprover.errors import StemproverError

MUSDB_SUBSETS = ("train", "test")


def stempeg_example() -> tuple[dict[str, np.ndarray], int]:
    """The MUSDB18 excerpt that ships in the stempeg wheel ("The Easton Ellises - Falcon 69").

    Needs ffmpeg on the PATH.

    Returns:
        ``(audio, sample_rate)``: "mixture", "vocals", "drums", "bass", "other" as float32
        ``(2, n)`` at 44.1 kHz.
    """
    import stempeg

    path = Path(stempeg.example_stem_path())
    if not path.is_file():
        raise StemproverError(f"{path}: the stempeg example track is missing from the install")
    stems, rate = load_stems(path)
    return {name: stems[name] for name in ("mixture", *STEMS)}, rate


def _detect_is_wav(root: Path, subsets: list[str]) -> bool:
    folders = [root / s for s in subsets if (root / s).is_dir()]
    if not folders:
        raise StemproverError(
            f"{root}: not a MUSDB18 folder (expected {' or '.join(f'{s}/' for s in subsets)})"
        )
    if any(next(f.glob("*.stem.mp4"), None) for f in folders):
        return False
    if any(next(f.glob("*/mixture.wav"), None) for f in folders):
        return True
    raise StemproverError(f"{root}: no .stem.mp4 files and no <track>/mixture.wav folders")


def musdb_tracks(
    root: str | Path, subset: str = "test", is_wav: bool | None = None
) -> Iterator[tuple[str, dict[str, np.ndarray], int]]:
    """Iterate over the tracks of a local MUSDB18 (stem files) or MUSDB18-HQ (WAV folders).

    Args:
        root: The dataset folder holding ``train/`` and ``test/``.
        subset: "train" or "test".
        is_wav: True for MUSDB18-HQ's ``<subset>/<track>/{mixture,vocals,...}.wav``, False
            for MUSDB18's ``<subset>/<track>.stem.mp4``; None detects it.

    Yields:
        ``(track_name, audio, sample_rate)`` with audio as in :func:`stempeg_example`,
        tracks sorted by name, loaded one at a time.

    Raises:
        StemproverError: for a missing folder, an unknown subset or an empty subset.
    """
    import musdb

    root = Path(root).expanduser()
    if subset not in MUSDB_SUBSETS:
        raise StemproverError(f"unknown MUSDB subset {subset!r}; choose train or test")
    if not root.is_dir():
        raise StemproverError(f"{root}: no such MUSDB18 folder")
    if is_wav is None:
        is_wav = _detect_is_wav(root, [subset])
    database = musdb.DB(root=str(root), subsets=[subset], is_wav=is_wav)
    if len(database) == 0:
        raise StemproverError(f"{root}: no tracks in the {subset!r} subset")
    for track in database:
        if is_wav:
            # musdb would decode WAVs through ffmpeg as 16-bit PCM; read them exactly instead.
            mixture, rate = load_audio(track.path)
            audio = {"mixture": mixture}
            for stem in STEMS:
                if stem not in track.sources:
                    raise StemproverError(f"{Path(track.path).parent}: missing {stem}.wav")
                audio[stem], _ = load_audio(track.sources[stem].path)
        else:
            stems, rate = load_stems(track.path)
            audio = {name: stems[name] for name in ("mixture", *STEMS)}
        shapes = {a.shape for a in audio.values()}
        if len(shapes) != 1:
            raise StemproverError(f"{track.path}: mixture and stems differ in shape {shapes}")
        yield track.name, audio, int(rate)
