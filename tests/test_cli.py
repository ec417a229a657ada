"""The ``stemprover`` command: outputs, summaries and every kind of bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stemprover.cli import main

RATE = 16000
TINY = dict(n_fft=64, hop_length=32, segment_frames=64, block_out_channels=(8, 16),
            cross_attention_dim=16, condition_channels=8)
"""A 16 kHz model small enough for a test; one frame is 64 samples (4 ms)."""


def save_tiny_model(folder: Path) -> Path:
    """A one-pass model at 16 kHz, made and saved on the spot (fast and deterministic)."""
    from stemprover.model import RegressionModel, model_config

    model = RegressionModel(model_config("smoke", **TINY))
    with torch.no_grad():  # an untrained model is the identity; this one changes its input
        model.unet.conv_out.weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(0))
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def _tone(seconds: float, rate: int, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.2 * np.sin(2 * np.pi * 330 * t) + 0.05 * np.sin(2 * np.pi * 3100 * t)
    return np.stack([wave * (0.5 + 0.5 * c) for c in range(channels)]).astype(np.float32)


def _write(path: Path, audio: np.ndarray, rate: int = RATE, subtype: str = "FLOAT") -> Path:
    sf.write(path, audio.T, rate, subtype=subtype)
    return path


def _enhance(tiny_model, *args) -> int:
    return main(["enhance", *map(str, args), "--model", str(tiny_model), "--device", "cpu",
                 "-q"])


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("stemprover: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("rate,channels,seconds", [(RATE, 2, 1.3), (8000, 1, 0.7),
                                                   (96000, 2, 0.4), (44100, 1, 0.5)])
def test_enhance_keeps_rate_length_channels(tiny_model, tmp_path, capsys, rate, channels,
                                             seconds):
    audio = _tone(seconds, rate, channels)
    src = _write(tmp_path / "vocals.wav", audio, rate)
    assert _enhance(tiny_model, src, "-o", tmp_path / "out") == 0
    out, out_rate = sf.read(tmp_path / "out" / "vocals.enhanced.wav", always_2d=True)
    assert out_rate == rate and out.shape == audio.T.shape
    assert np.isfinite(out).all()
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "real-time factor" in summary[0]
    assert f"{seconds:.1f} s of audio" in summary[0]


def test_silence_in_silence_out(tiny_model, tmp_path):
    src = _write(tmp_path / "quiet.wav", np.zeros((2, 9000), np.float32))
    assert _enhance(tiny_model, src, "-o", tmp_path / "out") == 0
    out, _ = sf.read(tmp_path / "out" / "quiet.enhanced.wav", always_2d=True)
    assert out.shape == (9000, 2) and not out.any()


def test_mixture_and_options(tiny_model, tmp_path):
    src = _write(tmp_path / "bass.wav", _tone(1.0, RATE))
    mix = _write(tmp_path / "song.wav", 2 * _tone(1.0, RATE))
    code = _enhance(tiny_model, src, "-o", tmp_path / "o", "--mixture", mix, "--steps", "2",
                    "--strength", "0.3", "--adapter", "hf_loss:0.7,general:0.3",
                    "--batch-size", "3", "--seed", "5", "--threads", "1")
    assert code == 0 and (tmp_path / "o" / "bass.enhanced.wav").exists()


def _truncated(path: Path) -> Path:
    _write(path, _tone(1.0, RATE), subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _nan(path: Path) -> Path:
    audio = _tone(1.0, RATE)
    audio[1, 5000] = np.nan
    return _write(path, audio)


def _inf(path: Path) -> Path:
    audio = _tone(1.0, RATE)
    audio[0, 7] = np.inf
    return _write(path, audio)


BAD_INPUTS = {
    "missing": (lambda p: p, "no such file"),
    "directory": (lambda p: (p.mkdir(), p)[1], "directory"),
    "non_audio": (lambda p: (p.write_text("this is not audio\n" * 50), p)[1], "not a readable"),
    "truncated": (_truncated, "truncated"),
    "empty": (lambda p: (p.write_bytes(b""), p)[1], "empty"),
    "nan": (_nan, "NaN"),
    "inf": (_inf, "infinite"),
    "shorter_than_frame": (lambda p: _write(p, _tone(0.002, RATE)), "too short"),
    "six_channels": (lambda p: _write(p, np.zeros((6, 4000), np.float32)), "6 channels"),
    "rate_4k": (lambda p: _write(p, _tone(1.0, 4000), 4000), "8-96 kHz"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input(tiny_model, tmp_path, capsys, case):
    make, message = BAD_INPUTS[case]
    src = make(tmp_path / "in.wav")
    out_dir = tmp_path / "out"
    assert _enhance(tiny_model, src, "-o", out_dir) == 1
    line = _error_line(capsys)
    assert "in.wav" in line and message in line
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_mixture_of_different_length(tiny_model, tmp_path, capsys):
    src = _write(tmp_path / "drums.wav", _tone(1.0, RATE))
    mix = _write(tmp_path / "mix.wav", _tone(1.2, RATE))
    assert _enhance(tiny_model, src, "-o", tmp_path / "out", "--mixture", mix) == 1
    line = _error_line(capsys)
    assert "mix.wav" in line and "must match" in line
    assert not (tmp_path / "out").exists()  # the folder it made is removed again


def _edit_config(folder: Path) -> None:
    meta = json.loads((folder / "stemprover.json").read_text())
    meta["config"]["cross_attention_dim"] = 32  # the saved embeddings are 16 wide
    (folder / "stemprover.json").write_text(json.dumps(meta))


def _cut_weights(folder: Path) -> None:
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


@pytest.mark.parametrize("damage", [_edit_config, _cut_weights])
def test_model_that_does_not_match_config(tiny_model, tmp_path, capsys, damage):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    damage(broken)
    src = _write(tmp_path / "other.wav", _tone(0.5, RATE))
    assert _enhance(broken, src, "-o", tmp_path / "out") == 1
    line = _error_line(capsys)
    assert "broken" in line
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_not_a_model_folder(tmp_path, capsys):
    src = _write(tmp_path / "other.wav", _tone(0.5, RATE))
    assert _enhance(tmp_path, src, "-o", tmp_path / "out") == 1
    assert "not a model folder" in _error_line(capsys)


def test_bad_option_values(tiny_model, tmp_path, capsys):
    src = _write(tmp_path / "v.wav", _tone(0.5, RATE))
    for option in (["--steps", "0"], ["--strength", "2"], ["--adapter", "reverb"],
                   ["--batch-size", "0"]):
        assert _enhance(tiny_model, src, "-o", tmp_path / "out", *option) == 1
        _error_line(capsys)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_one_bad_file_does_not_stop_the_others(tiny_model, tmp_path, capsys):
    good = _write(tmp_path / "good.wav", _tone(0.5, RATE))
    assert _enhance(tiny_model, tmp_path / "missing.wav", good, "-o", tmp_path / "out") == 1
    assert "missing.wav" in _error_line(capsys)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.enhanced.wav"]


def test_never_overwrites_an_input(tiny_model, tmp_path, capsys):
    src = _write(tmp_path / "a.wav", _tone(0.5, RATE))
    victim = _write(tmp_path / "a.enhanced.wav", _tone(0.5, RATE))
    before = victim.read_bytes()
    assert _enhance(tiny_model, src, victim, "-o", tmp_path) == 1
    assert "overwrite" in capsys.readouterr().err
    assert victim.read_bytes() == before


def test_analyze_prints_metrics_and_bands(tmp_path, capsys):
    clean = _tone(1.0, 22050)
    noisy = clean + 0.01 * np.random.default_rng(0).standard_normal(clean.shape)
    ref = _write(tmp_path / "ref.wav", clean, 22050)
    est = _write(tmp_path / "est.wav", noisy.astype(np.float32), 22050)
    assert main(["analyze", str(est), "--reference", str(ref), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metrics"]["si_sdr"] > 10
    assert {"band", "phase_dev", "mag_error_db"} <= set(report["bands"][0])
    assert main(["analyze", str(est), "--reference", str(ref)]) == 0
    text = capsys.readouterr().out
    assert "si_sdr" in text and "phase_dev" in text
    short = _write(tmp_path / "short.wav", clean[:, :1000], 22050)
    assert main(["analyze", str(short), "--reference", str(ref)]) == 1
    assert "must match" in _error_line(capsys)


def test_help_does_not_import_torch():
    code = ("import sys\nfrom stemprover.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "enhance" in result.stdout and "analyze" in result.stdout


def test_python_dash_m(tmp_path):
    result = subprocess.run([sys.executable, "-m", "stemprover", "enhance", "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "--mixture" in result.stdout


def test_stem_file_input(tiny_model, tmp_path, capsys):
    import stempeg

    track = Path(stempeg.example_stem_path())
    assert _enhance(tiny_model, track, "-o", tmp_path / "out") == 1
    assert "--stem" in _error_line(capsys)
    assert _enhance(tiny_model, track, "-o", tmp_path / "out", "--stem", "bass") == 0
    name = track.name[: -len(".stem.mp4")] + ".bass.enhanced.wav"
    out, rate = sf.read(tmp_path / "out" / name, always_2d=True)
    assert rate == 44100 and out.shape[1] == 2 and out.shape[0] > 5 * rate


def test_preview_draws_input_output_and_their_change_next_to_the_output(tiny_model, tmp_path,
                                                                         capsys):
    import matplotlib.image

    src = _write(tmp_path / "vocals.wav", _tone(1.0, RATE))
    assert _enhance(tiny_model, src, "-o", tmp_path / "out", "--preview") == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["vocals.enhanced.png", "vocals.enhanced.wav"]
    assert matplotlib.image.imread(out / "vocals.enhanced.png").shape[:2] == (600, 800)
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 2 and summary[1].endswith("vocals.enhanced.png: preview")


def test_preview_of_a_stem_file_draws_the_chosen_stem(tiny_model, tmp_path):
    import stempeg

    track = Path(stempeg.example_stem_path())
    assert _enhance(tiny_model, track, "-o", tmp_path, "--stem", "vocals", "--preview") == 0
    name = track.name[: -len(".stem.mp4")] + ".vocals.enhanced.png"
    assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_preview_never_replaces_a_file_without_overwrite(tiny_model, tmp_path, capsys):
    src = _write(tmp_path / "v.wav", _tone(0.5, RATE))
    out = tmp_path / "out"
    out.mkdir()
    old = out / "v.enhanced.png"
    old.write_bytes(b"a picture of someone else's")
    assert _enhance(tiny_model, src, "-o", out, "--preview") == 1
    assert "v.enhanced.png: already exists; pass --overwrite" in _error_line(capsys)
    assert old.read_bytes() == b"a picture of someone else's"
    assert sorted(p.name for p in out.iterdir()) == ["v.enhanced.png"]
    assert _enhance(tiny_model, src, "-o", out, "--preview", "--overwrite") == 0
    assert old.read_bytes().startswith(b"\x89PNG")


def _song_files(folder: Path, seconds: float = 1.0, names=None) -> tuple[dict, Path]:
    """Four panned tones with 30% of the next one each (bleed), their mixture, as files."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    stems = ("vocals", "drums", "bass", "other")
    sources = {s: np.stack([0.2 * np.sin(2 * np.pi * f * t), 0.1 * np.sin(2 * np.pi * f * t + 1)])
               + 0.01 * rng.standard_normal((2, t.size))
               for s, f in zip(stems, (440.0, 1500.0, 110.0, 3000.0))}
    names = names or {s: f"song_{s}.wav" for s in stems}
    paths = {s: _write(folder / names[s], (sources[s] + 0.3 * sources[stems[(i + 1) % 4]])
                       .astype(np.float32)) for i, s in enumerate(stems)}
    return paths, _write(folder / "song.wav", sum(sources.values()).astype(np.float32))


