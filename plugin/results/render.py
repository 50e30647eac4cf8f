"""Drawing and Secondary Capture helpers shared by the heatmap and summary SC writers.

Everything here is deterministic: the font is Pillow's embedded default (Aileron, through
FreeType, the same on every machine with the same Pillow), the colormap is matplotlib's
``plasma`` table (perceptually uniform, high chroma from its dark end to its yellow end, so the
overlay never reads as grayscale), and resizing is Pillow's BOX filter on float images.

Every text colour has one channel at 255 (white, yellow, orange-red) on a black background, so
the "ink" of a glyph (the maximum channel) does not depend on its colour; :func:`find_text`
uses that to check that a string is really drawn in an image (a template match, not OCR).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes

from brgan_core.preprocess.decode import to_display
from plugin.queue.contract import Provenance
from plugin.results.common import (
    add_contributing_equipment,
    copy_patient_study,
    set_content_time,
    set_equipment,
)
from plugin.results.inputs import SERIES_NUMBERS, StudyResults

RGB = tuple[int, int, int]

BACKGROUND: RGB = (0, 0, 0)
WHITE: RGB = (255, 255, 255)
#: The labels (research only, demo model): a warning colour.
LABEL_COLOUR: RGB = (255, 214, 0)
#: "POSITIVE at threshold".
POSITIVE_COLOUR: RGB = (255, 96, 64)
#: The CAM region outline; (0, 255, 255) never results from blending gray with ``plasma``.
OUTLINE_COLOUR: RGB = (0, 255, 255)

COLORMAP = "plasma"
#: CAM values below this are fully transparent; above it alpha rises linearly to ALPHA_MAX.
CAM_FLOOR = 0.2
ALPHA_MAX = 0.5

#: Text is drawn at integer positions; both SC writers use these helpers for every string.
TEXT_ANCHOR = "la"


# -- text ----------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's embedded default font at ``size`` pixels (≥ 10)."""
    return ImageFont.load_default(size=max(10, int(size)))


def line_height(size: int) -> int:
    """Distance between the tops of two lines of text at ``size``."""
    return round(max(10, int(size)) * 1.3)


def text_width(text: str, size: int) -> float:
    return float(font(size).getlength(text))


