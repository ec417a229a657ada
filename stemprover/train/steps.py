"""One training step's loss for each model kind (diffusion with/without control, regression)."""

from __future__ import annotations

import torch

from stemprover.constants import ADAPTERS
from stemprover.dsp.spectral import stft, wave_to_image
from stemprover.model.bridge import TRAIN_TIMESTEPS, bridge_point, sample_times
from stemprover.train.losses import PhaseAwareLoss


def loss_for(model, loss_cfg) -> PhaseAwareLoss:
    """The phase-aware loss in the model's representation and STFT."""
    return PhaseAwareLoss(loss_cfg, model.representation, model.stft, model.config.sample_rate)


def _phases(model, batch: dict, conditional: bool):
    """Phases for the magnitude representation (which has none): separated and clean."""
    if model.representation.name != "magnitude":
        return None, None
    clean_phase = stft(batch["clean"], model.stft).angle()
    if not conditional:
        return clean_phase, clean_phase
    return stft(batch["separated"], model.stft).angle(), clean_phase


def crop_batch(batch: dict, n_samples: int, generator: torch.Generator) -> dict:
    """Random crops of ``n_samples`` (same offset for all waves of an item); shorter stays."""
    waves = [k for k in ("separated", "clean", "mixture") if k in batch]
    length = batch["clean"].shape[-1]
    if length <= n_samples:
        return batch
    offsets = torch.randint(0, length - n_samples + 1, (batch["clean"].shape[0],),
                            generator=generator, device=generator.device).tolist()
    out = dict(batch)
    for key in waves:
        out[key] = torch.stack([w[o : o + n_samples] for w, o in zip(batch[key], offsets)])
    return out


def condition_pictures(model, batch: dict, generator: torch.Generator, mixture_dropout: float):
    """Separated and mixture pictures; the mixture is zeroed for a ``mixture_dropout`` share."""
    rep = model.representation
    separated = wave_to_image(batch["separated"], rep)
    mixture = None
    if model.config.use_mixture and "mixture" in batch:
        mixture = wave_to_image(batch["mixture"], rep)
        keep = torch.rand(mixture.shape[0], generator=generator, device=generator.device)
        mask = (keep >= mixture_dropout).to(mixture.dtype).to(mixture.device)
        mixture = mixture * mask[:, None, None, None]
    return separated, mixture


def one_hot(adapter: str | torch.Tensor, batch: int, device) -> torch.Tensor:
    """Adapter weight rows ``(batch, len(ADAPTERS))`` for one adapter name or per-item indices."""
    if isinstance(adapter, str):
        index = torch.full((batch,), ADAPTERS.index(adapter), device=device)
    else:
        index = adapter.long().to(device)
    return torch.nn.functional.one_hot(index, len(ADAPTERS)).float()


def diffusion_step(
    model,
    loss_fn: PhaseAwareLoss,
    scheduler,
    batch: dict,
    generator: torch.Generator,
    *,
    adapter: str | None = None,
    mixture_dropout: float = 0.0,
):
    """Diffusion loss (+ phase-aware terms on the predicted clean picture) for one batch.

    Args:
        model: StemProverModel; conditional when ``adapter`` is given.
        loss_fn: From :func:`loss_for`.
        scheduler: diffusers DDPMScheduler of the model.
        batch: ``{"clean": (B, n)}`` (+ ``"separated"``, ``"mixture"`` for conditional).
        generator: Source of noise, timesteps and mixture dropout.
        adapter: Adapter to train (``"general"`` or a specialised one); None = unconditional.
        mixture_dropout: Share of items whose mixture is zeroed.
    """
    if getattr(model, "is_bridge", False):
        return bridge_step(model, loss_fn, batch, generator, adapter=adapter,
                           mixture_dropout=mixture_dropout)
    batch = crop_batch(batch, model.config.segment_samples, generator)
    clean_img = wave_to_image(batch["clean"], model.representation)
    with torch.no_grad():
        x0 = model.encode_image(clean_img)
    noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0)
    n_steps = scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, n_steps, (x0.shape[0],), generator=generator,
                              device=generator.device).to(x0.device)
    noisy = scheduler.add_noise(x0, noise, timesteps)
    condition, weights = None, None
    if adapter is not None:
        separated, mixture = condition_pictures(model, batch, generator, mixture_dropout)
        condition = model.encode_condition(separated, mixture)
        weights = one_hot(adapter, x0.shape[0], x0.device)
    output = model(noisy, timesteps, condition, weights)
    phase, target_phase = _phases(model, batch, adapter is not None)
    size = tuple(clean_img.shape[-2:])
    return loss_fn.diffusion_terms(
        output, noisy, x0, noise, timesteps, scheduler,
        target_image=clean_img, decode=lambda x: model.decode_image(x, size),
        phase=phase, target_phase=target_phase,
    )


