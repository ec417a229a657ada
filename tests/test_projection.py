"""Mixture projection of the four cleaned stems of one song."""

import numpy as np
import pytest

from stemprover.constants import STEMS
from stemprover.errors import StemproverError
from stemprover.inference.enhance import enhance
from stemprover.inference.postfilter import postfilter
from stemprover.inference.projection import enhance_stems, project
from tests.test_enhance import RegressionFake

SR = 16000


def _song(seconds=1.0, seed=0):
    """Four tonal sources and separated stems that each carry 30% of the next source."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    # panned tones with a little noise of their own in each channel: every source has a
    # full-rank spatial covariance, as real stereo stems do
    sources = {
        stem: (np.stack([0.2 * np.sin(2 * np.pi * f * t), 0.1 * np.sin(2 * np.pi * f * t + 1)])
               + 0.01 * rng.standard_normal((2, t.size))).astype(np.float32)
        for stem, f in zip(STEMS, (440.0, 1500.0, 110.0, 3000.0))
    }
    separated = {s: sources[s] + 0.3 * sources[STEMS[(i + 1) % 4]] for i, s in enumerate(STEMS)}
    return sources, separated, sum(sources.values())


def _snr(estimate, reference):
    return 10 * np.log10(np.sum(reference**2) / np.sum((estimate - reference) ** 2))


def test_an_identity_model_then_projection_is_the_wiener_post_filter():
    _, separated, mixture = _song()
    cleaned = enhance_stems(separated, SR, RegressionFake(), mixture=mixture)
    expected = postfilter(separated, SR, mixture=mixture)
    for stem in STEMS:
        np.testing.assert_allclose(cleaned[stem], expected[stem], atol=1e-4)
    assert _snr(sum(cleaned.values()), mixture) > 30  # the stems sum back to the mixture


def test_projection_removes_bleed_that_the_model_left():
    sources, separated, mixture = _song()
    cleaned = enhance_stems(separated, SR, RegressionFake(), mixture=mixture, projection="both")
    for stem in STEMS:
        assert _snr(cleaned[stem], sources[stem]) > _snr(separated[stem], sources[stem]) + 6


def test_no_projection_is_the_model_alone_and_the_order_matters():
    from stemprover.inference.enhance import Enhancer

    _, separated, mixture = _song()
    # halves every stem (no level guard): the projection restores the level
    model = Enhancer(RegressionFake(gain=0.5), max_drop_db=None)
    alone = enhance_stems({"vocals": separated["vocals"]}, SR, model, mixture=mixture,
                          projection="none")
    np.testing.assert_array_equal(alone["vocals"],
                                  enhance(separated["vocals"], SR, model, mixture=mixture))
    after = enhance_stems(separated, SR, model, mixture=mixture, projection="after")
    before = enhance_stems(separated, SR, model, mixture=mixture, projection="before")
    assert _snr(sum(after.values()), mixture) > 30
    projected = project(separated, SR, mixture)
    for stem in STEMS:  # the model acted last, on the projected stems
        np.testing.assert_array_equal(
            before[stem], enhance(projected[stem], SR, model, mixture=mixture))
    # the model's change (bounded by each stem's residual) comes last: the sum moves off
    assert _snr(sum(before.values()), mixture) < _snr(sum(after.values()), mixture) - 10


@pytest.mark.parametrize("stems,mixture,message", [
    (["vocals", "bass"], True, "needs all four stems; missing drums, other"),
    (STEMS, False, "needs the mixture"),
])
def test_projection_refuses_what_it_cannot_project(stems, mixture, message):
    _, separated, mix = _song(0.2)
    model = RegressionFake()
    with pytest.raises(StemproverError, match=message):
        enhance_stems({s: separated[s] for s in stems}, SR, model,
                      mixture=mix if mixture else None)
    assert model.calls == []  # refused before the model ran
    with pytest.raises(StemproverError, match="unknown projection 'sideways'"):
        enhance_stems(separated, SR, model, mixture=mix, projection="sideways")


def test_project_keeps_shapes_and_dtype():
    _, separated, mixture = _song(0.5)
    out = project(separated, SR, mixture)
    assert list(out) == list(STEMS)
    assert all(out[s].shape == mixture.shape and out[s].dtype == np.float32 for s in STEMS)


@pytest.mark.parametrize("channels,n_samples,block_frames", [(2, 16000, 7), (2, 16000, 1),
                                                              (1, 9001, 16), (2, 300, 4)])
def test_the_streamed_projection_equals_open_unmix_on_the_whole_song(channels, n_samples,
                                                                       block_frames):
    from stemprover.inference.projection import project_streams
    from stemprover.inference.streaming import ArraySink, ArraySource

    _, separated, mixture = _song(n_samples / SR)
    separated = {s: a[:channels] for s, a in separated.items()}
    mixture = mixture[:channels]
    reference = postfilter(separated, SR, mixture=mixture)  # librosa STFT + openunmix's filter

    def streamed(frames):
        sinks = {s: ArraySink(channels, n_samples) for s in STEMS}
        project_streams({s: ArraySource(separated[s], SR) for s in STEMS},
                        ArraySource(mixture, SR), sinks, block_frames=frames)
        assert all(sinks[s].n_written == n_samples for s in STEMS)
        return {s: sinks[s].audio for s in STEMS}

    blocks, whole = streamed(block_frames), streamed(10**6)
    for stem in STEMS:
        # every sample, block edges included: both see the same frames and statistics
        np.testing.assert_allclose(blocks[stem], whole[stem], atol=1e-6)
        # both filters run in float32 on near-rank-one 2x2 covariances (panned tones), whose
        # inverses amplify rounding: 3e-4 is about 1e-3 of the stems' peak
        np.testing.assert_allclose(whole[stem], reference[stem], atol=3e-4)


def test_load_projected_streams_files_into_temporary_ones(tmp_path):
    import gc

    import soundfile as sf

    from stemprover.inference.projection import load_projected

    _, separated, mixture = _song(0.5)
    paths = {}
    for stem in STEMS:
        paths[stem] = str(tmp_path / f"{stem}.wav")
        sf.write(paths[stem], separated[stem].T, SR, subtype="FLOAT")
    sf.write(tmp_path / "mix.wav", mixture.T, SR, subtype="FLOAT")
    projected, rate = load_projected(paths, str(tmp_path / "mix.wav"))
    assert rate == SR
    expected = project(separated, SR, mixture)
    for stem in STEMS:
        source = projected[paths[stem]]
        np.testing.assert_allclose(source.read(0, source.n_samples), expected[stem], atol=1e-7)
    folder = projected[paths["vocals"]].path.parent
    assert folder.is_dir() and not folder.is_relative_to(tmp_path)  # inputs' folder untouched
    del projected, source
    gc.collect()
    assert not folder.exists()
