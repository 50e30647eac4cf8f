"""TrainConfig: TOML reading, defaults, errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brgan_core.model import BRGANConfig
from brgan_core.training import DataConfig, TrainConfig

TOML = """
out_dir = "runs/x"
epochs = 3
batch_size = 4
lr = 1e-3
betas = [0.9, 0.99]
patience = 2
device = "cpu"

[data]
kind = "manifest"
root = "synth/train"
size = [64, 52]

[model]
preset = "sbf"
backbone = "tiny"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_from_toml(tmp_path: Path) -> None:
    cfg = TrainConfig.from_toml(write(tmp_path, TOML))
    assert cfg.model == BRGANConfig.preset("sbf", backbone="tiny")
    assert cfg.data == DataConfig(root=Path("synth/train"), size=(64, 52))
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.betas) == (3, 4, 1e-3, (0.9, 0.99))
    assert cfg.out_dir == Path("runs/x")
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_defaults_are_full_brgan() -> None:
    cfg = TrainConfig.from_dict({})
    assert cfg.model == BRGANConfig()
    assert cfg.data.ratios == (0.8, 0.1, 0.1)
    assert (cfg.betas, cfg.betas_gan) == ((0.9, 0.999), (0.5, 0.999))
    protocol = (cfg.schedule, cfg.warmup_epochs, cfg.ema_decay, cfg.select)
    assert protocol == ("cosine", 1, 0.0, "best")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("epoch = 3", r"train\.toml: epoch: unknown training config key"),
        ("epochs = 0", "epochs must be an integer >= 1"),
        ('device = "tpu"', "device must be"),
        ("amp = 1", "amp must be true or false"),
        ("betas = [0.5]", "betas"),
        ("[model]\nbackbon = 'tiny'", r"model\.backbon: unknown"),
        ("[model]\nbilateral = 'none'", r"model\.consistency"),
        ("[model]\npreset = 'nope'", r"model\.preset"),
        ("[model]\npreset = 'brgan'\nmasks = true", r"model\.masks: unknown"),
        ("[data]\nroots = 'x'", r"data\.roots: unknown"),
        ("[data]\nsize = [64]", r"data\.size"),
        ("[data]\nkind = 'dicomdir'", r"data\.kind"),
        ("[data]\nratios = [0.9, 0.0, 0.1]", r"data\.ratios"),
        ("epochs = ", "not valid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_toml(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read training config"):
        TrainConfig.from_toml(tmp_path / "absent.toml")
