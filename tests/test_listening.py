"""Listening examples: their index, spectrogram images, the notebook players and the page."""

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
import results_fixture as fx
import soundfile as sf

from stemprover.data.testsets import TestItem
from stemprover.errors import StemproverError
from stemprover.inference.streaming import BLOCK_SAMPLES, ArraySource
from stemprover.report import clip_plots, listening
from stemprover.report.listening import INDEX, MAX_CLIP_SECONDS, read_examples
from stemprover.stages.evaluation import save_examples


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    return tmp_path


@pytest.fixture
def examples(tmp_path):
    folder = tmp_path / "results" / "cpu" / "05_evaluation" / "examples"
    return folder, fx.write_examples(folder)


# ---------------------------------------------------------------- the examples' index
def test_index_gives_each_clip_its_si_sdr_against_the_clean_clip(examples):
    _, index = examples
    assert [e["testset"] for e in index["examples"]] == ["synthetic", "real"]
    for example in index["examples"]:
        systems = [c["system"] for c in example["clips"]]
        assert systems == ["mixture", "identity", "stemprover@1", "stemprover@4", "clean"]
        scores = {c["system"]: c["si_sdr_db"] for c in example["clips"]}
        assert scores.pop("clean") is None
        for system, expected in fx.CLIP_SI_SDR.items():
            assert scores[system] == pytest.approx(expected, abs=0.02)
        assert example["track"] == f"{example['testset']}_track"
        assert example["separator"] == "hpss" and example["start_s"] == 0.0
        assert example["seconds"] == fx.CLIP_SECONDS and example["sample_rate"] == fx.CLIP_RATE


def test_index_is_rebuilt_from_the_clips_when_the_file_is_missing(examples):
    folder, written = examples
    (folder / INDEX).unlink()
    rebuilt = read_examples(folder)["examples"]
    by_testset = {e["testset"]: e for e in rebuilt}
    for example in written["examples"]:
        assert by_testset[example["testset"]]["clips"] == example["clips"]
        assert "track" not in by_testset[example["testset"]]


def test_no_clips_is_a_missing_input(tmp_path):
    with pytest.raises(StemproverError, match="missing input: no listening examples"):
        read_examples(tmp_path)


def test_clips_last_at_most_four_seconds_whatever_the_config_asks(tmp_path):
    rate, seconds = 8000, 6.0
    t = np.arange(int(seconds * rate)) / rate
    clean = np.tile(0.3 * np.sin(2 * np.pi * 220 * t), (2, 1)).astype(np.float32)
    item = TestItem("synthetic", "t", "hpss", rate, 2 * clean, {"vocals": clean})
    cfg = SimpleNamespace(example_stems=None, stems=["vocals"], example_seconds=6.0, examples_max_mb=10.0)
    paths = save_examples({"synthetic": (item, {"identity": {"vocals": clean}})}, cfg, tmp_path,
                          "identity")
    assert {sf.info(p).frames for p in paths} == {int(MAX_CLIP_SECONDS * rate)}


# ---------------------------------------------------------------- spectrogram images
def test_full_scale_sine_reads_zero_dbfs_at_its_frequency():
    rate, freq = 16000, 1000.0
    t = np.arange(rate) / rate
    image = clip_plots.spectrogram(ArraySource(np.sin(2 * np.pi * freq * t)[None], rate))
    n_fft = clip_plots.display_n_fft(rate)
    peak_bin = np.argmax(image.db[:, image.db.shape[1] // 2])
    assert peak_bin == round(freq * n_fft / rate)
    assert image.db[peak_bin].mean() == pytest.approx(0.0, abs=0.1)
    assert image.seconds == 1.0 and image.sample_rate == rate


class CountingSource(ArraySource):
    reads: list

    def read(self, start, end):
        self.reads.append(end - start)
        return super().read(start, end)


def test_long_audio_is_read_in_blocks_at_a_bounded_number_of_frames():
    rate = 8000
    audio = np.random.default_rng(0).normal(size=(2, rate * 300)).astype(np.float32)
    source = CountingSource(audio, rate)
    source.reads = []
    image = clip_plots.spectrogram(source, max_frames=500)
    assert image.db.shape == (clip_plots.display_n_fft(rate) // 2 + 1, 500)
    assert max(source.reads) <= BLOCK_SAMPLES
    # frames read in separate blocks equal the same frames cut from the whole signal at once
    short = audio[:, : 3 * BLOCK_SAMPLES]
    n_fft = clip_plots.display_n_fft(rate)
    starts = np.round(np.linspace(0, short.shape[1] - n_fft, clip_plots.MAX_FRAMES)).astype(int)
    window = np.hanning(n_fft)
    frames = np.stack([short.mean(axis=0)[s : s + n_fft] for s in starts]) * window
    expected = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=-1)).T * 2 / window.sum() + 1e-8)
    blocks = clip_plots.spectrogram(ArraySource(short, rate))
    np.testing.assert_allclose(blocks.db, expected, atol=1e-3)


