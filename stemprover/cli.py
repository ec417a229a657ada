"""The ``stemprover`` command: enhance separated stems, analyse a result.

    stemprover enhance vocals.wav -o cleaned/ [--steps 2] [--format pcm24] [--jobs 2]
    stemprover enhance track.stem.mp4 -o cleaned/ --stem vocals   # stem and mixture from the file
    stemprover enhance vocals.wav -o cleaned/ --preview   # + cleaned/vocals.enhanced.png
    stemprover enhance {vocals,drums,bass,other}.wav --mixture song.wav --project -o cleaned/
    stemprover analyze cleaned/vocals.enhanced.wav --reference clean_vocals.wav [--json]

Every problem with an input prints one line, ``stemprover: error: <file>: <problem>``, and
the command exits with status 1; nothing half-written is left behind. This module imports
only the standard library at the top, so ``stemprover --help`` answers without loading torch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

STEM_CHOICES = ("vocals", "drums", "bass", "other")
OUTPUT_FORMATS = ("float32", "pcm16", "pcm24")  # as stemprover.inference.enhance.OUTPUT_FORMATS
DEFAULT_THREADS = 1  # see README: 0 (torch's choice) was slower on a shared 2-core machine


COMMON_OPTIONS = """\
common options of enhance (stemprover enhance --help lists them all):
  -o OUTDIR             output folder (required)
  --mixture MIX         the mixture the stems were separated from
  --project             with the four stems of one song and --mixture: Wiener first
  --stem NAME           the stem to take from .stem.mp4 inputs
  --steps N, --strength S, --adapter SPEC
                        how much the sampler changes, and which adapters it uses
  --format {float32,pcm16,pcm24}, --filename TEMPLATE, --overwrite
                        what is written, where, and whether it may replace a file
  --preview             also draw input, output and the change into <output>.png
  --device DEV, --jobs N, --threads N
                        where and how parallel it runs
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stemprover",
        description="Phase-aware diffusion post-processing for separated music stems.",
        epilog=COMMON_OPTIONS, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enh = commands.add_parser(
        "enhance", help="clean separated stems",
        description="Clean separated stems; writes OUTDIR/<name>.enhanced.wav for each input.",
    )
    enh.add_argument("inputs", nargs="*", metavar="IN",
                     help="separated stem files (wav, flac, ogg, aiff, mp3; or .stem.mp4), or "
                          "folders searched for them (leaving out this command's own "
                          "outputs, *.enhanced.wav); a pipe (/dev/stdin, a FIFO) is refused, "
                          "as files are read more than once: save it to a file first")
    enh.add_argument("--from-list", metavar="FILE", default=None,
                     help="also the files named in FILE, one per line (# starts a comment)")
    enh.add_argument("--skip-existing", action="store_true",
                     help="leave inputs whose output already exists (outputs are written "
                          "whole or not at all): a rerun finishes an interrupted catalogue; "
                          "with --preview, an output that has no PNG yet gets it, drawn "
                          "from the output as it is")
    enh.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                     help="output folder (an empty name is refused); temporary files that "
                          "an earlier run left there when it was killed are removed")
    enh.add_argument("--mixture", metavar="MIX",
                     help="the mixture the stems were separated from (same rate and length)")
    enh.add_argument("--project", action="store_true",
                     help="the inputs are the four stems of one song (their file names say "
                          "which: vocals, drums, bass, other) and --mixture is the song: a "
                          "Wiener filter first redistributes the mixture between them, then "
                          "each is cleaned (streamed in blocks: memory stays flat with length)")
    enh.add_argument("--stem", choices=STEM_CHOICES,
                     help="which stem to take from .stem.mp4 inputs (their mixture stream is "
                          "used as --mixture); a plain audio file is cleaned the same whatever "
                          "stem it holds, so --stem is refused when no input is a .stem.mp4")
    enh.add_argument("--steps", type=int, default=None,
                     help="sampling steps, 1-50 (default: the model's own, 1 for a bridge model; "
                          "2-4 refine the one-step estimate)")
    enh.add_argument("--strength", type=float, default=None,
                     help="bridge time the stem is taken for, in (0, 1]; 1 (the default for a "
                          "bridge model) goes all the way, less is a lighter touch")
    enh.add_argument("--scheduler", choices=("dpmpp", "ddim"), default="dpmpp",
                     help="sampler of SDEdit models: DPM-Solver++ 2M (default) or DDIM; "
                          "bridge models use their own")
    enh.add_argument("--adapter", default=None, metavar="SPEC",
                     help="adapter name, weighted mix 'hf_loss:0.7,general:0.3', or 'auto' "
                          "(chosen per segment by the artifact detectors); default: general")
    enh.add_argument("--format", dest="output_format", choices=OUTPUT_FORMATS,
                     default="float32",
                     help="output samples: 32-bit float (default), 16- or 24-bit PCM "
                          "(clipped to [-1, 1])")
    enh.add_argument("--filename", default=None, metavar="TEMPLATE",
                     help="output name inside OUTDIR, with {track} (input name without "
                          "extension), {stem} (the --stem of a .stem.mp4, else the input "
                          "name), {folder} (the input's folder name) and {ext} (wav); e.g. "
                          "'{folder}/{track}.{ext}' (default: {track}.enhanced.wav, and "
                          "{track}.{stem}.enhanced.wav for a .stem.mp4); only these fields, "
                          "as they are: no attribute, index or format spec")
    enh.add_argument("--overwrite", action="store_true",
                     help="replace outputs that exist already (inputs are never replaced); "
                          "without it an output is never replaced, not even one another "
                          "process wrote while this one was working")
    enh.add_argument("--preview", action="store_true",
                     help="also write a PNG next to each output (its name with .png): the "
                          "spectrograms of the input and the output, and the change between "
                          "them (dB)")
    enh.add_argument("--model", default=None, metavar="PATH",
                     help="model folder (default: models/default)")
    enh.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: auto)")
    enh.add_argument("--dtype", choices=("auto", "bfloat16", "float16", "float32"),
                     default="auto", help="GPU precision (default: bfloat16 on CUDA)")
    enh.add_argument("--compile", action="store_true",
                     help="torch.compile the model: compiling takes tens of seconds once per "
                          "run (its messages go to the log), then each segment is faster; it "
                          "pays off on a GPU for long runs (break-even duration: "
                          "results/<profile>/07_performance/summary.json, "
                          "compile_break_even_seconds)")
    enh.add_argument("--batch-size", type=int, default=8, help="segments x channels per call")
    enh.add_argument("-j", "--jobs", type=int, default=1,
                     help="files processed in parallel, each with its own copy of the model "
                          "(default 1)")
    enh.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                     help=f"CPU threads for torch per job (default {DEFAULT_THREADS}: "
                          "measured fastest on a small shared CPU; 0: torch's choice)")
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
    ana.add_argument("--json", action="store_true",
                     help="print JSON instead of tables (undefined scores are null)")
    return parser


