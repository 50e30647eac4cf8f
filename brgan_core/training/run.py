"""From a :class:`TrainConfig` to a trained model: read the dataset, split, train.

The dataset is read with :func:`brgan_core.data.readers.read_dataset` (``data.kind``,
``data.root``), split patient-wise (:func:`brgan_core.data.splits.split_pairs`, paper Sect. 3.1:
8:1:1) unless ``data.val_root`` names a separately generated validation set (then all of
``data.root`` trains) and the training and validation pairs are preprocessed with
:func:`brgan_core.preprocess.preprocess` to ``data.size``. The test split is never touched here.
The kept checkpoint gets the domain-shift guard (:func:`attach_training_guard`).
For ``model.reference = "random_healthy"`` the training pairs get random benign references of
other patients; validation always uses the contralateral (BR-GAN's ``predict`` does not read it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from brgan_core.data.readers import read_dataset
from brgan_core.data.splits import split_pairs
from brgan_core.training.config import TrainConfig
from brgan_core.training.dataset import Loader, PairDataset, data_fingerprint
from brgan_core.training.trainer import EpochRecord, StepInfo, Trainer, TrainingError, TrainResult


def build_trainer(
    config: TrainConfig,
    *,
    loader: Loader | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> Trainer:
    """Read and split the data the config names and return a ready :class:`Trainer`."""
    data = config.data
    report = read_dataset(data.kind, data.root)
    if not report.pairs:
        dropped = ", ".join(f"{k}: {v}" for k, v in report.dropped.items()) or "none"
        raise TrainingError(f"{data.root}: no usable pairs found (dropped — {dropped})")
    if data.val_root is not None:  # a separately generated validation set: all of root trains
        val_report = read_dataset(data.kind, data.val_root)
        if not val_report.pairs:
            raise TrainingError(f"{data.val_root}: no usable validation pairs found")
        train_pairs, val_pairs = list(report.pairs), list(val_report.pairs)
    else:
        splits = split_pairs(report.pairs, seed=data.split_seed, ratios=data.ratios)
        if not splits.train or not splits.val:
            raise TrainingError(
                f"{data.root}: {len(report.pairs)} pairs are too few for a train/validation split"
            )
        train_pairs, val_pairs = splits.train, splits.val
    train = PairDataset(
        train_pairs,
        data.size,
        loader=loader,
        cache=data.cache_images,
        reference=config.model.reference,
        seed=config.seed,
    )
    val = PairDataset(val_pairs, data.size, loader=loader, cache=data.cache_images)
    from brgan_core.synth.dataset import is_synthetic

    return Trainer(
        config,
        train,
        val,
        fingerprint=data_fingerprint(train_pairs),
        synthetic_training=is_synthetic(data.root),
        on_step=on_step,
        on_epoch=on_epoch,
    )


def train_from_config(
    config: TrainConfig,
    *,
    resume: bool = False,
    loader: Loader | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Train the run ``config`` describes (continue it in ``out_dir`` with ``resume``)."""
    trainer = build_trainer(config, loader=loader, on_step=on_step, on_epoch=on_epoch)
    result = trainer.fit(resume=resume)
    if result.best_checkpoint.is_file():
        attach_training_guard(result.best_checkpoint, trainer)
    return result


def attach_training_guard(checkpoint: Path, trainer: Trainer) -> None:
    """Store the domain-shift guard (:mod:`brgan_core.shift`) in the kept checkpoint: fitted on
    the training images' features, thresholded on the validation images'."""
    from brgan_core.shift import attach_guard

    def targets(data: Any) -> Iterator[Any]:
        for i in range(len(data)):
            yield data[i]["target"][0].numpy()

    attach_guard(checkpoint, targets(trainer.train_data), targets(trainer.val_data))
