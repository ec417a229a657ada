"""Audio I/O, validation and atomic writes (stemprover.dsp.audio)."""

import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from stemprover.dsp import audio as audio_mod
from stemprover.dsp.audio import (
    check_audio,
    is_silent,
    load_audio,
    load_stems,
    loudness,
    resample,
    save_audio,
    to_channels,
    to_mono,
)
from stemprover.errors import StemproverError

SR = 16000


@pytest.fixture
def stereo():
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((2, SR))).astype(np.float32)


def _sine(freq, seconds, sr, amplitude=1.0):
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_save_and_load_round_trip(tmp_path, stereo, suffix):
    path = save_audio(tmp_path / "sub" / f"a{suffix}", stereo, SR)
    audio, sr = load_audio(path)
    assert sr == SR and audio.dtype == np.float32 and audio.shape == stereo.shape
    tolerance = 0 if suffix == ".wav" else 2.0**-15  # FLAC stores 16-bit PCM
    assert np.abs(audio - stereo).max() <= tolerance
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind


def test_load_resamples_and_mixes_down(tmp_path):
    sine = _sine(1000, 1.0, 44100, 0.5)
    path = save_audio(tmp_path / "s.wav", np.stack([sine, sine]), 44100)
    audio, sr = load_audio(path, 16000, mono=True)
    assert sr == 16000 and audio.shape == (1, 16000)
    spectrum = np.abs(np.fft.rfft(audio[0, 2000:-2000]))
    peak_hz = np.argmax(spectrum) * 16000 / (audio.shape[1] - 4000)
    assert peak_hz == pytest.approx(1000, abs=2)
    assert np.abs(audio[0, 2000:-2000]).max() == pytest.approx(0.5, abs=0.01)


def test_resample_length_and_identity():
    x = _sine(440, 0.5, 44100)
    assert resample(x, 44100, 22050).shape == (11025,)
    assert resample(np.stack([x, x]), 44100, 48000).shape == (2, 24000)
    assert np.array_equal(resample(x, 44100, 44100), x)


