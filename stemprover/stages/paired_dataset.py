"""The dataset card of the paired dataset (stage 02): counts, durations, artifact mix.

    card = dataset_card(manifest_path, corpus_dir)
    write_dataset_card(card, results_dir("smoke", "02"))   # dataset_card.json and .md
    fig = plot_pair_example(manifest_path, n_fft=256, hop_length=64)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import librosa
import numpy as np

from stemprover.corpus import corpus_summary
from stemprover.data.pairs import adapter_for, pair_family, read_manifest
from stemprover.metrics.signal import si_sdr
from stemprover.report.style import STYLE


def dataset_card(manifest_path: str | Path, corpus_dir: str | Path) -> dict[str, Any]:
    """Summarise a pair manifest and the corpus it came from.

    Returns:
        A JSON-ready dict: ``n_pairs``, ``total_seconds``, ``total_hours``, ``sample_rate``,
        ``segment_seconds``, counts per split / stem / separator / artifact / adapter /
        severity, seconds per split, the corpus summary (with its render time) and the
        pair config.
    """

    manifest = read_manifest(manifest_path)
    pairs = manifest["pairs"]
    rate = int(manifest["sample_rate"])
    segment_seconds = int(manifest["segment_samples"]) / rate

    def count(key: str) -> dict[str, int]:
        return dict(sorted(Counter(str(p[key]) for p in pairs).items()))

    per_split = count("split")
    total = len(pairs) * segment_seconds
    return {
        "n_pairs": len(pairs),
        "total_seconds": round(total, 2),
        "total_hours": round(total / 3600, 4),
        "sample_rate": rate,
        "segment_seconds": segment_seconds,
        "n_tracks": len({(p["split"], p["track"]) for p in pairs}),
        "per_split": per_split,
        "seconds_per_split": {s: round(n * segment_seconds, 2) for s, n in per_split.items()},
        "per_stem": count("stem"),
        "per_separator": count("separator"),
        "per_artifact": count("artifact"),
        "per_adapter": dict(sorted(Counter(adapter_for(p["artifact"]) for p in pairs).items())),
        "per_severity": count("severity"),
        "per_family": dict(sorted(Counter(pair_family(p) for p in pairs).items())),
        "input_si_sdr": input_quality(manifest_path),
        "corpus": corpus_summary(Path(corpus_dir)),
        "config": manifest.get("config", {}),
    }


QUALITY_EDGES_DB = tuple(range(-15, 45, 5))  # histogram bins of input SI-SDR, dB


def input_quality(manifest_path: str | Path, max_per_family: int = 1500) -> dict[str, Any]:
    """Input SI-SDR (dB) of the separated side of the pairs, per separator family.

    Up to ``max_per_family`` pairs of each family, spread over the manifest, are read. Identity
    pairs (the clean stem as input) are counted apart, as their SI-SDR is unbounded.

    Returns:
        ``{"edges_db": [...], family: {"n", "n_identity", "quantiles": {"5", "25", "50",
        "75", "95"}, "counts": [...]}}``.
    """
    manifest = read_manifest(manifest_path)
    root = Path(manifest_path).parent
    by_family: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest["pairs"]:
        by_family.setdefault(pair_family(entry), []).append(entry)
    result: dict[str, Any] = {"edges_db": list(QUALITY_EDGES_DB)}
    for family, entries in sorted(by_family.items()):
        picks = entries[:: max(1, len(entries) // max_per_family)][:max_per_family]
        values, identity = [], 0
        for entry in picks:
            with np.load(root / entry["file"]) as data:
                if np.array_equal(data["separated"], data["clean"]):
                    identity += 1
                    continue
                values.append(si_sdr(data["separated"], data["clean"]))
        values = np.asarray(values)
        counts, _ = np.histogram(np.clip(values, QUALITY_EDGES_DB[0], QUALITY_EDGES_DB[-1]),
                                 bins=QUALITY_EDGES_DB)
        quantiles = {str(q): round(float(np.percentile(values, q)), 2)
                     for q in (5, 25, 50, 75, 95)} if values.size else {}
        result[family] = {"n": int(len(picks)), "n_identity": identity,
                          "quantiles": quantiles, "counts": counts.tolist()}
    return result


def plot_input_quality(card: dict[str, Any]):
    """Histogram of the pairs' input SI-SDR per separator family (from :func:`input_quality`)."""
    import matplotlib.pyplot as plt

    quality = card["input_si_sdr"]
    edges = np.asarray(quality["edges_db"], dtype=float)
    families = [f for f in quality if f != "edges_db"]
    plt.style.use(str(STYLE))
    fig, axes = plt.subplots(1, len(families), figsize=(6.5, 1.8), sharex=True, squeeze=False)
    for ax, family in zip(axes[0], families):
        counts = np.asarray(quality[family]["counts"])
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C0")
        extra = quality[family]["n_identity"]
        ax.set_title(f"{family}" + (f" (+{extra} identity)" if extra else ""), fontsize=7)
        ax.set_xlabel("input SI-SDR (dB)")
    axes[0, 0].set_ylabel("pairs")
    fig.tight_layout()
    return fig