def test_change_of_a_halved_signal_is_minus_six_db_everywhere_audible():
    rate = 8000
    noise = np.random.default_rng(1).normal(size=(1, rate)).astype(np.float32) * 0.1
    before = clip_plots.spectrogram(ArraySource(noise, rate))
    change, limit = clip_plots.spectrogram_change(before, before)
    assert not change.any() and limit == clip_plots.DIFF_MIN_DB
    after = clip_plots.spectrogram(ArraySource(0.5 * noise, rate))
    change, limit = clip_plots.spectrogram_change(before, after)
    audible = before.db > before.db.max() - clip_plots.RANGE_DB + 10
    np.testing.assert_allclose(change[audible], 20 * np.log10(0.5), atol=1e-3)
    assert limit == 7  # 6.02 dB, rounded up to whole dB
    silenced = clip_plots.spectrogram(ArraySource(0 * noise, rate))
    change, limit = clip_plots.spectrogram_change(before, silenced)
    assert change.min() == -clip_plots.RANGE_DB and 60 < limit <= clip_plots.RANGE_DB


def test_the_same_clip_draws_the_same_png():
    image = clip_plots.spectrogram(ArraySource(np.ones((1, 4000), np.float32) * 0.1, 8000))
    first = clip_plots.clip_png(image, -80.0, 0.0)
    assert first.startswith(b"\x89PNG") and first == clip_plots.clip_png(image, -80.0, 0.0)


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def fail(tmp, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(clip_plots, "publish", fail)
    with pytest.raises(StemproverError, match="x.png: could not write"):
        clip_plots.write_bytes(tmp_path / "x.png", b"data")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- notebook players
def test_notebook_shows_a_player_and_a_spectrogram_per_clip(examples, monkeypatch):
    import IPython.display

    folder, index = examples
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj.data))
    listening.show_examples(folder)
    assert len(shown) == len(index["examples"])
    for html in shown:
        assert html.count("<audio") == 5 and html.count('src="data:audio/flac;base64,') == 5
        assert html.count('src="data:image/png;base64,') == 5
        assert "SI-SDR 40.00 dB" in html and "reference" in html
    shown.clear()
    listening.show_examples(folder, stems=["bass"])  # the examples are all vocals
    assert shown == []
    listening.show_examples(folder, stems=["vocals"])
    assert len(shown) == len(index["examples"])


# ---------------------------------------------------------------- the page
def test_page_has_one_player_per_example_and_a_switch_to_every_clip(examples, tmp_path):
    folder, index = examples
    results = folder.parents[1]
    (results / "05_evaluation" / "run.json").write_text(json.dumps({"code_commit": "abc1234"}))
    page = listening.build_page(results, tmp_path / "page")
    text = page.read_text()
    players = re.findall(r'<audio controls loop preload="metadata" src="([^"]+)"', text)
    assert len(players) == len(index["examples"]) == 2
    assert all(p.endswith("_identity.flac") for p in players)  # the switch starts there
    buttons = re.findall(r'<button type="button" aria-pressed="(true|false)" '
                         r'data-src="([^"]+)" data-image="([^"]+)" data-score="([^"]+)">', text)
    n_clips = sum(len(e["clips"]) for e in index["examples"])
    assert len(buttons) == n_clips == 10
    assert [b[0] for b in buttons].count("true") == len(players)  # one chosen clip per row
    for _, audio, image, _ in buttons:
        assert (page.parent / audio).is_file() and (page.parent / image).is_file()
        info = sf.info(page.parent / audio)
        assert info.format == "FLAC" and info.duration <= MAX_CLIP_SECONDS
        assert info.channels == 2  # the input's channels, not a mono mix
    scores = [b[3] for b in buttons]
    assert scores.count("SI-SDR 20.00 dB") == scores.count("SI-SDR 40.00 dB") == 2
    assert "Profile <code>cpu</code>" in text and "<code>abc1234</code>" in text
    assert "8000 Hz, stereo" in text
    # one inline script, nothing from elsewhere: the page works offline
    assert text.count("<script") == 1 and "<script>" in text and "src=\"http" not in text
    assert "stylesheet" not in text and "http" not in text
    assert re.findall(r"<link[^>]*>", text) == ['<link rel="icon" href="data:,">']
    assert sum(p.stat().st_size for p in page.parent.rglob("*")) < listening.PAGE_MAX_MB * 1e6


