"""Real stems: the stempeg MUSDB18 excerpt, and musdb folders made on the spot."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from stemprover.constants import STEMS
from stemprover.corpus.real import musdb_tracks, stempeg_example
from stemprover.errors import StemproverError

SR = 44100


def _snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    residual = reference.astype(np.float64) - estimate
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / np.sum(residual**2)))


@pytest.fixture(scope="module")
def example():
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is needed to decode the stempeg example")
    return stempeg_example()


def test_stempeg_example_has_mixture_and_four_stems(example):
    audio, rate = example
    assert rate == SR
    assert list(audio) == ["mixture", *STEMS]
    shapes = {a.shape for a in audio.values()}
    assert len(shapes) == 1
    channels, n = shapes.pop()
    assert channels == 2 and 5 * SR < n < 7 * SR  # the 6 s excerpt
    for name, stem in audio.items():
        assert stem.dtype == np.float32
        assert np.sqrt(np.mean(stem**2)) > 1e-3, f"{name} is silent"


def test_stempeg_stems_sum_to_mixture_up_to_aac_coding(example):
    audio, _ = example
    # Each stream is AAC-coded on its own; the codec's edges (priming, last frame) differ.
    interior = slice(4096, -4096)
    total = sum(audio[s] for s in STEMS)
    snr = _snr_db(audio["mixture"][:, interior], total[:, interior])
    assert 15.0 < snr < 60.0  # close, and not trivially identical (they are separate streams)
    # The stems are not interchangeable: dropping one ruins the match.
    partial = total - audio["vocals"]
    assert _snr_db(audio["mixture"][:, interior], partial[:, interior]) < snr - 6.0


def _write_hq_track(folder, rng, n=SR // 2):
    stems = {s: (0.1 * rng.standard_normal((2, n))).astype(np.float32) for s in STEMS}
    mixture = stems["vocals"] + stems["drums"] + stems["bass"] + stems["other"]
    folder.mkdir(parents=True)
    for name, audio in (("mixture", mixture), *stems.items()):
        sf.write(folder / f"{name}.wav", audio.T, SR, subtype="FLOAT")
    return {"mixture": mixture, **stems}


def test_musdb_tracks_reads_a_fake_musdb18hq_folder(tmp_path):
    rng = np.random.default_rng(0)
    written = {
        name: _write_hq_track(tmp_path / "test" / name, rng) for name in ("B track", "A track")
    }
    _write_hq_track(tmp_path / "train" / "C track", rng)
    tracks = list(musdb_tracks(tmp_path, subset="test"))  # is_wav detected
    assert [name for name, _, _ in tracks] == ["A track", "B track"]
    for name, audio, rate in tracks:
        assert rate == SR
        assert set(audio) == {"mixture", *STEMS}
        for key, array in audio.items():
            assert array.shape == (2, SR // 2) and array.dtype == np.float32
            np.testing.assert_array_equal(array, written[name][key])
    assert [n for n, _, _ in musdb_tracks(tmp_path, subset="train", is_wav=True)] == ["C track"]


def test_musdb_tracks_reads_stem_files(tmp_path, example):
    import stempeg

    (tmp_path / "test").mkdir()
    shutil.copy(stempeg.example_stem_path(), tmp_path / "test" / "Falcon 69.stem.mp4")
    tracks = list(musdb_tracks(tmp_path, subset="test"))
    assert [name for name, _, _ in tracks] == ["Falcon 69"]
    _, audio, rate = tracks[0]
    reference, _ = example
    assert rate == SR
    for key in ("mixture", *STEMS):
        np.testing.assert_array_equal(audio[key], reference[key])


def test_musdb_tracks_errors_are_clear(tmp_path):
    with pytest.raises(StemproverError, match="no such MUSDB18 folder"):
        next(musdb_tracks(tmp_path / "missing"))
    with pytest.raises(StemproverError, match="unknown MUSDB subset"):
        next(musdb_tracks(tmp_path, subset="valid"))
    with pytest.raises(StemproverError, match="not a MUSDB18 folder"):
        next(musdb_tracks(tmp_path))
    (tmp_path / "test" / "empty").mkdir(parents=True)
    with pytest.raises(StemproverError, match="no .stem.mp4 files"):
        next(musdb_tracks(tmp_path))
    (tmp_path / "test" / "empty").rmdir()
    rng = np.random.default_rng(1)
    _write_hq_track(tmp_path / "test" / "short", rng)
    (tmp_path / "test" / "short" / "bass.wav").unlink()
    with pytest.raises(StemproverError, match="missing bass.wav"):
        next(musdb_tracks(tmp_path, is_wav=True))