def test_project_cleans_the_four_projected_stems(tiny_model, tmp_path):
    from stemprover.inference.enhance import enhance
    from stemprover.inference.projection import project
    from stemprover.model import load_model

    paths, mix = _song_files(tmp_path)
    assert _enhance(tiny_model, *paths.values(), "--mixture", mix, "--project",
                    "-o", tmp_path / "out") == 0
    stems = {s: sf.read(p, dtype="float32", always_2d=True)[0].T for s, p in paths.items()}
    mixture = sf.read(mix, dtype="float32", always_2d=True)[0].T
    projected = project(stems, RATE, mixture)
    model = load_model(tiny_model)
    for stem, path in paths.items():
        out = sf.read(tmp_path / "out" / f"{path.stem}.enhanced.wav", dtype="float32",
                      always_2d=True)[0].T
        expected = enhance(projected[stem], RATE, model, mixture=mixture)
        np.testing.assert_allclose(out, expected, atol=1e-5)
        assert np.abs(out - expected).max() < 1e-5 < np.abs(out - stems[stem]).max()


@pytest.mark.parametrize("case,message", [
    ("no_mixture", "--project needs --mixture"),
    ("three", r"one file each; got other \(0 files\)"),
    ("two_names", "this one names 2"),
    ("short_mixture", "they must match"),
])
def test_project_refuses_what_is_not_one_song(tiny_model, tmp_path, capsys, case, message):
    names = ({s: f"{s}.wav" for s in ("vocals", "drums", "bass", "other")} if case != "two_names"
             else {"vocals": "vocals_and_bass.wav", "drums": "drums.wav", "bass": "bass.wav",
                   "other": "other.wav"})
    paths, mix = _song_files(tmp_path, names=names)
    inputs = [p for s, p in paths.items() if not (case == "three" and s == "other")]
    options = [] if case == "no_mixture" else ["--mixture", mix]
    if case == "short_mixture":
        options = ["--mixture", _write(tmp_path / "short.wav", np.zeros((2, 4000), np.float32))]
    assert _enhance(tiny_model, *inputs, *options, "--project", "-o", tmp_path / "out") == 1
    assert re.search(message, _error_line(capsys))
    assert not (tmp_path / "out").exists()  # nothing written, no folder left behind
