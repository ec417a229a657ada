"""A property sweep of ``stemprover enhance``'s input validation with hypothesis.

Whatever the rate, channel count, length, sample format, NaN/inf positions, mixture or
adapter string: the exit code is 0 or 1, there is never a traceback, the output exists
exactly when the exit code is 0, nothing else is left in the output folder, and the inputs
are never modified.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import TINY

from stemprover.cli import main

# Valid choices come more often, so that a good share of the runs gets to the model.
RATES = (8000, 11025, 16000, 22050, 44100, 48000, 96000, 4000, 7999, 96001, 192000)
FORMATS = (("wav", "PCM_U8"), ("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "PCM_32"),
           ("wav", "FLOAT"), ("wav", "DOUBLE"), ("flac", "PCM_16"), ("flac", "PCM_24"))
ADAPTER_WORDS = ("general", "hf_loss", "bleed", "musical_noise", "phase_smear", "auto",
                 "reverb", "", " ")
WEIGHTS = ("", ":", ":0", ":1", ":0.3", ":-1", ":x", ":nan", ":inf", ":1e-300", ":1e300",
           ":1e-7")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The one-pass 16 kHz model of ``test_cli``, saved for this module."""
    from stemprover.model import RegressionModel, model_config

    folder = tmp_path_factory.mktemp("model") / "tiny"
    RegressionModel(model_config("smoke", **TINY)).save_pretrained(folder)
    return folder


@st.composite
def adapter_specs(draw) -> str | None:
    kind = draw(st.sampled_from(("none", "none", "words", "text")))
    if kind == "none":
        return None
    if kind == "text":
        return draw(st.text(alphabet="generalhf_os:,.0123-e ", max_size=24))
    parts = draw(st.lists(st.tuples(st.sampled_from(ADAPTER_WORDS), st.sampled_from(WEIGHTS)),
                          min_size=1, max_size=4))
    return ",".join(name + weight for name, weight in parts)


@st.composite
def cases(draw) -> dict:
    extension, subtype = draw(st.sampled_from(FORMATS))
    rate = draw(st.sampled_from(RATES))
    if extension == "flac" and rate > 655350 // 10:  # FLAC stores rates up to 655350 Hz
        rate = 48000
    return dict(
        extension=extension, subtype=subtype, rate=rate,
        channels=draw(st.sampled_from((1, 2, 2, 3))),
        length=draw(st.one_of(st.integers(0, 400), st.integers(400, 6000))),
        silent=draw(st.booleans()),
        bad=draw(st.lists(st.tuples(st.floats(0, 1), st.sampled_from((np.nan, np.inf,
                                                                      -np.inf))),
                          max_size=2)),
        mixture=draw(st.sampled_from((None, "same", "longer"))),
        adapter=draw(adapter_specs()),
    )


def _audio(case: dict, length: int, seed: int) -> np.ndarray:
    if case["silent"]:
        return np.zeros((length, case["channels"]), np.float32)
    rng = np.random.default_rng(seed)
    return (0.3 * rng.uniform(-1, 1, (length, case["channels"]))).astype(np.float32)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_enhance_validation_properties(tiny_model, case):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        audio = _audio(case, case["length"], 0)
        if case["subtype"] in ("FLOAT", "DOUBLE") and case["length"]:
            for where, value in case["bad"]:
                audio[min(int(where * case["length"]), case["length"] - 1), 0] = value
        src = folder / f"in.{case['extension']}"
        try:
            sf.write(src, audio, case["rate"], subtype=case["subtype"])
        except (sf.LibsndfileError, RuntimeError, ValueError):
            pytest.skip("libsndfile cannot write this combination")  # not the CLI's case
        inputs = [src]
        args = ["enhance", str(src), "-o", str(folder / "out"), "--model", str(tiny_model),
                "--device", "cpu", "-q"]
        if case["mixture"]:
            extra = 0 if case["mixture"] == "same" else 100
            mix = folder / "mix.wav"
            sf.write(mix, _audio(case, case["length"] + extra, 1) if case["length"] + extra
                     else np.zeros((1, case["channels"])), case["rate"], subtype="FLOAT")
            inputs.append(mix)
            args += ["--mixture", str(mix)]
        if case["adapter"] is not None:
            args += [f"--adapter={case['adapter']}"]
        before = {path: _digest(path) for path in inputs}

        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(args)

        assert code in (0, 1), err.getvalue()
        assert "Traceback" not in err.getvalue()
        out_dir = folder / "out"
        written = sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []
        if code == 0:
            assert written == ["in.enhanced.wav"], written
            out, out_rate = sf.read(out_dir / "in.enhanced.wav", always_2d=True)
            assert out_rate == case["rate"] and out.shape == (case["length"], case["channels"])
            assert np.isfinite(out).all()
        else:
            assert written == [] and not out_dir.exists(), written
            lines = err.getvalue().strip().splitlines()
            assert lines and all(line.startswith("stemprover: ") for line in lines), lines
        assert {path: _digest(path) for path in inputs} == before


