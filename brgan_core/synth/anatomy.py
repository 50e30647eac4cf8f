"""Breast anatomy of one view in the *canonical frame*: chest wall at column 0, nipple to the right.

A :class:`BreastShape` is drawn once per patient and view (CC or MLO) and shared by both breasts;
each side evaluates it at its own warped coordinates (see :mod:`brgan_core.synth.bilateral`), so
outline, pectoral muscle and gland distribution move together with the tissue texture.

Functions take coordinate arrays ``(y, x)`` in pixels of the canonical frame, so they can be
evaluated on any warped grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from brgan_core.synth.presets import DENSITIES

FloatArray = NDArray[np.float32]

# Display levels of a FOR PRESENTATION image, as fractions of full scale.
BACKGROUND_LEVEL = 0.015
FAT_LEVEL = 0.30
GLAND_LEVEL = 0.74
PECTORAL_LEVEL = 0.70
SKIN_BOOST = 0.10

# Gland threshold per ACR density a–d (higher threshold: less glandular tissue). Chosen so the
# glandular area fraction of the breast falls in the ACR ranges (<25 %, 25–50 %, 51–75 %, >75 %).
_GLAND_THRESHOLD = {"a": 1.75, "b": 0.95, "c": 0.25, "d": -0.55}


@dataclass(frozen=True)
class BreastShape:
    """Outline and landmarks of one view of a breast in the canonical frame.

    The outline is a superellipse around the chest-wall centre ``(center_row, 0)`` with depth
    ``depth`` (columns, chest wall to nipple) and half-heights ``half_up`` / ``half_down``, tilted
    by ``tilt`` radians (MLO breasts droop), with a small harmonic wiggle.
    """

    view: str
    rows: int
    cols: int
    center_row: float
    depth: float
    half_up: float
    half_down: float
    exponent: float
    tilt: float
    wiggle: tuple[tuple[float, float], ...]
    pectoral_width: float = 0.0
    pectoral_height: float = 0.0
    pectoral_curve: float = 1.0
    skin_px: float = 2.0

    @property
    def nipple(self) -> tuple[float, float]:
        """(row, column) of the nipple in the canonical frame."""
        return (
            self.center_row + self.depth * np.sin(self.tilt),
            self.depth * np.cos(self.tilt),
        )


def sample_shape(
    view: str, rows: int, cols: int, rng: np.random.Generator, skin_mm: float, spacing_mm: float
) -> BreastShape:
    """Draw a plausible breast outline for ``view`` (``CC`` or ``MLO``)."""
    wiggle = tuple(
        (float(rng.uniform(0.0, 0.012)), float(rng.uniform(0, 2 * np.pi))) for _ in range(3)
    )
    skin_px = max(1.0, skin_mm / spacing_mm)
    if view == "CC":
        return BreastShape(
            view="CC",
            rows=rows,
            cols=cols,
            center_row=rows * float(rng.uniform(0.47, 0.53)),
            depth=cols * float(rng.uniform(0.66, 0.84)),
            half_up=rows * float(rng.uniform(0.30, 0.40)),
            half_down=rows * float(rng.uniform(0.30, 0.40)),
            exponent=float(rng.uniform(1.9, 2.4)),
            tilt=float(rng.uniform(-0.04, 0.04)),
            wiggle=wiggle,
            skin_px=skin_px,
        )
    if view == "MLO":
        return BreastShape(
            view="MLO",
            rows=rows,
            cols=cols,
            center_row=rows * float(rng.uniform(0.30, 0.38)),
            depth=cols * float(rng.uniform(0.80, 0.95)),
            half_up=rows * float(rng.uniform(0.45, 0.55)),
            half_down=rows * float(rng.uniform(0.45, 0.52)),
            exponent=float(rng.uniform(1.8, 2.2)),
            tilt=float(rng.uniform(0.55, 0.70)),
            wiggle=wiggle,
            pectoral_width=cols * float(rng.uniform(0.28, 0.42)),
            pectoral_height=rows * float(rng.uniform(0.50, 0.75)),
            pectoral_curve=float(rng.uniform(0.8, 1.3)),
            skin_px=skin_px,
        )
    raise ValueError(f"unknown view {view!r}; expected 'CC' or 'MLO'")


def normalized_radius(shape: BreastShape, y: FloatArray, x: FloatArray) -> FloatArray:
    """Superellipse radius: < 1 inside the breast, 1 on the skin, > 1 outside."""
    dy = y - np.float32(shape.center_row)
    c, s = np.float32(np.cos(shape.tilt)), np.float32(np.sin(shape.tilt))
    u = x * c + dy * s  # along the nipple axis
    v = -x * s + dy * c  # across it
    half = np.where(v < 0, np.float32(shape.half_up), np.float32(shape.half_down))
    p = np.float32(shape.exponent)
    un = np.abs(u) / np.float32(shape.depth)
    vn = np.abs(v) / half
    rho = (un**p + vn**p) ** (1.0 / p)
    phi = np.arctan2(v, np.maximum(u, 1e-3))
    wobble = np.ones_like(rho)
    for k, (amp, phase) in enumerate(shape.wiggle, start=2):
        wobble += np.float32(amp) * np.cos(k * phi + np.float32(phase))
    rho = rho / wobble
    # Behind the chest wall (u < 0) the breast continues: never "outside" there.
    return np.where(u < 0, np.minimum(rho, vn), rho).astype(np.float32)


def pectoral_fraction(shape: BreastShape, y: FloatArray, x: FloatArray) -> FloatArray:
    """Soft (0–1) pectoral muscle membership on MLO views (upper part of the chest wall side)."""
    if shape.view != "MLO" or shape.pectoral_width <= 0:
        return np.zeros_like(y)
    t = np.clip(y / np.float32(shape.pectoral_height), 0.0, 1.0)
    edge = np.float32(shape.pectoral_width) * (1.0 - t) ** np.float32(shape.pectoral_curve)
    soft = np.float32(max(0.7, 0.003 * shape.cols))
    inside = 1.0 / (1.0 + np.exp(np.clip((x - edge) / soft, -30, 30)))
    return np.where(y < shape.pectoral_height, inside, 0.0).astype(np.float32)


def gland_envelope(shape: BreastShape, rho: FloatArray, x: FloatArray) -> FloatArray:
    """Where glandular tissue lives (0–1): the central cone, not the subcutaneous or
    retromammary fat."""
    central = np.clip(1.0 - ((rho - 0.42) / 0.50) ** 2, 0.0, 1.0)
    retro = 1.0 - np.exp(-np.maximum(x, 0.0) / np.float32(0.12 * shape.depth))
    return (central * retro).astype(np.float32)


def gland_fraction(
    texture: FloatArray, envelope: FloatArray, density: str, sharpness: float = 2.2
) -> FloatArray:
    """Fibroglandular fraction (0–1) from a unit-SD texture, the envelope and the ACR density."""
    if density not in DENSITIES:
        raise ValueError(f"unknown ACR density {density!r}; expected one of a, b, c, d")
    z = texture + 2.4 * envelope - np.float32(_GLAND_THRESHOLD[density])
    return (1.0 / (1.0 + np.exp(-np.float32(sharpness) * z))).astype(np.float32)


def breast_profile(shape: BreastShape, rho: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(thickness factor 0–1 falling off towards the skin, skin-line weight 0–1)."""
    scale = np.float32(min(shape.depth, shape.half_down))
    dist = (1.0 - rho) * scale  # approx. distance to the skin, pixels
    falloff_px = np.float32(max(3.0, 0.06 * scale))
    thickness = np.sqrt(np.clip(dist / falloff_px, 0.0, 1.0))
    thickness = np.where(rho < 1.0, 0.55 + 0.45 * thickness, 0.0)
    skin_px = np.float32(shape.skin_px)
    skin = np.clip(1.0 - np.abs(dist - 0.5 * skin_px) / skin_px, 0.0, 1.0)
    skin = np.where(rho < 1.0, skin, 0.0)
    return thickness.astype(np.float32), skin.astype(np.float32)


def edge_alpha(shape: BreastShape, rho: FloatArray) -> FloatArray:
    """Antialiased breast/background membership (0–1)."""
    scale = np.float32(min(shape.depth, shape.half_down))
    return np.clip((1.0 - rho) * scale + 0.5, 0.0, 1.0).astype(np.float32)
