"""The training configuration: one frozen dataclass, read from a TOML file.

Every hyper-parameter of ``brgan train`` is a key here; ``brgan train --help`` lists them. The
file has top-level training keys and two tables::

    out_dir = "runs/brgan"      # checkpoints, train_config.json, log.jsonl
    epochs = 30
    batch_size = 8
    lr = 2e-4                   # Adam peak lr, generator/classifier step
    lr_d = 2e-4                 # Adam peak lr, discriminator step (CycleGAN's 2e-4)
    betas = [0.9, 0.999]        # Adam betas of the backbone and the heads
    betas_gan = [0.5, 0.999]    # Adam betas of the generators and discriminators (CycleGAN's)
    weight_decay = 0.0
    schedule = "cosine"         # constant | cosine (per step, after a linear warm-up)
    warmup_epochs = 1           # linear warm-up from 0 to the peak lr
    min_lr_ratio = 0.0          # cosine ends at lr * min_lr_ratio
    ema_decay = 0.0             # 0 = off; else validate/save an EMA of the weights
    bn_batches = 25             # training batches that re-estimate the EMA's BatchNorm (0 = all)
    select = "best"             # best (argmax validation AUC) | final (the last epoch's weights)
    patience = 5                # early stopping on validation AUC (0 = never; select = "best")
    seed = 0
    device = "auto"             # auto | cpu | cuda | cuda:N
    amp = false                 # bfloat16 autocast, CUDA only
    compile = false             # torch.compile the backbone, CUDA only
    num_workers = 0
    max_steps_per_epoch = 0     # 0 = the whole training set
    research_only = true        # written into every checkpoint

    [data]
    kind = "manifest"           # manifest | inbreast | cbis-ddsm | vindr
    root = "synth/train"
    size = [512, 416]           # model input (rows, columns)
    split_seed = 0              # patient-wise 8:1:1 split (paper Sect. 3.1)
    ratios = [0.8, 0.1, 0.1]
    cache_images = true         # keep preprocessed images in memory
    val_root = ""               # a separately generated validation set: then every pair under
                                # root trains and ratios/split_seed are not used

    [model]                     # BRGANConfig keys (docs/model.md), or preset = "<name>"
    preset = "brgan"
    backbone = "resnet18"

An unknown key or a bad value raises ``ValueError`` naming it (``model.<key>`` /
``data.<key>`` inside the tables).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from brgan_core.model.config import BRGANConfig

DATA_KINDS = ("manifest", "inbreast", "cbis-ddsm", "vindr")
#: Learning-rate schedules: constant, or linear warm-up then cosine decay (per step).
SCHEDULES = ("constant", "cosine")
#: Which weights a run keeps: the epoch of best validation AUC, or the last epoch's.
SELECTIONS = ("best", "final")


@dataclass(frozen=True)
class DataConfig:
    """Where the pairs come from and how they are made into model inputs."""

    kind: str = "manifest"
    root: Path = Path("data")
    size: tuple[int, int] = (512, 416)
    split_seed: int = 0
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    cache_images: bool = True
    #: A separate validation set (its own patients and seed); then all of ``root`` trains.
    val_root: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if self.val_root in ("", None):
            object.__setattr__(self, "val_root", None)
        else:
            object.__setattr__(self, "val_root", Path(self.val_root))
        if self.kind not in DATA_KINDS:
            raise ValueError(f"data.kind must be one of {', '.join(DATA_KINDS)}, not {self.kind!r}")
        size = tuple(self.size)
        if len(size) != 2 or not all(isinstance(v, int) and v >= 8 for v in size):
            raise ValueError(
                f"data.size must be [rows, columns] of integers >= 8, not {self.size!r}"
            )
        object.__setattr__(self, "size", size)
        ratios = tuple(float(r) for r in self.ratios)
        if len(ratios) != 3 or any(r < 0 for r in ratios) or not math.isclose(sum(ratios), 1.0):
            raise ValueError(
                f"data.ratios must be 3 numbers >= 0 summing to 1, not {self.ratios!r}"
            )
        if ratios[0] == 0 or ratios[1] == 0:
            raise ValueError("data.ratios: training and validation shares must be above 0")
        object.__setattr__(self, "ratios", ratios)
        _check_int("data.split_seed", self.split_seed, minimum=0)
        if not isinstance(self.cache_images, bool):
            raise ValueError(f"data.cache_images must be true or false, not {self.cache_images!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "root": str(self.root),
            "size": list(self.size),
            "split_seed": self.split_seed,
            "ratios": list(self.ratios),
            "cache_images": self.cache_images,
            "val_root": "" if self.val_root is None else str(self.val_root),
        }


@dataclass(frozen=True)
class TrainConfig:
    """All hyper-parameters of one training run (see the module docstring for the TOML form)."""

    model: BRGANConfig = field(default_factory=BRGANConfig)
    data: DataConfig = field(default_factory=DataConfig)
    out_dir: Path = Path("runs/brgan")
    epochs: int = 30
    batch_size: int = 8
    lr: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    betas_gan: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: int = 1
    min_lr_ratio: float = 0.0
    ema_decay: float = 0.0
    bn_batches: int = 25
    select: str = "best"
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    compile: bool = False
    num_workers: int = 0
    max_steps_per_epoch: int = 0
    research_only: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.model, BRGANConfig):
            raise ValueError("model must be a BRGANConfig")
        if not isinstance(self.data, DataConfig):
            raise ValueError("data must be a DataConfig")
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        _check_int("epochs", self.epochs, minimum=1)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("patience", self.patience, minimum=0)
        _check_int("seed", self.seed, minimum=0)
        _check_int("num_workers", self.num_workers, minimum=0)
        _check_int("max_steps_per_epoch", self.max_steps_per_epoch, minimum=0)
        for key in ("lr", "lr_d", "weight_decay"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{key} must be a number >= 0, not {value!r}")
            object.__setattr__(self, key, float(value))
        for key in ("betas", "betas_gan"):
            raw = getattr(self, key)
            betas = tuple(raw)
            if len(betas) != 2 or not all(isinstance(b, int | float) and 0 <= b < 1 for b in betas):
                raise ValueError(f"{key} must be two numbers in [0, 1), not {raw!r}")
            object.__setattr__(self, key, (float(betas[0]), float(betas[1])))
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}"
            )
        _check_int("warmup_epochs", self.warmup_epochs, minimum=0)
        _check_int("bn_batches", self.bn_batches, minimum=0)
        for key in ("min_lr_ratio", "ema_decay"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                raise ValueError(f"{key} must be a number in [0, 1), not {value!r}")
            object.__setattr__(self, key, float(value))
        if self.select not in SELECTIONS:
            raise ValueError(f"select must be one of {', '.join(SELECTIONS)}, not {self.select!r}")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {dev!r}")
        for key in ("amp", "compile", "research_only"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key} must be true or false, not {getattr(self, key)!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (written to ``train_config.json`` beside the checkpoints)."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("model", "data"):
                value = value.to_dict()
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a parsed TOML/JSON mapping; ``ValueError`` names an unknown or bad key."""
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ValueError(
                    f"{key}: unknown training config key (known: {', '.join(sorted(known))})"
                )
        kwargs = {k: v for k, v in data.items() if k not in ("model", "data")}
        model = dict(data.get("model", {}))
        preset = model.pop("preset", None)
        try:
            if preset is not None:
                model_cfg = BRGANConfig.preset(preset, **_checked(model, BRGANConfig))
            else:
                model_cfg = BRGANConfig.from_dict(model)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"model.{exc}") from exc
        try:
            data_cfg = DataConfig(**_checked(dict(data.get("data", {})), DataConfig))
        except (ValueError, TypeError) as exc:
            message = str(exc)
            raise ValueError(message if message.startswith("data.") else f"data.{message}") from exc
        return cls(model=model_cfg, data=data_cfg, **kwargs)

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        """Read a TOML file; errors name the file and the key."""
        path = Path(path)
        try:
            with path.open("rb") as handle:
                raw = tomllib.load(handle)
        except OSError as exc:
            raise ValueError(f"{path}: cannot read training config ({exc.strerror})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from exc
        try:
            return cls.from_dict(raw)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc


def _checked(values: dict[str, Any], cls: type) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    for key in values:
        if key not in known:
            raise ValueError(f"{key}: unknown key (known: {', '.join(sorted(known))})")
    return values


def _check_int(key: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, not {value!r}")
