"""BR-GAN training (issue 3, section 2): config, pair datasets, the alternating loop.

Public API::

    from brgan_core.training import TrainConfig, train_from_config

    config = TrainConfig.from_toml("train.toml")
    result = train_from_config(config, resume=False, on_step=print)
    result.best_checkpoint   # out_dir/best.safetensors (brgan_core.checkpoint format)

Lower level: :class:`Trainer` (any datasets of pair items), :func:`train_step`,
:func:`evaluate`, :class:`PairDataset`, :class:`ArrayPairDataset`, :func:`collate_pairs`.
"""

from brgan_core.training.config import DataConfig, TrainConfig
from brgan_core.training.dataset import (
    ArrayPairDataset,
    PairDataset,
    collate_pairs,
    data_fingerprint,
    preprocess_loader,
)
from brgan_core.training.run import build_trainer, train_from_config
from brgan_core.training.trainer import (
    EpochRecord,
    StepInfo,
    Trainer,
    TrainingError,
    TrainResult,
    evaluate,
    roc_auc,
    select_device,
    train_step,
)

__all__ = [
    "ArrayPairDataset",
    "DataConfig",
    "EpochRecord",
    "PairDataset",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "build_trainer",
    "collate_pairs",
    "data_fingerprint",
    "evaluate",
    "preprocess_loader",
    "roc_auc",
    "select_device",
    "train_from_config",
    "train_step",
]