def bridge_step(
    model,
    loss_fn: PhaseAwareLoss,
    batch: dict,
    generator: torch.Generator,
    *,
    adapter: str | torch.Tensor | None = None,
    mixture_dropout: float = 0.0,
    times: torch.Tensor | None = None,
):
    """Loss of the clean picture predicted from a point of the bridge (:mod:`stemprover.model.bridge`).

    The network sees ``x_t`` between the clean and the separated picture and returns the clean
    one; the loss is the image error plus the phase-aware terms on that prediction. Without an
    adapter the base learns from ``x_t`` alone (stage 03); with one, the control branch also
    reads the separated stem and the mixture (stage 04).

    Args:
        model: A bridge StemProverModel.
        loss_fn: From :func:`loss_for`.
        batch: ``{"clean", "separated"}`` (+ ``"mixture"``) waves ``(B, n)``.
        generator: Source of crops, times, bridge noise and mixture dropout.
        adapter: Adapter trained (name or per-item indices); None trains the base alone on
            its clean tokens. A base without control reads only the adapter's tokens.
        mixture_dropout: Share of items whose mixture is zeroed.
        times: Fixed bridge times ``(B,)`` (validation); default drawn by ``sample_times``.
    """

    batch = crop_batch(batch, model.config.segment_samples, generator)
    rep = model.representation
    clean_img = wave_to_image(batch["clean"], rep)
    separated_img = wave_to_image(batch["separated"], rep)
    with torch.no_grad():
        x0 = model.encode_image(clean_img)
        y = model.encode_image(separated_img)
    n_items = x0.shape[0]
    if times is None:
        times = sample_times(n_items, generator, loss_fn.cfg.bridge_one_share)
    times = times.to(x0.device)
    rho = float(model.config.bridge_noise)
    noise = None
    if rho > 0:
        noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0)
    x_t = bridge_point(x0, y, times, noise, rho)
    condition, weights = None, None
    if adapter is not None:
        if model.has_control:
            separated, mixture = condition_pictures(model, batch, generator, mixture_dropout)
            condition = model.encode_condition(separated, mixture)
        weights = one_hot(adapter, n_items, x0.device)  # a base reads the type's tokens only
    predicted = model(x_t, times * TRAIN_TIMESTEPS, condition, weights)
    # the main term is the error in model space, where the data has unit spread (picture
    # values of quiet stems are ~1e-2, so a picture-space MSE would hardly count)
    model_error = (predicted.float() - x0.float()).pow(2).mean()
    size = tuple(clean_img.shape[-2:])
    pred_image = model.decode_image(predicted, size)
    if model.autoencoder is not None:  # latent mode learns the correction of the picture
        pred_image = separated_img + pred_image - model.decode_image(y, size).detach()
    phase, target_phase = _phases(model, batch, True)
    # Spectral terms are per-item ratios (log SNR, phase errors): an item near the clean end
    # (small t) has almost no error left, and its normalised gradient would be noise as loud
    # as a hard item's. Weighting them by t keeps the gradient on the work still to do.
    loss, terms = loss_fn(pred_image, clean_img, phase=phase, target_phase=target_phase,
                          diffusion=model_error, sample_weights=times)
    if loss_fn.cfg.harm > 0:
        terms["harm"] = harm_db(pred_image, separated_img, clean_img).mean() / 10.0
        loss = loss + loss_fn.cfg.harm * terms["harm"]
    return loss, terms


HARM_CEILING_DB = 40.0  # an input above this SNR is transparent: matching 40 dB leaves it alone


def picture_snr_db(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per-item SNR (dB) of a picture batch ``(B, ...)`` against the clean pictures."""
    dims = tuple(range(1, clean.ndim))
    signal = clean.float().pow(2).sum(dims)
    error = (estimate.float() - clean.float()).pow(2).sum(dims)
    return 10.0 * torch.log10((signal + 1e-8) / (error + 1e-8))


def harm_db(predicted: torch.Tensor, separated: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """How many dB the prediction of each item falls below its separated input (0 if none).

    A stem that is already good gives the network little to gain and much to lose; this hinge
    counts only the loss, so it asks the model to leave such a stem alone without pulling
    the gains on poor stems towards zero. The input's SNR is capped at
    :data:`HARM_CEILING_DB`: an identity pair (the clean stem as input) has an infinite SNR
    that no prediction can match, and would otherwise dominate the term.
    """
    reference = picture_snr_db(separated, clean).detach().clamp(max=HARM_CEILING_DB)
    return torch.relu(reference - picture_snr_db(predicted, clean))


def regression_step(model, loss_fn: PhaseAwareLoss, batch: dict, generator, mixture_dropout=0.0):
    """Image MSE + phase-aware terms of the regression baseline for one batch."""
    batch = crop_batch(batch, model.config.segment_samples, generator)
    clean_img = wave_to_image(batch["clean"], model.representation)
    separated, mixture = condition_pictures(model, batch, generator, mixture_dropout)
    predicted = model(separated, mixture)
    phase, target_phase = _phases(model, batch, True)
    # the same model-space error as the bridge's (folding only permutes the values)
    scaled_error = ((predicted.float() - clean_img.float()) * model.config.image_scale).pow(2)
    return loss_fn(predicted, clean_img, phase=phase, target_phase=target_phase,
                   diffusion=scaled_error.mean())