def _pick_device(device: str) -> str:
    from stemprover.inference.catalogue import n_processes, process_device
    from stemprover.project.runtime import resolve_device

    if device == "auto" and n_processes() > 1:  # under a launcher: this process's own GPU
        return process_device()
    return resolve_device(device)


def _shown(text: object) -> str:
    """``text`` printable on any terminal: bytes of a non-UTF-8 file name as ``\\xNN``."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _say(message: object) -> None:
    """One line on stdout in one write, so that lines of parallel processes do not mix."""
    sys.stdout.write(_shown(message) + "\n")
    sys.stdout.flush()


def _error(message: object) -> None:
    sys.stderr.write(f"stemprover: error: {_shown(message)}\n")  # one write, as _say
    sys.stderr.flush()


def _check_outputs(inputs: list[str], out_dir: Path, stem: str | None,
                   filename: str | None) -> dict[str, Path]:
    from stemprover.errors import StemproverError
    from stemprover.inference.naming import output_path

    targets: dict[str, Path] = {}
    seen: dict[str, str] = {}
    for path in inputs:
        target = output_path(path, out_dir, stem=stem, filename=filename)
        key = os.path.realpath(target)
        if key in seen:
            raise StemproverError(
                f"{path}: would write the same output as {seen[key]} ({target.name})"
            )
        seen[key] = path
        targets[path] = target
    return targets


def _exists(path: Path) -> bool:
    """Whether anything has the name ``path``; an error other than its absence (no
    permission to look, a link loop above it) is raised as a one-line StemproverError."""
    from stemprover.errors import os_error

    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as err:
        raise os_error(err, path) from None
    return True


def _missing_folders(folders) -> list[Path]:
    """The folders in ``folders`` and above them that do not exist yet, deepest first."""
    missing: set[Path] = set()
    for folder in folders:
        folder = Path(os.path.abspath(folder))
        while not _exists(folder) and folder != folder.parent:
            missing.add(folder)
            folder = folder.parent
    return sorted(missing, key=lambda p: len(p.parts), reverse=True)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first, so a made parent empties after its child
        try:
            folder.rmdir()
        except OSError:  # not empty, or never made
            pass


def _usable_inputs(args: argparse.Namespace, targets: dict[str, Path]) -> list[str]:
    """Inputs whose file exists and whose output may be written; reports the others.

    With --skip-existing, an input whose output exists but whose --preview PNG does not
    goes to ``args.preview_only``: its PNG is drawn without enhancing it again.
    """
    from stemprover.dsp.audio import check_path, same_path
    from stemprover.errors import StemproverError, os_error

    usable = []
    for path in args.inputs:
        try:
            check_path(Path(path))
            written = [targets[path]]
            if args.preview:
                from stemprover.report.clip_plots import preview_path

                written.append(preview_path(targets[path]))
            present = [_exists(target) for target in written]
            if args.skip_existing and present[0]:
                if all(present):
                    _say(f"{args.tag}{path} -> {targets[path]}: exists, skipped")
                    args.skipped += 1
                else:
                    args.preview_only.append(path)
                continue
            for target, exists in zip(written, present):
                if not args.overwrite and exists and not any(
                        same_path(target, p) for p in args.all_inputs):
                    if args.skip_existing:  # a PNG without its output: not ours to replace
                        raise StemproverError(
                            f"{target}: already exists but {targets[path].name} does not; "
                            "remove it, or pass --overwrite without --skip-existing")
                    raise StemproverError(
                        f"{target}: already exists; pass --overwrite to replace it")
        except StemproverError as err:
            _error(err)
            continue
        except OSError as err:  # a name too long, a folder we may not enter
            _error(os_error(err, err.filename or path))
            continue
        usable.append(path)
    return usable


def _draw_previews(args: argparse.Namespace, paths: list[str], targets: dict[str, Path]) -> int:
    """The --preview PNGs of outputs that exist already; returns the number that failed."""
    from stemprover.errors import StemproverError, os_error
    from stemprover.report.clip_plots import write_preview

    failed = 0
    for path in paths:
        try:
            preview = write_preview(path, targets[path], args.stem)
        except StemproverError as err:
            _error(err)
            failed += 1
            continue
        except OSError as err:
            _error(os_error(err, err.filename or path))
            failed += 1
            continue
        _say(f"{args.tag}{path} -> {preview}: preview (the output existed, kept as it is)")
    return failed


def _remove_stale_temporaries(args: argparse.Namespace, out_dir: Path,
                              targets: dict[str, Path], started: float) -> None:
    """Remove what a killed run left in the folders this run writes to (see
    :func:`stemprover.dsp.audio.remove_stale_temporaries`)."""
    from stemprover.dsp.audio import remove_stale_temporaries

    folders = dict.fromkeys([out_dir, *(targets[p].parent for p in args.inputs)])
    for folder in folders:
        for path in remove_stale_temporaries(folder, started):
            _note(f"{path}: removed, a temporary file left by a run that was killed")


def run_enhance(args: argparse.Namespace) -> int:
    import stat

    from stemprover.dsp.audio import STEM_FILE_SUFFIX, check_path
    from stemprover.errors import StemproverError, os_error
    from stemprover.inference.catalogue import expand_inputs, process_share
    from stemprover.inference.enhance import EnhanceOptions, parse_adapters
    from stemprover.inference.naming import check_template, output_path
    from stemprover.inference.sampler import check_steps

    started = time.time()  # temporary files older than this are no run's in progress
    # Everything that can be checked without the model is checked before it is loaded.
    if args.skip_existing and args.overwrite:
        raise StemproverError("--skip-existing and --overwrite exclude each other")
    if not args.output:
        raise StemproverError("-o '': the output folder name is empty; write -o . for the "
                              "current folder")
    if args.filename is not None:
        check_template(args.filename)
    out_dir = Path(args.output)
    args.all_inputs = expand_inputs(
        args.inputs, args.from_list,
        output_of=lambda path: output_path(path, out_dir, args.stem, args.filename))
    args.inputs, rank, n_proc = process_share(args.all_inputs)
    args.skipped = 0
    args.preview_only = []
    args.tag = f"[{rank + 1}/{n_proc}] " if n_proc > 1 else ""  # whose line, under a launch
    if n_proc > 1:
        _say(f"{args.tag}{len(args.inputs)} of {len(args.all_inputs)} files")
        if not args.inputs:
            return 0
    if args.threads < 0:
        raise StemproverError(f"--threads must be 0 or more, got {args.threads}")
    if args.jobs < 1:
        raise StemproverError(f"--jobs must be 1 or more, got {args.jobs}")
    if args.batch_size < 1:
        raise StemproverError(f"batch size must be at least 1, got {args.batch_size}")
    check_steps(1 if args.steps is None else args.steps,
                1.0 if args.strength is None else args.strength)
    parse_adapters(args.adapter)
    if args.stem and not any(p.lower().endswith(STEM_FILE_SUFFIX) for p in args.all_inputs):
        raise StemproverError(
            f"--stem {args.stem}: takes a stem from a .stem.mp4 input, but none is given; "
            "a plain audio file is cleaned the same whatever stem it holds"
        )
    if args.mixture is not None:
        try:
            check_path(Path(args.mixture))
        except StemproverError as err:
            raise StemproverError(f"--mixture {err}") from None
    if args.project:
        from stemprover.inference.projection import stems_by_name

        if args.mixture is None:
            raise StemproverError("--project needs --mixture, the song the stems came from")
        if any(p.lower().endswith(STEM_FILE_SUFFIX) for p in args.all_inputs):
            raise StemproverError("--project takes four stem files, not .stem.mp4 files")
        if n_proc > 1:
            raise StemproverError("--project needs all four stems in one process")
        args.stem_files = stems_by_name(args.all_inputs)
    try:
        if not stat.S_ISDIR(os.stat(out_dir).st_mode):
            raise StemproverError(f"{out_dir}: output path exists and is not a folder")
    except (FileNotFoundError, NotADirectoryError):
        pass  # made when the first output is written
    except OSError as err:
        raise os_error(err, out_dir) from None
    targets = _check_outputs(args.all_inputs, out_dir, args.stem, args.filename)
    _remove_stale_temporaries(args, out_dir, targets, started)
    device = _pick_device(args.device)
    inputs = _usable_inputs(args, targets)
    failures = len(args.inputs) - len(inputs) - args.skipped - len(args.preview_only)
    failures += _draw_previews(args, args.preview_only, targets)
    if not inputs:
        return 1 if failures else 0
    created = _missing_folders([out_dir, *(targets[p].parent for p in inputs)])
    options = EnhanceOptions(
        steps=args.steps, strength=args.strength, scheduler=args.scheduler,
        adapters=args.adapter, batch_size=args.batch_size, device=device,
        dtype=args.dtype, compile=args.compile, seed=args.seed,
        progress=not args.quiet and args.jobs == 1,
    )
    try:
        failures += _enhance_all(args, inputs, out_dir, options)
    finally:
        _remove_empty(created)
    return 1 if failures else 0


def _enhance_all(args: argparse.Namespace, inputs: list[str], out_dir: Path, options) -> int:
    """Enhance ``inputs``, ``args.jobs`` at a time; returns the number that failed."""
    import copy
    import queue
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from stemprover.dsp.audio import sound_info
    from stemprover.errors import StemproverError, os_error
    from stemprover.inference.enhance import Enhancer, enhance_file
    from stemprover.project.runtime import cpu_threads
    from stemprover.report.clip_plots import write_preview

    cancel = threading.Event()
    first = Enhancer(args.model, options)
    projected, rate = {}, 0
    if getattr(args, "project", False):
        from stemprover.inference.projection import load_projected

        projected, rate = load_projected(args.stem_files, args.mixture)
    enhancers: queue.Queue = queue.Queue()
    enhancers.put(first)
    for _ in range(min(args.jobs, len(inputs)) - 1):  # one model per job: no shared state
        enhancers.put(Enhancer(copy.deepcopy(first.model), options))

    def one(path: str) -> bool:
        enhancer = enhancers.get()
        start = time.perf_counter()
        try:
            with cpu_threads(args.threads):  # per thread: OpenMP settings are thread-local
                target = enhance_file(
                    path, out_dir, enhancer, mixture=args.mixture, stem=args.stem,
                    protect=tuple(args.all_inputs), filename=args.filename,
                    output_format=args.output_format, overwrite=args.overwrite,
                    cancel=cancel, audio=(projected[path], rate) if projected else None)
                preview = write_preview(path, target, args.stem) if args.preview else None
        except StemproverError as err:
            _error(err)
            return False
        except OSError as err:  # the last resort: name the file, never a traceback
            _error(os_error(err, err.filename or path))
            return False
        finally:
            enhancers.put(enhancer)
        elapsed = time.perf_counter() - start
        info = sound_info(target)
        seconds = info.frames / info.sample_rate
        _say(f"{args.tag}{path} -> {target}: {seconds:.1f} s of audio in {elapsed:.1f} s "
             f"(real-time factor {elapsed / max(seconds, 1e-9):.3f})")
        if preview is not None:
            _say(f"{args.tag}{path} -> {preview}: preview")
        return True

    if args.jobs == 1:
        return sum(not one(path) for path in inputs)
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    try:
        futures = [pool.submit(one, path) for path in inputs]
        return sum(not future.result() for future in futures)
    finally:
        cancel.set()  # a no-op after success; after a signal, stops the other jobs
        pool.shutdown(wait=True, cancel_futures=True)


def run_analyze(args: argparse.Namespace) -> int:
    import math

    from stemprover.dsp.audio import is_silent, load_audio, resample, to_channels
    from stemprover.dsp.phase import phase_report
    from stemprover.errors import StemproverError
    from stemprover.metrics.signal import PESQ_MIN_SECONDS, evaluate_pair

    estimate, sample_rate = load_audio(args.input)
    reference, reference_rate = load_audio(args.reference)
    if is_silent(reference):
        raise StemproverError(f"{args.reference}: the reference is silent; there is nothing "
                              "to compare against")
    if reference_rate != sample_rate:
        _note(f"{args.reference}: resampled from {reference_rate} Hz to {sample_rate} Hz, the "
              f"rate of {args.input}")
        reference = resample(reference, reference_rate, sample_rate)
    if reference.shape[0] != estimate.shape[0]:
        _note(f"{args.reference}: converted from {reference.shape[0]} to "
              f"{estimate.shape[0]} channel(s), as {args.input} has")
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
    notes: dict[str, str] = {}
    if is_silent(estimate):
        # SI-SDR of silence would come out as 0 dB, better than many real estimates.
        metrics["si_sdr"] = -math.inf
        notes["si_sdr"] = "the estimate is silent"
        for name in ("phase_dev", "phase_dev_hf"):
            metrics[name] = math.nan
            notes[name] = "undefined: the estimate is silent, it has no phase"
        bands["phase_dev"] = math.nan
    seconds = estimate.shape[1] / sample_rate
    for name in ("pesq", "stoi", "estoi"):
        if name in metrics and not math.isfinite(metrics[name]):
            short = seconds < PESQ_MIN_SECONDS if name == "pesq" else True
            notes[name] = (f"too short for {name.upper()} ({seconds:.2f} s)" if short
                           else "undefined: no speech found in the reference")
    if args.json:
        print(json.dumps(_finite({
            "input": args.input, "reference": args.reference, "sample_rate": sample_rate,
            "n_fft": cfg.n_fft, "hop_length": cfg.hop_length, "metrics": metrics,
            "notes": notes, "bands": bands.to_dict(orient="records"),
        }), indent=2, allow_nan=False))
        return 0
    print(_shown(f"{args.input} against {args.reference} ({sample_rate} Hz, "
                 f"{seconds:.2f} s, n_fft {cfg.n_fft})"))
    for name, value in metrics.items():
        note = f"  ({notes[name]})" if name in notes else ""
        shown = f"{value:9.3f}" if math.isfinite(value) else f"{'n/a' if math.isnan(value) else value:>9}"
        print(f"  {name:<20} {shown}{note}")
    print(bands.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="n/a"))
    return 0


def _note(message: str) -> None:
    print(f"stemprover: note: {_shown(message)}", file=sys.stderr, flush=True)


def _finite(value):
    """``value`` with every NaN or infinite float replaced by None (JSON null)."""
    import math

    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def analysis_stft(sample_rate: int):
    """2048-point frames at 44.1 kHz (46 ms), scaled to keep their duration at other rates."""
    import math

    from stemprover.dsp.spectral import StftConfig

    n_fft = 2 ** int(round(math.log2(2048 * sample_rate / 44100)))
    return StftConfig(n_fft=n_fft, hop_length=n_fft // 4)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``stemprover`` and ``python -m stemprover``; returns the exit status."""
    args = build_parser().parse_args(argv)
    from stemprover.errors import StemproverError, Terminated, os_error, signals_raise

    with signals_raise():
        try:
            if args.command == "enhance":
                return run_enhance(args)
            return run_analyze(args)
        except StemproverError as err:
            _error(err)
            return 1
        except KeyboardInterrupt:
            print("stemprover: interrupted", file=sys.stderr)
            return 130
        except Terminated as err:
            print(f"stemprover: stopped by {signal.Signals(err.signum).name}", file=sys.stderr)
            return 128 + err.signum
        except BrokenPipeError:
            # The reader went away (`stemprover analyze ... | head`): say nothing more, and
            # point stdout at /dev/null so that the flush at exit does not fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        except OSError as err:  # the last resort: one line naming the path, no traceback
            _error(os_error(err))
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
