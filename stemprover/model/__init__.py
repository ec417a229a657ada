"""StemProver's model: base U-Net, phase-aware control branch, LoRA adapters, regression baseline.

    from stemprover.model import StemProverModel, RegressionModel, load_model, model_config

Imports ``dsp`` and ``project`` only: a saved model loads without the training code.
"""

from stemprover.model.config import ModelConfig, model_config
from stemprover.model.io import load_base, load_model
from stemprover.model.regression import RegressionModel
from stemprover.model.stemprover_model import ConditionCache, StemProverModel

__all__ = [
    "ConditionCache",
    "ModelConfig",
    "RegressionModel",
    "StemProverModel",
    "load_base",
    "load_model",
    "model_config",
]
