"""Synthetic screening studies: four views per patient, with labels, boxes and masks.

:func:`generate_patient` makes one patient's study in memory (deterministic in ``(seed, index)``,
so patients can be generated in any order or process). A malignant finding sits in one breast and
shows in both its CC and MLO views at the same distance from the nipple; benign look-alikes sit in
one breast or at mirrored positions in both. :mod:`brgan_core.synth.dataset` writes studies as
DICOM with a manifest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydicom.uid import generate_uid

from brgan_core.synth import anatomy, bilateral, findings
from brgan_core.synth.anatomy import BreastShape
from brgan_core.synth.bilateral import SharedView, SideCanvas, SideTransform
from brgan_core.synth.findings import FindingPatch
from brgan_core.synth.presets import BENIGN_KINDS, DENSITIES, MALIGNANT_KINDS, SynthPreset

Box = tuple[float, float, float, float]

#: The four standard screening views in the order they are generated and written.
VIEWS: tuple[tuple[str, str], ...] = (("L", "CC"), ("R", "CC"), ("L", "MLO"), ("R", "MLO"))


@dataclass(frozen=True)
class FindingSpec:
    """A finding as a 3-D object: which breasts, where (same nipple distance in CC and MLO)."""

    kind: str
    malignant: bool
    sides: tuple[str, ...]
    seed: int
    depth: float  # distance from the nipple, fraction of the nipple–chest-wall depth
    across: tuple[float, float]  # CC and MLO position across the breast, −1 … 1
    contrast: float  # peak contrast in tissue-SD units

    @property
    def bilateral(self) -> bool:
        return len(self.sides) == 2


@dataclass(frozen=True)
class SynthImage:
    """One stored image of a synthetic study (stored orientation: right breasts mirrored)."""

    laterality: str
    view: str
    pixels: NDArray[np.uint16]
    label: int
    birads: str
    findings: tuple[str, ...]
    boxes: tuple[Box, ...]
    mask: NDArray[np.bool_]
    sop_instance_uid: str
    series_instance_uid: str
    voi_window: tuple[float, float] | None = None

    # ``voi_window``: (low, high) stored values of the VOI LUT window, set on the anatomy with
    # every unilateral finding's pixels left out (see :func:`anatomy_window`); ``None`` = the
    # writer computes it from all breast pixels.

    @property
    def name(self) -> str:
        """``L_CC``, ``R_MLO``, …"""
        return f"{self.laterality}_{self.view}"


@dataclass(frozen=True)
class SynthStudy:
    """One synthetic patient with one 4-view screening study."""

    preset: SynthPreset
    seed: int
    index: int
    patient_id: str
    patient_name: str
    age: int
    birth_date: dt.date
    study_datetime: dt.datetime
    density: str
    study_uid: str
    accession_number: str
    malignant_side: str | None
    specs: tuple[FindingSpec, ...]
    images: tuple[SynthImage, ...]

    def image(self, laterality: str, view: str) -> SynthImage:
        for image in self.images:
            if image.laterality == laterality and image.view == view:
                return image
        raise KeyError(f"{self.patient_id} has no {laterality}-{view} image")


def patient_uid(seed: int, index: int, *parts: object) -> str:
    """A deterministic UID for a patient-level object (study, series, instance)."""
    source = "/".join(str(p) for p in ("brgan-synth", seed, index, *parts))
    return generate_uid(entropy_srcs=[source])


def _sample_specs(
    preset: SynthPreset, rng: np.random.Generator, density: str
) -> tuple[str | None, list[FindingSpec]]:
    masking = preset.density_masking[DENSITIES.index(density)]
    jitter = preset.lesion_contrast_jitter

    def spec(kind: str, malignant: bool, sides: tuple[str, ...]) -> FindingSpec:
        contrast = (
            preset.lesion_contrast
            * findings.RELATIVE_CONTRAST[kind]
            * masking
            * float(rng.uniform(1 - jitter, 1 + jitter))
        )
        return FindingSpec(
            kind=kind,
            malignant=malignant,
            sides=sides,
            seed=int(rng.integers(2**31)),
            depth=float(rng.uniform(0.2, 0.85)),
            across=(float(rng.uniform(-0.75, 0.75)), float(rng.uniform(-0.75, 0.75))),
            contrast=contrast,
        )

    specs: list[FindingSpec] = []
    malignant_side: str | None = None
    if rng.uniform() < preset.malignant_fraction:
        malignant_side = str(rng.choice(["L", "R"]))
        weights = np.asarray(preset.kind_weights, dtype=float)
        kind = str(rng.choice(MALIGNANT_KINDS, p=weights / weights.sum()))
        specs.append(spec(kind, True, (malignant_side,)))
    if rng.uniform() < preset.benign_rate:
        for _ in range(int(rng.integers(1, 3))):
            kind = str(rng.choice(["round_mass", "benign_calcifications"], p=[0.6, 0.4]))
            if rng.uniform() < preset.benign_bilateral:
                sides: tuple[str, ...] = ("L", "R")
            else:
                sides = (str(rng.choice(["L", "R"])),)
            specs.append(spec(kind, False, sides))
    if rng.uniform() < 0.7:  # normal vessels, in both breasts
        for _ in range(int(rng.integers(1, 3))):
            specs.append(spec("vessel", False, ("L", "R")))
    if rng.uniform() < 0.3:
        specs.append(spec("vessel", False, (str(rng.choice(["L", "R"])),)))
    return malignant_side, specs


def _shape_point(shape: BreastShape, depth: float, across: float) -> tuple[float, float]:
    """Canonical (row, col) at ``depth`` (0 nipple … 1 chest wall) and ``across`` (−1 … 1)."""
    u = shape.depth * (1.0 - depth)
    half = shape.half_up if across < 0 else shape.half_down
    p = shape.exponent
    width = half * max(0.0, 1.0 - (u / shape.depth) ** p) ** (1.0 / p)
    v = across * width
    c, s = np.cos(shape.tilt), np.sin(shape.tilt)
    return (shape.center_row + u * s + v * c, u * c - v * s)


def _region_at(region: NDArray[np.float32], point: tuple[float, float]) -> float:
    r, c = round(point[0]), round(point[1])
    if 0 <= r < region.shape[0] and 0 <= c < region.shape[1]:
        return float(region[r, c])
    return 0.0


def _place(
    spec: FindingSpec,
    view_index: int,
    shape: BreastShape,
    region: NDArray[np.float32],
    transform: SideTransform | None,
) -> tuple[float, float]:
    """Where ``spec`` goes in this view: its planned spot, else the nearest valid retry."""
    rng = np.random.default_rng([spec.seed, view_index])
    depth, across = spec.depth, spec.across[view_index]
    point = (0.0, 0.0)
    for attempt in range(40):
        if attempt:
            across = float(rng.uniform(-0.7, 0.7))
            if attempt > 10:
                depth = float(rng.uniform(0.15, 0.6))
        point = _shape_point(shape, depth, across)
        if transform is not None:
            point = transform.to_output(shape, point)
        if _region_at(region, point) > 0.95:
            return point
    return (
        _shape_point(shape, 0.3, 0.0)
        if transform is None
        else transform.to_output(shape, _shape_point(shape, 0.3, 0.0))
    )


def _patch(spec: FindingSpec, view_index: int, preset: SynthPreset) -> FindingPatch:
    """The same lesion in both views, seen from another angle in the MLO."""
    patch = findings.draw(spec.kind, preset, np.random.default_rng(spec.seed))
    if view_index == 1:
        return FindingPatch(
            patch.kind,
            patch.malignant,
            np.ascontiguousarray(np.rot90(patch.patch)),
            np.ascontiguousarray(np.rot90(patch.mask)),
        )
    return patch


def _shared_view(
    preset: SynthPreset,
    view: str,
    view_index: int,
    specs: list[FindingSpec],
    rng: np.random.Generator,
) -> SharedView:
    shape, texture, fine = bilateral.sample_shared_view(preset, view, rng)
    layer = np.zeros_like(texture)
    shared = [s for s in specs if s.bilateral]
    if shared:
        rows, cols = preset.image_size
        y, x = np.meshgrid(
            np.arange(rows, dtype=np.float32), np.arange(cols, dtype=np.float32), indexing="ij"
        )
        rho = anatomy.normalized_radius(shape, y, x)
        pectoral = anatomy.pectoral_fraction(shape, y, x)
        region = (np.clip((0.97 - rho) / 0.05, 0.0, 1.0) * (1.0 - pectoral)).astype(np.float32)
        for spec in shared:
            point = _place(spec, view_index, shape, region, None)
            findings.paste(layer, _patch(spec, view_index, preset), point, spec.contrast, region)
    return SharedView(shape, texture, fine, layer)


def _birads(kinds: list[str], malignant_kinds: list[str]) -> str:
    if malignant_kinds:
        return findings.worst_birads(malignant_kinds)
    if any(k in ("round_mass", "benign_calcifications") for k in kinds):
        return "2"
    return "1"


def _side_image(
    preset: SynthPreset,
    shared: SharedView,
    view_index: int,
    laterality: str,
    density: str,
    specs: list[FindingSpec],
    rng: np.random.Generator,
) -> tuple[
    NDArray[np.uint16], NDArray[np.bool_], list[Box], list[str], list[str], tuple[float, float]
]:
    transform = bilateral.sample_transform(preset, rng)
    canvas: SideCanvas = bilateral.render_tissue(shared, transform, density, preset, rng)
    region = canvas.region
    mask = np.zeros(canvas.tissue.shape, dtype=bool)
    finding_pixels = np.zeros(canvas.tissue.shape, dtype=bool)  # every unilateral finding
    boxes: list[Box] = []
    kinds: list[str] = []
    malignant_kinds: list[str] = []
    for spec in specs:
        if laterality not in spec.sides:
            continue
        kinds.append(spec.kind)
        if spec.bilateral:
            continue  # already in the shared layer
        point = _place(spec, view_index, shared.shape, region, transform)
        amplitude = spec.contrast * canvas.tissue_sd
        footprint = np.zeros_like(mask)
        box = findings.paste(
            canvas.tissue, _patch(spec, view_index, preset), point, amplitude, region, footprint
        )
        finding_pixels |= footprint
        if spec.malignant:
            mask |= footprint
        if spec.malignant and box is not None:
            boxes.append(tuple(float(v) for v in box))  # type: ignore[arg-type]
            malignant_kinds.append(spec.kind)
    image = bilateral.finalize(canvas, shared.shape, transform, preset, rng)
    full_scale = float(2**preset.bits_stored - 1)
    pixels = np.rint(image * full_scale).astype(np.uint16)
    window = anatomy_window(pixels, finding_pixels, full_scale)
    if laterality == "R":  # stored orientation: right breasts have the chest wall on the right
        cols = pixels.shape[1]
        pixels = np.ascontiguousarray(pixels[:, ::-1])
        mask = np.ascontiguousarray(mask[:, ::-1])
        boxes = [(cols - x1, y0, cols - x0, y1) for x0, y0, x1, y1 in boxes]
    return pixels, mask, boxes, kinds, malignant_kinds, window


def anatomy_window(
    pixels: NDArray[np.uint16], findings_mask: NDArray[np.bool_], max_value: float
) -> tuple[float, float]:
    """The VOI window (low, high) as the 1st and 99.5th percentiles of the breast's *anatomy*.

    Breast pixels (above 12 % of full scale) that belong to no unilateral finding. A window
    over all breast pixels would let a bright lesion raise the 99.5th percentile and darken the
    whole image, a global cue that gives the label away (on ``bench-cpu`` the mean breast
    intensity alone scored AUC 0.68). A scanner's auto-window is set on the whole breast, where a
    small lesion hardly moves it; leaving the findings out models that. Finding pixels above
    ``high`` are clipped to white by the VOI LUT, as a bright lesion is on a real display.
    """
    breast = pixels > 0.12 * max_value
    anatomy = pixels[breast & ~findings_mask]
    if anatomy.size < 100:
        anatomy = pixels[breast]
    if anatomy.size == 0:
        return 0.0, max_value
    low, high = np.percentile(anatomy, [1, 99.5])
    return float(low), float(high)


def generate_patient(
    preset: SynthPreset,
    seed: int,
    index: int,
    views: tuple[tuple[str, str], ...] = VIEWS,
) -> SynthStudy:
    """One synthetic patient's 4-view screening study; the same arguments give the same bytes.

    ``views`` limits the images drawn (e.g. ``(("L", "CC"),)`` for a quick full-field check);
    every image is the same as in the full study, because each view and side has its own random
    stream.
    """
    if index < 0:
        raise ValueError(f"patient index must be >= 0, not {index}")
    unknown = set(views) - set(VIEWS)
    if unknown or not views:
        raise ValueError(f"views must be a non-empty subset of {VIEWS}, not {views}")
    root = np.random.SeedSequence([seed, index, 0x5EED])
    meta_seq, findings_seq, *view_seqs = root.spawn(2 + 2 * 3)
    meta = np.random.default_rng(meta_seq)
    age = int(meta.integers(40, 76))
    study_day = dt.date(2021, 1, 1) + dt.timedelta(days=int(meta.integers(0, 5 * 365)))
    study_dt = dt.datetime.combine(study_day, dt.time(8, 0)) + dt.timedelta(
        seconds=int(meta.integers(0, 9 * 3600))
    )
    birth = study_day - dt.timedelta(days=int(age * 365.25 + meta.integers(1, 360)))
    density = str(meta.choice(DENSITIES, p=np.asarray(preset.density_mix, dtype=float)))
    malignant_side, specs = _sample_specs(preset, np.random.default_rng(findings_seq), density)

    study_uid = patient_uid(seed, index, "study")
    images: dict[tuple[str, str], SynthImage] = {}
    for view_index, view in enumerate(("CC", "MLO")):
        if not any(v == view for _, v in views):
            continue
        shared_rng, left_rng, right_rng = (
            np.random.default_rng(s) for s in view_seqs[3 * view_index : 3 * view_index + 3]
        )
        shared = _shared_view(preset, view, view_index, specs, shared_rng)
        series_uid = patient_uid(seed, index, "series", view)
        for laterality, side_rng in (("L", left_rng), ("R", right_rng)):
            if (laterality, view) not in views:
                continue
            pixels, mask, boxes, kinds, malignant_kinds, window = _side_image(
                preset, shared, view_index, laterality, density, specs, side_rng
            )
            images[(laterality, view)] = SynthImage(
                laterality=laterality,
                view=view,
                pixels=pixels,
                label=int(bool(boxes)),
                birads=_birads(kinds, malignant_kinds),
                findings=tuple(kinds),
                boxes=tuple(boxes),
                mask=mask,
                sop_instance_uid=patient_uid(seed, index, "image", laterality, view),
                series_instance_uid=series_uid,
                voi_window=window,
            )
    number = index + 1
    return SynthStudy(
        preset=preset,
        seed=seed,
        index=index,
        patient_id=f"SYN{seed}-{number:05d}",
        patient_name=f"SYNTH^{number:04d}",
        age=age,
        birth_date=birth,
        study_datetime=study_dt,
        density=density,
        study_uid=study_uid,
        accession_number=f"SA{seed % 10000:04d}{number:06d}",
        malignant_side=malignant_side,
        specs=tuple(specs),
        images=tuple(images[v] for v in VIEWS if v in images),
    )


__all__ = [
    "BENIGN_KINDS",
    "MALIGNANT_KINDS",
    "VIEWS",
    "FindingSpec",
    "SynthImage",
    "SynthStudy",
    "generate_patient",
    "patient_uid",
]
