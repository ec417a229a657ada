"""Neural separators built from the demucs and openunmix packages, trained here.

    path = train_neural_separator("htdemucs", corpus_dir, out_path, steps=300, sample_rate=22050)
    sep = get_separator("htdemucs", checkpoint=path)

No pretrained weights can be downloaded, so both models are trained on the corpus train
split (:mod:`stemprover.separators.training`). A checkpoint is a ``torch.save`` dict of
plain values and tensors (loaded with ``weights_only=True``)::

    {"kind", "version", "sample_rate", "stems", "model_kwargs", "stft", "state_dict",
     "steps", "train_seconds", "final_loss"}

Neither package may pull in torchaudio (it is not installed): ``demucs.htdemucs`` and
``demucs.apply`` import without it; ``openunmix.model`` is loaded by
:func:`openunmix_module`, which skips ``openunmix/__init__`` and satisfies the unused
top-level ``import torchaudio`` of ``openunmix/transforms`` during that import only.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stemprover.constants import STEMS
from stemprover.dsp.audio import resample
from stemprover.dsp.spectral import stft_size
from stemprover.errors import StemproverError
from stemprover.project.paths import repo_root
from stemprover.project.runtime import cpu_threads as torch_threads
from stemprover.separators.base import Separator, register

CHECKPOINT_VERSION = 1
KINDS = ("htdemucs", "openunmix")


def openunmix_module(name: str) -> types.ModuleType:
    """Import ``openunmix.<name>`` (``model`` or ``filtering``) without torchaudio."""
    try:
        return importlib.import_module(f"openunmix.{name}")
    except ImportError:
        pass
    package = "stemprover._openunmix"
    if f"{package}.{name}" in sys.modules:
        return sys.modules[f"{package}.{name}"]
    spec = importlib.util.find_spec("openunmix")
    if spec is None or not spec.submodule_search_locations:
        raise StemproverError("the openunmix package is not installed")
    if package not in sys.modules:
        module = types.ModuleType(package)
        module.__path__ = list(spec.submodule_search_locations)
        sys.modules[package] = module

    def missing(attr: str):
        raise StemproverError(f"torchaudio is not installed (openunmix asked for {attr})")

    placeholder = types.ModuleType("torchaudio")
    placeholder.__getattr__ = missing  # type: ignore[method-assign]
    had = "torchaudio" in sys.modules
    if not had:
        sys.modules["torchaudio"] = placeholder
    try:
        return importlib.import_module(f"{package}.{name}")
    finally:
        if not had:
            sys.modules.pop("torchaudio", None)


def default_model_kwargs(kind: str, sample_rate: int, size: str = "small") -> dict[str, Any]:
    """Model sizes per profile: ``tiny`` (smoke), ``small`` (cpu), ``base`` (gpu).

    STFT sizes keep their duration across sample rates: ~46 ms for tiny/small, ~93 ms
    (the packages' 4096 at 44.1 kHz) for base.
    """
    if size not in ("tiny", "small", "base"):
        raise StemproverError(f"unknown neural size {size!r}; choose tiny, small or base")
    n_fft = stft_size(sample_rate, (4096 if size == "base" else 2048) / 44100)
    if kind == "htdemucs":
        return {
            "channels": {"tiny": 8, "small": 16, "base": 48}[size],
            "depth": {"tiny": 3, "small": 3, "base": 4}[size],
            "nfft": n_fft,
            "t_layers": {"tiny": 1, "small": 2, "base": 5}[size],
            "t_heads": {"tiny": 2, "small": 4, "base": 8}[size],
            "dconv_depth": 1 if size == "tiny" else 2,
            "bottom_channels": 0 if size != "base" else 512,
            "segment": 2.0,
        }
    if kind == "openunmix":
        return {
            "hidden_size": {"tiny": 16, "small": 128, "base": 512}[size],
            "nb_layers": {"tiny": 1, "small": 2, "base": 3}[size],
            "n_fft": n_fft,
            # Open-Unmix models only bins below 16 kHz at 44.1 kHz (its own band limit).
            "max_bin_hz": 16000.0,
        }
    raise StemproverError(f"unknown neural separator {kind!r}; choose one of {', '.join(KINDS)}")


def build_htdemucs(sample_rate: int, kwargs: dict[str, Any]) -> torch.nn.Module:
    from demucs.htdemucs import HTDemucs

    return HTDemucs(sources=list(STEMS), audio_channels=2, samplerate=sample_rate, **kwargs)


class UnmixSet(torch.nn.Module):
    """One ``openunmix.model.OpenUnmix`` per stem on a shared STFT (as Open-Unmix trains them).

    ``forward(mixture (B, 2, n)) -> magnitudes (B, S, 2, F, T)``.
    """

    def __init__(self, sample_rate: int, hidden_size: int, nb_layers: int, n_fft: int,
                 max_bin_hz: float):
        super().__init__()
        model = openunmix_module("model")
        self.n_fft, self.hop_length = n_fft, n_fft // 4
        n_bins = n_fft // 2 + 1
        max_bin = int(min(n_bins, np.ceil(max_bin_hz / (sample_rate / n_fft)) + 1))
        self.targets = torch.nn.ModuleDict({
            s: model.OpenUnmix(nb_bins=n_bins, nb_channels=2, hidden_size=hidden_size,
                               nb_layers=nb_layers, max_bin=max_bin)
            for s in STEMS
        })
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, C, n)`` -> complex ``(B, C, F, T)``."""
        batch, channels, n = audio.shape
        spec = torch.stft(audio.reshape(-1, n), self.n_fft, self.hop_length,
                          window=self.window, return_complex=True)
        return spec.reshape(batch, channels, *spec.shape[-2:])

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        magnitude = self.spectrogram(mixture).abs()
        return torch.stack([self.targets[s](magnitude) for s in STEMS], dim=1)

    def set_input_stats(self, mean: torch.Tensor, scale: torch.Tensor) -> None:
        """Standardise inputs with per-bin mean/std of training magnitudes ``(F,)``."""
        for net in self.targets.values():
            net.input_mean.data.copy_(-mean[: net.nb_bins])
            net.input_scale.data.copy_(1.0 / scale[: net.nb_bins].clamp_min(1e-5))


def build_model(kind: str, sample_rate: int, kwargs: dict[str, Any]) -> torch.nn.Module:
    if kind == "htdemucs":
        return build_htdemucs(sample_rate, kwargs)
    if kind == "openunmix":
        return UnmixSet(sample_rate, **kwargs)
    raise StemproverError(f"unknown neural separator {kind!r}; choose one of {', '.join(KINDS)}")


def load_checkpoint(kind: str, checkpoint: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a trained model; raises StemproverError on a missing or mismatched file."""
    path = Path(checkpoint)
    if not path.is_absolute() and not path.exists():  # a repository-relative spec

        path = repo_root() / path
    if not path.is_file():
        raise StemproverError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise StemproverError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or state.get("kind") != kind:
        found = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise StemproverError(f"{path}: checkpoint is for {found!r}, not {kind!r}")
    if state.get("version") != CHECKPOINT_VERSION or tuple(state.get("stems", ())) != STEMS:
        raise StemproverError(f"{path}: checkpoint version or stems do not match this library")
    model = build_model(kind, int(state["sample_rate"]), dict(state["model_kwargs"]))
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as exc:
        raise StemproverError(f"{path}: weights do not match the model config") from exc
    model.eval()
    return model, state


class NeuralSeparator(Separator):
    """Runs a trained model at its own sample rate and returns stems at the input rate."""

    kind = "htdemucs"

    def __init__(self, checkpoint: str | Path, device: str = "cpu", threads: int | None = 1):
        self.name = self.kind
        self.threads = threads  # CPU threads for inference (see torch_threads)
        self.model, self.state = load_checkpoint(self.kind, checkpoint)
        self.device = torch.device(device)
        self.model.to(self.device)
        self.model_rate = int(self.state["sample_rate"])

    def _separate(self, mixture, sample_rate, references):
        n_channels, n = mixture.shape
        audio = resample(mixture, sample_rate, self.model_rate) if sample_rate != self.model_rate \
            else mixture
        stereo = np.repeat(audio, 2, axis=0) if n_channels == 1 else audio
        with torch.no_grad(), torch_threads(self.threads if self.device.type == "cpu" else None):
            stems = self.run(torch.from_numpy(np.ascontiguousarray(stereo))[None].to(self.device))
        stems = stems[0].cpu().numpy()  # (S, 2, n_model)
        out = {}
        for index, stem in enumerate(STEMS):
            est = stems[index].mean(0, keepdims=True) if n_channels == 1 else stems[index]
            if sample_rate != self.model_rate:
                est = resample(est, self.model_rate, sample_rate)
            fixed = np.zeros((n_channels, n), dtype=np.float32)
            m = min(n, est.shape[-1])
            fixed[:, :m] = est[:, :m]
            out[stem] = fixed
        return out

    def run(self, mixture: torch.Tensor) -> torch.Tensor:
        """``(1, 2, n)`` -> ``(1, S, 2, n)`` at the model rate."""
        raise NotImplementedError


@register("htdemucs")
class HTDemucsSeparator(NeuralSeparator):
    kind = "htdemucs"

    def run(self, mixture):
        from demucs.apply import apply_model

        # shifts=0: Demucs' random time shifts would draw from Python's global RNG.
        return apply_model(self.model, mixture, shifts=0, split=True, overlap=0.25,
                           device=self.device, segment=float(self.model.segment))


@register("openunmix")
class OpenUnmixSeparator(NeuralSeparator):
    kind = "openunmix"

    def run(self, mixture):
        filtering = openunmix_module("filtering")
        model: UnmixSet = self.model
        n = mixture.shape[-1]
        spec = model.spectrogram(mixture)[0]  # (2, F, T)
        mags = model(mixture)[0]  # (S, 2, F, T)
        targets = mags.permute(3, 2, 1, 0)  # (T, F, C, S): Open-Unmix's layout
        mix = torch.view_as_real(spec.permute(2, 1, 0))  # (T, F, C, 2)
        est = filtering.wiener(targets, mix, iterations=1)  # (T, F, C, 2, S)
        est = torch.view_as_complex(est.permute(4, 2, 1, 0, 3).contiguous())  # (S, C, F, T)
        audio = torch.istft(est.reshape(-1, *est.shape[-2:]), model.n_fft, model.hop_length,
                            window=model.window, length=n)
        return audio.reshape(1, len(STEMS), 2, n)