@st.composite
def music_cases(draw) -> dict:
    return dict(
        rate=draw(st.sampled_from((16000, 22050, 44100, 48000))),
        channels=draw(st.sampled_from((1, 2))),
        seconds=draw(st.floats(0.3, 1.5)),
        seed=draw(st.integers(0, 10_000)),
        mixture=draw(st.sampled_from(("none", "stem", "song"))),
        shrink=draw(st.floats(0.1, 0.9)),
    )


def _music(rate: int, n_samples: int, channels: int, seed: int) -> np.ndarray:
    """Harmonic notes (a new random pitch every 250 ms) over a little noise, ``(n, C)``."""
    rng = np.random.default_rng(seed)
    note = rate // 4
    pitch = np.repeat(110.0 * 2 ** (rng.integers(0, 36, n_samples // note + 1) / 12), note)
    phase = 2 * np.pi * np.cumsum(pitch[:n_samples]) / rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    audio = 0.2 * tone[:, None] + 0.005 * rng.standard_normal((n_samples, channels))
    return audio.astype(np.float32)


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=music_cases())
def test_enhance_keeps_the_level_of_music_like_inputs(tiny_model, case):
    """A model that shrinks its input by any factor (as an over-cautious one does) leaves
    the output within 0.5 dB of the input, and a stem equal to its mixture unchanged."""
    import contextlib
    import io

    import stemprover.inference.enhance as enhance_module
    from tests.test_enhance import RegressionFake

    n_samples = int(case["seconds"] * case["rate"])
    audio = _music(case["rate"], n_samples, case["channels"], case["seed"])
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setattr(enhance_module, "load_model",
                      lambda folder: RegressionFake(gain=case["shrink"]))
        folder = Path(tmp)
        src = folder / "in.wav"
        sf.write(src, audio, case["rate"], subtype="FLOAT")
        args = ["enhance", str(src), "-o", str(folder / "out"), "--model", str(tiny_model),
                "--device", "cpu", "-q"]
        if case["mixture"] != "none":
            other = _music(case["rate"], n_samples, case["channels"], case["seed"] + 1)
            mixture = audio if case["mixture"] == "stem" else audio + 0.3 * other
            sf.write(folder / "mix.wav", mixture, case["rate"], subtype="FLOAT")
            args += ["--mixture", str(folder / "mix.wav")]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            assert main(args) == 0, err.getvalue()
        out, _ = sf.read(folder / "out" / "in.enhanced.wav", dtype="float64", always_2d=True)
    level_db = 10 * np.log10(np.sum(out**2) / np.sum(audio.astype(np.float64) ** 2))
    if case["mixture"] == "stem":  # the residual is zero: nothing belongs to another source
        assert abs(level_db) < 0.1, level_db
    else:
        assert abs(level_db) <= 0.5, level_db