def test_each_row_says_what_to_listen_for():
    row = {"testset": "synthetic", "stem": "vocals",
           "separator": "degraded:artifact=musical_noise,severity=0.6"}
    text = listening.listen_for(row)
    assert "musical noise" in text and "breaths" in text
    text = listening.listen_for({"testset": "real", "stem": "bass", "separator": "htdemucs"})
    assert text.startswith("Listen for clean note onsets")
    sweep = listening.listen_for({"testset": "quality_sweep", "stem": "drums",
                                  "separator": "degraded:bleed:severity=0.1"})
    assert "leaves it alone" in sweep and "bleed" in sweep


def test_the_model_alone_is_heard_beside_the_four_stem_path():
    order = sorted(["clean", "stemprover@4", "bridge", "identity", "stemprover@1", "mixture",
                    "postfilter", "regression"], key=listening.clip_order)
    assert order == ["mixture", "identity", "postfilter", "regression", "bridge",
                     "stemprover@1", "stemprover@4", "clean"]
    assert listening.clip_label("bridge") == "model alone"


def test_the_quality_sweep_row_is_its_best_stem_at_its_mildest_severity(tmp_path):
    from stemprover.stages import evaluation

    t = np.arange(4000) / fx.CLIP_RATE
    clean = {s: np.tile(np.sin(2 * np.pi * f * t), (2, 1)).astype(np.float32)
             for s, f in (("vocals", 440), ("bass", 110))}
    noise = np.random.default_rng(0).normal(size=(2, t.size)).astype(np.float32)
    items = []
    for severity in (0.1, 0.5):
        separated = {"vocals": clean["vocals"] + 0.5 * noise, "bass": clean["bass"] + 0.01 * noise}
        items.append(TestItem("quality_sweep", f"x@degraded:bleed:severity={severity}",
                              "degraded", fx.CLIP_RATE, clean["vocals"] + clean["bass"],
                              clean, separated))
    cfg = SimpleNamespace(example_testsets=["synthetic"], example_stems=None,
                          stems=["vocals", "bass"], example_seconds=1.0, examples_max_mb=1.0)
    keep = evaluation.example_keep(cfg, items)
    assert [keep(i) for i in items] == [True, False]
    outputs = {"identity": items[0].separated}
    evaluation.save_examples({"quality_sweep": (items[0], outputs)}, cfg, tmp_path, "")
    index = read_examples(tmp_path)
    assert [(e["testset"], e["stem"]) for e in index["examples"]] == [("quality_sweep", "bass")]
    assert index["examples"][0]["channels"] == 2


def test_page_names_a_missing_run_record(examples, tmp_path):
    folder, _ = examples
    text = listening.build_page(folder.parents[1], tmp_path / "page").read_text()
    assert "not recorded (no 05_evaluation/run.json)" in text


def test_a_clip_too_long_stops_the_build_and_keeps_the_old_page(examples, tmp_path):
    folder, _ = examples
    out = tmp_path / "page"
    listening.build_page(folder.parents[1], out)
    before = (out / "index.html").read_text()
    (folder / INDEX).unlink()
    for path in folder.glob("real_*.flac"):
        sf.write(path, np.zeros(5 * fx.CLIP_RATE, np.float32), fx.CLIP_RATE, subtype="PCM_16")
    with pytest.raises(StemproverError, match="longer than the 4 s"):
        listening.build_page(folder.parents[1], out)
    assert (out / "index.html").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page", "results"]


def test_smoke_page_goes_to_build_and_is_skipped_without_examples(root, capsys):
    assert listening.build_profile_page("smoke") is None
    assert "listening page: skipped" in capsys.readouterr().out
    fx.write_examples(root / "results" / "smoke" / "05_evaluation" / "examples")
    page = listening.build_profile_page("smoke")
    assert page == root / "build" / "demo" / "smoke" / "index.html" and page.is_file()
    assert not (root / "paper").exists()


def test_cpu_page_is_committed_under_paper_and_required(root):
    with pytest.raises(StemproverError, match="missing input"):
        listening.build_profile_page("cpu")
    fx.write_examples(root / "results" / "cpu" / "05_evaluation" / "examples")
    assert listening.build_profile_page("cpu") == root / "paper" / "demo" / "cpu" / "index.html"


def test_the_figure_example_is_the_released_models_default_step_count(tmp_path):
    from stemprover.stages import evaluation

    model = tmp_path / "model"
    model.mkdir()
    cfg = SimpleNamespace(model_dir=str(model))
    assert evaluation.default_step_count(cfg) is None  # no model: no default to show
    for formulation, steps in (("bridge", 1), ("sdedit", 4)):
        (model / "stemprover.json").write_text(json.dumps({"config": {"formulation": formulation}}))
        assert evaluation.default_step_count(cfg) == steps
    names = ["identity", "stemprover@1", "stemprover@2", "stemprover@4"]
    assert evaluation.featured_system(names, 1) == "stemprover@1"
    assert evaluation.featured_system(names, 2) == "stemprover@2"
    assert evaluation.featured_system(names, None) == "stemprover@4"