def wrap(text: str, size: int, width: float) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` (a word longer than the
    width is broken by characters)."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if text_width(candidate, size) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while text_width(current, size) > width and len(current) > 1:
            cut = len(current)
            while cut > 1 and text_width(current[:cut], size) > width:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current or not lines:
        lines.append(current)
    return lines


def draw_text(
    draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int, fill: RGB
) -> None:
    draw.text((int(xy[0]), int(xy[1])), text, font=font(size), fill=fill, anchor=TEXT_ANCHOR)


def render_text(text: str, size: int) -> np.ndarray:
    """``text`` drawn in white on black alone, as float32 ink (H, W) in [0, 255], cropped to
    its bounding box (what :func:`find_text` looks for)."""
    f = font(size)
    x0, y0, x1, y1 = f.getbbox(text, anchor=TEXT_ANCHOR)
    pad = 2
    canvas = Image.new("L", (int(x1 - x0) + 2 * pad, int(y1 - y0) + 2 * pad), 0)
    ImageDraw.Draw(canvas).text(
        (pad - int(x0), pad - int(y0)), text, font=f, fill=255, anchor=TEXT_ANCHOR
    )
    ink = np.asarray(canvas, dtype=np.float32)
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    cols = np.flatnonzero(ink.max(axis=0) > 0)
    if rows.size == 0:
        return ink[:0, :0]
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def find_text(rgb: np.ndarray, text: str, size: int, *, tolerance: float = 0.02) -> bool:
    """Whether ``text`` at ``size`` is drawn (pixel for pixel, any text colour with a channel
    at 255) somewhere on a black area of ``rgb``: the sum of squared differences of the
    maximum-channel ink against the rendered template, via FFT correlation."""
    from scipy.signal import fftconvolve

    template = render_text(text, size)
    if template.size == 0:
        return True
    image = np.asarray(rgb, dtype=np.float32)
    ink = image.max(axis=2) if image.ndim == 3 else image
    th, tw = template.shape
    if ink.shape[0] < th or ink.shape[1] < tw:
        return False
    ones = np.ones_like(template)
    sum_i2 = fftconvolve(ink**2, ones[::-1, ::-1], mode="valid")
    cross = fftconvolve(ink, template[::-1, ::-1], mode="valid")
    energy = float((template**2).sum())
    ssd = sum_i2 - 2.0 * cross + energy
    return float(ssd.min()) <= tolerance * energy


# -- images --------------------------------------------------------------------------------------


def display_gray(source: Dataset) -> np.ndarray:
    """The source mammogram's stored pixels as display grayscale in [0, 1] (float32): the
    Modality and VOI LUT of the file, MONOCHROME1 inverted (``brgan_core.preprocess.decode``)."""
    return to_display(source)


def resize(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float image resized to ``size`` = (width, height): BOX when shrinking (area
    average, no aliasing), BICUBIC when growing; float32."""
    arr = np.ascontiguousarray(values, dtype=np.float32)
    if (arr.shape[1], arr.shape[0]) == tuple(size):
        return arr.copy()
    shrinking = size[0] <= arr.shape[1] and size[1] <= arr.shape[0]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC
    return np.asarray(Image.fromarray(arr).resize(size, method), dtype=np.float32)


def to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(values, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def colormap_lut() -> np.ndarray:
    """256 × 3 uint8 table of the ``plasma`` colormap."""
    import matplotlib

    cmap = matplotlib.colormaps[COLORMAP]
    return to_uint8(cmap(np.linspace(0.0, 1.0, 256))[:, :3])


def cam_alpha(cam: np.ndarray) -> np.ndarray:
    """Opacity of the overlay: 0 below :data:`CAM_FLOOR`, then proportional to the CAM above
    it, up to :data:`ALPHA_MAX` at 1."""
    c = np.clip(np.asarray(cam, dtype=np.float32), 0.0, 1.0)
    return np.clip((c - CAM_FLOOR) / (1.0 - CAM_FLOOR), 0.0, 1.0) * ALPHA_MAX


def overlay(gray: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3): ``gray`` ([0, 1]) with ``cam`` ([0, 1], same shape) blended in
    with :func:`colormap_lut` and :func:`cam_alpha`; exactly gray where the alpha is 0."""
    gray8 = to_uint8(gray)
    c = np.clip(np.asarray(cam, dtype=np.float32), 0.0, 1.0)
    colours = colormap_lut()[np.rint(c * 255.0).astype(np.intp)].astype(np.float32)
    alpha = cam_alpha(c)[..., None]
    out = gray8[..., None].astype(np.float32) * (1.0 - alpha) + colours * alpha
    rgb = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    clear = alpha[..., 0] == 0
    rgb[clear] = gray8[clear][:, None]
    return rgb


def scale_points(
    points: Iterable[tuple[float, float]], sx: float, sy: float, offset: tuple[int, int] = (0, 0)
) -> list[tuple[float, float]]:
    """Stored-pixel coordinates (PS3.3 C.18.6.1.2: pixel (0, 0) spans 0…1) to Pillow's
    (pixel centres at integers) on an image scaled by (sx, sy) and placed at ``offset``."""
    ox, oy = offset
    return [(x * sx - 0.5 + ox, y * sy - 0.5 + oy) for x, y in points]


def draw_outline(
    draw: ImageDraw.ImageDraw,
    points: Sequence[tuple[float, float]],
    width: int,
    *,
    dashed: bool = False,
    fill: RGB = OUTLINE_COLOUR,
) -> None:
    """A closed polyline; dashed (dash = gap = 4 × width) when ``dashed``."""
    pts = list(points)
    if len(pts) < 2:
        return
    if pts[0] != pts[-1]:
        pts.append(pts[0])
    if not dashed:
        draw.line(pts, fill=fill, width=width, joint="curve")
        return
    dash = 4.0 * max(1, width)
    pos = 0.0  # distance along the outline, continued across vertices
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        length = float(np.hypot(x1 - x0, y1 - y0))
        t = 0.0
        while t < length:
            phase = pos % (2 * dash)
            step = min(length - t, (dash - phase) if phase < dash else (2 * dash - phase))
            if phase < dash:
                a, b = t / length, (t + step) / length
                draw.line(
                    [
                        (x0 + a * (x1 - x0), y0 + a * (y1 - y0)),
                        (x0 + b * (x1 - x0), y0 + b * (y1 - y0)),
                    ],
                    fill=fill,
                    width=width,
                )
            t += step
            pos += step


def colorbar(width: int, height: int) -> np.ndarray:
    """The overlay's colours from the floor to 1 as they look on mid-gray, (height, width, 3)."""
    ramp = np.linspace(CAM_FLOOR, 1.0, max(2, width), dtype=np.float32)
    cam = np.broadcast_to(ramp, (max(1, height), ramp.size))
    return overlay(np.full(cam.shape, 0.5, np.float32), cam)


# -- wording -------------------------------------------------------------------------------------


def percent(p: float | None) -> str:
    return "n/a" if p is None else f"{100.0 * p:.1f} %"


def verdict(p: float | None, provenance: Provenance) -> str:
    """ "POSITIVE at threshold 50.0 %" / "negative at threshold 50.0 %" / "no threshold set"."""
    if provenance.threshold is None:
        return "no operating threshold set (score only)"
    if p is None:
        return f"threshold {percent(provenance.threshold)}"
    word = "POSITIVE" if p >= provenance.threshold else "negative"
    return f"{word} at threshold {percent(provenance.threshold)}"


def short_labels(provenance: Provenance) -> list[str]:
    """The labels cut at their first " - " (the DEMO label's explanation), for 64-character
    fields such as Series Description."""
    return [label.split(" - ")[0] for label in provenance.labels]


def series_description(base: str, provenance: Provenance) -> str:
    """Series Description (LO, ≤ 64 characters): ``base`` and the labels, shortened if needed."""
    for labels in (list(provenance.labels), short_labels(provenance)):
        text = " ".join([base, *(f"[{label}]" for label in labels)])
        if len(text) <= 64:
            return text
    return text[:64].rstrip()


def image_name(laterality: str | None, view: str | None) -> str:
    return f"{laterality or '?'} {view or '?'}"


# -- the Secondary Capture object ----------------------------------------------------------------


def secondary_capture(
    results: StudyResults,
    pixels: np.ndarray,
    *,
    kind: str,
    image_uid: str | None,
    instance_number: int,
    series_base: str,
    sources: Sequence[Dataset],
    patient_orientation: Any,
    image_laterality: str | None,
    comments: str,
) -> Dataset:
    """An SC Image Storage object (highdicom ``SCImage``, RGB) with every attribute both SC
    writers share: patient/study from the first source, our equipment, the AIR contributing
    equipment item, Content/Series/Instance Creation/Secondary Capture Date and Time from the
    queue time, BurnedInAnnotation YES, the sources in SourceImageSequence, deterministic
    UIDs. ``patient_orientation`` is written as given (``None`` → empty, Type 2C).

    Laterality goes in Image Laterality (General Image), not in the series' Laterality:
    dciodvfy rejects Laterality (Type 2C) when Image Laterality is present."""
    import highdicom as hd

    prov = results.provenance
    header = sources[0] if sources else results.any_source()
    when = results.content_datetime
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    sc = hd.sc.SCImage(
        pixel_array=np.ascontiguousarray(pixels, dtype=np.uint8),
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        study_instance_uid=results.study_uid,
        series_instance_uid=results.uid(kind, series=True),
        series_number=SERIES_NUMBERS[kind],
        sop_instance_uid=results.uid(kind, image_uid),
        instance_number=instance_number,
        manufacturer=prov.manufacturer,
        # highdicom accepts single letters only; the source's value is written below
        patient_orientation=("A", "R"),
        content_date=date,
        content_time=time,
        series_date=date,
        series_time=time,
        series_description=series_description(series_base, prov),
    )
    copy_patient_study(header, sc)
    if "SpecificCharacterSet" in header:
        sc.SpecificCharacterSet = header.SpecificCharacterSet
    set_equipment(sc, prov)
    set_content_time(sc, results)
    sc.DateOfSecondaryCapture, sc.TimeOfSecondaryCapture = date, time
    add_contributing_equipment(sc, prov)
    pin_contribution_times(sc, results)
    sc.BurnedInAnnotation = "YES"
    sc.RecognizableVisualFeatures = "NO"
    sc.PatientOrientation = patient_orientation if patient_orientation else None
    if image_laterality:
        sc.ImageLaterality = image_laterality
    sc.BodyPartExamined = "BREAST"
    if comments:
        sc.ImageComments = comments
    sc.DerivationDescription = (
        f"{prov.model_name} {prov.model_version}: class activation map overlay and scores"
    )[:1024]
    refs = []
    for source in sources:
        ref = Dataset()
        ref.ReferencedSOPClassUID = source.SOPClassUID
        ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
        ref.PurposeOfReferenceCodeSequence = DicomSequence(
            [_code(codes.DCM.SourceImageForImageProcessingOperation)]
        )
        refs.append(ref)
    if refs:
        sc.SourceImageSequence = DicomSequence(refs)
    return sc


def pin_contribution_times(ds: Dataset, results: StudyResults) -> None:
    """highdicom adds itself to the Contributing Equipment Sequence with Contribution DateTime
    = now, which would make every write differ; pin it to the queue time (UTC)."""
    stamp = results.content_datetime.strftime("%Y%m%d%H%M%S+0000")
    for item in ds.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            item.ContributionDateTime = stamp


def _code(code: Any) -> Dataset:
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item
