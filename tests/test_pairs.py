"""Paired dataset: segment layout, manifest, caching, PairDataset and the dataset card."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stemprover.constants import ADAPTERS, STEMS
from stemprover.data.pairs import PairDataset, PairsConfig, build_pairs, segment_offsets
from stemprover.dsp.audio import resample, save_audio
from stemprover.errors import StemproverError
from stemprover.stages.paired_dataset import dataset_card, plot_pair_example, write_dataset_card

SR = 44100
SECONDS = 2.0


def _track(rng: np.random.Generator, silent_tail: str | None = None) -> dict[str, np.ndarray]:
    n = int(SR * SECONDS)
    t = np.arange(n) / SR
    stems = {
        "vocals": 0.2 * np.sin(2 * np.pi * 440 * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))),
        "drums": 0.2 * rng.standard_normal(n) * np.exp(-(t % 0.25) * 20),
        "bass": 0.3 * np.sin(2 * np.pi * 55 * t),
        "other": 0.1 * (np.sin(2 * np.pi * 660 * t) + np.sin(2 * np.pi * 1320 * t)),
    }
    if silent_tail:
        stems[silent_tail][n // 2 :] = 0.0
    return {k: np.stack([v, 0.7 * v]).astype(np.float32) for k, v in stems.items()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    entries = []
    for split, track, tail in (("train", "a", None), ("train", "b", "vocals"), ("valid", "c", None)):
        stems = _track(rng, tail)
        for name, audio in {**stems, "mixture": sum(stems.values())}.items():
            save_audio(root / split / track / f"{name}.wav", audio, SR)
        entries.append({"track": track, "split": split, "piece": track, "source": "pop",
                        "soundfont": "FluidR3_GM", "seconds": SECONDS, "tempo": 100.0,
                        "voice": "festival", "render_seconds": 1.5})
    (root / "corpus.json").write_text(json.dumps(entries))
    return root


def _cfg(**overrides) -> PairsConfig:
    values = dict(sample_rate=16000, segment_seconds=0.5, overlap=0.5,
                  artifacts=["hf_loss", "bleed"], severities=[0.3, 0.9], blind_separators=["hpss"])
    values.update(overrides)
    return PairsConfig(**values)


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs")
    return build_pairs(_cfg(), corpus, out, progress=False), corpus


def test_segment_offsets():
    assert segment_offsets(10, 4, 0.5) == [0, 2, 4, 6]
    assert segment_offsets(10, 4, 0.0) == [0, 4]
    assert segment_offsets(3, 4, 0.5) == []


def test_manifest_counts_layout_and_content(built):
    manifest_path, corpus = built
    manifest = json.loads(manifest_path.read_text())
    assert manifest["sample_rate"] == 16000 and manifest["segment_samples"] == 8000
    pairs = manifest["pairs"]
    per_track_stem = 3 * 7 * 2  # (2 degraded + hpss) x 7 offsets x 2 channels
    # 12 track-stems, minus the silent second half of track b's vocals: offsets 16000,
    # 20000 and 24000 (the segment at 12000 still holds 4000 sounding samples).
    assert len(pairs) == 12 * per_track_stem - 3 * 3 * 2
    assert {p["artifact"] for p in pairs} == {"hf_loss", "bleed", "mixed"}
    assert {p["split"] for p in pairs} == {"train", "valid"}
    assert {p["severity"] for p in pairs if p["artifact"] == "mixed"} == {1.0}
    for p in pairs:
        assert set(p) == {"file", "track", "stem", "separator", "family", "artifact",
                          "severity", "offset", "channel", "split"}
        assert p["family"] == ("classical" if p["separator"] == "hpss" else "degraded")
    entry = next(p for p in pairs if p["track"] == "c" and p["stem"] == "bass"
                 and p["offset"] == 4000 and p["channel"] == 1 and p["artifact"] == "bleed")
    with np.load(manifest_path.parent / entry["file"]) as data:
        assert data["clean"].dtype == np.float32 and data["clean"].shape == (8000,)
        from stemprover.dsp.audio import load_audio

        clean, _ = load_audio(corpus / "valid" / "c" / "bass.wav")
        expected = resample(clean, SR, 16000)[1, 4000:12000]
        np.testing.assert_allclose(data["clean"], expected, atol=1e-6)
        assert not np.allclose(data["separated"], data["clean"], atol=1e-3)


def test_second_build_reuses_the_cache(built, tmp_path):
    manifest_path, corpus = built
    stamp = manifest_path.stat().st_mtime_ns
    assert build_pairs(_cfg(), corpus, manifest_path.parent, progress=False) == manifest_path
    assert manifest_path.stat().st_mtime_ns == stamp


def test_pair_dataset_items(built):
    manifest_path, _ = built
    train = PairDataset(manifest_path, "train")
    valid = PairDataset(manifest_path, "valid", stems=["bass"], artifacts=["bleed"])
    assert len(valid) == 7 * 2 and len(train) > len(valid)
    item = valid[0]
    assert item["separated"].shape == (8000,) and item["separated"].dtype == torch.float32
    assert item["adapter"] == ADAPTERS.index("bleed")
    assert item["severity"] in (0.3, 0.9)
    mixed = PairDataset(manifest_path, "train", artifacts=["mixed"])
    assert mixed[0]["adapter"] == ADAPTERS.index("general")
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=4)))
    assert batch["clean"].shape == (4, 8000)


def test_dataset_card(built, tmp_path):
    manifest_path, corpus = built
    card = dataset_card(manifest_path, corpus)
    assert card["n_pairs"] == sum(card["per_split"].values())
    assert card["total_seconds"] == pytest.approx(card["n_pairs"] * 0.5)
    assert card["corpus"]["render_seconds_total"] == pytest.approx(4.5)
    assert sum(card["per_adapter"].values()) == card["n_pairs"]
    assert set(card["per_stem"]) == set(STEMS)
    json_path, md_path = write_dataset_card(card, tmp_path)
    assert json.loads(json_path.read_text())["n_pairs"] == card["n_pairs"]
    assert "| bleed |" in md_path.read_text()
    fig = plot_pair_example(manifest_path, n_fft=256, hop_length=64)
    assert len(fig.axes) == 2 * 3


def test_config_and_missing_inputs(corpus, tmp_path):
    with pytest.raises(StemproverError, match="overlap"):
        PairsConfig(overlap=1.0)
    with pytest.raises(StemproverError, match="artifacts"):
        PairsConfig(artifacts=["clipping"])
    with pytest.raises(StemproverError, match="no trained htdemucs"):
        build_pairs(_cfg(blind_separators=["htdemucs"], weights_dir=str(tmp_path)), corpus,
                    tmp_path / "out", progress=False)
    with pytest.raises(StemproverError, match="no pair manifest"):
        PairDataset(tmp_path / "manifest.json", "train")


def test_max_segments_keeps_a_seeded_subset(corpus, tmp_path):
    cfg = _cfg(splits=["valid"], artifacts=["bleed"], severities=[0.5], blind_separators=[],
               max_segments=3)
    pairs = json.loads(build_pairs(cfg, corpus, tmp_path / "a", progress=False).read_text())
    again = json.loads(build_pairs(cfg, corpus, tmp_path / "b", progress=False).read_text())
    assert len(pairs["pairs"]) == 4 * 3  # 4 stems x 3 of their 14 segment-channels
    assert [p["file"] for p in pairs["pairs"]] == [p["file"] for p in again["pairs"]]


def test_projected_pairs_hold_the_stems_after_the_mixture_projection(corpus, tmp_path):
    from stemprover.corpus import load_track
    from stemprover.inference.projection import project
    from stemprover.separators import get_separator

    # bleed makes the stems sum to more than the mixture, so the projection changes them
    cfg = _cfg(artifacts=["bleed"], severities=[0.9], blind_separators=[], projection="before",
               max_tracks_per_split=1, splits=["valid"])
    manifest = json.loads(build_pairs(cfg, corpus, tmp_path, progress=False).read_text())
    assert manifest["config"]["projection"] == "before"
    audio = load_track(corpus / "valid" / "c")
    audio = {s: resample(audio[s], SR, 16000) for s in STEMS}
    mixture = np.sum([audio[s] for s in STEMS], axis=0)
    separated = get_separator("degraded", artifact="bleed", severity=0.9, seed=cfg.seed).separate(
        mixture, 16000, references=audio)
    projected = project(separated, 16000, mixture)
    entry = next(p for p in manifest["pairs"] if p["stem"] == "drums" and p["channel"] == 0)
    window = slice(entry["offset"], entry["offset"] + cfg.segment_samples)
    with np.load(tmp_path / entry["file"]) as data:
        np.testing.assert_allclose(data["separated"], projected["drums"][0, window], atol=1e-5)
        assert not np.allclose(data["separated"], separated["drums"][0, window], atol=1e-3)
    with pytest.raises(StemproverError, match="projection must be"):
        _cfg(projection="after")
