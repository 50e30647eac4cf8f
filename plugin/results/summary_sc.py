"""Summary Secondary Capture: one page per study (issue 9 §2).

Readable in any viewer, including those that show no SR: who and which study (to check the page
belongs to the images beside it), the labels, the exam and breast probabilities with the threshold
verdict, a table of every image — analyzed with its score, or "NOT ANALYZED: reason" — then
thumbnails of the analyzed images with their heatmaps (stored orientation, in hanging order
R CC, L CC, R MLO, L MLO) and the model line. White text on black, like the viewer around it.

:func:`summary_rows` is the one source of the page's text: the page draws it and the tests read
it (:func:`summary_lines`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset

from plugin.results import heatmap_sc, render
from plugin.results.common import model_line
from plugin.results.inputs import AnalyzedImage, StudyResults

KIND = "summary_sc"
#: Font sizes as fractions of the page width, by row style.
SIZES = {
    "title": 1 / 24,
    "heading": 1 / 28,
    "label": 1 / 32,
    "text": 1 / 36,
    "table": 1 / 34,
    "small": 1 / 46,
}
#: Left edges of the table's columns, as fractions of the page width: images, breasts.
COLUMNS = (0.0, 0.26, 0.55)
BREAST_COLUMNS = (0.0, 0.37, 0.55)
VIEW_ORDER = {"CC": 0, "MLO": 1}
SIDE_ORDER = {"R": 0, "L": 1}
SIDE_NAMES = {"R": "Right breast", "L": "Left breast"}


@dataclass(frozen=True)
class Row:
    """One row of the page: one cell (a line of text) or several (table columns)."""

    cells: tuple[str, ...]
    style: str = "text"
    colour: render.RGB = render.WHITE
    #: Extra space above the row, in units of its line height.
    space_before: float = 0.0
    columns: tuple[float, ...] = COLUMNS


def _order(laterality: str | None, view: str | None) -> tuple[int, int, str, str]:
    return (
        VIEW_ORDER.get(view or "", 9),
        SIDE_ORDER.get(laterality or "", 9),
        view or "",
        laterality or "",
    )


def _date(value: object) -> str:
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def _not_analyzed_side_view(results: StudyResults, uid: str, laterality, view):
    """Laterality and view of a not-analyzed image: from the plan, else its header."""
    if laterality and view:
        return laterality, view
    try:
        header = results.source(uid)
    except (KeyError, OSError, ValueError):
        return laterality, view
    side = laterality or header.get("ImageLaterality") or header.get("Laterality")
    return side or None, view or header.get("ViewPosition") or None


def summary_rows(results: StudyResults) -> list[Row]:
    """The page's text, top to bottom."""
    prov = results.provenance
    header = results.any_source()
    rows = [Row((f"{prov.manufacturer_model_name} AI analysis - study summary",), "title")]
    rows += [Row((label,), "label", render.LABEL_COLOUR) for label in prov.labels]
    rows.append(
        Row(
            (
                f"Patient {header.get('PatientName', '') or '-'}   "
                f"ID {header.get('PatientID', '') or '-'}   "
                f"born {_date(header.get('PatientBirthDate')) or '-'}",
            ),
            space_before=0.5,
        )
    )
    rows.append(
        Row(
            (
                f"Study {_date(header.get('StudyDate')) or '-'}   "
                f"accession {header.get('AccessionNumber', '') or '-'}   "
                f"{header.get('StudyDescription', '')}".rstrip(),
            ),
        )
    )
    exam = results.exam
    positive = exam is not None and prov.threshold is not None and exam >= prov.threshold
    if exam is None:
        rows.append(Row(("Exam: no image could be analyzed",), "heading", space_before=0.6))
    else:
        colour = render.POSITIVE_COLOUR if positive else render.WHITE
        rows.append(Row((f"Exam p(malignant) {render.percent(exam)}",), "heading", colour, 0.6))
        rows.append(Row((render.verdict(exam, prov),), "heading", colour))
    for side in ("R", "L"):
        p = results.breasts.get(side)
        done = sum(a.score.laterality == side for a in results.analyzed)
        missed = sum(n.laterality == side for n in results.not_analyzed)
        name = SIDE_NAMES[side] if not missed else f"{SIDE_NAMES[side]} ({done} of {done + missed})"
        if p is None:
            rows.append(Row((name, "not analyzed"), "table", columns=BREAST_COLUMNS))
            continue
        hit = prov.threshold is not None and p >= prov.threshold
        rows.append(
            Row(
                (name, render.percent(p), render.verdict(p, prov)),
                "table",
                render.POSITIVE_COLOUR if hit else render.WHITE,
                columns=BREAST_COLUMNS,
            )
        )
    total = len(results.analyzed) + len(results.not_analyzed)
    rows.append(Row((f"Images analyzed: {len(results.analyzed)} of {total}",), space_before=0.6))
    threshold = (
        f"at threshold {render.percent(prov.threshold)}" if prov.threshold is not None else ""
    )
    rows.append(Row(("Image", "p(malignant)", threshold), "table", space_before=0.2))
    entries: list[tuple[tuple, Row]] = []
    for image in results.analyzed:
        s = image.score
        hit = bool(s.positive) and prov.threshold is not None
        verdict = ("POSITIVE" if hit else "negative") if prov.threshold is not None else ""
        entries.append(
            (
                _order(s.laterality, s.view),
                Row(
                    (
                        render.image_name(s.laterality, s.view),
                        render.percent(s.p_malignant),
                        verdict,
                    ),
                    "table",
                    render.POSITIVE_COLOUR if hit else render.WHITE,
                ),
            )
        )
    for item in results.not_analyzed:
        side, view = _not_analyzed_side_view(
            results, item.sop_instance_uid, item.laterality, item.view
        )
        entries.append(
            (
                _order(side, view),
                Row(
                    (render.image_name(side, view), f"NOT ANALYZED: {item.reason}"),
                    "table",
                    render.LABEL_COLOUR,
                ),
            )
        )
    rows += [row for _, row in sorted(entries, key=lambda e: e[0])]
    # A warn-mode domain-shift guard (docs/model.md): each cautioned image, under the table.
    cautioned = sorted(
        (a.score for a in results.analyzed if a.score.warnings),
        key=lambda s: _order(s.laterality, s.view),
    )
    rows += [
        Row(
            (f"CAUTION {render.image_name(s.laterality, s.view)}: {w}",), colour=render.LABEL_COLOUR
        )
        for s in cautioned
        for w in s.warnings
    ]
    rows.append(Row((model_line(prov),), "small", space_before=0.6))
    when = results.content_datetime.strftime("%Y-%m-%d %H:%M:%S UTC")
    rows.append(
        Row((f"Results version {results.task.study_version}, study queued {when}",), "small")
    )
    return rows


