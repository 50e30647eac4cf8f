"""Heatmap Secondary Capture: one per analyzed image (issue 9 §2, RESULTS.md §4).

What a radiologist sees in any viewer: the mammogram in grayscale, in its stored orientation
(the source's PatientOrientation holds), downsized so that the whole picture's longest side is at
most ``max_size``; the class activation map blended in with a perceptual colormap, transparent
where the CAM is low; the CAM region's outline (solid when the image is positive at the
threshold, dashed below it); and, in a black band *below* the image so no tissue is covered, a
burned-in legend: score, threshold verdict, the labels, a colour key and the model line.

The band is at least :data:`MIN_WIDTH` pixels wide (the image is centred above it) so the legend
stays legible for small images; its font scales with the width (about 22 px at 800 px).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset

from brgan_core.inference import REGION_FRACTION
from plugin.results import render
from plugin.results.common import model_line
from plugin.results.inputs import AnalyzedImage, StudyResults

KIND = "heatmap_sc"
#: Narrowest legend band (pixels), when ``max_size`` allows it.
MIN_WIDTH = 480
#: Margin around the legend text, in units of the font size.
MARGIN = 0.75


@dataclass(frozen=True)
class LegendLine:
    text: str
    colour: render.RGB
    #: Font size relative to the legend's base size.
    scale: float = 1.0
    #: Draw the colour key before the text.
    colour_key: bool = False


def legend_font_px(width: int) -> int:
    """Base font size of the legend on a canvas ``width`` pixels wide."""
    return int(np.clip(round(width / 32), 13, 80))


def line_font_px(line: LegendLine, width: int) -> int:
    return max(10, round(legend_font_px(width) * line.scale))


def legend(results: StudyResults, image: AnalyzedImage) -> list[LegendLine]:
    """The legend of ``image``'s heatmap, top to bottom."""
    prov = results.provenance
    score = image.score
    name = render.image_name(score.laterality, score.view)
    positive = bool(score.positive) if prov.threshold is not None else False
    lines = [
        LegendLine(f"{name}   p(malignant) {render.percent(score.p_malignant)}", render.WHITE, 1.3),
        LegendLine(
            render.verdict(score.p_malignant, prov),
            render.POSITIVE_COLOUR if positive else render.WHITE,
        ),
    ]
    # A warn-mode domain-shift guard (docs/model.md): the caution where the score is read.
    lines += [LegendLine(f"CAUTION: {w}", render.LABEL_COLOUR) for w in score.warnings]
    lines += [LegendLine(label, render.LABEL_COLOUR) for label in prov.labels]
    style = "solid" if positive else "dashed (below threshold)"
    lines.append(LegendLine("model attention (CAM), low to high", render.WHITE, 0.85, True))
    if score.region:
        lines.append(
            LegendLine(
                f"outline: CAM region at least {100 * REGION_FRACTION:.0f} % of its peak, {style}",
                render.WHITE,
                0.85,
            )
        )
    lines.append(LegendLine(model_line(prov), render.WHITE, 0.85))
    return lines


def legend_lines(results: StudyResults, image: AnalyzedImage) -> list[str]:
    """The legend's text, line by line (as drawn, before wrapping)."""
    return [line.text for line in legend(results, image)]


def _wrapped(lines: list[LegendLine], width: int) -> list[tuple[LegendLine, str, int, bool]]:
    """(line, text of one drawn row, font size, first row of the line) top to bottom."""
    margin = round(MARGIN * legend_font_px(width))
    out = []
    for line in lines:
        size = line_font_px(line, width)
        indent = _key_indent(line, size)
        parts = render.wrap(line.text, size, width - 2 * margin - indent)
        out += [(line, part, size, i == 0) for i, part in enumerate(parts)]
    return out


def _key_indent(line: LegendLine, size: int) -> int:
    return round(4 * size) if line.colour_key else 0


def render_legend(lines: list[LegendLine], width: int) -> np.ndarray:
    """The legend band, (height, width, 3) uint8, black background."""
    margin = round(MARGIN * legend_font_px(width))
    wrapped = _wrapped(lines, width)
    height = 2 * margin + sum(render.line_height(size) for _, _, size, _ in wrapped)
    band = Image.new("RGB", (width, height), render.BACKGROUND)
    draw = ImageDraw.Draw(band)
    y = margin
    for line, text, size, first in wrapped:
        if line.colour_key and first:
            bar = render.colorbar(round(3.4 * size), max(4, round(0.8 * size)))
            band.paste(Image.fromarray(bar), (margin, y + round(0.15 * size)))
        render.draw_text(draw, (margin + _key_indent(line, size), y), text, size, line.colour)
        y += render.line_height(size)
    return np.asarray(band)


