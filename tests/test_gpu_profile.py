"""The gpu profile's model, built and run on CPU at a tiny crop, so that a first GPU run works."""

from __future__ import annotations

import torch

from stemprover.inference.sampler import sample_waves
from stemprover.model import StemProverModel, model_config
from stemprover.model.adapters import control_parameters
from stemprover.model.unet import freeze
from stemprover.train.losses import LossConfig
from stemprover.train.steps import bridge_step, loss_for


def test_gpu_model_trains_one_step_and_samples_two_steps_on_cpu():
    torch.manual_seed(0)
    cfg = model_config("gpu", segment_frames=8)  # the gpu architecture, a tiny crop
    assert cfg.formulation == "bridge" and cfg.sample_rate == 44100
    base = StemProverModel(cfg, with_control=False)
    with torch.no_grad():  # stands for a pretrained base (a fresh one is the identity)
        base.unet.conv_out.weight.normal_(0.0, 1e-3)
    model = StemProverModel(cfg, unet=base.unet, with_control=True)
    model.add_adapters()
    freeze(model.unet)
    params = list(control_parameters(model).values())
    for param in params:
        param.requires_grad_(True)
    gen = torch.Generator().manual_seed(0)
    n = cfg.segment_samples
    batch = {k: torch.randn(2, n, generator=gen) * 0.1 for k in ("clean", "separated", "mixture")}
    loss, terms = bridge_step(model, loss_for(model, LossConfig(snr=1.0)), batch, gen,
                              adapter="general")
    loss.backward()
    assert torch.isfinite(loss) and {"diffusion", "snr"} <= set(terms)
    # at the first step only the branch's zero output heads see a gradient
    zero_conv = model.control_out[3].weight  # the general head (adapter order)
    assert zero_conv.grad is not None and zero_conv.grad.abs().sum() > 0
    model.eval()
    separated = torch.randn(2, n) * 0.1
    out = sample_waves(model, separated, torch.randn(2, n) * 0.1, steps=2,
                       adapter_weights={"bleed": 0.5, "general": 0.5})
    assert out.shape == separated.shape and torch.isfinite(out).all()
