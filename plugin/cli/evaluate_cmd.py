"""``brgan evaluate``: test metrics, calibration and the operating threshold of a checkpoint.

The library does the work (:mod:`brgan_core.evaluation.data` picks the pairs,
:mod:`brgan_core.evaluation.runner` predicts and measures, :mod:`brgan_core.evaluation.outputs`
writes the files); this module parses options and draws the progress bar. torch and the
evaluation code are imported inside the command, so ``brgan --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from brgan_core.promotion import EvaluationRecord

HELP = "\n\n".join(
    [
        "Evaluate a trained checkpoint the way the paper does, and calibrate it for the service.",
        "[bold]Which images are used for what.[/bold] --data (read as --kind) is split "
        "patient-wise exactly as in training: the split seed and ratios come from the run's "
        "train_config.json beside the checkpoint (override: --split-seed, --ratios). The "
        "[bold]validation[/bold] split fits the calibration: the temperature T and the operating "
        "threshold at --sensitivity (default 0.90). Every reported metric is measured on the "
        "[bold]test[/bold] split, which neither training nor calibration saw. For a separately "
        "generated test set use --split all with --val-data TRAINING_DATA (its validation split "
        "calibrates). Without validation data the checkpoint's stored temperature and threshold "
        "are used. The checkpoint's training-data fingerprint is compared with the training "
        "split made here; a mismatch is flagged in the report.",
        "[bold]AUC[/bold]: image-wise area under the ROC curve, 95% stratified bootstrap CI "
        "(paper Table 1). [bold]DeLong p[/bold] (--compare): do two checkpoints' AUCs on the "
        "same test images differ?",
        "[bold]Top-1 localization error[/bold] (Table 2, ILSVRC style): the share of malignant "
        "test images with a ground-truth box that the threshold calls benign, or whose CAM box "
        "(region >= 50% of the CAM peak) has IoU < 0.1 with every ground-truth box.",
        "[bold]ECE[/bold]: expected calibration error over 10 bins of p(malignant), before "
        "(T = 1) and after temperature scaling; the SR reports p(malignant) as a probability "
        "(code 111047), so it must be calibrated. [bold]Sensitivity / specificity[/bold]: the "
        "validation threshold applied to the test images.",
        "[bold]Mean FID[/bold] (Sect. 3.2): distances between feature maps: target vs "
        "contralateral, generated healthy f_H vs contralateral, target vs generated (also with "
        "the lesion cells removed). --no-fid skips them.",
        "[bold]Writes to --out[/bold]: report.md, metrics.json, predictions.csv (one row per "
        "model and test image), roc.png, reliability.png (reliability-2.png for --compare). "
        "--calibrated-out FILE also writes the checkpoint with T in its weights and metadata and "
        "the threshold and validation metrics in its metadata: register that file with `brgan "
        "models register FILE`. See docs/evaluation.md.",
    ]
)


def _ratios(text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise typer.BadParameter(f"expected three numbers like 0.8,0.1,0.1, not {text!r}")
    return values  # type: ignore[return-value]


def evaluate(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path, typer.Argument(help="Checkpoint to evaluate (e.g. runs/brgan/best.safetensors).")
    ],
    data: Annotated[
        Path, typer.Option("--data", help="Dataset folder or manifest CSV to evaluate on.")
    ],
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            help="A second checkpoint: same images, DeLong test. 'active': the registry's "
            "active model, and the comparison is stored as the evidence `brgan models "
            "activate` reads.",
        ),
    ] = None,
    kind: Annotated[
        str, typer.Option("--kind", help="manifest | inbreast | cbis-ddsm | vindr.")
    ] = "manifest",
    split: Annotated[
        str,
        typer.Option(
            "--split", help="test (default), val, or all (a separately generated test set)."
        ),
    ] = "test",
    val_data: Annotated[
        Path | None,
        typer.Option("--val-data", help="Calibrate on the validation split of this dataset."),
    ] = None,
    val_split: Annotated[
        str,
        typer.Option(
            "--val-split",
            help="val: the validation split of --val-data; all: every pair of it (a "
            "separately generated validation set, training's data.val_root).",
        ),
    ] = "val",
    split_seed: Annotated[
        int | None,
        typer.Option("--split-seed", min=0, help="Patient-wise split seed \\[default: the run's]."),
    ] = None,
    ratios: Annotated[
        str | None,
        typer.Option(
            "--ratios", help="train,val,test shares \\[default: the run's, or 0.8,0.1,0.1]."
        ),
    ] = None,
    sensitivity: Annotated[
        float,
        typer.Option("--sensitivity", min=0.01, max=1.0, help="Target sensitivity on validation."),
    ] = 0.90,
    out: Annotated[Path, typer.Option("--out", help="Folder for the report and plots.")] = Path(
        "evaluation"
    ),
    calibrated_out: Annotated[
        Path | None,
        typer.Option("--calibrated-out", help="Also write the calibrated checkpoint here."),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    fid: Annotated[
        bool, typer.Option("--fid/--no-fid", help="Compute the feature FIDs (slower).")
    ] = True,
    n_boot: Annotated[
        int, typer.Option("--n-boot", min=100, help="Bootstrap resamples for the AUC CI.")
    ] = 2000,
) -> None:
    from dataclasses import replace

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from brgan_core.checkpoint import read_info
    from brgan_core.evaluation.data import SplitSettings, run_split_settings, select_pairs
    from brgan_core.evaluation.outputs import write_outputs
    from brgan_core.evaluation.runner import (
        EvaluationError,
        evaluate_checkpoint,
        write_calibrated_checkpoint,
    )
    from brgan_core.training import select_device

    info = read_info(checkpoint)
    registry = None
    if compare is not None and str(compare) == "active" and not compare.exists():
        from brgan_core.registry import Registry
        from plugin.cli.context import state

        registry = Registry(state(ctx).settings().registry_path)
        _, compare = registry.resolve()  # the active version's file, its hash verified
    if compare is not None:
        read_info(compare)
    settings = run_split_settings(checkpoint) or SplitSettings()
    if split_seed is not None or ratios is not None:
        settings = SplitSettings(
            settings.seed if split_seed is None else split_seed,
            _ratios(ratios) or settings.ratios,
            "command line",
        )
    chosen = select_pairs(
        data,
        kind=kind,
        split=split,
        val_data=val_data,
        val_split=val_split,
        settings=settings,
        fingerprint=info.data_fingerprint,
    )
    if calibrated_out is not None and chosen.val is None:
        raise EvaluationError(
            "--calibrated-out needs validation data: use --split test, or give --val-data"
        )
    dev = str(select_device(device))
    console = Console(stderr=True, soft_wrap=True)
    for note in chosen.notes:
        console.print(note, markup=False)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[str, int] = {}

    def on_batch(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done)

    with progress:
        result = evaluate_checkpoint(
            checkpoint,
            chosen.test,
            chosen.val,
            compare=compare,
            sensitivity=sensitivity,
            batch_size=batch_size,
            device=dev,
            features=fid,
            n_boot=n_boot,
            progress=on_batch,
        )
    result = replace(result, notes=chosen.notes)
    files = write_outputs(result, out, title=f"Evaluation of {result.models[0].name}")
    for m in result.models:
        op = m.test_operating_point
        at = (
            ""
            if op is None
            else (
                f"; threshold {op.threshold:.4f} → test sensitivity {op.sensitivity:.3f}, "
                f"specificity {op.specificity:.3f}"
            )
        )
        console.print(
            f"{m.name}: test AUC {m.auc}; ECE {m.ece_before:.3f} → {m.ece_after:.3f} "
            f"(T = {m.temperature:.3f}){at}",
            markup=False,
        )
        if m.auc_without_contralateral is not None:
            console.print(
                f"{m.name}: test AUC without contralateral {m.auc_without_contralateral} "
                "(every target scored with its contralateral left out)",
                markup=False,
            )
    if result.delong is not None:
        console.print(f"DeLong p = {result.delong.p:.4g}", markup=False)
    console.print(f"report: {files['report']}", markup=False)
    calibrated_sha: str | None = None
    if calibrated_out is not None:
        first = result.models[0]
        assert first.calibration is not None and first.val_auc is not None
        written = write_calibrated_checkpoint(
            checkpoint, calibrated_out, first.calibration, val_auc=first.val_auc, val_n=first.val_n
        )
        console.print(
            f"calibrated checkpoint: {written.path} (sha256 {written.sha256[:12]}); "
            f"register it with `brgan models register {written.path}`",
            markup=False,
        )
        calibrated_sha = written.sha256
    if registry is not None:
        from brgan_core.promotion import save_record

        record = _evidence(result, chosen.test, data, n_boot, calibrated_sha)
        paths = save_record(registry.root, record)
        console.print(
            f"evidence for `brgan models activate`: {record.summary()} ({paths[0]})",
            markup=False,
        )


def _evidence(
    result: Any, test_pairs: Any, data: Path, n_boot: int, calibrated_sha: str | None
) -> EvaluationRecord:
    """The candidate (first model) against the active one (second) on the same test images."""
    from brgan_core.promotion import EvaluationRecord, paired_patient_bootstrap

    candidate, reference = result.models
    patients = [p.patient_id for p in test_pairs]
    delta, low, high = paired_patient_bootstrap(
        candidate.test.labels,
        reference.test.malignancy_logit,
        candidate.test.malignancy_logit,
        patients,
        n_boot=n_boot,
    )
    return EvaluationRecord(
        candidate_sha256=(candidate.sha256, *([calibrated_sha] if calibrated_sha else [])),
        reference_sha256=reference.sha256,
        candidate_auc=candidate.auc.auc,
        reference_auc=reference.auc.auc,
        delta_auc=delta,
        delta_ci=(low, high),
        delong_p=None if result.delong is None else float(result.delong.p),
        n_images=len(patients),
        n_patients=len(set(patients)),
        candidate_ece=candidate.ece_after,
        reference_ece=reference.ece_after,
        data=str(data),
        n_boot=n_boot,
    )


evaluate.__doc__ = HELP
