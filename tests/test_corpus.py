"""The rendered corpus: layout, exact mixtures, non-silent stems, splits, determinism, voice."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import soundfile as sf

from stemprover.constants import SPLITS, STEMS
from stemprover.corpus import (
    CorpusConfig,
    corpus_config,
    corpus_summary,
    list_tracks,
    load_track,
    mix_stems,
    plan_tracks,
    render_corpus,
)
from stemprover.corpus import voice as voice_module
from stemprover.corpus.arrangement import Note, fit_register, simplify_melody, top_line
from stemprover.corpus.build import render_stems
from stemprover.corpus.pop import pop_arrangement
from stemprover.corpus.render import resolve_soundfont
from stemprover.corpus.scores import score_arrangement
from stemprover.corpus.splits import TrackPlan, allocate
from stemprover.errors import StemproverError
from stemprover.project.config import build
from stemprover.project.seed import rng_for

SR = 44100
SECONDS = 2.0
needs_festival = pytest.mark.skipif(
    shutil.which("text2wave") is None, reason="Festival (text2wave) is not installed"
)


def _small(**overrides) -> CorpusConfig:
    values = dict(n_train=2, n_valid=0, n_test=1, song_seconds=SECONDS,
                  sources={"pop": 1.0, "bach": 1.0})  # fmt: skip
    values.update(overrides)
    return CorpusConfig(**values)


def _rms_db(audio: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(audio.astype(np.float64) ** 2)) + 1e-20))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    tracks = render_corpus(_small(), out, progress=False)
    return out, tracks


def test_layout_manifest_and_audio_format(corpus):
    out, tracks = corpus
    manifest = json.loads((out / "corpus.json").read_text())
    assert [e["track"] for e in manifest] == [t.track for t in tracks]
    assert {e["split"] for e in manifest} == {"train", "test"}
    for entry in manifest:
        assert {"track", "split", "piece", "source", "soundfont", "seconds", "tempo"} <= set(entry)
        expected = "MuseScore_General" if entry["split"] == "test" else "FluidR3_GM"
        assert entry["soundfont"] == expected
        folder = out / entry["split"] / entry["track"]
        for name in ("mixture", *STEMS):
            info = sf.info(str(folder / f"{name}.wav"))
            assert (info.samplerate, info.channels, info.subtype) == (SR, 2, "FLOAT")
            assert info.frames == round(SECONDS * SR)
    summary = json.loads((out / "render.json").read_text())
    assert summary["n_tracks"] == 3 and summary["render_seconds_total"] > 0
    assert summary == {**summary, **corpus_summary(out)}


def test_mixture_is_exactly_the_sum_of_the_stems(corpus):
    out, _ = corpus
    for folder in list_tracks(out):
        audio = load_track(folder)
        assert all(a.shape == (2, round(SECONDS * SR)) and a.dtype == np.float32
                   for a in audio.values())  # fmt: skip
        np.testing.assert_array_equal(audio["mixture"], mix_stems(audio))
        assert np.max(np.abs(audio["mixture"])) <= 0.9 + 1e-6


def test_every_stem_is_sounding_and_vocals_are_sung(corpus):
    out, tracks = corpus
    for track in tracks:
        audio = load_track(out / track.split / track.track)
        for stem in STEMS:
            assert _rms_db(audio[stem]) > -40.0, f"{track.track}: {stem} is silent"
        # Stems are different signals, not copies of one another.
        assert abs(np.corrcoef(audio["vocals"][0], audio["bass"][0])[0, 1]) < 0.5
        if shutil.which("text2wave"):
            assert track.voice == "festival"


def test_rendering_is_idempotent_and_removes_stale_tracks(corpus):
    out, tracks = corpus
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    stale, foreign = out / "train" / "pop-9999", out / "train" / "not-ours"
    for folder in (stale, foreign):
        folder.mkdir()
        shutil.copy(out / tracks[0].split / tracks[0].track / "mixture.wav", folder)
    (stale / "track.json").write_text(json.dumps({"fingerprint": "0"}))
    again = render_corpus(_small(), out, progress=False)
    assert again == tracks
    assert not stale.exists()  # an old track of this renderer goes
    assert (foreign / "mixture.wav").is_file()  # anything else stays
    shutil.rmtree(foreign)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == before


def test_same_seed_same_audio_other_seed_other_audio(corpus, tmp_path):
    out, tracks = corpus
    track = next(t for t in tracks if t.source == "pop")
    plan = TrackPlan(track.track, track.split, track.piece, track.source)
    written = load_track(out / track.split / track.track)
    again, _, _ = render_stems(_small(), plan, tmp_path / "cache")  # no cached voice
    cached, _, _ = render_stems(_small(), plan, tmp_path / "cache")  # the sung line is reused
    other, _, _ = render_stems(_small(seed=1), plan, tmp_path / "cache")
    for stem in STEMS:
        np.testing.assert_array_equal(again[stem], written[stem])
        np.testing.assert_array_equal(cached[stem], written[stem])
        assert not np.array_equal(again[stem], other[stem])
    if shutil.which("text2wave"):
        assert len(list((tmp_path / "cache").glob("*.wav"))) == 2  # one per distinct melody


def test_splits_are_disjoint_by_piece_and_deterministic():
    cfg = _small(n_train=150, n_valid=20, n_test=30, sources={"pop": 2, "bach": 1,
                 "quartet": 1, "palestrina": 1})  # fmt: skip
    plans = plan_tracks(cfg)
    assert plans == plan_tracks(cfg)
    assert [sum(p.split == s for p in plans) for s in SPLITS] == [150, 20, 30]
    pieces = {s: {p.piece for p in plans if p.split == s} for s in SPLITS}
    assert sum(len(v) for v in pieces.values()) == len(plans)
    assert not (pieces["train"] & pieces["valid"] or pieces["train"] & pieces["test"]
                or pieces["valid"] & pieces["test"])  # fmt: skip
    assert {p.source for p in plans if p.split == "test"} == {"pop", "bach", "quartet",
                                                              "palestrina"}  # fmt: skip
    reseeded = {p.piece for p in plan_tracks(_small(**{**cfg.__dict__, "seed": 7}))
                if p.split == "test"}  # fmt: skip
    assert reseeded != pieces["test"]


def test_allocate_follows_the_weights():
    weights = {"pop": 0.5, "bach": 0.25, "quartet": 0.15, "palestrina": 0.1}
    # Quotas 5, 2.5, 1.5, 1: the floors take 9 songs and the tie for the 10th is seeded.
    counts = allocate(10, weights, np.random.default_rng(0))
    assert sum(counts.values()) == 10 and counts["pop"] == 5 and counts["palestrina"] == 1
    assert (counts["bach"], counts["quartet"]) in ((3, 1), (2, 2))
    assert allocate(10, weights, np.random.default_rng(0)) == counts
    assert allocate(4, {"pop": 3.0, "bach": 1.0}, np.random.default_rng(0)) == {"pop": 3, "bach": 1}
    assert sum(allocate(1, {"pop": 1.0, "bach": 1.0}, np.random.default_rng(0)).values()) == 1


@pytest.mark.parametrize("piece", ["quartet/haydn/opus74no1/movement1", "palestrina/Agnus_01"])
def test_score_parts_go_to_the_right_stems(piece):
    arrangement = score_arrangement(piece, 8.0, rng_for(0, piece))
    by_stem = {s: arrangement.stem_parts(s) for s in STEMS}
    assert len(by_stem["vocals"]) == 1 and by_stem["vocals"][0].sung
    melody = by_stem["vocals"][0]
    assert melody.notes and all(48 <= n.pitch <= 67 for n in melody.notes)
    assert len(melody.lyrics) == len(melody.notes)
    assert by_stem["drums"][0].is_drum and by_stem["drums"][0].notes
    bass_mean = np.mean([n.pitch for n in by_stem["bass"][0].notes])
    for part in by_stem["other"]:
        assert np.mean([n.pitch for n in part.notes]) > bass_mean
    for part in arrangement.parts:
        assert all(0 <= n.start < 8.0 and n.start + n.duration <= 8.0 + 1e-9 for n in part.notes)


def test_pop_arrangement_is_seeded_and_complete():
    first = pop_arrangement("pop/0001", 10.0, rng_for(0, "x"))
    assert first == pop_arrangement("pop/0001", 10.0, rng_for(0, "x"))
    assert first != pop_arrangement("pop/0001", 10.0, rng_for(1, "x"))
    stems = {p.stem for p in first.parts if p.notes}
    assert stems == set(STEMS)
    drums = [p for p in first.parts if p.stem == "drums"]
    assert all(p.is_drum for p in drums) and not any(p.is_drum for p in first.parts[:1])
    lead = [p for p in first.parts if p.sung][0]
    assert all(48 <= n.pitch <= 67 for n in lead.notes)
    starts = [n.start for n in lead.notes]
    assert starts == sorted(starts)


def test_melody_helpers():
    chord = [Note(0.0, 1.0, 60), Note(0.0, 1.0, 64), Note(0.5, 1.0, 62)]
    assert top_line(chord) == [Note(0.0, 0.5, 64), Note(0.5, 1.0, 62)]
    fast = [Note(0.0, 0.5, 60), Note(0.5, 0.1, 62), Note(0.6, 0.4, 64)]
    assert simplify_melody(fast, 0.15) == [Note(0.0, 0.6, 60), Note(0.6, 0.4, 64)]
    run = [Note(0.1 * i, 0.1, 60 + i) for i in range(12)]  # 1.2 s of fast notes
    skeleton = simplify_melody(run, 0.15)
    assert [n.pitch for n in skeleton] == [60, 66]  # one sung note per 0.6 s
    assert sum(n.duration for n in skeleton) == pytest.approx(1.2)
    high = [Note(i, 1.0, p) for i, p in enumerate([84, 86, 88, 100])]
    assert [n.pitch for n in fit_register(high, 48, 67)] == [60, 62, 64, 64]


def test_config_checks_and_profile_sections():
    with pytest.raises(StemproverError, match="unknown source"):
        CorpusConfig(sources={"jazz": 1.0})
    with pytest.raises(StemproverError, match="song_seconds"):
        CorpusConfig(song_seconds=0.1)
    with pytest.raises(StemproverError, match="unknown key"):
        build(CorpusConfig, {"n_songs": 3})
    smoke = corpus_config("smoke")
    assert smoke.n_train + smoke.n_valid + smoke.n_test <= 8 and smoke.song_seconds <= 10
    assert corpus_config("gpu").n_train >= 200 and corpus_config("gpu").song_seconds >= 25


def test_missing_soundfont_is_a_clear_error(tmp_path):
    with pytest.raises(StemproverError, match="NoSuchFont"):
        resolve_soundfont("NoSuchFont")
    bad = _small(soundfonts={"train": "FluidR3_GM", "valid": "FluidR3_GM", "test": "NoSuchFont"})
    with pytest.raises(StemproverError, match="NoSuchFont"):
        render_corpus(bad, tmp_path, progress=False)
    assert not list(tmp_path.rglob("*.wav"))


@needs_festival
def test_festival_sings_the_requested_pitches_on_time():
    import librosa

    notes = [Note(0.3, 0.6, 55), Note(0.9, 0.6, 59), Note(2.0, 0.8, 62)]  # rest 1.5-2.0 s
    rate = 16000  # Festival's own rate: no resampling, a quick pitch track
    voice = voice_module.sing(notes, ["la", "loo", "day"], 3 * rate, rate)
    assert voice.shape == (3 * rate,) and voice.dtype == np.float32
    hop = 256
    f0 = librosa.yin(voice, fmin=70, fmax=500, sr=rate, frame_length=1024, hop_length=hop)
    for note in notes:  # the middle of each note: within a third of a semitone
        first, last = note.start + 0.2, note.start + note.duration - 0.15
        middle = slice(int(first * rate / hop), int(last * rate / hop))
        midi = 69 + 12 * np.log2(np.median(f0[middle]) / 440.0)
        assert abs(midi - note.pitch) < 0.35, (note, midi)
    sung = _rms_db(voice[int(0.4 * rate) : int(1.4 * rate)])
    rest = _rms_db(voice[int(1.65 * rate) : int(1.9 * rate)])
    assert sung - rest > 25.0
    # A voiced, harmonic sound: far from flat (white noise has flatness ~0.5).
    flatness = librosa.feature.spectral_flatness(y=voice[int(0.4 * rate) : int(1.4 * rate)])
    assert float(np.median(flatness)) < 0.05


@needs_festival
def test_air_reaches_above_festivals_band(tmp_path):
    plan = TrackPlan("pop-0000", "train", "pop/0000", "pop")
    stems, _, voice = render_stems(_small(), plan, tmp_path)
    assert voice == "festival"
    spectrum = np.abs(np.fft.rfft(stems["vocals"][0].astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(stems["vocals"].shape[1], 1 / SR)
    above = spectrum[(freqs > 9000) & (freqs < 16000)].sum() / spectrum.sum()
    assert 1e-5 < above < 0.05  # present, but well below the voice itself


def test_gm_choir_replaces_a_failing_festival(tmp_path, monkeypatch):
    monkeypatch.setattr(voice_module, "festival_available", lambda: False)
    plan = TrackPlan("pop-0000", "train", "pop/0000", "pop")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stems, arrangement, voice = render_stems(_small(), plan, tmp_path)
    assert voice == "gm"
    assert any("GM patch" in str(w.message) for w in caught)
    assert _rms_db(stems["vocals"]) > -40.0
    assert [p.program for p in arrangement.parts if p.sung][0] in (52, 53)


def test_command_line_reports_errors_in_one_line(tmp_path, monkeypatch, capsys):
    from stemprover.corpus import __main__ as command

    bad = _small(soundfonts={"train": "NoSuchFont", "valid": "NoSuchFont", "test": "NoSuchFont"})
    monkeypatch.setattr(command, "corpus_config", lambda profile: bad)
    assert command.main(["--profile", "smoke", "--out", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("stemprover: error: soundfont 'NoSuchFont'") and err.count("\n") == 1
