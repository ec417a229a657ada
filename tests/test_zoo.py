"""The separator zoo, the held-out band-split family, zoo pairs, the harm hinge, Zimtohrli."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stemprover.constants import STEMS
from stemprover.data.pairs import PairsConfig, separator_family, separator_jobs
from stemprover.errors import StemproverError
from stemprover.metrics.signal import si_sdr, zimtohrli_mos
from stemprover.separators import get_separator
from stemprover.separators.zoo import ZOO_KNOBS, MaskZoo, band_edges, draw_knobs, pool_bands
from stemprover.stages.evaluation import EvaluationConfig, sweep_specs
from stemprover.train.steps import harm_db, picture_snr_db

SR = 16000


@pytest.fixture(scope="module")
def song():
    """Four stems that overlap in time and frequency: tones, a pulse train, noise; 2 s stereo."""
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    vocals = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    drums = 0.4 * (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(t.size)
    bass = 0.4 * np.sin(2 * np.pi * 82 * t) + 0.1 * np.sin(2 * np.pi * 164 * t)
    other = 0.1 * rng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * 660 * t)
    stems = {s: np.stack([x, 0.8 * x]).astype(np.float32)
             for s, x in zip(STEMS, (vocals, drums, bass, other))}
    stems["mixture"] = sum(stems[s] for s in STEMS)
    return stems


def _mean_si_sdr(separator, song) -> float:
    out = separator.separate(song["mixture"], SR, references=song)
    return float(np.mean([si_sdr(out[s], song[s]) for s in STEMS]))


def test_zoo_at_severity_zero_is_the_clean_stem_and_quality_falls_with_severity(song):
    out = get_separator("zoo", severity=0.0, seed=1).separate(song["mixture"], SR, references=song)
    for stem in STEMS:
        np.testing.assert_array_equal(out[stem], song[stem])
    # averaged over draws, more severity gives worse stems, from barely audible (> 20 dB)
    means = [np.mean([_mean_si_sdr(MaskZoo(s, seed), song) for seed in range(4)])
             for s in (0.02, 0.3, 1.0)]
    assert means[0] > 20.0
    assert means[0] > means[1] > means[2]


def test_zoo_is_deterministic_and_draws_differ_by_seed(song):
    a = MaskZoo(0.5, seed=3).separate(song["mixture"], SR, references=song)
    b = MaskZoo(0.5, seed=3).separate(song["mixture"], SR, references=song)
    c = MaskZoo(0.5, seed=4).separate(song["mixture"], SR, references=song)
    np.testing.assert_array_equal(a["vocals"], b["vocals"])
    assert not np.allclose(a["vocals"], c["vocals"])


def test_knob_draws_stay_within_severity_and_always_damage():
    rng = np.random.default_rng(0)
    for _ in range(200):
        draw = draw_knobs(0.4, rng)
        amounts = np.array([getattr(draw, k) for k in ZOO_KNOBS])
        assert amounts.max() > 0 and amounts.max() <= 0.4 + 1e-12 and amounts.min() >= 0


def test_bandsplit_spans_good_to_poor_and_pooling_is_exact_on_constant_bands(song):
    scores = [_mean_si_sdr(get_separator("bandsplit", severity=s), song) for s in (0.0, 0.5, 1.0)]
    assert scores[0] > scores[1] > scores[2]
    edges = band_edges(257, 8, SR)
    assert edges[0] == 0 and edges[-1] == 257 and np.all(np.diff(edges) > 0)
    power = np.random.default_rng(0).random((1, 257, 10))
    pooled = pool_bands(power, edges, frames=3)
    for lo, hi in zip(edges[:-1], edges[1:]):  # each band and block holds one value: its mean
        np.testing.assert_allclose(pooled[0, lo:hi, 0:3], power[0, lo:hi, 0:3].mean())
        np.testing.assert_allclose(pooled[0, lo:hi, 9], power[0, lo:hi, 9].mean())


def test_severity_outside_unit_interval_is_refused():
    with pytest.raises(StemproverError, match="severity"):
        get_separator("zoo", severity=1.5)
    with pytest.raises(StemproverError, match="severity"):
        get_separator("bandsplit", severity=-0.1)


def test_zoo_jobs_hold_identity_share_and_mild_severities():
    cfg = PairsConfig(artifacts=[], blind_separators=[], zoo_draws=400, identity_share=0.25,
                      zoo_severity_power=2.0)
    jobs = separator_jobs(cfg, "track-a")
    severities = np.array([job[3] for job in jobs])
    assert len(jobs) == 400 and len({job[0] for job in jobs}) == 400  # labels are unique
    assert 0.18 < np.mean(severities == 0.0) < 0.32
    drawn = severities[severities > 0]
    assert 0.18 < np.median(drawn) < 0.32  # u ** 2 has its median at 0.25
    assert all(separator_family(job[0]) == "zoo" for job in jobs)
    assert jobs == separator_jobs(cfg, "track-a") and jobs != separator_jobs(cfg, "track-b")
    with pytest.raises(StemproverError, match="identity_share"):
        PairsConfig(identity_share=1.5)


@pytest.mark.parametrize("label, family", [
    ("degraded_bleed_0.6", "degraded"), ("zoo-0.25-17", "zoo"), ("hpss", "classical"),
    ("repet", "classical"), ("openunmix", "neural"), ("htdemucs", "neural")])
def test_separator_family(label, family):
    assert separator_family(label) == family


def test_harm_counts_only_the_db_lost_against_the_input():
    clean = torch.ones(2, 1, 4, 4)
    separated = clean + 0.1  # 20 dB
    better, worse = clean + 0.01, clean + 1.0  # 40 dB and 0 dB
    np.testing.assert_allclose(picture_snr_db(separated, clean).numpy(), [20.0, 20.0], atol=1e-3)
    np.testing.assert_allclose(harm_db(better, separated, clean).numpy(), [0.0, 0.0])
    np.testing.assert_allclose(harm_db(worse, separated, clean).numpy(), [20.0, 20.0], atol=1e-3)
    # an identity input counts as 40 dB: a 60 dB prediction does no harm, a 20 dB one 20 dB
    assert float(harm_db(clean + 1e-3, clean, clean)[0]) == 0.0
    np.testing.assert_allclose(harm_db(separated, clean, clean).numpy(), [20.0, 20.0], atol=1e-3)


def test_zimtohrli_mos_ranks_noise_levels(song):
    clean = song["vocals"]
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(clean.shape).astype(np.float32) * clean.std()
    scores = [zimtohrli_mos(clean + level * noise, clean, SR, max_seconds=1.0)
              for level in (0.0, 0.03, 0.3)]
    assert scores[0] > scores[1] > scores[2]
    assert 1.0 <= scores[2] and scores[0] <= 5.0 + 1e-6


def test_quality_sweep_specs_name_the_family_and_severities():
    cfg = EvaluationConfig(sweep_family="bandsplit", sweep_severities=[0.1, 0.5])
    assert sweep_specs(cfg) == ["bandsplit:severity=0.1", "bandsplit:severity=0.5"]


def _manifest(tmp_path, labels_by_split):
    """A tiny pair manifest with one 0.1 s pair per (split, separator label)."""
    import json

    from stemprover.data.pairs import separator_family

    pairs = []
    for split, labels in labels_by_split.items():
        for n, label in enumerate(labels):
            rel = f"pairs/{split}/{n}.npz"
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            wave = np.full(1600, 0.1 * (n + 1), dtype=np.float32)
            np.savez(tmp_path / rel, separated=wave, clean=wave, mixture=wave)
            entry = {"file": rel, "track": f"t{n}", "stem": "vocals", "separator": label,
                     "artifact": "mixed", "severity": 1.0, "offset": 0, "channel": 0,
                     "split": split}
            if split == "train":  # valid entries: an older manifest without the family field
                entry["family"] = separator_family(label)
            pairs.append(entry)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"sample_rate": SR, "segment_samples": 1600, "pairs": pairs}))
    return path


def test_leave_one_family_out_splits_training_and_validation(tmp_path):
    from stemprover.stages.lora_training import _valid_pairs, training_pairs
    from stemprover.train.config import LoraTrainConfig

    labels = ["hpss", "zoo-0.1-3", "openunmix", "degraded_bleed_0.6", "repet", "openunmix"]
    manifest = _manifest(tmp_path, {"train": labels, "valid": labels})
    cfg = LoraTrainConfig(manifest=str(manifest), holdout_family="neural", blend_grid=3)
    train = training_pairs(cfg)
    assert sorted(e["separator"] for e in train.entries) == sorted(
        ["hpss", "zoo-0.1-3", "degraded_bleed_0.6", "repet"])
    valid = _valid_pairs(cfg)
    assert [e["separator"] for e in valid.entries] == ["openunmix", "openunmix"]
    every = training_pairs(LoraTrainConfig(manifest=str(manifest)))
    assert len(every) == len(labels)
    with pytest.raises(StemproverError, match="holdout_family"):
        LoraTrainConfig(holdout_family="neurals")


def test_family_validation_reports_held_out_beside_trained_families(tmp_path):
    import pandas as pd

    from stemprover.data.pairs import PairDataset
    from stemprover.train.validate import family_gains, family_indices, pair_families

    labels = ["hpss", "zoo-0.1-3", "openunmix", "repet", "openunmix"]
    valid = PairDataset(_manifest(tmp_path, {"valid": labels}), "valid")
    families = pair_families(valid)
    assert families == ["classical", "zoo", "neural", "classical", "neural"]
    picked = family_indices(families, "neural", 2, valid)
    assert {2, 4} <= set(picked) and len([i for i in picked if families[i] != "neural"]) == 2
    rows = []
    for item, family in enumerate(families):
        rows += [{"system": "input", "item": item, "family": family, "si_sdr": 0.0},
                 {"system": "model", "item": item, "family": family,
                  "si_sdr": -1.0 if family == "neural" else 2.0}]
    from stemprover.train.validate import summary_systems

    assert summary_systems({"input": {}, "model": {}, "settings": {}, "by_adapter": {},
                            "by_family": {}}) == ["input", "model"]
    gains = family_gains(pd.DataFrame(rows), "neural")
    assert gains["held out"] == {"model": -1.0, "n": 2}
    assert gains["trained on"] == {"model": 2.0, "n": 3}
    assert gains["classical"]["model"] == 2.0


def test_input_quality_histogram_counts_identity_apart(tmp_path):
    import json

    from stemprover.stages.paired_dataset import card_markdown, input_quality, plot_input_quality

    rng = np.random.default_rng(0)
    clean = rng.standard_normal(1600).astype(np.float32)
    pairs = []
    for n, (label, snr_db) in enumerate([("zoo-0-1", None), ("zoo-0.3-2", 20.0),
                                          ("hpss", 2.0), ("hpss", 12.0)]):
        noise = rng.standard_normal(1600).astype(np.float32)
        noise *= 0.0 if snr_db is None else np.linalg.norm(clean) / np.linalg.norm(noise) / (
            10 ** (snr_db / 20))
        np.savez(tmp_path / f"{n}.npz", separated=clean + noise, clean=clean, mixture=clean)
        pairs.append({"file": f"{n}.npz", "separator": label, "split": "train"})
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"sample_rate": SR, "segment_samples": 1600, "pairs": pairs}))
    quality = input_quality(manifest)
    assert quality["zoo"]["n"] == 2 and quality["zoo"]["n_identity"] == 1
    assert quality["zoo"]["quantiles"]["50"] == pytest.approx(20.0, abs=0.2)
    assert quality["classical"]["quantiles"]["5"] == pytest.approx(2.5, abs=0.2)
    edges = quality["edges_db"]
    assert sum(quality["classical"]["counts"]) == 2
    assert quality["classical"]["counts"][edges.index(0)] == 1  # 2 dB falls in [0, 5)
    assert quality["classical"]["counts"][edges.index(10)] == 1
    card = {"input_si_sdr": quality, "corpus": {"n_tracks": 1, "seconds_total": 1.0,
                                                "render_seconds_total": 1.0, "per_source": {}}}
    assert len(plot_input_quality(card).axes) == 2
    assert "| zoo | 2 | 1 |" in card_markdown({**card, **{k: {} for k in (
        "per_split", "per_stem", "per_artifact", "per_adapter", "per_separator", "per_severity")},
        "n_pairs": 4, "segment_seconds": 0.1, "sample_rate": SR, "total_seconds": 0.4,
        "n_tracks": 1})


def test_sweep_items_hold_every_severity_and_refuse_a_family_seen_in_training(tmp_path, monkeypatch):
    import json

    from stemprover.data.testsets import make_item, separator_name
    from stemprover.stages import evaluation

    def fake_corpus(corpus, testset, n_tracks, seconds, split="test"):
        song = {s: v for s, v in _song_arrays().items()}
        return [make_item(testset, f"song{k}", song, SR, excerpt_seconds=1.0) for k in range(2)]

    monkeypatch.setattr(evaluation, "corpus_items", fake_corpus)
    (tmp_path / "corpus").mkdir()
    cfg = EvaluationConfig(sample_rate=SR, testsets=["quality_sweep"], n_tracks=2,
                           corpus_dir=str(tmp_path / "corpus"), sweep_severities=[0.1, 0.9])
    items = evaluation.build_items(cfg)
    assert sorted(i.key for i in items) == sorted(
        f"song{k}@bandsplit:severity={s}" for k in range(2) for s in ("0.1", "0.9"))
    mild, severe = (np.mean([si_sdr(i.separated[s], i.clean[s]) for i in items
                             if i.separator.endswith(f"={level}") for s in STEMS])
                    for level in ("0.1", "0.9"))
    assert mild > severe + 5.0
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"pairs": [{"separator": "bandsplit"}, {"separator": "hpss"}]}))
    with pytest.raises(StemproverError, match="held out"):
        evaluation.build_items(EvaluationConfig(**{**cfg.__dict__, "manifest": str(manifest)}))
    assert [separator_name(x) for x in ("degraded_bleed_0.6", "zoo-0.1-3", "openunmix@50",
                                        "hpss")] == ["degraded", "zoo", "openunmix", "hpss"]


def _song_arrays():
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    waves = {"vocals": np.sin(2 * np.pi * 440 * t), "drums": rng.standard_normal(t.size) * 0.2,
             "bass": np.sin(2 * np.pi * 82 * t), "other": np.sin(2 * np.pi * 1500 * t) * 0.3}
    song = {s: np.stack([w, w]).astype(np.float32) for s, w in waves.items()}
    song["mixture"] = sum(song[s] for s in STEMS)
    return song