def card_markdown(card: dict[str, Any]) -> str:
    """The card as a short Markdown document."""
    corpus = card["corpus"]
    lines = [
        "# Paired dataset",
        "",
        f"{card['n_pairs']} pairs of (separated, clean, mixture) mono segments of "
        f"{card['segment_seconds']:g} s at {card['sample_rate']} Hz: "
        f"{card['total_seconds'] / 60:.1f} min from {card['n_tracks']} tracks.",
        "",
        f"Corpus: {corpus['n_tracks']} songs, {corpus['seconds_total']:.0f} s of audio, "
        f"rendered in {corpus['render_seconds_total']:.0f} s "
        f"(sum of per-track render times); sources {corpus['per_source']}.",
        "",
    ]
    for title, key in (("Split", "per_split"), ("Stem", "per_stem"),
                       ("Artifact label", "per_artifact"), ("Adapter", "per_adapter"),
                       ("Separator", "per_separator"), ("Severity", "per_severity")):
        lines += [f"| {title} | pairs |", "|---|---|"]
        lines += [f"| {name} | {n} |" for name, n in card[key].items()]
        lines.append("")
    quality = card.get("input_si_sdr", {})
    lines += ["Input SI-SDR (dB) of the separated side, per separator family (identity pairs: "
              "the clean stem as input):", "",
              "| family | pairs read | identity | 5 % | 25 % | median | 75 % | 95 % |",
              "|---|---|---|---|---|---|---|---|"]
    for family, q in quality.items():
        if family == "edges_db":
            continue
        cells = [str(q["quantiles"].get(k, "")) for k in ("5", "25", "50", "75", "95")]
        lines.append(f"| {family} | {q['n']} | {q['n_identity']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_dataset_card(card: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``dataset_card.json`` and ``dataset_card.md`` into ``out_dir``."""
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "dataset_card.json", out_dir / "dataset_card.md"
    json_path.write_text(json.dumps(card, indent=2))
    md_path.write_text(card_markdown(card))
    return json_path, md_path


def pick_example(manifest_path: str | Path, artifact: str | None = None) -> dict[str, Any]:
    """The loudest-clean pair of ``artifact`` (any if None) in the manifest."""
    manifest = read_manifest(manifest_path)
    root = Path(manifest_path).parent
    candidates = [p for p in manifest["pairs"] if artifact is None or p["artifact"] == artifact]
    candidates = candidates[:: max(1, len(candidates) // 50)]  # look at ~50 of them

    def energy(entry: dict[str, Any]) -> float:
        with np.load(root / entry["file"]) as data:
            return float(np.mean(data["clean"] ** 2))

    return max(candidates, key=energy)


def plot_pair_example(manifest_path: str | Path, n_fft: int, hop_length: int,
                      artifacts: tuple[str, ...] = ("hf_loss", "musical_noise", "bleed",
                                                    "phase_smear")):
    """Spectrograms (dB) of clean and separated segments, one row per artifact label."""
    import matplotlib.pyplot as plt

    manifest = read_manifest(manifest_path)
    root, rate = Path(manifest_path).parent, int(manifest["sample_rate"])
    present = [a for a in artifacts if any(p["artifact"] == a for p in manifest["pairs"])]
    plt.style.use(str(STYLE))
    fig, axes = plt.subplots(len(present), 3, figsize=(6.5, 1.5 * len(present) + 0.4),
                             squeeze=False, sharex=True, sharey=True)
    for row, artifact in enumerate(present):
        entry = pick_example(manifest_path, artifact)
        with np.load(root / entry["file"]) as data:
            arrays = {k: data[k] for k in ("clean", "separated", "mixture")}
        peak = max(np.abs(librosa.stft(arrays["mixture"], n_fft=n_fft,
                                       hop_length=hop_length)).max(), 1e-9)
        for col, name in enumerate(("clean", "separated", "mixture")):
            spec = np.abs(librosa.stft(arrays[name], n_fft=n_fft, hop_length=hop_length))
            db = 20 * np.log10(np.maximum(spec, 1e-5 * peak) / peak)
            ax = axes[row, col]
            ax.imshow(db, origin="lower", aspect="auto", vmin=-80, vmax=0, cmap="magma",
                      extent=(0, len(arrays[name]) / rate, 0, rate / 2000))
            title = f"{name}" if name != "separated" else (
                f"separated ({artifact}, s={entry['severity']:g})")
            ax.set_title(f"{entry['stem']}: {title}", fontsize=7)
        axes[row, 0].set_ylabel("kHz")
    for ax in axes[-1]:
        ax.set_xlabel("s")
    return fig