def summary_lines(results: StudyResults) -> list[str]:
    """The page's text, one string per row (cells joined by three spaces)."""
    return ["   ".join(cell for cell in row.cells if cell) for row in summary_rows(results)]


def font_px(style: str, width: int, factor: float = 1.0) -> int:
    return max(11, round(width * SIZES[style] * factor))


@dataclass(frozen=True)
class _Placed:
    row: Row
    cell: int
    text: str
    x: int
    y: int
    size: int


def _place(rows: list[Row], width: int, factor: float) -> tuple[list[_Placed], int]:
    """Each drawn string with its position; and the height used."""
    margin = round(width * 0.04)
    inner = width - 2 * margin
    placed: list[_Placed] = []
    y = margin
    for row in rows:
        size = font_px(row.style, width, factor)
        step = render.line_height(size)
        y += round(row.space_before * step)
        if len(row.cells) == 1:
            starts, ends = [margin], [margin + inner]
        else:
            starts = [margin + round(c * inner) for c in row.columns[: len(row.cells)]]
            # the last cell takes the rest of the row
            ends = [*starts[1:], margin + inner]
            ends = [e - round(0.5 * size) for e in ends[:-1]] + [ends[-1]]
        lines_used = 1
        for i, (cell, x0, x1) in enumerate(zip(row.cells, starts, ends, strict=True)):
            parts = render.wrap(cell, size, x1 - x0) if cell else []
            for j, part in enumerate(parts):
                placed.append(_Placed(row, i, part, x0, y + j * step, size))
            lines_used = max(lines_used, len(parts))
        y += lines_used * step
    return placed, y


@dataclass(frozen=True)
class Page:
    pixels: np.ndarray
    #: Every string drawn: (text, font size) — what :func:`render.find_text` can look for.
    drawn: tuple[tuple[str, int], ...]


def _hanging(results: StudyResults) -> list[AnalyzedImage]:
    return sorted(results.analyzed, key=lambda a: _order(a.score.laterality, a.score.view))