@dataclass(frozen=True)
class Layout:
    image_size: tuple[int, int]  # (width, height) of the scaled mammogram
    canvas_width: int
    band: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.image_size[1] + self.band.shape[0], self.canvas_width

    @property
    def image_x(self) -> int:
        return (self.canvas_width - self.image_size[0]) // 2


def layout(rows: int, cols: int, lines: list[LegendLine], max_size: int) -> Layout:
    """The largest mammogram (never enlarged) that fits with its legend band in a canvas whose
    longest side is at most ``max_size`` (0: the mammogram at full size).

    Raises:
        ValueError: not even a one-pixel mammogram fits with the legend.
    """
    min_width = MIN_WIDTH if max_size <= 0 else min(MIN_WIDTH, max_size)

    def plan(height: int) -> Layout:
        scale = height / rows
        iw, ih = max(1, round(cols * scale)), max(1, height)
        width = max(iw, min_width)
        return Layout((iw, ih), width, render_legend(lines, width))

    if max_size <= 0:
        return plan(rows)
    # the band's height depends on the width, hence on the scale: search the image height
    lo, hi = 0, min(rows, max(1, round(rows * max_size / max(rows, cols))))
    best = None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        candidate = plan(mid)
        if max(candidate.shape) <= max_size:
            lo, best = mid, candidate
        else:
            hi = mid - 1
    if best is None or best.image_size[1] != lo:
        best = plan(lo) if lo > 0 else None
    if best is None or max(best.shape) > max_size:
        raise ValueError(f"max_size {max_size} is too small for the legend")
    return best


def overlay_picture(
    results: StudyResults, image: AnalyzedImage, gray: np.ndarray, size: tuple[int, int]
) -> Image.Image:
    """The mammogram (display grayscale on the stored grid) resized to ``size`` = (width,
    height), with the CAM overlay and the region outline (solid when positive at the
    threshold, dashed otherwise)."""
    score = image.score
    rows, cols = gray.shape
    iw, ih = size
    picture = Image.fromarray(
        render.overlay(render.resize(gray, (iw, ih)), render.resize(image.cam, (iw, ih)))
    )
    if score.region:
        positive = bool(score.positive) and results.provenance.threshold is not None
        render.draw_outline(
            ImageDraw.Draw(picture),
            render.scale_points(score.region, iw / cols, ih / rows),
            width=max(2, round(min(iw, ih) / 300)),
            dashed=not positive,
        )
    return picture


def from_image(results: StudyResults, image: AnalyzedImage, *, max_size: int = 1024) -> Dataset:
    """The heatmap Secondary Capture of one analyzed image.

    Args:
        results: the study version's results (provenance, UIDs, sources, queue time).
        image: the analyzed image; its CAM must be on the source's stored pixel grid.
        max_size: longest side of the whole picture (image and legend) in pixels; 0 keeps the
            mammogram at full size.

    Raises:
        ValueError: the CAM's shape is not the source's (Rows, Columns).
    """
    score = image.score
    source = results.source(score.sop_instance_uid, pixels=True)
    gray = render.display_gray(source)
    if image.cam.shape != gray.shape:
        raise ValueError(
            f"image {score.sop_instance_uid}: CAM shape {image.cam.shape} is not the stored "
            f"pixel grid {gray.shape}"
        )
    rows, cols = gray.shape
    lines = legend(results, image)
    plan = layout(rows, cols, lines, max_size)
    iw, ih = plan.image_size
    picture = overlay_picture(results, image, gray, (iw, ih))
    canvas = np.zeros((*plan.shape, 3), dtype=np.uint8)
    canvas[:ih, plan.image_x : plan.image_x + iw] = np.asarray(picture)
    canvas[ih:] = plan.band

    header = results.source(score.sop_instance_uid)
    index = [a.score.sop_instance_uid for a in results.analyzed].index(score.sop_instance_uid)
    orientation = header.get("PatientOrientation") or None
    comments = ". ".join(
        [
            f"{results.provenance.model_name} {results.provenance.model_version}: "
            f"p(malignant) {render.percent(score.p_malignant)}, "
            f"{render.verdict(score.p_malignant, results.provenance)}",
            *(f"Caution: {w}" for w in score.warnings),
            *results.provenance.labels,
        ]
    )
    sc = render.secondary_capture(
        results,
        canvas,
        kind=KIND,
        image_uid=score.sop_instance_uid,
        instance_number=index + 1,
        series_base=f"{results.provenance.manufacturer_model_name} heatmap",
        sources=[header],
        patient_orientation=list(orientation) if orientation else None,
        image_laterality=score.laterality,
        comments=comments,
    )
    return sc


def from_study(results: StudyResults, *, max_size: int = 1024) -> list[Dataset]:
    """One heatmap SC per analyzed image, in the order of ``results.analyzed``."""
    return [from_image(results, image, max_size=max_size) for image in results.analyzed]