def _write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def _truncated_wav(tmp_path):
    full = tmp_path / "full.wav"
    sf.write(full, np.zeros((4000, 2), np.float32), SR, subtype="FLOAT")
    data = full.read_bytes()
    return _write_bytes(tmp_path / "cut.wav", data[: len(data) // 2])


def _truncated_aiff(tmp_path):
    sf.write(tmp_path / "full.aiff", np.zeros((4000, 2), np.float32), SR)
    data = (tmp_path / "full.aiff").read_bytes()
    return _write_bytes(tmp_path / "cut.aiff", data[: len(data) // 2])


def _nan_wav(tmp_path):
    samples = np.zeros((1000, 1), np.float32)
    samples[10] = np.nan
    sf.write(tmp_path / "nan.wav", samples, SR, subtype="FLOAT")
    return tmp_path / "nan.wav"


def _three_channels(tmp_path):
    sf.write(tmp_path / "three.wav", np.zeros((1000, 3), np.float32), SR, subtype="FLOAT")
    return tmp_path / "three.wav"


def _header_only(tmp_path):
    sf.write(tmp_path / "h.wav", np.zeros((0, 1), np.float32), SR, subtype="FLOAT")
    return tmp_path / "h.wav"


BAD_FILES = {
    "missing": (lambda p: p / "nope.wav", "no such file"),
    "directory": (lambda p: p, "is a directory"),
    "empty": (lambda p: _write_bytes(p / "empty.wav", b""), "empty file"),
    "text": (lambda p: _write_bytes(p / "notes.wav", b"not audio at all\n" * 20), "not a readable"),
    "truncated": (_truncated_wav, "truncated"),
    "truncated aiff": (_truncated_aiff, "truncated"),
    "no samples": (_header_only, "no samples"),
    "nan": (_nan_wav, "NaN or infinite"),
    "three channels": (_three_channels, "3 channels"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_one_line_errors_naming_the_file(tmp_path, case):
    make, expected = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(StemproverError) as info:
        load_audio(path)
    message = str(info.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_streamed_wav_with_placeholder_size_loads(tmp_path):
    # Tools writing WAV to a pipe cannot seek back, so they leave 0xFFFFFFFF as data size.
    path = tmp_path / "piped.wav"
    sf.write(path, np.full((800, 1), 0.25, np.float32), SR, subtype="FLOAT")
    data = bytearray(path.read_bytes())
    at = data.index(b"data") + 4
    data[at : at + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    audio, _ = load_audio(path)
    assert audio.shape == (1, 800) and np.all(audio == 0.25)


def test_too_short_for_one_frame(tmp_path):
    path = save_audio(tmp_path / "short.wav", np.zeros(100, np.float32), SR)
    assert load_audio(path, min_samples=100)[0].shape == (1, 100)
    with pytest.raises(StemproverError, match="too short, 100 samples but at least 1024"):
        load_audio(path, min_samples=1024)


def test_check_audio_layouts_and_dtypes():
    assert check_audio(np.zeros(5), "x").shape == (1, 5)
    pcm = check_audio(np.array([[-32768, 0, 16384]], dtype=np.int16), "pcm")
    assert pcm.dtype == np.float32 and pcm.tolist() == [[-1.0, 0.0, 0.5]]
    unsigned = check_audio(np.array([0, 128, 192], dtype=np.uint8), "u8")
    assert unsigned.tolist() == [[-1.0, 0.0, 0.5]]
    with pytest.raises(StemproverError, match="transpose"):
        check_audio(np.zeros((1000, 2)), "x")
    with pytest.raises(StemproverError, match="float array"):
        check_audio(np.array([["a"]]), "x")
    with pytest.raises(StemproverError, match="infinite"):
        check_audio(np.array([0.0, np.inf]), "x")
    with pytest.raises(StemproverError, match="shape"):
        check_audio(np.zeros((1, 2, 3)), "x")


def test_save_refuses_to_overwrite_protected_inputs(tmp_path, stereo):
    source = save_audio(tmp_path / "in.wav", stereo, SR)
    before = source.read_bytes()
    with pytest.raises(StemproverError, match="refusing to overwrite"):
        save_audio(tmp_path / "." / "in.wav", stereo * 0, SR, protect=[source])
    assert source.read_bytes() == before


def test_failed_write_leaves_nothing_behind(tmp_path, stereo, monkeypatch):
    target = save_audio(tmp_path / "out.wav", stereo, SR)
    before = target.read_bytes()

    def broken_write(file, data, *args, **kwargs):
        with open(file, "wb") as handle:  # half a file, then the disk "fills up"
            handle.write(b"RIFF\x00\x00")
        raise OSError("No space left on device")

    monkeypatch.setattr(audio_mod.sf, "write", broken_write)
    with pytest.raises(StemproverError, match="could not write audio"):
        save_audio(target, stereo * 0.5, SR)
    with pytest.raises(StemproverError, match="could not write audio"):
        save_audio(tmp_path / "new.wav", stereo, SR)
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]
    assert target.read_bytes() == before


def test_save_validates_before_writing(tmp_path):
    with pytest.raises(StemproverError, match="NaN"):
        save_audio(tmp_path / "x.wav", np.full(10, np.nan), SR)
    with pytest.raises(StemproverError, match="extension"):
        save_audio(tmp_path / "x.xyz", np.zeros(10), SR)
    assert os.listdir(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(StemproverError, match="could not write audio"):
        save_audio(tmp_path / "file" / "x.wav", np.zeros(10), SR)


def test_channel_helpers():
    mono = np.arange(4, dtype=np.float32)
    stereo = np.stack([mono, -mono])
    assert to_mono(stereo).tolist() == [[0, 0, 0, 0]]
    assert to_channels(mono, 2).shape == (2, 4)
    assert np.array_equal(to_channels(stereo, 1), to_mono(stereo))
    with pytest.raises(StemproverError):
        to_channels(stereo, 3)


def test_silence_detection():
    assert is_silent(np.zeros((2, 100)))
    assert is_silent(np.full(100, 1e-6))  # -120 dBFS
    assert not is_silent(np.full(100, 1e-4))  # -80 dBFS
    assert is_silent(np.full(100, 1e-4), threshold_db=-60)


def test_loudness_of_a_full_scale_sine():
    # ITU-R BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LUFS, and -20 dB of gain
    # reads 20 LU less.
    sine = _sine(997, 3.0, 48000)
    assert loudness(sine, 48000) == pytest.approx(-3.01, abs=0.1)
    assert loudness(0.1 * sine, 48000) == pytest.approx(-23.01, abs=0.1)
    with pytest.raises(StemproverError, match="at least 0.4 s"):
        loudness(sine[:1000], 48000)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="stem files need ffmpeg")
def test_load_stems_reads_the_stempeg_example():
    import stempeg

    path = stempeg.example_stem_path()
    stems, sr = load_stems(path)
    assert sr == 44100 and list(stems) == ["mixture", "drums", "bass", "other", "vocals"]
    shapes = {v.shape for v in stems.values()}
    assert len(shapes) == 1 and shapes.pop()[0] == 2
    # MUSDB18 mixtures are the sum of the stems up to AAC coding noise
    residual = stems["mixture"] - sum(stems[k] for k in ("drums", "bass", "other", "vocals"))
    assert np.sqrt(np.mean(residual**2)) < 0.25 * np.sqrt(np.mean(stems["mixture"] ** 2))
    assert all(not np.allclose(stems["mixture"], stems[k]) for k in list(stems)[1:])
    mixture, sr16 = load_audio(path, 16000)
    assert sr16 == 16000 and mixture.shape[0] == 2
