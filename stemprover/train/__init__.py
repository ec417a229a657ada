"""Training under Hugging Face accelerate: base pretraining, control + LoRA, regression.

    from stemprover.train import pretrain_base, train_control_lora, train_regression
"""

from stemprover.train.config import LoraTrainConfig, PretrainConfig
from stemprover.train.control_lora import adapter_report, train_control_lora, train_regression
from stemprover.train.pretrain import pretrain_base
from stemprover.train.validate import evaluate_on_pairs, summarize

__all__ = [
    "LoraTrainConfig",
    "PretrainConfig",
    "adapter_report",
    "evaluate_on_pairs",
    "pretrain_base",
    "summarize",
    "train_control_lora",
    "train_regression",
]
