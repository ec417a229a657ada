"""The ``stemprover`` command under the cases of issue 12: no traceback, nothing left behind.

Each test reproduces one reported defect with the tiny 16 kHz model of ``test_cli``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
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

def _start_long_run(tiny_model, tmp_path, out):
    """``enhance`` of a 2-minute file into ``out``, returned once its first file exists."""
    rng = np.random.default_rng(0)
    long = _write(tmp_path / "long.wav", (0.1 * rng.standard_normal((2, RATE * 120)))
                  .astype(np.float32))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "stemprover", "enhance", str(long), "-o",
                             str(out), "--model", str(tiny_model), "-q"],
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (out.is_dir() and any(out.iterdir())) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    return proc


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_leaves_nothing_behind(tiny_model, tmp_path, signum):
    out = tmp_path / "made" / "out"
    proc = _start_long_run(tiny_model, tmp_path, out)
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


# 10. operating-system errors, each in one line that names the path ------------------------

def _without_privileges(command: list[str]) -> list[str] | None:
    """``command`` run so that file permissions apply: as root, without the capabilities
    that bypass them (setpriv, else capsh); None where neither tool exists."""
    if os.geteuid() != 0:
        return command
    if shutil.which("setpriv"):
        return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    if shutil.which("capsh"):
        return ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c",
                " ".join(map(shlex.quote, command))]
    return None


@pytest.mark.parametrize("case", ["input_in_folder", "folder_as_input", "output_in_folder",
                                  "analyze"])
def test_permission_denied_is_one_line_naming_the_path(tiny_model, tmp_path, case):
    good = _write(tmp_path / "good.wav", _tone(0.3, RATE))
    locked = tmp_path / "locked"
    locked.mkdir()
    _write(locked / "a.wav", _tone(0.3, RATE))
    args = {
        "input_in_folder": ["enhance", str(locked / "a.wav"), "-o", str(tmp_path / "out")],
        "folder_as_input": ["enhance", str(locked), "-o", str(tmp_path / "out")],
        "output_in_folder": ["enhance", str(good), "-o", str(locked / "out")],
        "analyze": ["analyze", str(locked / "a.wav"), "--reference", str(good)],
    }[case]
    if case != "analyze":
        args += ["--model", str(tiny_model), "--device", "cpu", "-q"]
    command = _without_privileges([sys.executable, "-m", "stemprover", *args])
    if command is None:
        pytest.skip("running as root, and neither setpriv nor capsh can drop its privileges")
    locked.chmod(0o600)  # readable, but not to be entered (no x bit)
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                env=dict(os.environ, PYTHONPATH=str(REPO)))
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("stemprover: ")]
    assert len(lines) == 1, result.stderr
    assert "locked" in lines[0] and lines[0].endswith("permission denied"), lines[0]
    assert not (tmp_path / "out").exists() and sorted(os.listdir(locked)) == ["a.wav"]


@pytest.mark.parametrize("code,phrase", [
    (errno.EACCES, "permission denied"), (errno.EPERM, "permission denied"),
    (errno.ENOSPC, "no space left on device"), (errno.ELOOP, "too many levels of symbolic links"),
    (errno.ENOENT, "no such file"), (errno.EISDIR, "is a directory"),
    (errno.EDQUOT, "disk quota exceeded"), (errno.EROFS, "read-only file system"),
    (errno.ENAMETOOLONG, "file name too long"), (errno.EXDEV, "invalid cross-device link"),
])
def test_os_errors_have_one_phrase(code, phrase):
    from stemprover.errors import os_error, os_reason

    err = OSError(code, os.strerror(code), "some/file.wav")
    assert os_reason(err) == os_reason(code) == phrase
    assert str(os_error(err)) == f"some/file.wav: {phrase}"
    assert str(os_error(err, "other.wav", "cannot write")) == f"other.wav: cannot write ({phrase})"


def test_reading_maps_os_errors(tmp_path, monkeypatch):
    """Whatever fails while a file is checked or read, the message is the same phrase."""
    from stemprover.dsp import audio
    from stemprover.errors import StemproverError

    src = _write(tmp_path / "v.wav", _tone(0.3, RATE))

    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(audio, "open", denied, raising=False)  # the check's trial open
    with pytest.raises(StemproverError, match=r"v\.wav: permission denied$"):
        audio.load_audio(src)
    monkeypatch.undo()
    monkeypatch.setattr(audio, "open_sound", denied)  # soundfile's own open
    with pytest.raises(StemproverError, match=r"v\.wav: permission denied$"):
        audio.sound_info(src)


def test_writing_maps_os_errors(tmp_path, monkeypatch, capsys, tiny_model):
    src = _write(tmp_path / "v.wav", _tone(0.3, RATE))
    opened = sf.SoundFile

    def denied(path, mode="r", *args, **kwargs):
        if "w" not in mode:
            return opened(path, mode, *args, **kwargs)
        raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))

    monkeypatch.setattr(sf, "SoundFile", denied)
    assert _enhance(tiny_model, src, "-o", tmp_path / "out") == 1
    assert _error_line(capsys).endswith("v.enhanced.wav: cannot write (permission denied)")
    assert not (tmp_path / "out").exists()


def test_full_disk_says_so(tiny_model, tmp_path, capsys, monkeypatch):
    """libsndfile only says "System error."; the cause is in its log (/dev/full here)."""
    from stemprover.dsp import audio
    from stemprover.inference import streaming

    made = []

    def on_full_disk(path):
        tmp = audio.temporary_file(path)
        tmp.unlink()
        tmp.symlink_to("/dev/full")  # removing it later removes the link, not the device
        made.append(tmp)
        return tmp

    monkeypatch.setattr(streaming, "temporary_file", on_full_disk)
    src = _write(tmp_path / "v.wav", _tone(0.3, RATE))
    assert _enhance(tiny_model, src, "-o", tmp_path / "out") == 1
    line = _error_line(capsys)
    assert line.endswith("out/v.enhanced.wav: cannot write (no space left on device)"), line
    assert made and not os.path.lexists(made[0]) and os.path.exists("/dev/full")
    assert not (tmp_path / "out").exists()  # the folder it made is removed again


def test_disk_that_fills_while_writing(tiny_model, tmp_path):
    """A 64 KiB file system (tmpfs in a mount namespace) fills up in the middle of the
    output: one line saying so, and nothing left in it."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare to mount a small file system")
    small = tmp_path / "small"
    small.mkdir()
    src = _write(tmp_path / "v.wav", _tone(1.0, RATE))  # 128 KiB of float32 output
    script = ('mount -t tmpfs -o size=64k tmpfs "$1" || exit 99; "$2" -m stemprover enhance '
              '"$3" -o "$1/out" --model "$4" --device cpu -q; code=$?; echo LEFT; '
              'ls -A "$1/out" 2>/dev/null; exit $code')
    result = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(small),
                             sys.executable, str(src), str(tiny_model)],
                            capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    if result.returncode == 99 or "unshare:" in result.stderr:
        pytest.skip(f"cannot mount a small file system here: {result.stderr.strip()[:200]}")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].endswith(
        "out/v.enhanced.wav: cannot write (no space left on device)"), result.stderr
    assert result.stdout.split("LEFT")[1].split() == []