def render_page(
    results: StudyResults, size: tuple[int, int] = (1024, 1280), *, thumbnails: bool = True
) -> Page:
    """The summary page: text rows, then thumbnails in the room left, then the model line."""
    width, height = size
    rows = summary_rows(results)
    body, footer = rows[:-2], rows[-2:]
    factor = 1.0
    while True:
        placed, used = _place(body, width, factor)
        foot, foot_h = _place(footer, width, factor)
        margin = round(width * 0.04)
        foot_h -= margin  # _place starts at the top margin
        if used + foot_h + margin <= height or factor < 0.3:
            break
        factor *= 0.9
    page = Image.new("RGB", (width, height), render.BACKGROUND)
    draw = ImageDraw.Draw(page)
    top_of_footer = height - margin - foot_h
    for item in placed:
        render.draw_text(draw, (item.x, item.y), item.text, item.size, item.row.colour)
    foot_offset = top_of_footer - margin
    for item in foot:
        render.draw_text(
            draw, (item.x, item.y + foot_offset), item.text, item.size, item.row.colour
        )
    drawn = [(i.text, i.size) for i in placed] + [(i.text, i.size) for i in foot]
    room = (used + margin // 2, top_of_footer - margin // 2)
    if thumbnails and results.analyzed:
        drawn += _draw_thumbnails(page, results, room, width, factor)
    return Page(np.asarray(page), tuple(drawn))


def _draw_thumbnails(
    page: Image.Image,
    results: StudyResults,
    room: tuple[int, int],
    width: int,
    factor: float,
) -> list[tuple[str, int]]:
    """Up to four thumbnails across, as many rows as fit (at least 160 px tall each)."""
    images = _hanging(results)
    margin = round(width * 0.04)
    caption = font_px("text", width, factor)
    caption_h = render.line_height(caption)
    per_row = min(4, len(images))
    n_rows = -(-len(images) // per_row)
    cell_w = (width - 2 * margin) // per_row
    cell_h = (room[1] - room[0]) // n_rows
    thumb_h = cell_h - caption_h - round(0.3 * caption_h)
    if thumb_h < 160:
        return []
    draw = ImageDraw.Draw(page)
    drawn = []
    for k, image in enumerate(images):
        gray = render.display_gray(results.source(image.score.sop_instance_uid, pixels=True))
        if image.cam.shape != gray.shape:
            continue
        rows, cols = gray.shape
        scale = min((cell_w - 12) / cols, thumb_h / rows)
        tw, th = max(1, round(cols * scale)), max(1, round(rows * scale))
        picture = heatmap_sc.overlay_picture(results, image, gray, (tw, th))
        cx = margin + (k % per_row) * cell_w
        cy = room[0] + (k // per_row) * cell_h
        page.paste(picture, (cx + (cell_w - tw) // 2, cy + (thumb_h - th)))
        s = image.score
        text = f"{render.image_name(s.laterality, s.view)}  {render.percent(s.p_malignant)}"
        hit = bool(s.positive) and results.provenance.threshold is not None
        x = cx + max(0, round((cell_w - render.text_width(text, caption)) / 2))
        render.draw_text(
            draw,
            (x, cy + thumb_h + round(0.3 * caption_h)),
            text,
            caption,
            render.POSITIVE_COLOUR if hit else render.WHITE,
        )
        drawn.append((text, caption))
    return drawn


def from_study(
    results: StudyResults, *, size: tuple[int, int] = (1024, 1280), thumbnails: bool = True
) -> Dataset:
    """The study's summary Secondary Capture.

    Args:
        results: the study version's results.
        size: (width, height) of the page in pixels (portrait by default, like a report).
        thumbnails: draw the analyzed images with their heatmaps below the table.
    """
    page = render_page(results, size, thumbnails=thumbnails)
    prov = results.provenance
    sources = [results.source(a.score.sop_instance_uid) for a in _hanging(results)]
    sides = {a.score.laterality for a in results.analyzed}
    sides |= {n.laterality for n in results.not_analyzed if n.laterality}
    laterality = "B" if sides >= {"L", "R"} else (next(iter(sides)) if sides else None)
    exam = "none analyzed" if results.exam is None else render.percent(results.exam)
    comments = ". ".join(
        [
            f"{prov.model_name} {prov.model_version}: exam p(malignant) {exam}, "
            f"{render.verdict(results.exam, prov)}",
            *prov.labels,
        ]
    )
    return render.secondary_capture(
        results,
        page.pixels,
        kind=KIND,
        image_uid=None,
        instance_number=1,
        series_base=f"{prov.manufacturer_model_name} summary",
        sources=sources,
        patient_orientation=None,
        image_laterality=laterality,
        comments=comments,
    )
