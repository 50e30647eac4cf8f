"""``brgan preview``: PNG previews of mammogram preprocessing.

One PNG per DICOM file, three panels side by side: the original display image (downsampled),
the same with the breast mask outline (mapped back from model space through the
:class:`~brgan_core.preprocess.Geometry`, so it also shows that the mapping is right) and the
crop box, and the model input. A caption gives laterality, view, orientation rule and size.

numpy, pydicom, Pillow and SimpleITK are imported inside the functions so ``brgan --help``
stays fast; nothing here imports torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from brgan_core.preprocess import PreprocessedImage

PANEL_HEIGHT = 420
_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")


def parse_size(text: str) -> tuple[int, int]:
    """``"512x416"`` → ``(512, 416)`` (rows × columns)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match or int(match.group(1)) < 8 or int(match.group(2)) < 8:
        raise typer.BadParameter(f"{text!r} is not ROWSxCOLUMNS with both ≥ 8, e.g. 512x416")
    return int(match.group(1)), int(match.group(2))


def find_dicom_files(paths: list[Path]) -> list[Path]:
    """Files named on the command line, plus DICOM files found under named folders.

    Inside folders a file counts as DICOM when it ends in ``.dcm`` or has the ``DICM`` marker
    at byte 128; other files (READMEs, PNGs) are skipped silently. Named files are always kept,
    so a bad one is reported.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            for item in sorted(p for p in path.rglob("*") if p.is_file()):
                if item.suffix.lower() == ".dcm" or _has_dicm_marker(item):
                    found.append(item)
        else:
            found.append(path)
    return found


def preview(
    paths: Annotated[
        list[Path], typer.Argument(help="DICOM files and/or folders (searched recursively).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the PNG previews.")],
    size: Annotated[
        str, typer.Option("--size", help="Model input size ROWSxCOLUMNS.", show_default=True)
    ] = "512x416",
) -> None:
    """Write a preprocessing preview PNG per DICOM file: original, mask outline, model input.

    A file that cannot be processed prints one line (file: reason) and the run goes on. Exit
    status 0 when at least one preview was written, else 1.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from brgan_core.errors import BrganCoreError

    model_size = parse_size(size)
    console = Console(stderr=True, soft_wrap=True)
    files = find_dicom_files(paths)
    if not files:
        where = ", ".join(str(p) for p in paths)
        console.print(f"no DICOM files found in {where}", style="red", markup=False)
        raise typer.Exit(1)
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    ok = failed = 0
    with Progress(
        TextColumn("preview"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    ) as progress:
        task = progress.add_task("preview", total=len(files))
        for index, file in enumerate(files):
            name = _output_name(file, index, used)
            try:
                image = render_file(file, model_size)
                image.save(out / name, optimize=True)
                ok += 1
            except BrganCoreError as exc:
                failed += 1
                progress.console.print(str(exc), style="red", markup=False, highlight=False)
            except Exception as exc:  # one bad file must not stop the run; say what it was
                failed += 1
                line = f"{file}: unexpected {type(exc).__name__}: {exc}"
                progress.console.print(line, style="red", markup=False, highlight=False)
            progress.advance(task)
    console.print(f"{ok} ok, {failed} failed; previews in {out}", highlight=False)
    raise typer.Exit(0 if ok else 1)


def render_file(file: Path, size: tuple[int, int]) -> Image.Image:
    """Preprocess one DICOM file and draw its preview (raises DecodeError when it cannot)."""
    from brgan_core.preprocess import preprocess_array, read_dataset, read_header, to_display

    ds = read_dataset(file)
    display = to_display(ds, source=file)
    header = read_header(ds, str(file))
    result = preprocess_array(
        display,
        header.laterality,
        header.patient_orientation,
        size,
        view=header.view,
        photometric=header.photometric,
        source=str(file),
    )
    return render_preview(display, result, title=file.name)


def render_preview(display: np.ndarray, result: PreprocessedImage, title: str = "") -> Image.Image:
    """Three panels (original, mask outline + crop box, model input) and a caption."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    geom = result.geometry
    scale = PANEL_HEIGHT / display.shape[0]
    thumb_size = (max(1, round(display.shape[1] * scale)), PANEL_HEIGHT)
    gray = Image.fromarray(np.ascontiguousarray(display, dtype=np.float32), mode="F")
    gray = gray.resize(thumb_size, Image.Resampling.BILINEAR)
    original = Image.fromarray(_to_uint8(np.asarray(gray))).convert("RGB")

    # the model-space mask mapped back to the stored frame: checks the Geometry too
    back = geom.heatmap_to_original(result.mask.astype(np.float32), order=0)
    back_small = Image.fromarray(back, mode="F").resize(thumb_size, Image.Resampling.BILINEAR)
    outline = _outline(np.asarray(back_small) >= 0.5)
    overlay = np.asarray(original).copy()
    overlay[outline] = (255, 60, 60)
    overlay_img = Image.fromarray(overlay)
    r0, c0, r1, c1 = geom.crop
    ImageDraw.Draw(overlay_img).rectangle(
        [c0 * scale, r0 * scale, c1 * scale - 1, r1 * scale - 1], outline=(60, 220, 60), width=2
    )

    mh, mw = geom.model_shape
    mscale = PANEL_HEIGHT / mh
    model = Image.fromarray(_to_uint8(result.image)).convert("RGB")
    model = model.resize((max(1, round(mw * mscale)), PANEL_HEIGHT), Image.Resampling.BILINEAR)
    ImageDraw.Draw(model).rectangle(
        [0, 0, model.width - 1, model.height - 1], outline=(80, 80, 200)
    )

    font = ImageFont.load_default(size=15)
    gap, caption_h = 8, 46
    width = original.width + overlay_img.width + model.width + 4 * gap
    canvas = Image.new("RGB", (width, PANEL_HEIGHT + caption_h + 2 * gap), (32, 32, 32))
    x = gap
    for panel in (original, overlay_img, model):
        canvas.paste(panel, (x, gap))
        x += panel.width + gap
    draw = ImageDraw.Draw(canvas)
    lines = [
        f"{title}   laterality {result.laterality or '?'}   view {result.view or '?'}   "
        f"{result.photometric}",
        f"orientation: {result.orientation_rule} ({result.orientation_detail})   "
        f"model {mh}x{mw}, content {geom.content_shape[0]}x{geom.content_shape[1]}",
    ]
    for i, line in enumerate(lines):
        draw.text((gap, PANEL_HEIGHT + 2 * gap + i * 19), line, fill=(235, 235, 235), font=font)
    return canvas


# --------------------------------------------------------------------------- helpers


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    import numpy as np

    return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    import numpy as np
    from scipy import ndimage

    if not mask.any():
        return np.zeros_like(mask)
    inner = ndimage.binary_erosion(mask, iterations=2)
    return mask & ~inner


def _has_dicm_marker(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _output_name(file: Path, index: int, used: set[str]) -> str:
    """``<stem>.png`` (sanitised); on a clash ``<stem>-<index>.png``. Never a UID."""
    stem = _NAME_OK.sub("_", file.stem).strip("._") or f"image-{index:04d}"
    name = f"{stem}.png"
    if name in used:
        name = f"{stem}-{index:04d}.png"
    used.add(name)
    return name
