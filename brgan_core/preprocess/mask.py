"""Breast mask: Otsu threshold, morphological clean-up, largest connected component.

Works on the display image (after the VOI LUT, bright = tissue). Steps, at a working
resolution of at most ``work_size`` pixels on the long side (fast, and makes the structuring
element sizes independent of the detector):

1. the lowest threshold of a three-class Otsu (SimpleITK ``OtsuMultipleThresholds``),
   lowered to just above the background when the background is clean
   (:func:`tissue_threshold`), separates tissue, including the faint fatty periphery and fat
   that a narrow VOI window makes nearly black, from the background;
2. bright border lines — film edges and collimator lines that run (nearly) the whole width
   or height along the image border and are near white — are cleared;
3. a small binary closing bridges thin dark lines across the breast (biopsy-window and
   paddle shadows), then an opening with a disc of radius ``≈ 1.2 %`` of the long side cuts
   thin bright bridges (paddle edges, a border frame, a marker touching the skin);
4. the largest connected component (``ConnectedComponent`` + ``RelabelComponent``) is the
   breast: burned-in labels, skin markers and devices are separate components and dropped;
5. the opened component is dilated back by the same radius *inside* the Otsu foreground, so
   the skin line and nipple keep their shape, and holes are filled (``BinaryFillhole``);
6. the mask is scaled back to the image size.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional alias)
from PIL import Image

__all__ = ["apply_mask", "breast_mask", "otsu_threshold", "tissue_threshold"]


def otsu_threshold(image: np.ndarray, classes: int = 3) -> float:
    """The lowest Otsu threshold of ``image`` for ``classes`` classes (SimpleITK, 256 bins).

    Three classes (background | fatty tissue | dense tissue, labels and film edges) keep the
    faint fatty periphery of the breast, which a two-class Otsu often cuts off.
    """
    img = sitk.GetImageFromArray(np.asarray(image, dtype=np.float32))
    if classes <= 2:
        f = sitk.OtsuThresholdImageFilter()
        f.SetInsideValue(0)
        f.SetOutsideValue(1)
        f.SetNumberOfHistogramBins(256)
        f.Execute(img)
        return float(f.GetThreshold())
    m = sitk.OtsuMultipleThresholdsImageFilter()
    m.SetNumberOfThresholds(classes - 1)
    m.SetNumberOfHistogramBins(256)
    m.Execute(img)
    return float(min(m.GetThresholds()))


def tissue_threshold(image: np.ndarray, margin: float = 0.01) -> float:
    """The tissue/background threshold: Otsu, lowered to just above a clean background.

    Starts from the lowest three-class Otsu threshold. The pixels below it are mostly
    background; when that background is tight (a digital detector, or a VOI window that clips
    it to 0) the threshold drops to ``median + max(margin, 4·σ)`` of those pixels (σ from the
    MAD), so fatty tissue that the window makes nearly black is still tissue. A noisy background
    (scanned film) keeps the Otsu value.
    """
    otsu = otsu_threshold(image, classes=3)
    below = np.asarray(image, dtype=np.float32)
    below = below[below <= otsu]
    if below.size == 0:
        return otsu
    median = float(np.median(below))
    sigma = 1.4826 * float(np.median(np.abs(below - median)))
    return min(otsu, median + max(margin, 4.0 * sigma))


def breast_mask(display: np.ndarray, *, work_size: int = 512) -> np.ndarray:
    """The breast mask of a display image (bright tissue on a dark background).

    Args:
        display: 2-D float image, bright = tissue (e.g. :func:`~.decode.to_display` output).
        work_size: long side of the working resolution.

    Returns:
        bool array of ``display.shape``; all False for a blank image.
    """
    img = np.asarray(display, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"display image must be 2-D, not shape {img.shape}")
    if not np.isfinite(img).all() or float(img.max()) <= float(img.min()):
        return np.zeros(img.shape, dtype=bool)

    small = _downsample(img, work_size)
    fg = small > tissue_threshold(small)
    fg = _clear_border_lines(fg, small)
    radius = max(1, round(0.012 * max(small.shape)))

    fg_itk = sitk.GetImageFromArray(fg.astype(np.uint8))
    close_r = max(1, radius // 2)
    fg_itk = sitk.BinaryMorphologicalClosing(fg_itk, [close_r, close_r], sitk.sitkBall, 1, True)
    opened = sitk.BinaryMorphologicalOpening(fg_itk, [radius, radius], sitk.sitkBall, 0, 1)
    breast = _largest_component(opened)
    if breast is None:  # everything thinner than the opening: keep the plain largest component
        breast = _largest_component(fg_itk)
        if breast is None:
            return np.zeros(img.shape, dtype=bool)
    else:
        grown = sitk.BinaryDilate(breast, [radius, radius], sitk.sitkBall, 0, 1)
        breast = _largest_component(sitk.And(grown, fg_itk)) or breast
    filled = sitk.BinaryFillhole(breast, fullyConnected=False, foregroundValue=1)
    small_mask = sitk.GetArrayFromImage(filled).astype(np.float32)
    return _upsample(small_mask, img.shape) >= 0.5


def apply_mask(display: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``display`` with everything outside ``mask`` set to zero (float32)."""
    return np.where(mask, np.asarray(display, dtype=np.float32), np.float32(0.0))


# --------------------------------------------------------------------------- helpers


def _downsample(img: np.ndarray, work_size: int) -> np.ndarray:
    h, w = img.shape
    scale = work_size / max(h, w)
    if scale >= 1.0:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(img, mode="F").resize(size, Image.Resampling.BOX))


def _upsample(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape == shape:
        return mask
    pil = Image.fromarray(np.ascontiguousarray(mask, dtype=np.float32), mode="F")
    return np.asarray(pil.resize((shape[1], shape[0]), Image.Resampling.BILINEAR))


def _largest_component(binary: sitk.Image) -> sitk.Image | None:
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(binary, False), sortByObjectSize=True)
    arr = sitk.GetArrayViewFromImage(labels)
    if not arr.any():
        return None
    out = sitk.BinaryThreshold(labels, 1, 1, 1, 0)
    out.CopyInformation(binary)
    return out


def _clear_border_lines(
    fg: np.ndarray,
    img: np.ndarray,
    fraction: float = 0.95,
    bright: float = 0.8,
    depth: float = 0.04,
) -> np.ndarray:
    """Clear bright rows/columns along the image border (film edges, collimator lines).

    A line qualifies when ≥ ``fraction`` of it is foreground *and* its mean display value is
    ≥ ``bright`` — near white, which the chest-wall edge of a breast (also nearly all
    foreground) is not. Lines are cleared from the edge inward while they qualify, at most
    ``depth`` of the size; thinner or fainter lines are left to the opening.
    """
    out = fg.copy()
    h, w = out.shape
    for axis, n in ((0, h), (1, w)):
        limit = max(1, round(depth * n))
        for order in (range(limit), range(n - 1, n - 1 - limit, -1)):
            for i in order:
                line = out[i, :] if axis == 0 else out[:, i]
                values = img[i, :] if axis == 0 else img[:, i]
                if line.mean() < fraction or float(values.mean()) < bright:
                    break
                line[:] = False
    return out
