"""The training loop: files per epoch, bit-exact resume, early stopping, loadable checkpoints."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from brgan_core.checkpoint import load_checkpoint, read_info
from brgan_core.model import BRGANConfig, build_model
from brgan_core.training import (
    ArrayPairDataset,
    StepInfo,
    TrainConfig,
    Trainer,
    TrainingError,
    select_device,
)
from brgan_core.training.trainer import lr_factor
from tests.brgan_core.model.helpers import synthetic_pairs


def datasets(n_train: int = 16, n_val: int = 8) -> tuple[ArrayPairDataset, ArrayPairDataset]:
    def wrap(seed: int, n: int) -> ArrayPairDataset:
        b = synthetic_pairs(n, seed=seed)
        return ArrayPairDataset(
            b.target,
            b.contralateral,
            b.label,
            target_mask=b.target_mask,
            contralateral_mask=b.contralateral_mask,
        )

    return wrap(0, n_train), wrap(1, n_val)


def config(out: Path, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "model": BRGANConfig(backbone="tiny"),
        "out_dir": out,
        "epochs": 2,
        "batch_size": 8,
        "lr": 1e-3,
        "lr_d": 1e-3,
        "device": "cpu",
        "patience": 0,
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def test_fit_writes_checkpoints_log_and_state(tmp_path: Path) -> None:
    train, val = datasets()
    steps: list[StepInfo] = []
    trainer = Trainer(config(tmp_path), train, val, fingerprint="fp", on_step=steps.append)
    result = trainer.fit()
    assert result.epochs_run == 2 and not result.stopped_early
    assert [s.step for s in steps] == [1, 2, 1, 2]
    assert {"cls", "gan_t2c", "cyc_t", "cyc_c", "re", "aux_pm", "g_total", "d_c", "d_t"} <= set(
        steps[0].losses
    )
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["epoch"] == 1 and 0.0 <= first["val"]["auc"] <= 1.0
    assert set(first["train"]) == set(steps[0].losses) | {"lr"}
    for epoch in (1, 2):
        assert (tmp_path / f"checkpoints/epoch-{epoch:03d}.safetensors").is_file()
    assert (tmp_path / "best.safetensors").is_file()
    assert json.loads((tmp_path / "train_config.json").read_text())["model"]["backbone"] == "tiny"

    info = read_info(tmp_path / "checkpoints/epoch-002.safetensors")
    assert info.model_config == BRGANConfig(backbone="tiny").to_dict()
    assert info.data_fingerprint == "fp" and info.research_only
    assert info.metrics["epoch"] == 2 and "train_cls" in info.metrics
    assert info.preprocessing == {"size": [512, 416]}

    # a checkpoint rebuilds the same model, bit-exact
    weights, info = load_checkpoint(tmp_path / "checkpoints/epoch-002.safetensors")
    model = build_model(info.model_config)
    model.load_state_dict(weights, strict=True)
    batch = synthetic_pairs(4, seed=5)
    a = model.predict(batch.target, batch.contralateral)
    b = trainer.model.predict(batch.target, batch.contralateral)
    assert torch.equal(a.logits, b.logits)


def state_of(out: Path, epoch: int) -> dict[str, torch.Tensor]:
    weights, _ = load_checkpoint(out / f"checkpoints/epoch-{epoch:03d}.safetensors")
    return weights


class _KilledError(Exception):
    """Stands in for a process killed after an epoch (raised from the epoch callback)."""


def _kill_after(epoch: int):
    def on_epoch(record: object) -> None:
        if record.epoch == epoch:  # type: ignore[attr-defined]
            raise _KilledError

    return on_epoch


@pytest.mark.parametrize(
    "protocol",
    [
        {"schedule": "constant", "warmup_epochs": 0},
        {"schedule": "cosine", "warmup_epochs": 1, "ema_decay": 0.9, "select": "final"},
    ],
    ids=["constant", "cosine-ema"],
)
def test_resume_is_bit_exact(tmp_path: Path, protocol: dict[str, object]) -> None:
    train, val = datasets()
    Trainer(config(tmp_path / "full", epochs=3, **protocol), train, val).fit()

    cut = config(tmp_path / "cut", epochs=3, **protocol)
    with pytest.raises(_KilledError):
        Trainer(cut, train, val, on_epoch=_kill_after(1)).fit()
    resumed = Trainer(cut, train, val).fit(resume=True)
    assert resumed.epochs_run == 3
    assert [r.epoch for r in resumed.history] == [1, 2, 3]
    full, cut_state = state_of(tmp_path / "full", 3), state_of(tmp_path / "cut", 3)
    assert full.keys() == cut_state.keys()
    assert all(torch.equal(full[k], cut_state[k]) for k in full)
    assert len((tmp_path / "cut/log.jsonl").read_text().splitlines()) == 3


def test_constant_schedule_can_be_extended_on_resume(tmp_path: Path) -> None:
    train, val = datasets()
    Trainer(config(tmp_path, epochs=1, schedule="constant"), train, val).fit()
    resumed = Trainer(config(tmp_path, epochs=2, schedule="constant"), train, val).fit(resume=True)
    assert resumed.epochs_run == 2


def test_cosine_schedule_warms_up_and_decays(tmp_path: Path) -> None:
    train, val = datasets()
    result = Trainer(config(tmp_path, epochs=3, warmup_epochs=1), train, val).fit()
    lrs = [r.train["lr"] for r in result.history]  # the lr at the start of each epoch
    assert lrs[0] < lrs[1] and lrs[2] < lrs[1]  # warm-up from ~0, then cosine decay
    assert lrs[1] == pytest.approx(1e-3)


def test_lr_factor_shape() -> None:
    f = [lr_factor(s, warmup=10, total=110, schedule="cosine") for s in range(111)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[60] == pytest.approx(0.5) and f[110] == 0.0
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))
    assert lr_factor(50, warmup=0, total=100, schedule="constant") == 1.0


def test_ema_weights_are_saved_and_differ_from_the_raw_model(tmp_path: Path) -> None:
    train, val = datasets()
    trainer = Trainer(config(tmp_path, epochs=2, ema_decay=0.5, select="final"), train, val)
    result = trainer.fit()
    saved = state_of(tmp_path, 2)
    ema = trainer.eval_model.state_dict()
    raw = trainer.model.state_dict()
    assert all(torch.equal(saved[k], ema[k]) for k in saved)
    assert not all(torch.equal(saved[k], raw[k]) for k in saved if saved[k].is_floating_point())
    assert result.best_epoch == 2  # select = final keeps the last epoch


def test_backbone_and_heads_get_their_own_betas(tmp_path: Path) -> None:
    train, val = datasets()
    trainer = Trainer(config(tmp_path, betas=(0.9, 0.999), betas_gan=(0.5, 0.999)), train, val)
    groups = trainer.opt_g.param_groups
    assert [g["betas"] for g in groups] == [(0.9, 0.999), (0.5, 0.999)]
    backbone = {id(p) for p in trainer.model.backbone.parameters()}
    assert backbone <= {id(p) for p in groups[0]["params"]}
    assert trainer.opt_d is not None and trainer.opt_d.param_groups[0]["betas"] == (0.5, 0.999)


def test_fixed_seed_repeats_and_other_seed_differs(tmp_path: Path) -> None:
    train, val = datasets()
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        Trainer(config(tmp_path / name, epochs=1, seed=seed), train, val).fit()
    a, b, c = (state_of(tmp_path / n, 1) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_early_stopping_on_validation_auc(tmp_path: Path) -> None:
    train, _ = datasets()
    same = synthetic_pairs(2)
    # validation images that are all the same: AUC stays 0.5, never improves after epoch 1
    flat = ArrayPairDataset(
        same.target[:1].repeat(4, 1, 1, 1), same.target[:1].repeat(4, 1, 1, 1), [0, 1, 0, 1]
    )
    result = Trainer(config(tmp_path, epochs=6, patience=2), train, flat).fit()
    assert result.stopped_early
    assert result.epochs_run == 3
    assert result.best_epoch == 1 and result.best_auc == pytest.approx(0.5)
    log = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["best"] for r in log] == [True, False, False]
    # resuming a run that stopped early trains nothing more
    again = Trainer(config(tmp_path, epochs=6, patience=2), train, flat).fit(resume=True)
    assert again.epochs_run == 3 and again.stopped_early


def test_vanilla_trains_without_discriminators(tmp_path: Path) -> None:
    train, val = datasets()
    cfg = config(tmp_path, epochs=1, model=BRGANConfig.preset("vanilla", backbone="tiny"))
    trainer = Trainer(cfg, train, val)
    assert trainer.opt_d is None
    result = trainer.fit()
    assert set(result.history[0].train) == {"cls", "g_total", "lr"}


def test_refuses_to_overwrite_or_resume_another_run(tmp_path: Path) -> None:
    train, val = datasets()
    Trainer(config(tmp_path, epochs=1), train, val).fit()
    with pytest.raises(TrainingError, match="already holds a run"):
        Trainer(config(tmp_path, epochs=1), train, val).fit()
    other = config(tmp_path, epochs=2, model=BRGANConfig.preset("sbf", backbone="tiny"))
    with pytest.raises(TrainingError, match="'model' differs"):
        Trainer(other, train, val).fit(resume=True)
    with pytest.raises(TrainingError, match="nothing to resume"):
        Trainer(config(tmp_path / "new"), train, val).fit(resume=True)


def test_tampered_epoch_checkpoint_is_refused_on_resume(tmp_path: Path) -> None:
    from brgan_core.checkpoint import CheckpointError

    train, val = datasets()
    Trainer(config(tmp_path, epochs=1, schedule="constant"), train, val).fit()
    path = tmp_path / "checkpoints/epoch-001.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match"):
        Trainer(config(tmp_path, epochs=2, schedule="constant"), train, val).fit(resume=True)


def test_device_selection() -> None:
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="CUDA is not available"):
            select_device("cuda")


def test_empty_data_is_refused(tmp_path: Path) -> None:
    train, _ = datasets()
    empty = ArrayPairDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, 1, 8, 8), [])
    with pytest.raises(TrainingError, match="must not be empty"):
        Trainer(config(tmp_path), train, empty)


def test_train_step_under_bfloat16_autocast() -> None:
    """The AMP path (used on CUDA) mixes float32 and bfloat16 loss components; it must add up."""
    from brgan_core.training import train_step

    torch.manual_seed(0)
    model = build_model(BRGANConfig(backbone="tiny"))
    opt_g = torch.optim.Adam(model.generator_parameters())
    opt_d = torch.optim.Adam(model.discriminator_parameters())
    losses = train_step(
        model,
        synthetic_pairs(4),
        opt_g,
        opt_d,
        lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    )
    assert {"g_total", "d_total", "cyc_c", "re"} <= set(losses)
    assert all(v == v for v in losses.values())  # no NaN


def test_attention_statistics_are_logged_for_masked_models_only() -> None:
    """issue 11 §3: A's maximum (≤ H·W) and normalised entropy (0 … 1) per step, averaged per
    epoch by the trainer; a uniform map has entropy 1 and max 1, a one-hot one entropy 0."""
    from brgan_core.training.trainer import attention_stats, train_step

    uniform = torch.ones(2, 3, 4, 5)
    assert attention_stats(uniform) == pytest.approx({"attn_max": 1.0, "attn_entropy": 1.0})
    peaked = torch.zeros(1, 1, 4, 5)
    peaked[0, 0, 1, 2] = 20.0  # all weight on one of 20 positions
    stats = attention_stats(peaked)
    assert stats["attn_max"] == pytest.approx(20.0) and stats["attn_entropy"] < 1e-6

    batch = synthetic_pairs(4)
    for preset, logged in (("brgan", True), ("gan_double_re", False), ("vanilla", False)):
        torch.manual_seed(0)
        model = build_model(BRGANConfig.preset(preset, backbone="tiny"))
        opt = torch.optim.Adam(model.generator_parameters(), lr=1e-3)
        disc = model.discriminator_parameters()
        opt_d = torch.optim.Adam(disc, lr=1e-3) if disc else None
        losses = train_step(model, batch, opt, opt_d)
        assert ("attn_max" in losses) == logged, preset
        if logged:
            assert 1.0 <= losses["attn_max"] <= 8 * 8  # tiny backbone on 64x52: an 8x7 grid
            assert 0.0 < losses["attn_entropy"] <= 1.0 + 1e-6
