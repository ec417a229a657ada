"""Enhance separated stems: segments, resampling, batched sampling, overlap-add.

    from stemprover.inference.enhance import enhance, enhance_file
    cleaned = enhance(vocals, 44100, "models/default", mixture=song)   # (C, n) array, 1 step
    enhance_file("vocals.wav", "cleaned/", steps=2, adapters="auto")   # streams the file

The stem is cut into segments of the model's training length (:mod:`stemprover.inference.segment`,
boundaries moved to quiet frames). Each segment is resampled to the model's rate with soxr,
its channels go through the model as a batch (stereo = two items), and the result is
brought back as ``input + resample_back(change)``, where ``change`` is the model's change
``enhanced - resampled_input`` times the validated blend, limited by
:mod:`stemprover.inference.guard` (DC passes through; with a mixture, the change stays
within the residual ``mixture - stem``; no octave band loses more than 0.5 dB). That is a
complementary crossover at the model's Nyquist frequency: content above the model's band
is kept from the input, and a model that changes nothing returns the input exactly.
Segments that are digital silence are passed through, so silence stays silence. Outputs are
joined with normalised cross-fades and written as soon as they are final, so a long file
never sits in memory (:mod:`stemprover.inference.streaming`). The model sees the stem (and mixture) at
its training level: one gain per file, undone on the model's change.

Randomness: each segment and channel draws its starting noise from its own generator,
derived from ``seed`` and its position, so results do not depend on the batch size.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from stemprover.constants import ADAPTERS
from stemprover.dsp.audio import (
    check_audio,
    is_silent,
    load_stems,
    resample,
    to_channels,
)
from stemprover.errors import StemproverError
from stemprover.inference.detectors import adapter_weights, detect
from stemprover.inference.guard import MAX_DROP_DB, guard_change
from stemprover.inference.naming import is_stem_file, output_path
from stemprover.inference.sampler import check_steps, sample_waves
from stemprover.inference.segment import OverlapAdder, frame_energy, plan_segments
from stemprover.inference.streaming import ArraySink, ArraySource, FileSink, FileSource, energy_hop
from stemprover.model import load_model
from stemprover.project.paths import repo_root
from stemprover.project.runtime import check_device, inference_dtype
from stemprover.project.seed import hash_key

Adapters = None | str | Mapping[str, float]
SILENCE_DB = -100.0  # below this RMS a segment is treated as digital silence
DETECT_SECONDS = 10.0  # window the artifact detectors judge for adapters="auto"
MODEL_LEVEL_RMS = 0.07  # ~-23 dBFS, the level of the rendered training stems
MAX_GAIN_DB = 40.0  # very quiet stems are raised at most this much
FLOAT32_TINY, FLOAT32_HUGE = 1e-30, 1e30  # adapter weights stay normal numbers in float32
SILENT_SAMPLE = 1e-5  # -100 dBFS: below this a sample is digital silence
SILENT_RUN_SECONDS = 0.001  # a run of silent samples this long is a silent region, not a zero
SILENCE_RAMP_SECONDS = 0.002  # the model's change fades in over this after a silent region
OUTPUT_FORMATS = {"float32": "FLOAT", "pcm16": "PCM_16", "pcm24": "PCM_24"}
"""``--format`` choices and their soundfile subtypes."""


@dataclass
class EnhanceOptions:
    """Settings of one enhancement run; every default has its reason."""

    # None: the model's own. A bridge starts at the stem, so one step is the predictive
    # estimate, and it scored best on every test set of 05; SDEdit starts from noise: 4.
    steps: int | None = None
    # None: the model's own (bridge: 1, the whole way; SDEdit: 0.5, noised halfway)
    strength: float | None = None
    scheduler: Literal["ddim", "dpmpp"] = "dpmpp"  # SDEdit models only (DPM-Solver++ 2M)
    adapters: Adapters = None  # None: the model's default (general); or name, mix, "auto"
    batch_size: int = 8  # segment-channels per model call
    device: str = "cpu"
    dtype: str = "auto"  # "auto": bfloat16 on CUDA, float32 on CPU
    # torch.compile the denoiser: its compilation (tens of seconds) is paid once per process
    # and pays off from the duration 07 records (compile_break_even_seconds)
    compile: bool = False
    seed: int = 0
    overlap: float = 0.25  # shared fraction of a segment, cross-faded
    tolerance: float = 0.125  # how far (fraction of a segment) a boundary may move earlier
    segment_seconds: float | None = None  # None: the model's training segment length
    use_cache: bool = True  # encode the condition once per segment (False: every step)
    # Largest energy drop per octave band the model may cause (see inference.guard);
    # None: no level guard, the model's change as it is (DC and mixture limits still hold).
    max_drop_db: float | None = MAX_DROP_DB
    progress: bool = False


def parse_adapters(spec: Adapters) -> None | str | dict[str, float]:
    """``"hf_loss"``, ``"hf_loss:0.7,general:0.3"``, ``"auto"``, a dict, or None.

    Returns:
        None, ``"auto"`` or ``{name: weight}`` with known names and non-negative weights.
    """
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", "auto")):
        return None if spec is None or not spec.strip() else "auto"
    if isinstance(spec, Mapping):
        weights = {str(k): float(v) for k, v in spec.items()}
    else:
        weights = {}
        for part in str(spec).split(","):
            name, colon, value = (text.strip() for text in part.partition(":"))
            if not name:
                raise StemproverError(f"adapter spec {spec!r} has an empty entry; write "
                                      "name or name:weight, separated by commas")
            if name in weights:
                raise StemproverError(f"adapter {name!r} is given twice in {spec!r}")
            try:
                weights[name] = float(value) if colon else 1.0
            except ValueError:
                raise StemproverError(
                    f"adapter weight {value!r} of {name!r} is not a number"
                ) from None
    unknown = sorted(set(weights) - set(ADAPTERS))
    if unknown:
        raise StemproverError(
            f"unknown adapter(s) {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(ADAPTERS)} or auto"
        )
    if any(w < 0 or not np.isfinite(w) for w in weights.values()) or sum(weights.values()) <= 0:
        raise StemproverError(f"adapter weights must be non-negative and not all zero: {spec}")
    # The model mixes the weights in float32: one that rounds to 0 or inf there is unusable.
    values = np.array(list(weights.values()), dtype=np.float64)
    usable = (values == 0) | ((values >= FLOAT32_TINY) & (values <= FLOAT32_HUGE))
    if not usable.all():
        raise StemproverError(f"adapter weights must be 0 or between {FLOAT32_TINY:g} and "
                              f"{FLOAT32_HUGE:g}: {spec}")
    return weights


def default_model_path() -> Path:
    return repo_root() / "models" / "default"


def resolve_model(model: Any = None, device: str = "cpu", dtype: str = "auto"):
    """A loaded model on ``device``: a model object, a folder, or None for models/default."""

    if model is None or isinstance(model, (str, os.PathLike)):
        folder = Path(model) if model is not None else default_model_path()
        if not (folder / "stemprover.json").is_file():
            raise StemproverError(f"{folder}: not a model folder (no stemprover.json)")

        try:
            model = load_model(folder)
        except StemproverError as err:
            if str(folder) in str(err):
                raise
            raise StemproverError(f"{folder}: {err}") from err
        except Exception as err:  # corrupt safetensors, shape mismatch, bad JSON, ...
            reason = " ".join(str(err).split())[:200]
            raise StemproverError(
                f"{folder}: weights do not match the model config ({type(err).__name__}: "
                f"{reason})"
            ) from err
    torch_device = check_device(device)
    return model.to(device=torch_device, dtype=inference_dtype(torch_device, dtype)).eval()


class Enhancer:
    """A loaded model plus options; :meth:`run` streams one source into one sink."""

    def __init__(self, model: Any = None, options: EnhanceOptions | None = None, **kwargs):
        self.options = options or EnhanceOptions(**kwargs)
        check = self.options

        check_steps(1 if check.steps is None else check.steps,
                    1.0 if check.strength is None else check.strength)
        if check.batch_size < 1:
            raise StemproverError(f"batch size must be at least 1, got {check.batch_size}")
        if not 0 <= check.overlap <= 0.5:
            raise StemproverError(f"overlap must be in [0, 0.5], got {check.overlap}")
        self.adapters = parse_adapters(check.adapters)
        self.model = resolve_model(model, check.device, check.dtype)
        self.config = self.model.config
        self.forward = None
        self._detected: dict = {}  # last judged detection window (adapters="auto")
        if check.compile:
            self.forward = QuietCompiled(torch.compile(self.model))

    @property
    def sample_rate(self) -> int:
        return int(self.config.sample_rate)

    def min_samples(self, sample_rate: int) -> int:
        """One analysis frame (``n_fft`` at the model rate) in samples at ``sample_rate``."""
        return int(np.ceil(self.config.n_fft * sample_rate / self.sample_rate))

    def segment_samples(self, sample_rate: int) -> int:
        seconds = self.options.segment_seconds
        if seconds is None:
            seconds = self.config.segment_samples / self.sample_rate
        return max(self.min_samples(sample_rate) * 2, int(round(seconds * sample_rate)))

    def plan(self, source) -> list[tuple[int, int]]:
        sr = source.sample_rate
        segment = self.segment_samples(sr)
        hop = energy_hop(sr)
        energy = source.energy
        if energy is None:
            energy = source.energy = frame_energy(source.read(0, source.n_samples), hop)
        return plan_segments(
            source.n_samples, segment, int(self.options.overlap * segment) // 2 * 2,
            energy=energy, tolerance_samples=int(self.options.tolerance * segment),
            energy_hop=hop,
        )

    def run(self, source, sink, mixture=None, name: str = "") -> None:
        """Enhance ``source`` segment by segment into ``sink`` (both see :mod:`streaming`)."""
        if mixture is not None:
            if mixture.n_samples != source.n_samples or mixture.sample_rate != source.sample_rate:
                raise StemproverError(
                    f"{mixture.name}: mixture has {mixture.n_samples} samples at "
                    f"{mixture.sample_rate} Hz but {source.name} has {source.n_samples} at "
                    f"{source.sample_rate} Hz; they must match"
                )
        plan = self.plan(source)
        self._detected = {}  # a judgement belongs to one source: ids are reused after it is freed
        self._gain = level_gain(source.energy)
        adder = OverlapAdder(plan, source.n_channels)
        size = self.options.batch_size
        bar = tqdm(total=len(plan), desc=name or "enhance", unit="seg",
                   disable=not self.options.progress, leave=False)
        try:
            # batch_size counts model items; one segment is n_channels items.
            per_call = max(1, size // source.n_channels)
            for first in range(0, len(plan), per_call):
                indices = range(first, min(first + per_call, len(plan)))
                for index, out in zip(indices, self._batch(source, mixture, plan, indices)):
                    adder.add(index, out)
                sink.write(adder.pop())
                bar.update(len(indices))
        finally:
            bar.close()

    def _batch(self, source, mixture, plan, indices) -> list[np.ndarray]:
        """Enhance segments ``indices`` of ``plan``; returns ``(n_channels, length)`` each."""
        sr, model_sr, opts = source.sample_rate, self.sample_rate, self.options
        gain = self._gain
        n_channels = source.n_channels
        use_mix = mixture is not None and getattr(self.config, "use_mixture", True)
        outs: list[np.ndarray | None] = []
        work = []  # (position in batch, segment index, input, resampled input, mixture)
        for position, index in enumerate(indices):
            segment = source.read(*plan[index])
            if is_silent(segment, SILENCE_DB):  # nothing to clean; a model would add noise
                outs.append(segment)
                continue
            outs.append(None)
            mix = None
            if mixture is not None:
                mix = resample(gain * to_channels(mixture.read(*plan[index]), n_channels), sr,
                               model_sr)
            work.append((position, index, segment, resample(gain * segment, sr, model_sr), mix))
        if not work:
            return outs
        # One fixed picture size: the same noise per segment whatever the batching, and
        # one shape for torch.compile.
        segment = self.segment_samples(sr)
        length = max(int(np.ceil(segment * model_sr / sr)) + 1,
                     max(item[3].shape[1] for item in work))
        device = next(self.model.parameters()).device

        def rows(arrays):
            batch = np.zeros((len(arrays) * n_channels, length), dtype=np.float32)
            for k, array in enumerate(arrays):
                batch[k * n_channels : (k + 1) * n_channels, : array.shape[1]] = array
            return torch.from_numpy(batch).to(device)

        generators = [
            torch.Generator(device=device).manual_seed(hash_key((opts.seed, index, channel)))
            for _, index, *_ in work for channel in range(n_channels)
        ]
        weights = self._adapter_weights(source, mixture, plan, work, n_channels)
        alphas = blend_alphas(self.model, weights, len(work) * n_channels)
        clean = sample_waves(
            self.model, rows([w[3] for w in work]),
            rows([w[4] for w in work]) if use_mix else None,
            steps=default_steps(self.model, opts.steps),
            strength=default_strength(self.model, opts.strength),
            scheduler=opts.scheduler,
            adapter_weights=with_fallback(weights), generator=generators,
            use_cache=opts.use_cache,
            forward=self.forward,
        ).float().cpu().numpy()
        for k, (position, _, segment, resampled, mix) in enumerate(work):
            rows_k = slice(k * n_channels, (k + 1) * n_channels)
            enhanced = clean[rows_k, : resampled.shape[1]]
            # The model's change, scaled by the validated blend of the adapters in use and
            # limited by the guard (DC, mixture consistency, level); then a complementary
            # crossover: brought back to the input rate, it leaves the band above the
            # model's Nyquist frequency as it was.
            change = guard_change(
                (enhanced - resampled) * alphas[rows_k, None], resampled,
                None if mix is None else mix - resampled, n_fft=self.config.n_fft,
                hop_length=self.config.hop_length, sample_rate=model_sr,
                max_drop_db=opts.max_drop_db)
            change = fit_length(resample(change, model_sr, sr), segment.shape[1])
            outs[position] = segment + change * silence_mask(segment, sr) / gain
        return outs

    def _adapter_weights(self, source, mixture, plan, work, n_channels: int):
        """The run's adapter mix, or per-segment rows from the artifact detectors.

        With "auto", the detectors judge the window of ``DETECT_SECONDS`` that holds a
        segment's centre: long enough for onsets and noise statistics, short enough to
        follow the song and keep memory flat. Each window is judged once.
        """
        if self.adapters != "auto":
            return self.adapters

        window = int(DETECT_SECONDS * source.sample_rate)
        matrix = []
        for _, index, *_ in work:
            key = (id(source), (plan[index][0] + plan[index][1]) // 2 // window)
            if key not in self._detected:
                start, end = key[1] * window, min(source.n_samples, (key[1] + 1) * window)
                mix = None if mixture is None else to_channels(
                    mixture.read(start, end), n_channels)
                with warnings.catch_warnings():  # librosa warns on very short windows
                    warnings.simplefilter("ignore")
                    detection = detect(source.read(start, end), source.sample_rate, mix)
                scores = getattr(detection, "scores", detection)
                found = any(float(v) > NO_ARTIFACT for v in dict(scores).values())
                self._detected = {key: adapter_weights(detection) if found else {}}
            weights = self._detected[key]
            # nothing detected: an all-zero row, which leaves the segment unchanged
            matrix += [[float(weights.get(name, 0.0)) for name in ADAPTERS]] * n_channels
        return torch.tensor(matrix, dtype=torch.float32)


class QuietCompiled:
    """A ``torch.compile``-d model whose compiler messages go to the log, not the terminal.

    Compilation happens at the first calls (and again for a new shape); torch's compiler
    logs warnings about graph breaks, tensor-core precision and autotuning, and raises
    Python warnings. They concern the compiler, not the user's audio: they are logged at
    DEBUG level on the ``stemprover.compile`` logger (``TORCH_LOGS`` still overrides).
    """

    def __init__(self, compiled: Any):
        self.compiled = compiled
        self.log = logging.getLogger("stemprover.compile")
        if "TORCH_LOGS" not in os.environ:
            torch._logging.set_logs(all=logging.ERROR)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = self.compiled(*args, **kwargs)
        for warning in caught:
            self.log.debug("%s: %s", warning.category.__name__, warning.message)
        return out


NO_ARTIFACT = 0.05
"""Detector score below which ``--adapter auto`` finds no artifact and leaves a segment as is."""


def default_steps(model, steps: int | None) -> int:
    """``steps`` as given, else 1 for a bridge model and 4 for an SDEdit one."""
    if steps is not None:
        return int(steps)
    return 1 if getattr(model, "is_bridge", True) else 4


def default_strength(model, strength: float | None) -> float:
    """``strength`` as given, else 1 for a bridge model and 0.5 for an SDEdit one."""
    if strength is not None:
        return float(strength)
    return 1.0 if getattr(model, "is_bridge", True) else 0.5


def with_fallback(weights):
    """Rows of zero weights (no artifact found) run ``general``; their change is dropped."""
    if not isinstance(weights, torch.Tensor):
        return weights
    weights = weights.clone()
    empty = weights.sum(dim=1) <= 0
    weights[empty, ADAPTERS.index("general")] = 1.0
    return weights


def blend_alphas(model, weights, n_rows: int) -> np.ndarray:
    """The share of the model's change kept for each batch row: ``sum_k w_k alpha_k``.

    ``alpha_k`` is the blend validated for adapter ``k`` and saved with the weights (1 where
    none was saved). A row of zero weights (auto mode, no artifact found) gets 0.
    """
    blend = dict(getattr(model, "blend", {}) or {})
    table = np.array([float(blend.get(name, 1.0)) for name in ADAPTERS])
    if weights is None:
        names = getattr(model, "adapter_names", [])
        return np.full(n_rows, table[ADAPTERS.index("general")] if "general" in names else 1.0)
    if isinstance(weights, torch.Tensor):
        matrix = weights.float().cpu().numpy().reshape(n_rows, -1)
    else:
        row = np.array([float(weights.get(name, 0.0)) for name in ADAPTERS])
        matrix = np.tile(row, (n_rows, 1))
    totals = matrix.sum(axis=1)
    shares = np.divide(matrix, totals[:, None], out=np.zeros_like(matrix),
                       where=totals[:, None] > 0)
    return shares @ table


def silence_mask(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """0 on the digital silence of ``audio``, 1 elsewhere, with a short fade in between.

    The model's change spreads over an STFT window (tens of ms) around every sound; this
    keeps it out of the silence next to the sound, so that silence stays silent. A silent
    region is a run of samples below ``SILENT_SAMPLE`` of at least ``SILENT_RUN_SECONDS``
    in one channel (a zero crossing is not one); the fade lies on the sound's side.

    Args:
        audio: ``(n_channels, n_samples)``.
        sample_rate: Hz.

    Returns:
        float32 ``(n_channels, n_samples)`` in [0, 1].
    """
    quiet = np.abs(audio) < SILENT_SAMPLE
    n_channels, n_samples = quiet.shape
    min_run = max(1, int(round(SILENT_RUN_SECONDS * sample_rate)))
    ramp = max(1, int(round(SILENCE_RAMP_SECONDS * sample_rate)))
    mask = np.ones((n_channels, n_samples), dtype=np.float32)
    index = np.arange(n_samples)
    for channel in range(n_channels):
        edges = np.diff(np.concatenate([[0], quiet[channel].astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        long_runs = ends - starts >= min_run
        if not long_runs.any():
            continue
        silent = np.zeros(n_samples + 1, dtype=np.int32)
        np.add.at(silent, starts[long_runs], 1)
        np.add.at(silent, ends[long_runs], -1)
        silent = np.cumsum(silent[:-1]) > 0
        # Distance of every sample to the nearest silent one, looking both ways.
        last = np.maximum.accumulate(np.where(silent, index, -n_samples - ramp))
        following = np.minimum.accumulate(
            np.where(silent, index, 2 * n_samples + ramp)[::-1])[::-1]
        distance = np.minimum(index - last, following - index)
        mask[channel] = 0.5 - 0.5 * np.cos(np.pi * np.clip(distance / ramp, 0.0, 1.0))
    return mask


def level_gain(energy: np.ndarray) -> float:
    """Gain that brings a stem with frame powers ``energy`` to the model's training level.

    One gain per file (not per segment) keeps the balance between passages; the model's
    change is divided by it again, so the output keeps the input's level.
    """
    power = float(np.mean(energy)) if len(energy) else 0.0
    if power <= 0.0:
        return 1.0
    limit = 10.0 ** (MAX_GAIN_DB / 20.0)
    return float(np.clip(MODEL_LEVEL_RMS / np.sqrt(power), 1.0 / limit, limit))


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad the last axis to ``length`` (resampling may be off by a sample)."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    pad = np.zeros((*audio.shape[:-1], length - audio.shape[-1]), dtype=audio.dtype)
    return np.concatenate([audio, pad], axis=-1)


def enhance(
    audio: np.ndarray,
    sample_rate: int,
    model: Any = None,
    *,
    mixture: np.ndarray | None = None,
    progress: bool = False,
    **options: Any,
) -> np.ndarray:
    """Enhance a separated stem held in memory.

    Args:
        audio: ``(n_channels, n_samples)`` or ``(n_samples,)``, 1 or 2 channels, any rate.
        sample_rate: Hz, 8 kHz to 96 kHz.
        model: A loaded model, a model folder, or None for ``models/default/``.
        mixture: The mixture the stem came from, same length and rate, or None.
        progress: Show a tqdm bar over segments.
        **options: :class:`EnhanceOptions` fields (steps, strength, adapters, batch_size,
            device, seed, scheduler, ...).

    Returns:
        float32 array with the input's shape.
    """
    enhancer = model if isinstance(model, Enhancer) else Enhancer(
        model, EnhanceOptions(progress=progress, **options))
    check_rate(sample_rate, "audio")
    one_dim = np.asarray(audio).ndim == 1
    audio = check_audio(audio, "audio", min_samples=enhancer.min_samples(sample_rate))
    source = ArraySource(audio, int(sample_rate), "audio")
    mix = None
    if mixture is not None:
        mix = ArraySource(check_audio(mixture, "mixture"), int(sample_rate), "mixture")
    sink = ArraySink(source.n_channels, source.n_samples)
    enhancer.run(source, sink, mix)
    return sink.audio[0] if one_dim else sink.audio


def check_rate(sample_rate: int, name: str) -> None:
    if not 8000 <= int(sample_rate) <= 96000:
        raise StemproverError(f"{name}: sample rate {sample_rate} Hz is outside 8-96 kHz")


def open_source(path: str | os.PathLike, stem: str | None = None):
    """``(source, mixture_or_None)`` for a file; a ``.stem.mp4`` yields ``stem`` and its
    mixture (loaded whole: stem files hold five compressed streams)."""
    if not is_stem_file(path):
        return FileSource.open(path), None
    if stem is None:
        raise StemproverError(f"{path}: a .stem.mp4 file holds several stems; choose one with "
                              "--stem vocals|drums|bass|other")
    stems, rate = load_stems(path)
    return (ArraySource(stems[stem], rate, f"{path} [{stem}]"),
            ArraySource(stems["mixture"], rate, f"{path} [mixture]"))


def enhance_file(
    in_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    model: Any = None,
    *,
    mixture: str | os.PathLike | None = None,
    stem: str | None = None,
    protect: tuple = (),
    filename: str | None = None,
    output_format: str = "float32",
    overwrite: bool = True,
    cancel: Any = None,
    audio: tuple[np.ndarray, int] | None = None,
    **options: Any,
) -> Path:
    """Enhance a file into ``out_dir/<name>.enhanced.wav``, streaming it in blocks.

    Args:
        in_path: Separated stem (wav, flac, ogg, aiff, mp3), 1-2 channels, 8-96 kHz; or a
            ``.stem.mp4`` file together with ``stem``.
        out_dir: Output folder (created); the output is written atomically.
        model: An :class:`Enhancer`, a model, a folder, or None for ``models/default/``.
        mixture: The mixture file, same rate and length, or None (a ``.stem.mp4`` input
            brings its own).
        stem: Which stem of a ``.stem.mp4`` input to enhance.
        protect: More paths that must never be overwritten (e.g. all inputs of a run).
        filename: Output name template, see :func:`output_path`.
        output_format: "float32", "pcm16" or "pcm24" (see ``OUTPUT_FORMATS``).
        overwrite: Replace an existing output (False: refuse with an error).
        cancel: A ``threading.Event``; once set, the write stops with
            :class:`stemprover.inference.streaming.Cancelled` and leaves nothing behind.
        audio: ``((C, n) array or a source of :mod:`~stemprover.inference.streaming`,
            sample_rate)`` enhanced in place of the file's content (the stem after a
            mixture projection); ``in_path`` still names the output.
        **options: :class:`EnhanceOptions` fields.

    Returns:
        The written path.
    """
    enhancer = model if isinstance(model, Enhancer) else Enhancer(model, EnhanceOptions(**options))
    if output_format not in OUTPUT_FORMATS:
        raise StemproverError(f"unknown output format {output_format!r}; choose from "
                              f"{', '.join(OUTPUT_FORMATS)}")
    target = output_path(in_path, out_dir, stem, filename)
    protected = (in_path, *(p for p in (mixture,) if p), *protect)
    for path in protected:
        if Path(path).exists() and target.resolve() == Path(path).resolve():
            raise StemproverError(f"{target}: refusing to overwrite an input file")
    if not overwrite and target.exists():
        raise StemproverError(f"{target}: already exists; pass --overwrite to replace it")
    if audio is None:
        source, mix = open_source(in_path, stem)
    elif isinstance(audio[0], np.ndarray):
        source, mix = ArraySource(audio[0], int(audio[1]), str(in_path)), None
    else:
        source, mix = audio[0], None
    check_rate(source.sample_rate, str(in_path))
    minimum = enhancer.min_samples(source.sample_rate)
    if source.n_samples < minimum:
        raise StemproverError(
            f"{in_path}: too short, {source.n_samples} samples but at least {minimum} are "
            "needed (one analysis frame)"
        )
    if mixture is not None:
        mix = FileSource.open(mixture)
    with FileSink(target, source.sample_rate, source.n_channels, protect=protected,
                  subtype=OUTPUT_FORMATS[output_format], cancel=cancel,
                  overwrite=overwrite) as sink:
        enhancer.run(source, sink, mix, name=Path(in_path).name)
        if sink.n_written != source.n_samples:
            raise StemproverError(f"{target}: wrote {sink.n_written} of {source.n_samples}")
    return target
