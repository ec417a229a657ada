"""The ``stemprover`` command under the cases of issue 12: no traceback, nothing left behind.

Each test reproduces one reported defect with the tiny 16 kHz model of ``test_cli``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_cli import RATE, _enhance, _error_line, _tone, _write, save_tiny_model

from stemprover.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The one-pass 16 kHz model of ``test_cli``, saved for this module."""
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -m stemprover ARGS`` in a fresh process, with this checkout first on the path."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "stemprover", *args], capture_output=True,
                          text=True, env=env, **kwargs)


def _error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("stemprover: error:")]


# 1. --compile ------------------------------------------------------------------------------

def test_compile_runs_on_cpu(tiny_model, tmp_path, monkeypatch):
    """A compiled model is no longer asked for its length (``forward or model``).

    Inductor takes minutes on a small shared CPU, so the test compiles with the eager
    backend: the same OptimizedModule wrapper, without code generation.
    """

    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compile_(model, backend="eager"))
    src = _write(tmp_path / "v.wav", _tone(0.3, RATE))
    assert _enhance(tiny_model, src, "-o", tmp_path / "out", "--compile", "--steps", "1") == 0
    assert (tmp_path / "out" / "v.enhanced.wav").exists()


# 2. operating-system errors while writing -------------------------------------------------

def test_output_below_a_file_names_the_path_for_every_input(tiny_model, tmp_path, capsys):
    good = _write(tmp_path / "good.wav", _tone(0.3, RATE))
    mono = _write(tmp_path / "mono.wav", _tone(0.3, RATE, 1))
    (tmp_path / "f").write_text("x\n")
    assert _enhance(tiny_model, good, mono, "-o", tmp_path / "f" / "sub") == 1
    lines = _error_lines(capsys)
    assert len(lines) == 2 and all("f/sub/" in line and "directory" in line for line in lines)


def test_unwritable_folder(tiny_model, tmp_path):
    good = _write(tmp_path / "good.wav", _tone(0.3, RATE))
    mono = _write(tmp_path / "mono.wav", _tone(0.3, RATE, 1))
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    command = ["enhance", str(good), str(mono), "-o", str(read_only), "--model",
               str(tiny_model), "-q"]
    if os.geteuid() == 0:  # root writes anywhere unless it gives up the capability
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        result = subprocess.run(
            ["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m",
             "stemprover", *command], capture_output=True, text=True, env=env)
    else:
        result = _run(*command)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 2 and all("ro/" in line and "ermission" in line for line in lines)
    assert list(read_only.iterdir()) == []


def test_long_names(tiny_model, tmp_path, capsys):
    """A 239-character name works (its temporary name is shortened); a name whose output
    would pass the 255-byte limit is one error line, and the other input still runs."""
    fits = _write(tmp_path / ("a" * 235 + ".wav"), _tone(0.3, RATE))
    assert _enhance(tiny_model, fits, "-o", tmp_path / "out") == 0
    assert (tmp_path / "out" / ("a" * 235 + ".enhanced.wav")).exists()
    too_long = _write(tmp_path / ("b" * 246 + ".wav"), _tone(0.3, RATE))
    good = _write(tmp_path / "good.wav", _tone(0.3, RATE))
    assert _enhance(tiny_model, too_long, good, "-o", tmp_path / "out2") == 1
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "bbbb" in lines[0] and "too long" in lines[0]
    assert [p.name for p in (tmp_path / "out2").iterdir()] == ["good.enhanced.wav"]


# 3. WAV written to a pipe ------------------------------------------------------------------

