"""The ``stemprover`` command: enhance separated stems, analyse a result.

    stemprover enhance vocals.wav -o cleaned/ --stem vocals --steps 4
    stemprover enhance track.stem.mp4 -o cleaned/ --stem vocals   # stem and mixture from the file
    stemprover analyze cleaned/vocals.enhanced.wav --reference clean_vocals.wav [--json]

Every problem with an input prints one line, ``stemprover: error: <file>: <problem>``, and
the command exits with status 1; nothing half-written is left behind. This module imports
only the standard library at the top, so ``stemprover --help`` answers without loading torch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

STEM_CHOICES = ("vocals", "drums", "bass", "other")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stemprover",
        description="Phase-aware diffusion post-processing for separated music stems.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enh = commands.add_parser(
        "enhance", help="clean separated stems",
        description="Clean separated stems; writes OUTDIR/<name>.enhanced.wav for each input.",
    )
    enh.add_argument("inputs", nargs="+", metavar="IN",
                     help="separated stem files (wav, flac, ogg, aiff, mp3; or .stem.mp4)")
    enh.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    enh.add_argument("--mixture", metavar="MIX",
                     help="the mixture the stems were separated from (same rate and length)")
    enh.add_argument("--stem", choices=STEM_CHOICES,
                     help="which stem to take from a .stem.mp4 input (its mixture stream is "
                          "used as --mixture); other inputs are this stem")
    enh.add_argument("--steps", type=int, default=4, help="sampling steps, 1-50 (default 4)")
    enh.add_argument("--strength", type=float, default=0.5,
                     help="noise level to start from, in (0, 1] (default 0.5)")
    enh.add_argument("--scheduler", choices=("dpmpp", "ddim"), default="dpmpp",
                     help="DPM-Solver++ 2M (default) or DDIM")
    enh.add_argument("--adapter", default=None, metavar="SPEC",
                     help="adapter name, weighted mix 'hf_loss:0.7,general:0.3', or 'auto' "
                          "(chosen per segment by the artifact detectors); default: general")
    enh.add_argument("--model", default=None, metavar="PATH",
                     help="model folder (default: models/default)")
    enh.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: auto)")
    enh.add_argument("--dtype", choices=("auto", "bfloat16", "float16", "float32"),
                     default="auto", help="GPU precision (default: bfloat16 on CUDA)")
    enh.add_argument("--compile", action="store_true", help="torch.compile the model")
    enh.add_argument("--batch-size", type=int, default=8, help="segments x channels per call")
    enh.add_argument("--threads", type=int, default=0,
                     help="CPU threads for torch (default 0: torch's choice; 1 is fastest on "
                          "a machine busy with other jobs)")
    enh.add_argument("--seed", type=int, default=0, help="seed of the sampling noise")
    enh.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    ana = commands.add_parser(
        "analyze", help="compare a file with a reference",
        description="Metrics (SI-SDR, LSD, MR-STFT, phase deviation, ...) and a per-band "
                    "magnitude and phase report of IN against REF.",
    )
    ana.add_argument("input", metavar="IN", help="the file to judge (e.g. an enhanced stem)")
    ana.add_argument("--reference", required=True, metavar="REF", help="the clean stem")
    ana.add_argument("--bands", choices=("octave", "critical"), default="octave")
    ana.add_argument("--speech", action="store_true", help="also PESQ and STOI (vocals)")
    ana.add_argument("--json", action="store_true", help="print JSON instead of tables")
    return parser


def _pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_outputs(inputs: list[str], out_dir: Path, stem: str | None) -> None:
    from stemprover.enhance import output_path
    from stemprover.errors import StemproverError

    seen: dict[Path, str] = {}
    for path in inputs:
        target = output_path(path, out_dir, stem=stem).resolve()
        if target in seen:
            raise StemproverError(
                f"{path}: would write the same output as {seen[target]} ({target.name})"
            )
        seen[target] = path


def run_enhance(args: argparse.Namespace) -> int:
    import soundfile as sf

    from stemprover.enhance import EnhanceOptions, Enhancer, enhance_file
    from stemprover.errors import StemproverError

    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise StemproverError(f"{out_dir}: output path exists and is not a folder")
    _check_outputs(args.inputs, out_dir, args.stem)
    options = EnhanceOptions(
        steps=args.steps, strength=args.strength, scheduler=args.scheduler,
        adapters=args.adapter, batch_size=args.batch_size, device=_pick_device(args.device),
        dtype=args.dtype, compile=args.compile, seed=args.seed, progress=not args.quiet,
    )
    if args.threads < 0:
        raise StemproverError(f"--threads must be 0 or more, got {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    enhancer = Enhancer(args.model, options)
    failures = 0
    for path in args.inputs:
        start = time.perf_counter()
        try:
            target = enhance_file(path, out_dir, enhancer, mixture=args.mixture,
                                  stem=args.stem, protect=tuple(args.inputs))
        except StemproverError as err:
            print(f"stemprover: error: {err}", file=sys.stderr)
            failures += 1
            continue
        elapsed = time.perf_counter() - start
        seconds = sf.info(str(target)).duration
        print(f"{path} -> {target}: {seconds:.1f} s of audio in {elapsed:.1f} s "
              f"(real-time factor {elapsed / max(seconds, 1e-9):.3f})", flush=True)
    return 1 if failures else 0


def run_analyze(args: argparse.Namespace) -> int:
    import json

    from stemprover.audio import load_audio, to_channels
    from stemprover.errors import StemproverError
    from stemprover.metrics import evaluate_pair
    from stemprover.phase import phase_report

    estimate, sample_rate = load_audio(args.input)
    reference, _ = load_audio(args.reference, sample_rate)
    reference = to_channels(reference, estimate.shape[0])
    if reference.shape[1] != estimate.shape[1]:
        raise StemproverError(
            f"{args.input}: has {estimate.shape[1]} samples but the reference "
            f"{args.reference} has {reference.shape[1]} (at {sample_rate} Hz); they must match"
        )
    cfg = analysis_stft(sample_rate)
    if estimate.shape[1] < cfg.n_fft:
        raise StemproverError(f"{args.input}: too short for analysis (< {cfg.n_fft} samples)")
    metrics = evaluate_pair(estimate, reference, sample_rate, stft_cfg=cfg, speech=args.speech)
    bands = phase_report(estimate, reference, sample_rate, cfg, bands=args.bands)
    if args.json:
        print(json.dumps({
            "input": args.input, "reference": args.reference, "sample_rate": sample_rate,
            "n_fft": cfg.n_fft, "hop_length": cfg.hop_length, "metrics": metrics,
            "bands": bands.to_dict(orient="records"),
        }, indent=2, default=float))
        return 0
    print(f"{args.input} against {args.reference} ({sample_rate} Hz, "
          f"{estimate.shape[1] / sample_rate:.2f} s, n_fft {cfg.n_fft})")
    for name, value in metrics.items():
        print(f"  {name:<20} {value:9.3f}")
    print(bands.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def analysis_stft(sample_rate: int):
    """2048-point frames at 44.1 kHz (46 ms), scaled to keep their duration at other rates."""
    import math

    from stemprover.spectral import StftConfig

    n_fft = 2 ** int(round(math.log2(2048 * sample_rate / 44100)))
    return StftConfig(n_fft=n_fft, hop_length=n_fft // 4)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``stemprover`` and ``python -m stemprover``; returns the exit status."""
    args = build_parser().parse_args(argv)
    from stemprover.errors import StemproverError

    try:
        if args.command == "enhance":
            return run_enhance(args)
        return run_analyze(args)
    except StemproverError as err:
        print(f"stemprover: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stemprover: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
