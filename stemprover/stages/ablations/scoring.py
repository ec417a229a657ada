"""The grid's scoring items and how a row is scored on them.

    pairs = heldout_pairs(cfg)     # 02's valid pairs of the held-out separators
    tracks = heldout_tracks(cfg)   # whole corpus valid tracks, separated by them (all stems)
    evaluate = make_evaluate_fn(pairs, tracks, cfg)

A row is scored as a user gets it: each item goes through
:func:`stemprover.inference.enhance.enhance` (the projection rows through
:func:`stemprover.inference.projection.enhance_stems`) with the row's steps, adapters and
projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stemprover.constants import STEMS
from stemprover.data.pairs import PairDataset
from stemprover.data.testsets import corpus_items, resolve_separator, separate_items
from stemprover.dsp.phase import mean_phase_deviation
from stemprover.dsp.spectral import StftConfig
from stemprover.errors import StemproverError
from stemprover.inference.enhance import EnhanceOptions, Enhancer, enhance
from stemprover.inference.projection import enhance_stems
from stemprover.metrics.signal import lsd, si_sdr
from stemprover.project.inputs import input_path, require
from stemprover.separators import get_separator
from stemprover.stages.ablations.grid import AblationConfig, Row
from stemprover.stages.ablations.table import clustered_bootstrap
from stemprover.stages.ablations.training import is_heldout
from stemprover.train.data import spread


@dataclass
class PairItem:
    """One held-out valid pair: mono segments at the model's rate, and the track it is from."""

    separated: np.ndarray
    clean: np.ndarray
    mixture: np.ndarray
    track: str


def heldout_pairs(cfg: AblationConfig) -> list[PairItem]:
    """The valid-split pairs of ``cfg.heldout_separators`` (at most ``cfg.max_items``, spread
    evenly), from 02's manifest."""
    manifest = require(cfg.manifest, "paired dataset", "02_paired_dataset")
    valid = PairDataset(manifest, "valid")
    chosen = [i for i, entry in enumerate(valid.entries)
              if is_heldout(entry.get("separator", ""), cfg.heldout_separators)]
    if not chosen:
        raise StemproverError(f"{manifest}: no valid pairs of the held-out separator(s) "
                              f"{', '.join(cfg.heldout_separators)}")
    if cfg.max_items:
        chosen = spread(chosen, cfg.max_items)
    items = []
    for index in chosen:
        arrays = valid[index]
        items.append(PairItem(*(arrays[k].numpy() for k in ("separated", "clean", "mixture")),
                              track=valid.entries[index]["track"]))
    return items


def heldout_tracks(cfg: AblationConfig) -> list:
    """``cfg.n_tracks`` corpus valid tracks (``track_seconds`` each), separated by every
    held-out separator: the four stems a mixture projection needs."""
    corpus = input_path(cfg.corpus_dir)
    if not corpus.is_dir():
        raise StemproverError(f"no corpus at {corpus}: run 01_phase_analysis first")
    base = corpus_items(corpus, "valid", cfg.n_tracks, cfg.track_seconds, split="valid")
    specs = [resolve_separator(s, cfg.separator_weights) for s in cfg.heldout_separators]
    return list(separate_items(base, specs, get_separator, cfg.sample_rate))


def score_outputs(pairs: list[tuple[np.ndarray, np.ndarray]], tracks: list[str],
                  cfg: AblationConfig) -> dict[str, Any]:
    """SI-SDR (mean, CI over tracks), phase deviation and LSD of ``(estimate, clean)`` pairs;
    ``tracks`` names the track of each pair."""
    stft_cfg = StftConfig(n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    values = [si_sdr(est, ref) for est, ref in pairs]
    mean, low, high, n = clustered_bootstrap(values, tracks, n_resamples=cfg.n_bootstrap,
                                             seed=cfg.seed, key="si_sdr")
    phase = [mean_phase_deviation(e, r, cfg.sample_rate, stft_cfg) for e, r in pairs]
    return {
        "si_sdr": mean,
        "si_sdr_ci_low": low,
        "si_sdr_ci_high": high,
        "phase_dev": float(np.nanmean(phase)),
        "lsd": float(np.mean([lsd(e, r, stft_cfg) for e, r in pairs])),
        "n": n,
        "si_sdr_items": [float(v) for v in values],
        "tracks": list(tracks),
    }


def identity_scores(pairs: list[PairItem], cfg: AblationConfig) -> dict[str, Any]:
    """The separator output's scores on the pairs (the baseline the reference must beat)."""
    return score_outputs([(p.separated, p.clean) for p in pairs], [p.track for p in pairs], cfg)


def make_evaluate_fn(pairs: list[PairItem], tracks: list, cfg: AblationConfig):
    """Enhance a row's items with its inference settings and score them."""

    def evaluate(model: Any, row: Row) -> dict[str, Any]:
        infer = dict(row.infer)
        options = EnhanceOptions(steps=infer["steps"], adapters=infer["adapters"],
                                 device=cfg.device, seed=cfg.seed)
        enhancer = Enhancer(model, options)
        if row.items == "pairs":
            outputs = [(enhance(p.separated, cfg.sample_rate, enhancer, mixture=p.mixture), p.clean) for p in pairs]
            return score_outputs(outputs, [p.track for p in pairs], cfg)
        outputs, names = [], []
        for item in tracks:
            cleaned = enhance_stems(item.separated, item.sample_rate, enhancer,
                                    mixture=item.mixture, projection=infer["projection"])
            outputs += [(cleaned[stem], item.clean[stem]) for stem in STEMS]
            names += [item.track] * len(STEMS)
        return score_outputs(outputs, names, cfg)

    return evaluate