def _streamed(path: Path, riff_size: int, data_size: int) -> Path:
    """A WAV as a tool writing to a pipe leaves it: placeholder RIFF and data sizes."""
    _write(path, _tone(0.5, RATE), subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[4:8] = riff_size.to_bytes(4, "little")
    at = data.index(b"data") + 4
    data[at : at + 4] = data_size.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("riff_size,data_size", [(0xFFFFFFFF, 0xFFFFFFFF), (0, 0),
                                                 (0, 8000 * 4)])
def test_wav_written_to_a_pipe_is_read(tiny_model, tmp_path, capsys, riff_size, data_size):
    src = _streamed(tmp_path / "piped.wav", riff_size, data_size)
    assert _enhance(tiny_model, src, "-o", tmp_path / "out") == 0
    out = sf.read(tmp_path / "out" / "piped.enhanced.wav", always_2d=True)[0]
    assert out.shape == (8000, 2)
    ref = _write(tmp_path / "ref.wav", _tone(0.5, RATE))
    capsys.readouterr()
    assert main(["analyze", str(src), "--reference", str(ref), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["si_sdr"] > 40


# 4. signals and the folders a run makes ----------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_leaves_nothing_behind(tiny_model, tmp_path, signum):
    rng = np.random.default_rng(0)
    long = _write(tmp_path / "long.wav", (0.1 * rng.standard_normal((2, RATE * 120)))
                  .astype(np.float32))
    out = tmp_path / "made" / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "stemprover", "enhance", str(long), "-o",
                             str(out), "--model", str(tiny_model), "-q"],
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (out.is_dir() and any(out.iterdir())) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum and "Traceback" not in err, err
    assert not (tmp_path / "made").exists()  # no .tmp file, and no folder it made


def test_signal_while_naming_the_temporary_file_waits(tmp_path, monkeypatch):
    """A signal that lands between making the temporary file and remembering its name is
    held until the name is known, so the sink can still remove the file."""
    from stemprover.dsp import audio
    from stemprover.errors import Terminated, signals_raise
    from stemprover.inference import streaming

    made = audio.temporary_file

    def signalled(path):
        tmp = made(path)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before this returns
        return tmp

    monkeypatch.setattr(streaming, "temporary_file", signalled)
    with signals_raise(), pytest.raises(Terminated) as caught:
        with streaming.FileSink(tmp_path / "x.wav", RATE, 2):
            pytest.fail("the signal did not stop the write")
    assert caught.value.signum == signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_a_held_signal_raises_as_its_block_ends_and_others_at_once():
    from stemprover.errors import Terminated, signals_held, signals_raise

    order = []
    with signals_raise(), pytest.raises(Terminated):
        with signals_held():
            os.kill(os.getpid(), signal.SIGHUP)
            order.append("held")
        order.append("after")  # never reached: the held signal raises as the block ends
    assert order == ["held"]
    with signals_raise(), pytest.raises(Terminated):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs before the sleep ends
        order.append("after")
    assert order == ["held"]


def test_cancelled_write_leaves_nothing(tmp_path):
    """How --jobs stops the other jobs after a signal: their next write raises."""
    import threading

    from stemprover.inference.streaming import Cancelled, FileSink

    cancel = threading.Event()
    with pytest.raises(Cancelled):
        with FileSink(tmp_path / "x.wav", RATE, 2, cancel=cancel) as sink:
            sink.write(_tone(0.1, RATE))
            cancel.set()
            sink.write(_tone(0.1, RATE))
    assert list(tmp_path.iterdir()) == []


def test_failed_run_removes_the_folders_it_made(tiny_model, tmp_path, capsys):
    src = _write(tmp_path / "drums.wav", _tone(0.5, RATE))
    mix = _write(tmp_path / "mix.wav", _tone(0.6, RATE))  # found out while writing
    assert _enhance(tiny_model, src, "-o", tmp_path / "new" / "out", "--mixture", mix) == 1
    assert "must match" in _error_line(capsys)
    assert not (tmp_path / "new").exists()


# 5. devices ---------------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["mps", "meta", "cuda:7", "tpu"])
def test_absent_device_lists_those_present(tiny_model, tmp_path, capsys, device):
    src = _write(tmp_path / "v.wav", _tone(0.3, RATE))
    code = main(["enhance", str(src), "-o", str(tmp_path / "out"), "--model",
                 str(tiny_model), "--device", device, "-q"])
    assert code == 1
    line = _error_line(capsys)
    assert repr(device) in line and "cpu" in line
    assert not (tmp_path / "out").exists()


# 6. analyze ---------------------------------------------------------------------------------

def _speechlike(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    voiced = np.sin(2 * np.pi * 150 * t) + 0.5 * np.sin(2 * np.pi * 450 * t)
    return (0.3 * voiced * (1 + np.sin(2 * np.pi * 4 * t)) / 2).astype(np.float32)


@pytest.mark.parametrize("seconds", [0.15, 0.3])
def test_analyze_speech_too_short(tmp_path, capsys, seconds):
    clean = _speechlike(seconds)
    ref = _write(tmp_path / "ref.wav", clean)
    est = _write(tmp_path / "est.wav", clean + 0.01 * np.sin(np.arange(clean.size)))
    assert main(["analyze", str(est), "--reference", str(ref), "--speech"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Warning" not in captured.err
    assert "too short for STOI" in captured.out
    assert ("too short for PESQ" in captured.out) == (seconds < 0.25)
    assert "si_sdr" in captured.out
    assert main(["analyze", str(est), "--reference", str(ref), "--speech", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metrics"]["stoi"] is None and "too short" in report["notes"]["stoi"]


def test_speech_metrics_of_a_short_signal_are_nan():
    from stemprover.metrics.signal import pesq_wb, stoi

    clean = _speechlike(0.2)
    assert np.isnan(pesq_wb(clean, clean, RATE)) and np.isnan(stoi(clean, clean, RATE))
    assert stoi(_speechlike(1.0), _speechlike(1.0), RATE) > 0.99


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"bare {constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_analyze_silence(tmp_path, capsys):
    tone = _tone(0.5, RATE)
    ref = _write(tmp_path / "ref.wav", tone)
    silent = _write(tmp_path / "silent.wav", np.zeros_like(tone))
    assert main(["analyze", str(ref), "--reference", str(silent)]) == 1
    assert "silent.wav" in (line := _error_line(capsys)) and "silent" in line
    assert main(["analyze", str(silent), "--reference", str(ref)]) == 0
    text = capsys.readouterr().out
    si_sdr = next(line for line in text.splitlines() if "si_sdr" in line)
    assert "-inf" in si_sdr and "silent" in si_sdr
    assert main(["analyze", str(silent), "--reference", str(ref), "--json"]) == 0
    report = _strict_json(capsys.readouterr().out)
    assert report["metrics"]["si_sdr"] is None and "silent" in report["notes"]["si_sdr"]


def test_analyze_says_when_it_converts_the_reference(tmp_path, capsys):
    est = _write(tmp_path / "est.wav", _tone(0.5, 22050), 22050)
    ref = _write(tmp_path / "ref.wav", _tone(0.5, RATE, 1))
    assert main(["analyze", str(est), "--reference", str(ref)]) == 0
    err = capsys.readouterr().err
    assert "ref.wav: resampled from 16000 Hz to 22050 Hz" in err
    assert "ref.wav: converted from 1 to 2 channel" in err


def test_analyze_into_a_closed_pipe(tmp_path):
    ref = _write(tmp_path / "ref.wav", _tone(0.5, RATE))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "stemprover", "analyze", str(ref),
                             "--reference", str(ref), "--json", "--bands", "critical"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # like `| head` that has already exited
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err and "BrokenPipe" not in err, err


# 7. messages --------------------------------------------------------------------------------

def test_missing_mixture_once_before_the_model(tmp_path, capsys):
    a = _write(tmp_path / "a.wav", _tone(0.3, RATE))
    b = _write(tmp_path / "b.wav", _tone(0.3, RATE))
    no_model = tmp_path / "no_model"  # a model error would show the model was loaded first
    assert _enhance(no_model, a, b, "-o", tmp_path / "out", "--mixture",
                    tmp_path / "nosuch.wav") == 1
    line = _error_line(capsys)
    assert "--mixture" in line and "nosuch.wav: no such file" in line


def test_missing_inputs_before_the_model(tmp_path, capsys):
    a = _write(tmp_path / "a.wav", _tone(0.3, RATE))
    code = _enhance(tmp_path / "no_model", tmp_path / "x.wav", a, tmp_path / "y.wav",
                    "-o", tmp_path / "out")
    assert code == 1
    lines = _error_lines(capsys)
    assert ["x.wav" in lines[0], "y.wav" in lines[1], "not a model folder" in lines[2]] == [
        True] * 3


@pytest.mark.parametrize("spec,message", [
    ("hf_loss:0.7,,general:0.3", "empty entry"),
    ("general:0.5,general:0.7", "given twice"),
    ("general:1e-300", "between"),
    ("general:1e300", "between"),
])
def test_adapter_specs_refused_before_the_model(tmp_path, capsys, spec, message):
    a = _write(tmp_path / "a.wav", _tone(0.3, RATE))
    assert _enhance(tmp_path / "no_model", a, "-o", tmp_path / "out", "--adapter", spec) == 1
    assert message in _error_line(capsys)


def test_bad_stem_file_gives_ffmpegs_reason(tiny_model, tmp_path, capsys):
    bad = tmp_path / "bad.stem.mp4"
    bad.write_text("not a stem file\n")
    assert _enhance(tiny_model, bad, "-o", tmp_path / "out", "--stem", "vocals") == 1
    line = _error_line(capsys)
    assert "bad.stem.mp4" in line and "Warning" not in line and "Invalid data" in line


def test_config_that_does_not_fit_names_the_folder(tiny_model, tmp_path, capsys):
    broken = tmp_path / "broken_model"
    shutil.copytree(tiny_model, broken)
    meta = json.loads((broken / "stemprover.json").read_text())
    meta["config"]["block_out_channels"] = [8, 12]  # 12 is no multiple of the norm groups
    (broken / "stemprover.json").write_text(json.dumps(meta))
    src = _write(tmp_path / "v.wav", _tone(0.3, RATE))
    assert _enhance(broken, src, "-o", tmp_path / "out") == 1
    assert "broken_model" in _error_line(capsys)


def test_non_utf8_file_name(tiny_model, tmp_path, capsys):
    src = tmp_path / os.fsdecode(b"caf\xe9 vocals.wav")
    sf.write(os.fsencode(src), _tone(0.3, RATE).T, RATE)
    assert _enhance(tiny_model, src, "-o", tmp_path / "out") == 0
    assert (tmp_path / "out" / os.fsdecode(b"caf\xe9 vocals.enhanced.wav")).exists()
    assert "caf\\xe9 vocals.wav ->" in capsys.readouterr().out
    assert main(["analyze", str(src), "--reference", str(src)]) == 0
    assert "surrogates" not in capsys.readouterr().err


# 8. what a stem tool is expected to do ------------------------------------------------------

@pytest.mark.parametrize("fmt,subtype", [("float32", "FLOAT"), ("pcm16", "PCM_16"),
                                         ("pcm24", "PCM_24")])
def test_output_format(tiny_model, tmp_path, fmt, subtype):
    from stemprover import cli
    from stemprover.inference import enhance

    assert cli.OUTPUT_FORMATS == tuple(enhance.OUTPUT_FORMATS)  # cli keeps torch out of --help
    src = _write(tmp_path / "v.wav", _tone(0.3, RATE))
    assert _enhance(tiny_model, src, "-o", tmp_path, "--format", fmt) == 0
    assert sf.info(tmp_path / "v.enhanced.wav").subtype == subtype


def test_filename_template(tiny_model, tmp_path, capsys):
    song = tmp_path / "song"
    song.mkdir()
    vocals, drums = (_write(song / f"{name}.wav", _tone(0.3, RATE)) for name in ("vocals", "drums"))
    out = tmp_path / "out"
    assert _enhance(tiny_model, vocals, drums, "-o", out, "--filename",
                    "{folder}/{track}.{ext}") == 0
    assert sorted(p.name for p in (out / "song").iterdir()) == ["drums.wav", "vocals.wav"]
    for template, message in (("{nope}.wav", "unknown field"), ("../{track}.wav", "inside"),
                              ("{track}.flac", "WAV"), ("same.wav", "same output")):
        assert _enhance(tiny_model, vocals, drums, "-o", out, "--filename", template) == 1
        assert message in _error_line(capsys)


def test_existing_output_needs_overwrite(tiny_model, tmp_path, capsys):
    src = _write(tmp_path / "vocals.wav", _tone(0.3, RATE))
    out = tmp_path / "cleaned"
    assert _enhance(tiny_model, src, "-o", out) == 0
    target = out / "vocals.enhanced.wav"
    before = target.read_bytes()
    other = _write(tmp_path / "other" / "vocals.wav", _tone(0.3, RATE) * 0.5) if (
        tmp_path / "other").mkdir() is None else None
    capsys.readouterr()
    assert _enhance(tiny_model, other, "-o", out) == 1
    assert "--overwrite" in _error_line(capsys) and target.read_bytes() == before
    assert _enhance(tiny_model, other, "-o", out, "--overwrite") == 0
    assert target.read_bytes() != before


def test_stem_on_plain_files_is_refused(tiny_model, tmp_path, capsys):
    src = _write(tmp_path / "drums.wav", _tone(0.3, RATE))
    assert _enhance(tiny_model, src, "-o", tmp_path / "out", "--stem", "drums") == 1
    assert ".stem.mp4" in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_outputs_have_the_usual_mode(tiny_model, tmp_path):
    from stemprover.dsp.audio import save_audio

    umask = os.umask(0o022)
    try:
        src = _write(tmp_path / "v.wav", _tone(0.3, RATE))
        assert _enhance(tiny_model, src, "-o", tmp_path / "out") == 0
        saved = save_audio(tmp_path / "saved.wav", _tone(0.1, RATE), RATE)
    finally:
        os.umask(umask)
    assert (tmp_path / "out" / "v.enhanced.wav").stat().st_mode & 0o777 == 0o644
    assert saved.stat().st_mode & 0o777 == 0o644


def test_readme_quotes_the_stem_track_path():
    section = (REPO / "README.md").read_text().split("## Cleaning your own stems")[1]
    section = section.split("\n## ")[0]
    assert "`track.stem.mp4` is then `\"$(python" in section
    assert "stemprover --help` lists every option" not in section


def test_top_level_help_shows_the_common_options(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for option in ("-o OUTDIR", "--mixture", "--stem", "--steps", "--format", "--jobs",
                   "stemprover enhance --help"):
        assert option in text


def test_jobs_give_the_same_files(tiny_model, tmp_path, capsys):
    inputs = [_write(tmp_path / f"{k}.wav", _tone(0.3 + 0.1 * k, RATE)) for k in range(3)]
    assert _enhance(tiny_model, *inputs, "-o", tmp_path / "one") == 0
    assert _enhance(tiny_model, *inputs, "-o", tmp_path / "three", "--jobs", "3") == 0
    for k in range(3):
        one, three = (sf.read(tmp_path / folder / f"{k}.enhanced.wav")[0]
                      for folder in ("one", "three"))
        # Thread pools may sum in another order: equal to float32 rounding, not bit for bit.
        np.testing.assert_allclose(three, one, atol=1e-6)
    assert len(capsys.readouterr().out.strip().splitlines()) == 6


def test_default_threads_is_documented(capsys):
    from stemprover.cli import DEFAULT_THREADS

    with pytest.raises(SystemExit):
        main(["enhance", "--help"])
    assert f"default {DEFAULT_THREADS}" in capsys.readouterr().out.replace("\n", " ")


# 9. silence next to sound -------------------------------------------------------------------

def test_silence_next_to_sound_stays_silent(tiny_model, tmp_path):
    quiet = np.zeros((2, int(0.3 * RATE)), np.float32)
    audio = np.concatenate([quiet, _tone(0.4, RATE), quiet], axis=1)
    src = _write(tmp_path / "gap.wav", audio)
    assert _enhance(tiny_model, src, "-o", tmp_path / "out") == 0
    out = sf.read(tmp_path / "out" / "gap.enhanced.wav", always_2d=True)[0].T
    silent = audio == 0
    silent[:, quiet.shape[1] : -quiet.shape[1]] = False  # zero crossings of the tone
    assert np.abs(out[silent]).max(initial=0.0) < 10 ** (-90 / 20)
    assert np.abs(out - audio).max() > 1e-4  # the model did change the sound


def test_silence_mask():
    from stemprover.inference.enhance import silence_mask

    rate = 10000
    audio = np.ones((2, 1000), np.float32)
    audio[0, 300:600] = 0.0  # a silent region
    audio[1, 500] = 0.0  # a zero crossing, not silence
    mask = silence_mask(audio, rate)
    assert (mask[0, 300:600] == 0).all() and (mask[1] == 1).all()
    assert (mask[0, :280] == 1).all() and (mask[0, 620:] == 1).all()
    assert 0 < mask[0, 290] < 1 and np.all(np.diff(mask[0, 280:300]) <= 0)
