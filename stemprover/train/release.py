"""Release trained weights to ``models/default/`` with a model card written from results files.

    python -m stemprover.train.release --profile cpu

Copies ``results/<profile>/04_lora_training/weights/stemprover/`` (safetensors and JSON only:
diffusers U-Net/ControlNet/scheduler, peft adapters) and writes ``MODEL_CARD.md`` whose numbers
are all read from the stage's results files (03 ``validation.json``, 04 ``valid_summary.json``,
``adapters.csv``, ``train_log.csv`` and the 02 dataset card), never typed by hand.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd

from stemprover.errors import StemproverError
from stemprover.model.serialize import read_meta, write_folder
from stemprover.project.paths import repo_root, results_dir

ALLOWED = (".safetensors", ".json")
MAX_BYTES = 60 * 2**20


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def model_card(profile: str, weights: Path, note: str = "") -> str:
    """Markdown model card for the weights of ``profile`` (numbers from results files).

    Args:
        profile: Profile whose results folders are read.
        weights: The released weights folder (its ``stemprover.json``).
        note: Free text for a "Notes" section (provenance caveats; no numbers).
    """
    meta = read_meta(weights, "stemprover")
    cfg = meta["config"]
    stage03 = results_dir(profile, "03_base_pretraining", create=False)
    stage04 = results_dir(profile, "04_lora_training", create=False)
    base = _read_json(stage03 / "validation.json")
    valid = _read_json(stage04 / "valid_summary.json")
    card02 = _read_json(results_dir(profile, "02_paired_dataset", create=False) / "dataset_card.json")
    adapters = pd.read_csv(stage04 / "adapters.csv") if (stage04 / "adapters.csv").exists() else None
    log = pd.read_csv(stage04 / "train_log.csv") if (stage04 / "train_log.csv").exists() else None
    size = sum(p.stat().st_size for p in weights.rglob("*") if p.is_file())
    lines = [
        "# StemProver default model",
        "",
        f"Profile `{profile}`, StemProver {meta['version']}. A bridge from the separated stem "
        f"to the clean one: diffusers `UNet2DConditionModel` base (`unet/`, the bridge restorer "
        f"from x_t alone, frozen), control branch `{cfg.get('control')}` reading the stem and "
        f"the mixture through phase-aware zero convolutions (`control_unet/` or `controlnet/`, "
        f"`embeddings.safetensors`), peft LoRA adapters (`adapters/<name>/`), the scheduler "
        f"config (`scheduler/`) and the validated blend of each adapter (`stemprover.json`). "
        f"Total size {size / 2**20:.1f} MiB.",
        "",
        "## Configuration",
        "",
        f"- representation `{cfg['representation']}`, {cfg['sample_rate']} Hz, n_fft "
        f"{cfg['n_fft']}, hop {cfg['hop_length']}; mode `{cfg['mode']}`; formulation "
        f"`{cfg.get('formulation', 'sdedit')}`, frequency fold {cfg.get('freq_fold', 1)}",
        f"- U-Net blocks {cfg['block_out_channels']}, {cfg['layers_per_block']} layer(s) per "
        f"block; control `{cfg['control']}`, frequency attention {cfg['freq_attention']}; "
        f"LoRA rank {cfg['lora_rank']} on {', '.join(cfg['lora_targets'])}",
        "",
        "## Training data and budget",
        "",
    ]
    data = _read_json(stage04 / "data.json")
    if data:
        lines.append(f"- training pairs: {data['n_train_pairs']} from `{data['pairs']}` at "
                     f"{data['sample_rate']} Hz; per adapter phase: "
                     + ", ".join(f"{k} {v}" for k, v in data["pairs_per_adapter"].items()))
    elif card02:
        keys = [k for k in ("n_pairs", "n_tracks", "total_seconds", "per_split") if k in card02]
        summary = ", ".join(f"{k} {card02[k]}" for k in keys) or "see the dataset card"
        lines.append(f"- paired dataset (`results/{profile}/02_paired_dataset/`): {summary}")
    else:
        lines.append(f"- paired dataset: `results/{profile}/02_paired_dataset/` (no card found)")
    if base:
        lines.append(f"- base pretraining: {base.get('steps')} steps on "
                     f"{base.get('n_train_segments')} training items, "
                     f"{base.get('train_seconds', 0) / 60:.1f} min; held-out loss "
                     f"{base.get('valid_loss', float('nan')):.3f}")
    run04 = _read_json(stage04 / "run.json")
    if run04:
        lines.append(f"- code commit `{run04.get('code_commit')}`; phases (steps, minutes): "
                     + ", ".join(f"{k} {v['steps']} / {v['minutes']}"
                                 for k, v in run04.get("phases", {}).items()))
    if meta.get("blend"):
        lines.append("- blend alpha per adapter (validated): "
                     + ", ".join(f"{k} {v:.1f}" for k, v in meta["blend"].items()))
    if log is not None:
        steps = log.groupby("phase")["step"].max().to_dict()
        lines.append("- control + LoRA and regression steps per phase: "
                     + ", ".join(f"{k} {int(v)}" for k, v in steps.items()))
    if adapters is not None:
        lines += ["", "## Adapters", "", "| adapter | parameters | share of base (%) |",
                  "|---|---|---|"]
        for row in adapters.itertuples():
            lines.append(f"| {row.adapter} | {row.parameters} | {row.share_of_base_percent:.2f} |")
    if valid:
        settings = valid.get("settings", {})
        lines += ["", "## Validation on held-out pairs", "",
                  f"{settings.get('n_pairs')} pairs of the valid split, {settings.get('steps')} "
                  f"sampling steps from strength {settings.get('strength')}, "
                  f"adapter = {settings.get('adapter_choice')}.", "",
                  "| system | SI-SDR (dB) | mean phase deviation (rad) |", "|---|---|---|"]
        for system in ("input", "regression", "stemprover"):
            if system in valid:
                row = valid[system]
                lines.append(f"| {system} | {row['si_sdr']:.2f} | {row['phase_dev']:.3f} |")
        lines += ["", "\"input\" is the separated stem itself. These are small-budget numbers "
                  f"of the `{profile}` profile; they are what this checkpoint reaches, not "
                  "the method's ceiling."]
    if note:
        lines += ["", "## Notes", "", note]
    lines += ["", "## Use", "", "```", "stemprover enhance separated_vocals.wav -o cleaned/  "
              "# uses models/default when no --model is given",
              "stemprover enhance vocals.wav drums.wav bass.wav other.wav --mixture song.wav "
              "--project -o cleaned/", "```", "",
              "With a song's four stems and its mixture, `--project` first redistributes the "
              "mixture between the stems with a Wiener filter and then cleans each one: the "
              "system notebook 05 evaluates as StemProver.", ""]
    return "\n".join(lines)


def release(profile: str, dest: Path | None = None, note: str = "") -> Path:
    """Copy the profile's trained StemProver weights to ``dest`` with a model card."""
    weights = results_dir(profile, "04_lora_training", create=False) / "weights" / "stemprover"
    dest = Path(dest) if dest is not None else repo_root() / "models" / "default"
    if not (weights / "stemprover.json").exists():
        raise StemproverError(f"{weights}: no trained weights; run notebook 04 first")
    files = [p for p in weights.rglob("*") if p.is_file()]
    other = [p.name for p in files if p.suffix not in ALLOWED]
    if other:
        raise StemproverError(f"{weights}: refusing to release non-safetensors files {other}")
    size = sum(p.stat().st_size for p in files)
    if size > MAX_BYTES:
        raise StemproverError(f"{weights}: {size / 2**20:.0f} MiB exceeds the release limit")
    card = model_card(profile, weights, note)

    def fill(tmp: Path) -> None:
        for path in files:
            target = tmp / path.relative_to(weights)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        (tmp / "MODEL_CARD.md").write_text(card)

    return write_folder(dest, fill)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stemprover.train.release", description=__doc__)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--dest", type=Path, default=None)
    parser.add_argument("--note", default="", help="text for the card's Notes section")
    args = parser.parse_args(argv)
    print(f"released to {release(args.profile, args.dest, args.note)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
