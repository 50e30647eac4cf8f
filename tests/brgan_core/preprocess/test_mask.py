"""Breast mask: keeps the breast, drops labels, markers, film borders and paddle edges."""

from __future__ import annotations

import numpy as np
import pytest

from brgan_core.preprocess import apply_mask, breast_mask
from tests.brgan_core.preprocess.dicom_factory import phantom


def _cluttered(seed: int = 0) -> dict[str, np.ndarray]:
    """A display image with a breast and everything real images carry besides it."""
    raw, breast = phantom((240, 180), seed=seed)
    img = raw.astype(np.float32) / 4095.0
    h, w = img.shape
    parts = {"breast": breast}
    text = np.zeros_like(breast)  # burned-in "L MLO": a few bright letter strokes
    for x0 in (130, 140, 152, 160):
        text[12:30, x0 : x0 + 4] = True
    text[12:16, 130:166] = True
    parts["text"] = text
    marker = np.zeros_like(breast)  # a skin marker just off the skin line
    yy, xx = np.mgrid[0:h, 0:w]
    marker[(xx - 140) ** 2 + (yy - 120) ** 2 <= 16] = True
    parts["marker"] = marker
    paddle = np.zeros_like(breast)  # compression-paddle edge: a thin line across the image
    paddle[200:202, :] = True
    parts["paddle"] = paddle
    border = np.zeros_like(breast)  # bright film border on three sides (touches the breast)
    border[:5, :] = border[-5:, :] = border[:, -5:] = True
    parts["border"] = border
    for key in ("text", "marker", "paddle", "border"):
        img[parts[key]] = 0.97
    parts["image"] = img
    return parts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_keeps_the_breast_and_drops_the_rest(seed: int) -> None:
    p = _cluttered(seed)
    mask = breast_mask(p["image"])
    breast = p["breast"] & ~p["paddle"] & ~p["border"]
    assert mask[breast].mean() > 0.97
    assert not mask[p["text"]].any()
    assert not mask[p["marker"]].any()
    # paddle and border: at most a sliver where they touch the breast
    far = np.zeros_like(mask)
    far[:, 140:] = True
    assert not mask[(p["paddle"] | p["border"]) & far].any()
    assert mask[p["border"]].mean() < 0.1
    assert mask[~p["breast"]].mean() < 0.01


def test_mask_on_monochrome_phantom_without_clutter() -> None:
    raw, breast = phantom((120, 100), seed=5)
    mask = breast_mask(raw.astype(np.float32) / 4095)
    assert (mask == breast).mean() > 0.98


def test_mask_at_working_resolution_is_scaled_back() -> None:
    raw, breast = phantom((1200, 900), seed=3)
    mask = breast_mask(raw.astype(np.float32) / 4095, work_size=256)
    assert mask.shape == breast.shape
    assert (mask == breast).mean() > 0.98


def test_blank_image_gives_empty_mask() -> None:
    assert not breast_mask(np.zeros((50, 40), dtype=np.float32)).any()


def test_apply_mask_zeroes_background() -> None:
    img = np.full((4, 4), 0.5, dtype=np.float32)
    mask = np.zeros((4, 4), dtype=bool)
    mask[1:3, 1:3] = True
    out = apply_mask(img, mask)
    assert out.sum() == pytest.approx(2.0) and out.dtype == np.float32


def test_fat_that_the_window_makes_nearly_black_is_kept() -> None:
    """VOI clips background to 0 and fat to a few percent: fat is still breast."""
    raw, breast = phantom((200, 160), seed=6)
    img = np.where(breast, raw / 4095.0, 0.0).astype(np.float32)
    fat = breast & (np.mgrid[0:200, 0:160][1] < 40)  # a fatty band along the chest wall
    img[fat] = 0.03
    mask = breast_mask(img)
    assert mask[fat].mean() > 0.97 and mask[breast].mean() > 0.97
    assert mask[~breast].mean() < 0.01


def test_noisy_film_background_does_not_leak() -> None:
    """Scanned film: a grey, noisy, uneven background must stay background."""
    rng = np.random.default_rng(3)
    raw, breast = phantom((200, 160), seed=7)
    background = 0.22 + 0.05 * np.linspace(0, 1, 160)[None, :] + rng.normal(0, 0.03, (200, 160))
    img = np.where(breast, raw / 4095.0 + 0.15, background).astype(np.float32)
    mask = breast_mask(np.clip(img, 0, 1))
    assert mask[breast].mean() > 0.97
    assert mask[~breast].mean() < 0.02
