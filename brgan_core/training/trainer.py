"""The BR-GAN training loop: alternating generator/classifier and discriminator steps (Eq. 4).

One epoch = for each batch: :meth:`BRGAN.forward_train`, then the generator step (Adam on the
backbone, generators and heads over Eq. 4's weighted sum, discriminators frozen) and the
discriminator step (Adam on D_C and D_T, Eq. 1 on detached features) — the order of
pytorch-CycleGAN-and-pix2pix's ``optimize_parameters``. Then validation AUC (image-wise, with
:meth:`BRGAN.predict`), a checkpoint, a line in the JSON-lines log, and early stopping.

Files in ``out_dir``:

``train_config.json``              the :class:`TrainConfig` of the run
``checkpoints/epoch-NNN.safetensors``  weights + model config + metrics, every epoch
                                   (:func:`brgan_core.checkpoint.save_checkpoint`)
``best.safetensors``               a copy of the epoch with the best validation AUC
``train_state.pt``                 optimiser states and counters for ``resume`` (tensors, numbers
                                   and strings only; read with ``torch.load(weights_only=True)``)
``log.jsonl``                      one JSON object per epoch

Optimisation (the converged protocol of docs/benchmarks.md): Adam with ``betas`` for the
backbone and heads and ``betas_gan`` (CycleGAN's β1 = 0.5) for the generators and discriminators;
the learning rate warms up linearly over ``warmup_epochs`` and then follows ``schedule``
(cosine decay per step to ``lr × min_lr_ratio``, or constant). With ``ema_decay`` > 0 an
exponential moving average of the weights is kept
(:class:`torch.optim.swa_utils.AveragedModel`); before each validation its BatchNorm statistics
are re-estimated on the training data (:meth:`Trainer.reestimate_batchnorm`), and it is what is
validated and saved, so BatchNorm statistics always belong to the weights they are saved with.
``select = "final"`` keeps the last epoch (no early stopping, no selection on a noisy validation
AUC); ``"best"`` keeps the argmax.

Determinism: the model is built after ``torch.manual_seed(seed)`` (the backbone first, so rows
with the same seed start from the same backbone weights); every epoch reseeds torch with
``seed + epoch`` and shuffles with its own generator (the same batch order for every row of a
seed), so a resumed run produces the same weights as an uninterrupted one (bit-exact on CPU).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

from brgan_core.checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint
from brgan_core.errors import BrganCoreError
from brgan_core.model import BRGAN, Batch, build_model
from brgan_core.training.config import TrainConfig
from brgan_core.training.dataset import collate_pairs

CHECKPOINT_DIR = "checkpoints"
BEST_NAME = "best.safetensors"
STATE_NAME = "train_state.pt"
LOG_NAME = "log.jsonl"
CONFIG_NAME = "train_config.json"


class TrainingError(BrganCoreError):
    """A run cannot start or resume (no data, a different config in the output folder, ...)."""


@dataclass(frozen=True)
class StepInfo:
    """Reported after every training step (the CLI's progress bar reads it)."""

    epoch: int
    epochs: int
    step: int
    steps: int
    losses: dict[str, float]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's summary: one line of ``log.jsonl``."""

    epoch: int
    train: dict[str, float]
    val: dict[str, float | None]
    seconds: float
    checkpoint: str
    sha256: str
    best: bool


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did."""

    out_dir: Path
    best_epoch: int
    best_auc: float | None
    best_checkpoint: Path
    epochs_run: int
    stopped_early: bool
    history: list[EpochRecord] = field(default_factory=list)


def select_device(name: str = "auto") -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but CUDA is not available; use auto/cpu")
    return device


def roc_auc(labels: Tensor, scores: Tensor) -> float | None:
    """Image-wise AUC; ``None`` when the labels hold only one class."""
    from sklearn.metrics import roc_auc_score

    y = labels.cpu().numpy()
    if y.min() == y.max():
        return None
    return float(roc_auc_score(y, scores.float().cpu().numpy()))


def lr_factor(
    step: int, *, warmup: int, total: int, schedule: str, min_ratio: float = 0.0
) -> float:
    """Multiplier of the peak lr at optimiser ``step`` (0-based): linear warm-up, then cosine.

    Warm-up: ``(step + 1) / warmup`` for the first ``warmup`` steps. Cosine (SGDR without
    restarts, Loshchilov & Hutter 2017): ``min + (1 − min) · ½ (1 + cos(π · progress))`` with
    progress from 0 at the end of the warm-up to 1 at ``total``.
    """
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def attention_stats(attention: Tensor) -> dict[str, float]:
    """Eq. 2's attention map A (H·W · spatial softmax, mean 1) of a batch, logged per epoch
    (issue 11 §3): ``attn_max``, the largest weight (up to H·W: a peaked residual can make f_P
    that many times f_T), and ``attn_entropy``, the mean entropy of the spatial softmax per
    image and channel divided by log(H·W) (1 = uniform, 0 = one position)."""
    a = attention.detach().float()
    b, c, h, w = a.shape
    p = (a / (h * w)).reshape(b, c, h * w).clamp_min(1e-12)
    entropy = -(p * p.log()).sum(dim=-1) / math.log(h * w) if h * w > 1 else p.new_ones(b, c)
    return {"attn_max": float(a.amax()), "attn_entropy": float(entropy.mean())}


def train_step(
    model: BRGAN,
    batch: Batch,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer | None,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
) -> dict[str, float]:
    """One alternating step; returns the loss components (``d_*`` from the discriminator step)."""
    model.train()
    with autocast():
        out = model.forward_batch(batch)
        g = model.generator_loss(out)
    opt_g.zero_grad(set_to_none=True)
    g["total"].backward()
    opt_g.step()
    losses = {("g_total" if k == "total" else k): float(v.detach()) for k, v in g.items()}
    if "attention" in out and model.config.mask:
        losses.update(attention_stats(out["attention"]))
    if opt_d is not None:
        with autocast():
            d = model.discriminator_loss(out)
        opt_d.zero_grad(set_to_none=True)
        d["total"].backward()
        opt_d.step()
        losses.update({("d_total" if k == "total" else k): float(v.detach()) for k, v in d.items()})
    return losses


def evaluate(
    model: BRGAN, loader: DataLoader[Any], device: torch.device
) -> dict[str, float | None]:
    """Validation AUC and cross-entropy of :meth:`BRGAN.predict` over ``loader``."""
    probs: list[Tensor] = []
    labels: list[Tensor] = []
    losses: list[Tensor] = []
    for batch in loader:
        batch = batch.to(device)
        pred = model.predict(batch.target, batch.contralateral)
        probs.append(pred.p_malignant.float().cpu())
        labels.append(batch.label.cpu())
        losses.append(
            torch.nn.functional.cross_entropy(
                pred.logits.float(), batch.label, reduction="sum"
            ).cpu()
        )
    y, p = torch.cat(labels), torch.cat(probs)
    return {"auc": roc_auc(y, p), "loss": float(torch.stack(losses).sum()) / len(y), "n": len(y)}


class Trainer:
    """Runs :class:`TrainConfig` on a training and a validation dataset of pair items."""

    def __init__(
        self,
        config: TrainConfig,
        train_data: Dataset[Any],
        val_data: Dataset[Any],
        *,
        fingerprint: str = "",
        synthetic_training: bool = False,
        on_step: Callable[[StepInfo], None] | None = None,
        on_epoch: Callable[[EpochRecord], None] | None = None,
    ) -> None:
        if len(train_data) == 0 or len(val_data) == 0:  # type: ignore[arg-type]
            raise TrainingError("training and validation data must not be empty")
        self.config = config
        self.train_data = train_data
        self.val_data = val_data
        self.fingerprint = fingerprint
        self.synthetic_training = synthetic_training
        self.on_step = on_step
        self.on_epoch = on_epoch
        self.out_dir = config.out_dir
        self.device = select_device(config.device)
        torch.manual_seed(config.seed)
        self.model = build_model(config.model).to(self.device)
        gan_ids = {
            id(p)
            for module in (self.model.g_t2c, self.model.g_c2t)
            if module is not None
            for p in module.parameters()
        }
        params = self.model.generator_parameters()
        groups: list[dict[str, Any]] = [
            {"params": [p for p in params if id(p) not in gan_ids], "betas": config.betas}
        ]
        if gan_ids:
            groups.append(
                {"params": [p for p in params if id(p) in gan_ids], "betas": config.betas_gan}
            )
        self.opt_g = torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
        self.opt_d = (
            torch.optim.Adam(
                self.model.discriminator_parameters(), lr=config.lr_d, betas=config.betas_gan
            )
            if self.model.has_discriminators
            else None
        )
        self.ema: AveragedModel | None = None
        if config.ema_decay:
            self.ema = AveragedModel(
                self.model,
                multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay),
                use_buffers=False,  # BatchNorm statistics are re-estimated for the EMA weights
            )
        self.steps_per_epoch = len(self._loader(train_data, shuffle_seed=0))
        if config.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, config.max_steps_per_epoch)
        total = self.steps_per_epoch * config.epochs
        warmup = self.steps_per_epoch * config.warmup_epochs

        def factor(step: int) -> float:
            return lr_factor(
                step,
                warmup=warmup,
                total=total,
                schedule=config.schedule,
                min_ratio=config.min_lr_ratio,
            )

        self.schedulers = [LambdaLR(self.opt_g, factor)]
        if self.opt_d is not None:
            self.schedulers.append(LambdaLR(self.opt_d, factor))
        cuda = self.device.type == "cuda"
        self.use_amp = config.amp and cuda
        if config.compile and cuda:
            self.model.backbone.compile()

    # -- helpers -----------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.use_amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _loader(self, data: Dataset[Any], *, shuffle_seed: int | None) -> DataLoader[Any]:
        generator = None
        if shuffle_seed is not None:
            generator = torch.Generator().manual_seed(shuffle_seed)
        n = len(data)  # type: ignore[arg-type]
        return DataLoader(
            data,
            batch_size=self.config.batch_size,
            shuffle=shuffle_seed is not None,
            generator=generator,
            drop_last=shuffle_seed is not None and n > self.config.batch_size,
            num_workers=self.config.num_workers,
            collate_fn=collate_pairs,
            pin_memory=self.device.type == "cuda",
        )

    def reestimate_batchnorm(self, model: BRGAN) -> None:
        """Recompute ``model``'s BatchNorm running statistics on the training data (its first
        ``bn_batches`` batches in dataset order; 25 × 16 = 400 images on bench-cpu).

        Averaged weights need their own statistics: the running means and variances collected
        along the way belong to the raw weights of each step, and mixing them with the average
        collapses the validation AUC to chance (measured: 0.55 before, 0.81 after, on the
        bench-cpu vanilla row at epoch 7). This is SWA's ``update_bn`` (Izmailov et al. 2018),
        run through :meth:`BRGAN.forward_batch` so every module with BatchNorm sees its input.
        """
        norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the pass
        was_training = model.training
        model.train()
        loader = self._loader(self.train_data, shuffle_seed=None)
        limit = min(self.steps_per_epoch, self.config.bn_batches or self.steps_per_epoch)
        with torch.no_grad(), self._autocast():
            for step, batch in enumerate(loader, start=1):
                if step > limit:
                    break
                model.forward_batch(batch.to(self.device))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)

    @property
    def eval_model(self) -> BRGAN:
        """The weights that are validated and saved: the EMA when on, else the model."""
        return self.model if self.ema is None else self.ema.module  # type: ignore[return-value]

    def _info(self, metrics: dict[str, Any]) -> CheckpointInfo:
        return CheckpointInfo(
            model_config=self.model.config.to_dict(),
            preprocessing={"size": list(self.config.data.size)},
            data_fingerprint=self.fingerprint,
            metrics=metrics,
            temperature=float(self.model.temperature),
            research_only=self.config.research_only,
            synthetic_training=self.synthetic_training,
        )

    def _check_or_write_config(self, resume: bool) -> None:
        path = self.out_dir / CONFIG_NAME
        current = self.config.to_dict()
        if resume and path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            for key in (
                "model",
                "data",
                "seed",
                "batch_size",
                "lr",
                "lr_d",
                "betas",
                "betas_gan",
                "schedule",
                "warmup_epochs",
                "min_lr_ratio",
                "ema_decay",
                "bn_batches",
                "select",
            ):
                if saved.get(key) != current.get(key):
                    raise TrainingError(
                        f"{self.out_dir}: cannot resume, '{key}' differs from the run there "
                        "(use another out_dir, or the same config)"
                    )
            if self.config.schedule != "constant" and saved.get("epochs") != self.config.epochs:
                raise TrainingError(
                    f"{self.out_dir}: cannot resume with epochs = {self.config.epochs}: the "
                    f"{self.config.schedule} schedule of the run there spans "
                    f"{saved.get('epochs')} epochs (only a constant schedule can be extended)"
                )
        elif not resume and (self.out_dir / STATE_NAME).exists():
            raise TrainingError(
                f"{self.out_dir} already holds a run; resume it (--resume) or pick another out_dir"
            )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, indent=2, sort_keys=True), encoding="utf-8")

    def _save_state(self, state: dict[str, Any]) -> None:
        tmp = self.out_dir / (STATE_NAME + ".tmp")
        torch.save(state, tmp)
        tmp.replace(self.out_dir / STATE_NAME)

    def _resume_state(self) -> dict[str, Any]:
        path = self.out_dir / STATE_NAME
        if not path.is_file():
            raise TrainingError(f"{self.out_dir}: nothing to resume (no {STATE_NAME})")
        state = torch.load(path, map_location="cpu", weights_only=True)
        checkpoint = self.out_dir / state["checkpoint"]
        weights, _ = load_checkpoint(checkpoint, expected_sha256=state["sha256"])
        if "model" in state:  # the raw weights (the checkpoint holds the EMA when it is on)
            self.model.load_state_dict(state["model"], strict=True)
        else:
            self.model.load_state_dict(weights, strict=True)
        if self.ema is not None:
            if "ema" not in state:
                raise TrainingError(
                    f"{self.out_dir}: the saved state has no EMA; resume with ema_decay = 0"
                )
            self.ema.load_state_dict(state["ema"], strict=True)
        self.opt_g.load_state_dict(state["opt_g"])
        if self.opt_d is not None:
            self.opt_d.load_state_dict(state["opt_d"])
        for scheduler, saved in zip(self.schedulers, state.get("schedulers", []), strict=False):
            scheduler.load_state_dict(saved)
        return state

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        """Train until ``epochs`` or early stopping; ``resume`` continues the run in out_dir."""
        cfg = self.config
        self._check_or_write_config(resume)
        state: dict[str, Any] = {
            "epoch": 0,
            "best_epoch": 0,
            "best_auc": float("nan"),
            "bad_epochs": 0,
        }
        history: list[EpochRecord] = []
        log_path = self.out_dir / LOG_NAME
        if resume:
            state = self._resume_state()
            lines = log_path.read_text(encoding="utf-8").splitlines() if log_path.exists() else []
            history = [EpochRecord(**json.loads(line)) for line in lines if line.strip()]
            history = history[: state["epoch"]]  # drop epochs logged after the last saved state
            log_path.write_text(
                "".join(json.dumps(asdict(r), sort_keys=True) + "\n" for r in history),
                encoding="utf-8",
            )
        elif log_path.exists():
            log_path.unlink()
        (self.out_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
        val_loader = self._loader(self.val_data, shuffle_seed=None)
        stopped_early = False

        for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
            if cfg.patience and state["bad_epochs"] >= cfg.patience:
                stopped_early = True  # a resumed run that had already stopped early
                break
            started = time.monotonic()
            torch.manual_seed(cfg.seed + epoch)
            if hasattr(self.train_data, "set_epoch"):
                self.train_data.set_epoch(epoch)
            loader = self._loader(self.train_data, shuffle_seed=cfg.seed * 100_003 + epoch)
            steps = self.steps_per_epoch
            sums: dict[str, float] = {}
            lr_start = self.opt_g.param_groups[0]["lr"]
            for step, batch in enumerate(loader, start=1):
                if step > steps:
                    break
                losses = train_step(
                    self.model, batch.to(self.device), self.opt_g, self.opt_d, self._autocast
                )
                for scheduler in self.schedulers:
                    scheduler.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                for key, value in losses.items():
                    sums[key] = sums.get(key, 0.0) + value
                if self.on_step is not None:
                    self.on_step(StepInfo(epoch, cfg.epochs, step, steps, losses))
            train_means = {key: value / steps for key, value in sums.items()}
            train_means["lr"] = lr_start
            if self.ema is not None:
                self.reestimate_batchnorm(self.eval_model)
            val = evaluate(self.eval_model, val_loader, self.device)

            auc = val["auc"]
            best_auc = state["best_auc"]
            improved = auc is not None and (best_auc != best_auc or auc > best_auc)
            first = state["best_epoch"] == 0
            if cfg.select == "final":  # the last epoch is kept; nothing is selected on val AUC
                state["best_auc"], state["best_epoch"], state["bad_epochs"] = auc, epoch, 0
                if auc is None:
                    state["best_auc"] = float("nan")
            elif improved:
                state["best_auc"], state["best_epoch"], state["bad_epochs"] = auc, epoch, 0
            else:
                state["bad_epochs"] += 1
                if first:  # no defined AUC yet: keep the first epoch as "best" so one exists
                    state["best_epoch"] = epoch
            is_best = state["best_epoch"] == epoch

            name = f"{CHECKPOINT_DIR}/epoch-{epoch:03d}.safetensors"
            metrics = {"epoch": epoch, "val_auc": auc, "val_loss": val["loss"], "val_n": val["n"]}
            metrics.update({f"train_{k}": v for k, v in train_means.items()})
            sha = save_checkpoint(
                self.out_dir / name, self.eval_model.state_dict(), self._info(metrics)
            )
            if is_best:
                shutil.copyfile(self.out_dir / name, self.out_dir / BEST_NAME)
            record = EpochRecord(
                epoch=epoch,
                train=train_means,
                val=val,
                seconds=round(time.monotonic() - started, 3),
                checkpoint=name,
                sha256=sha,
                best=is_best,
            )
            history.append(record)
            with log_path.open("a", encoding="utf-8") as log:
                log.write(json.dumps(asdict(record), sort_keys=True) + "\n")
            state.update(
                {
                    "epoch": epoch,
                    "checkpoint": name,
                    "sha256": sha,
                    "opt_g": self.opt_g.state_dict(),
                    "opt_d": self.opt_d.state_dict() if self.opt_d is not None else {},
                    "schedulers": [scheduler.state_dict() for scheduler in self.schedulers],
                    "model": self.model.state_dict(),
                }
            )
            if self.ema is not None:
                state["ema"] = self.ema.state_dict()
            self._save_state(state)
            if self.on_epoch is not None:
                self.on_epoch(record)
        else:
            stopped_early = (
                bool(cfg.patience)
                and state["bad_epochs"] >= cfg.patience
                and (state["epoch"] < cfg.epochs)
            )

        best = state["best_auc"]
        return TrainResult(
            out_dir=self.out_dir,
            best_epoch=state["best_epoch"],
            best_auc=None if best != best else best,
            best_checkpoint=self.out_dir / BEST_NAME,
            epochs_run=state["epoch"],
            stopped_early=stopped_early,
            history=history,
        )
