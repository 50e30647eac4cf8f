"""``brgan train``: train BR-GAN from a TOML file (every hyper-parameter is a key in it).

torch and the training code are imported inside the command, so ``brgan --help`` stays fast.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

KEYS_HELP = "\n\n".join(
    [
        '[bold]Top-level keys[/bold] (defaults): out_dir ("runs/brgan"), epochs (30), '
        "batch_size (8), lr (2e-4, peak Adam lr for backbone/generators/heads), lr_d (2e-4, "
        "peak Adam lr for the discriminators), betas ([0.9, 0.999], backbone and heads), "
        "betas_gan ([0.5, 0.999], generators and discriminators), weight_decay (0), schedule "
        "(cosine: linear warm-up over warmup_epochs (1), then cosine decay per step to lr × "
        "min_lr_ratio (0); or constant), ema_decay (0 = off; else an exponential moving "
        "average of the weights is validated and saved, its BatchNorm statistics re-estimated "
        "on bn_batches (25; 0 = all) training batches first), select (best: the "
        "epoch of best validation AUC; final: the last epoch, no early stopping), patience (5 "
        "epochs without a better validation AUC; 0 = never stop early), seed (0), device "
        "(auto | cpu | cuda | cuda:N), amp (false; bfloat16 autocast on CUDA), compile (false; "
        "torch.compile of the backbone on CUDA), num_workers (0), max_steps_per_epoch (0 = "
        "all), research_only (true).",
        "[bold]\\[data][/bold]: kind (manifest | inbreast | cbis-ddsm | vindr), root (dataset "
        "folder or manifest CSV), size ([512, 416], model input rows, columns), split_seed (0), "
        "ratios ([0.8, 0.1, 0.1], patient-wise train/val/test), cache_images (true), val_root "
        "(empty; a separately generated validation set: then every pair under root trains).",
        "[bold]\\[model][/bold]: preset (vanilla | sbf | gan | gan_single_mask | "
        "gan_double_mask | gan_double_re | brgan | cyclegan_healthy: the paper's Table 3 rows "
        "and baselines; brgan_paired: BR-GAN whose G_T2C also sees the contralateral, our "
        "extension), then any BRGANConfig key to override it: backbone (alexnet | resnet18 "
        "| resnet50 | tiny | cnn4), pooling (avg | max), in_channels, pretrained_weights (a "
        "local file; nothing is downloaded), bottleneck, disc_width, bilateral, consistency, "
        "residual_preserved, residual_embedding, mask, paired_generator, reference, gan_loss "
        "(log | lsgan), weight_cls, weight_re, "
        "weight_aux_pm, weight_gan_t2c, weight_gan_c2t, weight_cyc_t, weight_cyc_c (Eq. 4 "
        "weights, default 1). See docs/model.md.",
        "Writes to out_dir: checkpoints/epoch-NNN.safetensors every epoch, best.safetensors, "
        "log.jsonl (one line per epoch), train_config.json and train_state.pt (for --resume).",
    ]
)


def _format_losses(losses: dict[str, float]) -> str:
    order = ("cls", "re", "aux_pm", "gan_t2c", "gan_c2t", "cyc_t", "cyc_c", "d_c", "d_t")
    return "  ".join(f"{k} {losses[k]:.3f}" for k in order if k in losses)


def train(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="Training TOML file (keys below)."),
    ],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in out_dir from its last epoch.")
    ] = False,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="Override out_dir of the file.")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Override epochs of the file.")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="Override device (auto, cpu, cuda, cuda:N).")
    ] = None,
) -> None:
    """Train BR-GAN from a TOML file: alternating G/D steps over Eq. 4, early stopping.

    A checkpoint every epoch; the progress bar shows the latest step's loss components.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from brgan_core.training import EpochRecord, StepInfo, TrainConfig, TrainingError
    from brgan_core.training.run import train_from_config

    try:
        cfg = TrainConfig.from_toml(config)
        overrides = {
            key: value
            for key, value in (("out_dir", out_dir), ("epochs", epochs), ("device", device))
            if value is not None
        }
        cfg = replace(cfg, **overrides) if overrides else cfg
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc

    console = Console(stderr=True, soft_wrap=True)
    console.print(
        f"training {cfg.model.backbone} bilateral={cfg.model.bilateral} "
        f"consistency={cfg.model.consistency} L_RE={cfg.model.residual_embedding} "
        f"mask={cfg.model.mask} → {cfg.out_dir}",
        markup=False,
    )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[losses]}"),
        console=console,
        transient=True,
    )
    tasks: dict[int, int] = {}

    def on_step(info: StepInfo) -> None:
        if info.epoch not in tasks:
            tasks[info.epoch] = progress.add_task(
                f"epoch {info.epoch}/{info.epochs}", total=info.steps, losses=""
            )
        progress.update(tasks[info.epoch], completed=info.step, losses=_format_losses(info.losses))

    def on_epoch(record: EpochRecord) -> None:
        auc = record.val.get("auc")
        auc_text = "n/a" if auc is None else f"{auc:.4f}"
        mark = " (best)" if record.best else ""
        console.print(
            f"epoch {record.epoch}: val AUC {auc_text}{mark}  val loss "
            f"{record.val['loss']:.4f}  {_format_losses(record.train)}  "
            f"[{record.seconds:.1f} s] {record.checkpoint}",
            markup=False,
        )

    with progress:
        result = train_from_config(cfg, resume=resume, on_step=on_step, on_epoch=on_epoch)
    best = "n/a" if result.best_auc is None else f"{result.best_auc:.4f}"
    stop = " (stopped early)" if result.stopped_early else ""
    console.print(
        f"done after {result.epochs_run} epochs{stop}; best epoch {result.best_epoch}, "
        f"val AUC {best}: {result.best_checkpoint}",
        markup=False,
    )


train.__doc__ = f"{inspect.cleandoc(train.__doc__ or '')}\n\n{KEYS_HELP}\n"
