"""Evaluation pipeline on tiny synthetic items whose scores are known."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from stemprover.constants import STEMS
from stemprover.data.testsets import (
    TestItem,
    active_excerpt,
    make_item,
    parse_separator,
    resolve_separator,
    separate_items,
)
from stemprover.errors import StemproverError
from stemprover.metrics.stats import AGGREGATE_COLUMNS, AGGREGATE_EXTRA
from stemprover.stages.evaluation import (
    EvaluationConfig,
    evaluate_items,
    featured_system,
    headline,
    make_systems,
    run_evaluation,
    system_pairs,
)

SR = 8000


FREQS = {"vocals": 440.0, "drums": 1200.0, "bass": 110.0, "other": 2500.0}


def _tone(freq, seconds=1.0, phase=0.0):
    t = np.arange(int(seconds * SR)) / SR
    return np.tile(0.2 * np.sin(2 * np.pi * freq * t + phase), (2, 1)).astype(np.float32)


def _item(index, snr_db, testset="synthetic"):
    """Separated stems = clean + white noise at ``snr_db`` (so SI-SDR ~ snr_db)."""
    rng = np.random.default_rng(index)
    clean = {s: _tone(f, phase=index) for s, f in FREQS.items()}
    separated = {}
    for stem, audio in clean.items():
        noise = rng.normal(size=audio.shape).astype(np.float32)
        noise *= np.sqrt(np.mean(audio**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
        separated[stem] = audio + noise
    mixture = np.sum(list(clean.values()), axis=0)
    return TestItem(testset, f"t{index}", "fake", SR, mixture, clean, separated)


def _cfg(**kw):
    base = dict(sample_rate=SR, n_fft=256, hop_length=64, n_bootstrap=200)
    base.update(stems=["vocals", "bass"], systems=["identity"], steps=[1, 4])
    return EvaluationConfig(**{**base, **kw})


SYSTEMS = {
    "identity": lambda item: dict(item.separated),
    # a thousandth of the separator's error left: 60 dB above identity
    "near_perfect": lambda item: {
        s: item.clean[s] + 1e-3 * (item.separated[s] - item.clean[s]) for s in STEMS
    },
    "stemprover@4": lambda item: {s: 0.5 * (item.separated[s] + item.clean[s]) for s in STEMS},
}


def test_parse_separator_reads_numbers_and_strings():
    assert parse_separator("hpss") == ("hpss", {})
    name, kwargs = parse_separator("degraded:artifact=bleed,severity=0.5,seed=3")
    assert name == "degraded" and kwargs == {"artifact": "bleed", "severity": 0.5, "seed": 3}
    with pytest.raises(StemproverError):
        parse_separator("degraded:artifact")


def test_active_excerpt_avoids_silence_of_any_stem():
    loud = np.ones((2, 1000), dtype=np.float32)
    half = loud.copy()
    half[:, :600] = 0.0  # this stem is silent for the first 600 samples
    start, end = active_excerpt({"a": loud, "b": half}, 300, hop_samples=50)
    assert start >= 600 and end - start == 300
    assert active_excerpt({"a": loud}, 5000) == (0, 1000)


def test_make_item_crops_and_keeps_mixture_equal_to_sum():
    audio = {s: _tone(f, seconds=2.0) for s, f in FREQS.items()}
    audio["mixture"] = np.zeros_like(audio["vocals"])  # ignored: rebuilt from the stems
    item = make_item("real", "x", audio, SR, excerpt_seconds=0.5)
    assert item.mixture.shape == (2, SR // 2) and item.sample_rate == SR
    np.testing.assert_allclose(item.mixture, sum(item.clean.values()), atol=1e-6)
    with pytest.raises(StemproverError, match="missing"):
        make_item("real", "x", {"mixture": audio["vocals"]}, SR, excerpt_seconds=1)


def test_separate_items_runs_at_the_source_rate_then_resamples():
    rates = []

    class Fake:
        def separate(self, mixture, sample_rate, references=None):
            rates.append(sample_rate)
            return {s: 0.5 * references[s] for s in STEMS}

    base = [_item(0, 10.0)]
    out = list(separate_items(base, ["a:severity=1", "b"], lambda name, **kw: Fake(), SR // 2))
    assert [i.key for i in out] == ["t0@a:severity=1", "t0@b"] and rates == [SR, SR]
    bass = out[0]
    assert bass.sample_rate == SR // 2 and bass.mixture.shape == (2, SR // 2)
    np.testing.assert_allclose(bass.separated["bass"], 0.5 * bass.clean["bass"], atol=1e-5)
    np.testing.assert_allclose(bass.mixture, sum(bass.clean.values()), atol=1e-6)


def test_scores_match_the_known_snr_and_tables_have_the_contract_columns():
    items = [_item(i, 10.0) for i in range(2)]
    systems = {k: SYSTEMS[k] for k in ("identity", "near_perfect", "stemprover@4")}
    result, kept = evaluate_items(items, systems, _cfg(), keep=lambda i: i.track == "t1")
    table = result.per_track
    si = table[(table.metric == "si_sdr") & (table.system == "identity")]["value"]
    assert len(si) == 4 and np.all(np.abs(si - 10.0) < 1.0)
    best = table[(table.metric == "si_sdr") & (table.system == "near_perfect")]["value"]
    assert np.all(np.abs(best - 70.0) < 1.5)
    sdr = table[(table.metric == "sdr") & (table.system == "identity")]["value"]
    assert np.all(np.abs(sdr - 10.0) < 1.0)
    assert {"sdr", "sir", "sar", "lsd", "pesq", "stoi"} <= set(table.metric)
    assert table[(table.metric == "pesq") & (table.stem == "bass")].empty  # speech metrics: vocals
    assert tuple(result.aggregate.columns) == (*AGGREGATE_COLUMNS, *AGGREGATE_EXTRA)
    assert set(result.aggregate["n"]) == {2} and set(result.aggregate["n_tracks"]) == {2}
    sig = result.significance
    gain = sig[(sig.system == "stemprover@4") & (sig.metric == "si_sdr")]["mean_diff"]
    assert len(gain) == 2 and np.all(gain > 2.0)  # half the noise: about +6 dB
    assert set(result.phase_bands["system"]) == set(systems)
    assert list(kept) == ["synthetic"] and kept["synthetic"][0].track == "t1"
    head = headline(sig)
    assert set(head.metric) == {"si_sdr", "sdr"} and "identity" not in set(head.system)


def test_one_excerpt_under_two_separators_is_one_track_and_systems_are_paired():
    # the same excerpt t0 separated twice: 2 items, 1 excerpt, so no interval anywhere
    items = [replace(_item(0, 10.0), separator=name) for name in ("hpss", "fake")]
    systems = {"identity": SYSTEMS["identity"], "postfilter": SYSTEMS["near_perfect"],
               "stemprover@4": SYSTEMS["stemprover@4"]}
    assert system_pairs(list(systems)) == [("stemprover@4", "postfilter")]
    result, _ = evaluate_items(items, systems, _cfg(stems=["vocals"]))
    agg = result.aggregate[result.aggregate["n"] > 0]  # metrics undefined here have no items
    assert set(agg["n"]) == {2} and set(agg["n_tracks"]) == {1} and set(agg["n_separators"]) == {2}
    assert agg["ci_low"].isna().all() and agg["ci_high"].isna().all()
    sig = result.significance
    pair = sig[(sig.baseline == "postfilter") & (sig.metric == "si_sdr")].iloc[0]
    assert pair["system"] == "stemprover@4" and pair["mean_diff"] < -20.0  # 60 dB against 6
    assert pair["n"] == 2 and pair["n_tracks"] == 1 and np.isnan(pair["ci_low"])
    assert (sig["better"] == 0).all()  # one excerpt resolves nothing
    assert set(headline(sig)["system"]) == {"postfilter", "stemprover@4"}  # against identity


def test_run_evaluation_writes_small_examples_and_spectrograms(tmp_path):
    items = [_item(1, 5.0, "synthetic"), _item(9, 0.0, "real")]
    cfg = _cfg(
        example_seconds=0.5, spectrogram_seconds=0.25, examples_max_mb=0.05, stems=["vocals"]
    )
    systems = {k: SYSTEMS[k] for k in ("identity", "stemprover@4")}
    result = run_evaluation(cfg, "smoke", tmp_path, systems=systems, items=items)
    for name in ("per_track.csv", "aggregate.csv", "significance.csv", "phase_bands.csv"):
        assert (tmp_path / name).stat().st_size > 0
    agg = pd.read_csv(tmp_path / "aggregate.csv")
    assert list(agg.columns) == [*AGGREGATE_COLUMNS, *AGGREGATE_EXTRA]
    assert set(agg.testset) == {"synthetic", "real"}
    clips = sorted((tmp_path / "examples").glob("*.flac"))
    assert len(clips) == 2 * 4  # mixture, identity, stemprover@4, clean for each test set
    assert sum(p.stat().st_size for p in clips) <= 0.05e6
    info = sf.info(clips[0])
    assert info.format == "FLAC" and info.subtype == "PCM_16" and info.channels == 2  # as input
    index = json.loads((tmp_path / "examples" / "examples.json").read_text())["examples"]
    assert [(e["testset"], e["track"]) for e in index] == [("synthetic", "t1"), ("real", "t9")]
    scores = {c["system"]: c["si_sdr_db"] for c in index[0]["clips"]}
    assert list(scores) == ["mixture", "identity", "stemprover@4", "clean"]
    # 5 dB SNR per channel, and the stereo clip is scored per channel
    assert scores["identity"] == pytest.approx(5.0, abs=1.0)
    assert scores["stemprover@4"] - scores["identity"] == pytest.approx(6.02, abs=0.5)  # half
    with np.load(tmp_path / "spectrograms.npz") as npz:
        assert str(npz["system"]) == "stemprover@4" and int(npz["sample_rate"]) == SR
        assert npz["clean"].shape == npz["enhanced"].shape == npz["separated"].shape == (SR // 4,)
        # the enhanced clip is the midpoint of separated and clean, sample for sample
        np.testing.assert_allclose(
            npz["enhanced"], 0.5 * (npz["separated"] + npz["clean"]), atol=1e-6
        )
    summary = json.loads((tmp_path / "evaluation.json").read_text())
    assert summary["n_items"] == {"real": 1, "synthetic": 1}
    assert len(result.per_track) > 0


def test_examples_cover_every_evaluated_stem_of_every_example_test_set(tmp_path):
    items = [_item(1, 5.0, "synthetic"), _item(9, 0.0, "real")]
    cfg = _cfg(example_seconds=0.25, spectrogram_seconds=0.25, examples_max_mb=0.2,
               stems=["vocals", "bass"])
    systems = {k: SYSTEMS[k] for k in ("identity", "stemprover@4")}
    run_evaluation(cfg, "smoke", tmp_path, systems=systems, items=items)
    index = json.loads((tmp_path / "examples" / "examples.json").read_text())["examples"]
    assert [(e["testset"], e["stem"]) for e in index] == [
        ("synthetic", "vocals"), ("synthetic", "bass"), ("real", "vocals"), ("real", "bass")]
    for example in index:
        assert [c["system"] for c in example["clips"]] == ["mixture", "identity", "stemprover@4", "clean"]
        for clip in example["clips"]:
            assert (tmp_path / "examples" / clip["file"]).exists()
    # only the stems asked for, when they are named
    run_evaluation(replace(cfg, example_stems=["bass"]), "smoke", tmp_path, systems=systems, items=items)
    index = json.loads((tmp_path / "examples" / "examples.json").read_text())["examples"]
    assert {e["stem"] for e in index} == {"bass"}
    assert {p.name.split("_")[1] for p in (tmp_path / "examples").glob("*.flac")} == {"bass"}


def test_featured_system_and_unknown_systems():
    assert featured_system(["identity", "stemprover@1", "stemprover@25"]) == "stemprover@1"
    assert featured_system(["identity", "regression"]) == "regression"
    with pytest.raises(StemproverError, match="unknown system"):
        make_systems(_cfg(systems=["identity", "magic"]))


def test_resolve_separator_finds_the_trained_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMPROVER_ROOT", str(tmp_path))
    weights_dir = "results/smoke/01_phase_analysis/weights"  # relative to the repository
    assert resolve_separator("hpss", weights_dir) == "hpss"
    with pytest.raises(StemproverError, match="01_phase_analysis"):
        resolve_separator("htdemucs", weights_dir)
    weights = tmp_path / "results" / "smoke" / "01_phase_analysis" / "weights"
    weights.mkdir(parents=True)
    (weights / "htdemucs.json").write_text("{}")  # the training record is not a checkpoint
    with pytest.raises(StemproverError, match="01_phase_analysis"):
        resolve_separator("htdemucs", weights_dir)
    (weights / "htdemucs.pt").write_bytes(b"")
    # repository-relative: the spec is a column of per_track.csv and names no machine
    expected = "htdemucs:checkpoint=results/smoke/01_phase_analysis/weights/htdemucs.pt"
    assert resolve_separator("htdemucs", weights_dir) == expected
    # another run's weights, outside the repository, are named by their absolute path
    other = tmp_path.parent / "other_run_weights"
    other.mkdir()
    (other / "htdemucs.pt").write_bytes(b"")
    checkpoint = other.resolve() / "htdemucs.pt"
    assert resolve_separator("htdemucs", other) == f"htdemucs:checkpoint={checkpoint}"


def test_shared_factorisation_bsseval_equals_museval():
    from stemprover.metrics.bsseval import ReferenceBssEval
    from stemprover.metrics.signal import bss_eval

    rng = np.random.default_rng(3)
    refs = {s: rng.normal(size=(2, 2 * SR)).astype(np.float32) for s in ("a", "b")}
    ests = {s: r + 0.3 * refs["a"] + 0.2 * rng.normal(size=r.shape) for s, r in refs.items()}
    expected = bss_eval(ests, refs, SR)
    scorer = ReferenceBssEval(refs, SR)
    for stem, scores in scorer(ests).items():
        for metric, value in scores.items():
            assert value == pytest.approx(expected[stem][metric], abs=1e-6)
    # a silent frame is left out of the median, as in museval
    quiet = {s: r.copy() for s, r in ests.items()}
    quiet["a"][:, :SR] = 0.0
    assert np.isfinite(scorer(quiet)["a"]["sdr"])


@pytest.mark.parametrize("stage", ["05_evaluation", "06_ablations"])
def test_notebook_parameters_match_the_profiles(stage):
    """Defaults are the smoke profile; every profile key reaches the config."""
    import nbformat

    from stemprover.project.config import load_profile, stage_params
    from stemprover.project.notebook import parameters
    from stemprover.project.paths import repo_root

    nb = nbformat.read(repo_root() / "notebooks" / f"{stage}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    defaults: dict = {}
    exec(cell.source, {}, defaults)
    smoke = stage_params("smoke", stage)
    assert {k: defaults[k] for k in smoke} == smoke
    # every parameter reaches setup: the next cell reads them all from the namespace
    setup_cell = nb.cells[nb.cells.index(cell) + 1].source
    assert "params = parameters(globals())" in setup_cell
    assert parameters(dict(defaults)) == defaults
    for profile in ("smoke", "cpu", "gpu"):
        sections = load_profile(profile)
        keys = set(sections.get("common", {})) | set(sections.get(stage, {}))
        assert keys <= set(defaults), (profile, sorted(keys - set(defaults)))


def test_learned_systems_share_the_projection_and_the_bridge_goes_without(monkeypatch):
    import stemprover.stages.evaluation as evaluation
    from stemprover.inference.enhance import enhance
    from stemprover.inference.projection import enhance_stems
    from tests.test_enhance import RegressionFake

    projected_input = evaluation.project
    model = RegressionFake(gain=0.5)
    monkeypatch.setattr(evaluation, "_load", lambda path, kind: model)
    cfg = _cfg(systems=["postfilter", "regression", "stemprover", "bridge"], steps=[1],
               projection="before")
    systems = make_systems(cfg)
    assert sorted(systems) == ["bridge", "postfilter", "regression", "stemprover@1"]
    item = _item(3, 5.0)
    filtered = projected_input(item.separated, SR, item.mixture)
    out = systems["postfilter"](item)
    assert sorted(out) == sorted(STEMS)
    for stem in STEMS:  # the post-filter system is the shared projection, unchanged
        np.testing.assert_array_equal(out[stem], filtered[stem])
    projected = enhance_stems(item.separated, SR, model, mixture=item.mixture,
                              projection="before")
    for name in ("regression", "stemprover@1"):
        out = systems[name](item)
        assert sorted(out) == sorted(STEMS)  # all four cleaned, for the projection
        for stem in STEMS:
            np.testing.assert_array_equal(out[stem], projected[stem])
    calls = []
    monkeypatch.setattr(evaluation, "project",
                        lambda *args: calls.append(1) or projected_input(*args))
    other = _item(4, 5.0)
    for name in ("postfilter", "regression", "stemprover@1"):
        systems[name](other)
    assert len(calls) == 1  # the projected input is computed once per item, for all systems
    bridge = systems["bridge"](item)
    assert sorted(bridge) == ["bass", "vocals"]  # only the scored stems, no projection
    np.testing.assert_array_equal(
        bridge["vocals"], enhance(item.separated["vocals"], SR, model, mixture=item.mixture))
    with pytest.raises(StemproverError, match="unknown projection"):
        make_systems(replace(cfg, projection="around"))
