"""Design study row 34, step 2: which mixture projection leaves a good stem alone?

    .venv/bin/python results/design/row34/projection.py            # projection_gains.csv

The Wiener projection (Open-Unmix's filter, 05's default) rebuilds each stem from the mixture
with the mixture's phase and the stems' power ratios, which caps a good stem at about the
oracle Wiener mask's quality. The mixture-consistency projection (Wisdom et al., ICASSP 2019)
only hands the residual, the mixture minus the sum of the stems, back to the stems in
proportion to their power in each time-frequency bin: stems that already sum to the mixture
are returned unchanged. Both are scored on the corpus valid split (4 tracks, 4 s) separated
by the training families (typed degraded oracles, HPSS, REPET, zoo draws at several
severities) and on the quality sweep's held-out band-split family (test split).
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from stemprover.constants import STEMS
from stemprover.data.testsets import corpus_items, separate_items
from stemprover.inference.projection import project
from stemprover.metrics.signal import si_sdr
from stemprover.project.paths import cache_dir
from stemprover.separators import get_separator

HERE = Path(__file__).parent
N_FFT, HOP = 2048, 512  # ~93 ms at 22.05 kHz: the Wiener filter's own resolution
VALID = ["degraded:artifact=bleed,severity=0.6", "degraded:artifact=musical_noise,severity=0.6",
         "degraded:artifact=hf_loss,severity=0.6", "hpss", "repet",
         *[f"zoo:severity={s},seed={k}" for k, s in enumerate((0.02, 0.05, 0.1, 0.2, 0.4, 0.8))]]
SWEEP = [f"bandsplit:severity={s}" for s in (0.1, 0.3, 0.5, 0.7, 0.9)]


def consistency(stems: dict[str, np.ndarray], mixture: np.ndarray) -> dict[str, np.ndarray]:
    """Mixture consistency: the residual shared out by each stem's power share per bin."""
    specs = {s: librosa.stft(stems[s], n_fft=N_FFT, hop_length=HOP) for s in STEMS}
    residual = librosa.stft(mixture, n_fft=N_FFT, hop_length=HOP) - sum(specs.values())
    power = {s: np.abs(v) ** 2 for s, v in specs.items()}
    total = sum(power.values()) + 1e-12
    n = mixture.shape[-1]
    return {s: librosa.istft(specs[s] + power[s] / total * residual, hop_length=HOP,
                             n_fft=N_FFT, length=n).astype(np.float32) for s in STEMS}


GATE_SCALES = (0.01, 0.03, 0.1, 0.3)


def inconsistency(stems: dict[str, np.ndarray], mixture: np.ndarray) -> float:
    """How far the stems are from summing to the mixture: energy of the residual over the
    mixture's (0 for stems that sum to it exactly)."""
    residual = mixture - sum(stems[s] for s in STEMS)
    return float(np.sum(residual.astype(np.float64) ** 2) / max(np.sum(mixture.astype(np.float64) ** 2), 1e-12))


def score(testset: str, split: str, specs: list[str], n_tracks: int) -> list[dict]:
    base = corpus_items(cache_dir("cpu", "corpus"), testset, n_tracks, 4.0, split=split)
    rows = []
    for item in tqdm(list(separate_items(base, specs, get_separator, 22050)), desc=testset):
        wiener = project(item.separated, item.sample_rate, item.mixture)
        systems = {"identity": item.separated, "wiener": wiener,
                   "consistency": consistency(item.separated, item.mixture)}
        error = inconsistency(item.separated, item.mixture)
        for scale in GATE_SCALES:  # the Wiener change in proportion to the inconsistency
            share = min(1.0, error / scale)
            systems[f"gated@{scale:g}"] = {s: item.separated[s] + share * (wiener[s] - item.separated[s])
                                           for s in STEMS}
        for system, stems in systems.items():
            rows += [{"testset": testset, "track": item.track, "separator": item.separator,
                      "stem": stem, "system": system, "inconsistency": error,
                      "si_sdr": si_sdr(stems[stem], item.clean[stem])} for stem in STEMS]
    return rows


def main() -> None:
    table = pd.DataFrame(score("valid", "valid", VALID, 4) + score("sweep", "test", SWEEP, 4))
    table.to_csv(HERE / "projection_scores.csv", index=False)
    keys = ["testset", "track", "separator", "stem"]
    inputs = table[table["system"] == "identity"].set_index(keys)["si_sdr"].rename("input")
    table = table.join(inputs, on=keys)
    table["gain"] = table["si_sdr"] - table["input"]
    table["bin"] = pd.cut(table["input"], [-np.inf, 0, 5, 10, 15, 20, np.inf],
                          labels=["<0", "0-5", "5-10", "10-15", "15-20", ">20"])
    table["family"] = table["separator"].str.split(":").str[0]
    rows = table[table["system"] != "identity"]
    by_bin = rows.pivot_table(index=["testset", "system"], columns="bin", values="gain",
                              aggfunc="mean", observed=False)
    by_bin["all"] = rows.groupby(["testset", "system"])["gain"].mean()
    by_family = rows.pivot_table(index=["testset", "system"], columns="family", values="gain",
                                 aggfunc="mean")
    out = pd.concat([by_bin, by_family], axis=1).round(2)
    out.to_csv(HERE / "projection_gains.csv")
    print(out.to_string())


if __name__ == "__main__":
    main()
