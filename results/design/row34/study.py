"""Design study row 34: does the zoo with identity targets and the harm hinge stop the harm?

    .venv/bin/python results/design/row34/pairs.py                         # the pairs
    .venv/bin/python results/design/row34/study.py train zoo --minutes 15 --harm 1.0
    .venv/bin/python results/design/row34/study.py train old --minutes 15 --exclude zoo
    .venv/bin/python results/design/row34/study.py sweep released zoo     # sweep_gains.csv

``train NAME`` continues the released model (models/default: frozen base, control branch and
adapters) on the row-34 pairs for a fixed wall time, training the control branch, the
``general`` adapter and the type tokens as 04's general phase does, each pair on its own type.
``sweep`` scores models on the quality sweep of 05 (the corpus test tracks, every stem
degraded by the held-out ``bandsplit`` family at five severities) with the shipped inference
path (segments, overlap-add, stored blend): the model alone, the projection alone and the
cascade, against the separator output. Results go to this folder; weights to build/cache.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from stemprover.data.pairs import PairDataset
from stemprover.data.testsets import corpus_items, separate_items
from stemprover.inference.projection import enhance_stems, project
from stemprover.metrics.signal import si_sdr, zimtohrli_mos
from stemprover.model import adapters as lora
from stemprover.model import load_model
from stemprover.model.adapters import control_parameters
from stemprover.model.unet import freeze
from stemprover.project.paths import cache_dir, repo_root
from stemprover.project.seed import seed_everything
from stemprover.separators import get_separator
from stemprover.train.loop import collate
from stemprover.train.losses import LossConfig
from stemprover.train.steps import diffusion_step, loss_for

HERE = Path(__file__).parent
STEMS = ("vocals", "drums", "bass", "other")
SEVERITIES = (0.1, 0.3, 0.5, 0.7, 0.9)
LOSS = dict(diffusion=0.0, snr=1.0, complex=0.1, phase_cosine=0.1, inst_freq=0.05, mrstft=0.0)


def model_dir(name: str) -> Path:
    return repo_root() / "models" / "default" if name == "released" else cache_dir(
        "cpu", "row34", name)


def train(name: str, minutes: float, harm: float, lr: float, batch_size: int, seed: int,
          exclude: list[str], init: str = "released") -> None:
    seed_everything(seed)
    torch.set_num_threads(1)
    manifest = cache_dir("cpu", "row34", "pairs") / "manifest.json"
    data = PairDataset(manifest, "train", exclude_families=exclude)
    model = load_model(model_dir(init))
    freeze(model.unet)
    params = {f"lora.{k}": p for k, p in lora.adapter_parameters(model.unet, "general").items()}
    params.update(control_parameters(model))
    params["tokens"] = model.artifact_embedding.table
    for p in params.values():
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params.values(), lr=lr, weight_decay=0.0)
    loss_fn = loss_for(model, LossConfig(**LOSS, harm=harm))
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=generator)
    model.train()
    start, step, log = time.monotonic(), 0, []
    bar = tqdm(desc=f"train {name}", unit="step")
    while time.monotonic() - start < minutes * 60:
        picks = order[(step * batch_size) % len(data):][:batch_size]
        batch = collate([data[int(i)] for i in picks])
        loss, terms = diffusion_step(model, loss_fn, None, batch, generator,
                                     adapter=batch["adapter"], mixture_dropout=0.2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        log.append({"step": step, "seconds": time.monotonic() - start, "loss": float(loss),
                    **{k: float(v) for k, v in terms.items()}})
        bar.update(1)
    bar.close()
    model.eval()
    model.save_pretrained(model_dir(name))
    pd.DataFrame(log).to_csv(HERE / f"train_{name}.csv", index=False)
    print(f"{name}: {step} steps in {minutes} min, {len(data)} pairs")


VALID_SPECS = ["hpss", "degraded:artifact=bleed,severity=0.6",
               "degraded:artifact=musical_noise,severity=0.6",
               *[f"zoo:severity={s},seed={k}" for k, s in enumerate((0.05, 0.2, 0.5, 0.9))]]


def sweep(names: list[str], n_tracks: int, seconds: float, perceptual: bool,
          split: str = "test") -> None:
    torch.set_num_threads(1)
    corpus = cache_dir("cpu", "corpus")
    base = corpus_items(corpus, "quality_sweep", n_tracks, seconds, split=split)
    specs = [f"bandsplit:severity={s:g}" for s in SEVERITIES] if split == "test" else VALID_SPECS
    suffix = "" if split == "test" else f"_{split}"
    models = {name: load_model(model_dir(name)) for name in names}
    rows = []
    items = list(separate_items(base, specs, get_separator, 22050))
    for item in tqdm(items, desc="sweep"):
        systems = {"identity": item.separated,
                   "projection": project(item.separated, item.sample_rate, item.mixture)}
        for name, model in models.items():
            systems[f"bridge:{name}"] = enhance_stems(
                item.separated, item.sample_rate, model, mixture=item.mixture,
                projection="none", steps=1, seed=0)
            systems[f"cascade:{name}"] = enhance_stems(
                systems["projection"], item.sample_rate, model, mixture=item.mixture,
                projection="none", steps=1, seed=0)
        for system, stems in systems.items():
            for stem in STEMS:
                row = {"track": item.track, "separator": item.separator, "stem": stem,
                       "system": system, "si_sdr": si_sdr(stems[stem], item.clean[stem])}
                if perceptual:
                    row["zimtohrli_mos"] = zimtohrli_mos(stems[stem], item.clean[stem],
                                                         item.sample_rate)
                rows.append(row)
    table = pd.DataFrame(rows)
    out = HERE / f"sweep_scores{suffix}.csv"
    if out.exists():  # keep other models' rows
        old = pd.read_csv(out)
        table = pd.concat([old[~old["system"].isin(table["system"])], table], ignore_index=True)
    table.to_csv(out, index=False)
    summarize(table, suffix)


def summarize(table: pd.DataFrame, suffix: str = "") -> None:
    """Gain over the separator output by input-SI-SDR bin: ``sweep_gains.csv``."""
    keys = ["track", "separator", "stem"]
    identity = table[table["system"] == "identity"].set_index(keys)["si_sdr"]
    table = table.join(identity.rename("input_si_sdr"), on=keys)
    table["gain"] = table["si_sdr"] - table["input_si_sdr"]
    edges = [-np.inf, 0, 5, 10, 15, np.inf]
    table["bin"] = pd.cut(table["input_si_sdr"], edges, labels=["<0", "0-5", "5-10", "10-15", ">15"])
    gains = table[table["system"] != "identity"].pivot_table(
        index="system", columns="bin", values="gain", aggfunc="mean", observed=False)
    gains["all"] = table[table["system"] != "identity"].groupby("system")["gain"].mean()
    counts = table[table["system"] == "identity"]["bin"].value_counts().reindex(gains.columns[:-1])
    gains.loc["n items"] = [*counts.tolist(), int((table["system"] == "identity").sum())]
    family = table["separator"].str.split(":").str[0]
    by_family = table[table["system"] != "identity"].assign(family=family).pivot_table(
        index="system", columns="family", values="gain", aggfunc="mean")
    gains = pd.concat([gains, by_family], axis=1)
    gains.round(2).to_csv(HERE / f"sweep_gains{suffix}.csv")
    print(gains.round(2).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("name")
    t.add_argument("--minutes", type=float, default=12.0)
    t.add_argument("--harm", type=float, default=0.0)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--batch-size", type=int, default=12)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--exclude", nargs="*", default=[], help="separator families left out")
    t.add_argument("--init", default="released", help="model to continue: released or a name")
    s = sub.add_parser("sweep")
    s.add_argument("names", nargs="+")
    s.add_argument("--n-tracks", type=int, default=6)
    s.add_argument("--seconds", type=float, default=4.0)
    s.add_argument("--perceptual", action="store_true")
    s.add_argument("--split", default="test", help="test: the band-split sweep; valid: the "
                   "training families on the valid split")
    args = parser.parse_args()
    if args.command == "train":
        train(args.name, args.minutes, args.harm, args.lr, args.batch_size, args.seed,
              args.exclude, args.init)
    else:
        sweep(args.names, args.n_tracks, args.seconds, args.perceptual, args.split)


if __name__ == "__main__":
    main()