def test_symbolic_link_loop(tiny_model, tmp_path, capsys):
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop.name)
    ref = _write(tmp_path / "ref.wav", _tone(0.3, RATE))
    assert _enhance(tiny_model, loop, "-o", tmp_path / "out") == 1
    assert _error_line(capsys).endswith("loop.wav: too many levels of symbolic links")
    assert main(["analyze", str(loop), "--reference", str(ref)]) == 1
    assert _error_line(capsys).endswith("loop.wav: too many levels of symbolic links")
    assert main(["enhance", str(ref), "-o", str(tmp_path / "o"), "--mixture", str(loop),
                 "--model", str(tmp_path / "no_model")]) == 1
    assert "too many levels of symbolic links" in _error_line(capsys)
    looped = tmp_path / "folder"  # found by a folder scan, it gets its own line too
    looped.mkdir()
    (looped / "x.wav").symlink_to("x.wav")
    shutil.copy(ref, looped / "y.wav")
    assert _enhance(tiny_model, looped, "-o", tmp_path / "out2") == 1
    assert _error_line(capsys).endswith("x.wav: too many levels of symbolic links")
    assert [p.name for p in (tmp_path / "out2").iterdir()] == ["y.enhanced.wav"]


def test_a_pipe_is_refused_as_a_pipe(tiny_model, tmp_path, capsys):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)  # nothing writes to it: reading it would wait for ever
    assert _enhance(tiny_model, fifo, "-o", tmp_path / "out") == 1
    assert "pipe.wav: is a pipe, not a file" in _error_line(capsys)
    ref = _write(tmp_path / "ref.wav", _tone(0.3, RATE))
    result = _run("analyze", "/dev/stdin", "--reference", str(ref), input="RIFF", timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == ("stemprover: error: /dev/stdin: is a pipe, not a file; "
                                     "save what it carries to a file first")


def test_help_says_pipes_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["enhance", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a pipe (/dev/stdin, a FIFO) is refused" in text


# 11. names, and outputs that must not be replaced ------------------------------------------

@pytest.mark.parametrize("template", ["{track.upper}.wav", "{track[0]}.wav", "{track!r}.wav",
                                      "{track:>20}.wav", "{track.__class__}.wav", "{0}.wav",
                                      "{}.wav", "{track}.wav}", "{track"])
def test_filename_accepts_only_its_plain_fields(tmp_path, capsys, template):
    src = _write(tmp_path / "v.wav", _tone(0.3, RATE))
    # no model folder: the template must be refused before anything is loaded
    assert _enhance(tmp_path / "no_model", src, "-o", tmp_path / "out", "--filename",
                    template) == 1
    line = _error_line(capsys)
    assert line.startswith(f"stemprover: error: --filename {template!r}: "), line
    assert not (tmp_path / "out").exists()


def test_output_that_appears_while_writing_is_not_replaced(tiny_model, tmp_path, capsys,
                                                           monkeypatch):
    """Another process writes the same name meanwhile (``vocals.wav`` and ``b/vocals.wav``
    into one folder): the second to finish fails instead of replacing the first."""
    from stemprover.inference import enhance

    src = _write(tmp_path / "vocals.wav", _tone(0.3, RATE))
    target = tmp_path / "out" / "vocals.enhanced.wav"
    run = enhance.Enhancer.run

    def with_a_rival(self, source, sink, *args, **kwargs):
        run(self, source, sink, *args, **kwargs)
        target.write_bytes(b"the other process's output")

    monkeypatch.setattr(enhance.Enhancer, "run", with_a_rival)
    assert _enhance(tiny_model, src, "-o", tmp_path / "out") == 1
    line = _error_line(capsys)
    assert "vocals.enhanced.wav: already exists" in line and "--overwrite" in line
    assert target.read_bytes() == b"the other process's output"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["vocals.enhanced.wav"]
    assert _enhance(tiny_model, src, "-o", tmp_path / "out", "--overwrite") == 0
    assert sf.read(target)[0].shape == (int(0.3 * RATE), 2)


def test_exclusive_publish_without_hard_links(tmp_path, monkeypatch):
    """Where the file system has no hard links, the name is checked just before the rename."""
    from stemprover.dsp.audio import publish, temporary_file

    def no_links(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "x.wav"
    tmp = temporary_file(target)
    tmp.write_bytes(b"new")
    publish(tmp, target, replace=False)
    assert target.read_bytes() == b"new" and not tmp.exists()
    tmp = temporary_file(target)
    tmp.write_bytes(b"newer")
    with pytest.raises(FileExistsError):
        publish(tmp, target, replace=False)
    assert target.read_bytes() == b"new" and tmp.read_bytes() == b"newer"


def test_two_inputs_with_one_output_are_refused_before_any_work(tmp_path, capsys):
    a = _write(tmp_path / "vocals.wav", _tone(0.3, RATE))
    (tmp_path / "b").mkdir()
    b = _write(tmp_path / "b" / "vocals.wav", _tone(0.3, RATE))
    assert _enhance(tmp_path / "no_model", a, b, "-o", tmp_path / "out") == 1
    assert "would write the same output" in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_skip_existing_draws_the_missing_previews(tiny_model, tmp_path, capsys):
    src = _write(tmp_path / "vocals.wav", _tone(0.5, RATE))
    out = tmp_path / "out"
    assert _enhance(tiny_model, src, "-o", out) == 0
    wav = out / "vocals.enhanced.wav"
    before = (wav.read_bytes(), wav.stat().st_mtime_ns)
    capsys.readouterr()
    # no model at all: the existing output is drawn, not made again
    assert _enhance(tmp_path / "no_model", src, "-o", out, "--skip-existing", "--preview") == 0
    assert (out / "vocals.enhanced.png").read_bytes().startswith(b"\x89PNG")
    assert (wav.read_bytes(), wav.stat().st_mtime_ns) == before
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "vocals.enhanced.png: preview" in lines[0]
    assert _enhance(tmp_path / "no_model", src, "-o", out, "--skip-existing", "--preview") == 0
    assert "exists, skipped" in capsys.readouterr().out


def test_a_preview_without_its_output_says_what_to_do(tiny_model, tmp_path, capsys):
    src = _write(tmp_path / "vocals.wav", _tone(0.5, RATE))
    out = tmp_path / "out"
    out.mkdir()
    (out / "vocals.enhanced.png").write_bytes(b"an old picture")
    assert _enhance(tiny_model, src, "-o", out, "--skip-existing", "--preview") == 1
    line = _error_line(capsys)
    assert "vocals.enhanced.png: already exists but vocals.enhanced.wav does not" in line
    assert "remove it" in line


@pytest.mark.parametrize("template", [None, "{track}.clean.wav"])
def test_a_folder_cleaned_into_itself_twice(tiny_model, tmp_path, capsys, template):
    folder = tmp_path / "d"
    folder.mkdir()
    _write(folder / "a.wav", _tone(0.3, RATE))
    naming = [] if template is None else ["--filename", template]
    output = "a.enhanced.wav" if template is None else "a.clean.wav"
    assert _enhance(tiny_model, folder, "-o", folder, *naming) == 0
    made = (folder / output).read_bytes()
    assert _enhance(tiny_model, folder, "-o", folder, *naming, "--skip-existing") == 0
    assert sorted(os.listdir(folder)) == sorted(["a.wav", output])
    assert (folder / output).read_bytes() == made
    capsys.readouterr()
    assert _enhance(tiny_model, folder, "-o", folder, *naming) == 1  # a.wav's output exists
    assert f"{output}: already exists" in _error_line(capsys)
    assert sorted(os.listdir(folder)) == sorted(["a.wav", output])


def test_empty_output_folder_name_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = _write(tmp_path / "v.wav", _tone(0.3, RATE))
    assert _enhance(tmp_path / "no_model", src, "-o", "") == 1
    assert "output folder name is empty" in _error_line(capsys)
    assert os.listdir(tmp_path) == ["v.wav"]


def _hold_lock(path: Path) -> int:
    descriptor = os.open(path, os.O_RDONLY)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return descriptor


def test_stale_temporary_files_are_removed_and_nothing_else(tmp_path):
    from stemprover.dsp import audio
    from stemprover.dsp.audio import remove_stale_temporaries, temporary_file

    folder = tmp_path / "out"
    stale = temporary_file(folder / "a.enhanced.wav")
    audio._unlock(stale)  # as if its process had died
    live = temporary_file(folder / "b.enhanced.wav")  # held by this process
    busy = folder / ".c.enhanced.wav.abcd1234.stemprover.tmp"  # held by another "process"
    busy.write_bytes(b"")
    held = _hold_lock(busy)
    newer = folder / ".d.enhanced.wav.efgh5678.stemprover.tmp"
    newer.write_bytes(b"")
    others = [folder / ".e.wav.ijkl9012.tmp", folder / "f.stemprover.tmp",
              folder / ".g.wav.mnop3456.stemprover.tmp.keep", folder / "h.wav"]
    for path in others:
        path.write_bytes(b"not ours")
    old = time.time() - 3600
    for path in (stale, live, busy, *others):
        os.utime(path, (old, old))
    started = time.time() - 60  # newer was made after the run started
    os.utime(newer, (started + 1, started + 1))
    try:
        assert remove_stale_temporaries(folder, started) == [stale]
    finally:
        os.close(held)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in (live, busy, newer, *others))
    audio._unlock(live)


def test_a_rerun_removes_what_a_killed_run_left(tiny_model, tmp_path):
    out = tmp_path / "out"
    proc = _start_long_run(tiny_model, tmp_path, out)
    proc.kill()  # SIGKILL: no cleanup runs
    proc.communicate(timeout=60)
    left = list(out.iterdir())
    assert len(left) == 1 and left[0].name.endswith(".stemprover.tmp")
    mine = out / "keep.tmp"
    mine.write_text("a file of the user's")
    time.sleep(0.05)
    short = _write(tmp_path / "short.wav", _tone(0.3, RATE))
    result = _run("enhance", str(short), "-o", str(out), "--model", str(tiny_model), "-q")
    assert result.returncode == 0, result.stderr
    assert f"{left[0]}: removed, a temporary file left by a run that was killed" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.tmp", "short.enhanced.wav"]
