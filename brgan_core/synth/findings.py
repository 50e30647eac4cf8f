"""Findings: malignant lesions and the benign look-alikes that make single images ambiguous.

Each ``draw_*`` function returns a :class:`FindingPatch`: a small float32 intensity patch (peak
about 1, to be scaled by the lesion contrast), a boolean ground-truth mask of the same size, and
the mask's box. Sizes come from the preset in millimetres.

Malignant: ``spiculated_mass``, ``irregular_mass``, ``calcification_cluster`` (pleomorphic),
``architectural_distortion``, ``focal_asymmetry``.
Benign look-alikes: ``round_mass`` (circumscribed), ``benign_calcifications`` (scattered, round,
coarse), ``vessel``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter

from brgan_core.synth.presets import SynthPreset
from brgan_core.synth.texture import power_law_noise

FloatArray = NDArray[np.float32]
BoolArray = NDArray[np.bool_]

# Peak intensity of each kind relative to the preset's lesion contrast. Small and thin findings
# need more peak contrast to carry the same visibility as a mass.
RELATIVE_CONTRAST: dict[str, float] = {
    "spiculated_mass": 1.0,
    "irregular_mass": 1.0,
    "calcification_cluster": 2.6,
    "architectural_distortion": 1.0,
    "focal_asymmetry": 1.0,
    "round_mass": 1.0,
    "benign_calcifications": 3.0,
    "vessel": 0.45,
}

BIRADS_OF_KIND: dict[str, str] = {
    "spiculated_mass": "5",
    "irregular_mass": "4c",
    "calcification_cluster": "4b",
    "architectural_distortion": "4b",
    "focal_asymmetry": "4a",
}
_BIRADS_ORDER = ("4a", "4b", "4c", "5")


@dataclass(frozen=True)
class FindingPatch:
    """One finding drawn around the centre of a square patch."""

    kind: str
    malignant: bool
    patch: FloatArray
    mask: BoolArray

    @property
    def half(self) -> int:
        return self.patch.shape[0] // 2

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of the mask in patch pixels, end-exclusive."""
        return mask_box(self.mask)


def mask_box(mask: BoolArray) -> tuple[int, int, int, int]:
    """Bounding box ``(x0, y0, x1, y1)``, end-exclusive, of the true pixels of ``mask``."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return (0, 0, 0, 0)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def worst_birads(kinds: list[str]) -> str:
    """The highest BI-RADS-like category among malignant ``kinds``."""
    cats = [BIRADS_OF_KIND[k] for k in kinds if k in BIRADS_OF_KIND]
    return max(cats, key=_BIRADS_ORDER.index) if cats else "1"


def _grid(half: int) -> tuple[FloatArray, FloatArray]:
    ax = np.arange(-half, half + 1, dtype=np.float32)
    return np.meshgrid(ax, ax, indexing="ij")


def _radius_px(preset: SynthPreset, rng: np.random.Generator, mm: tuple[float, float]) -> float:
    return preset.mm_to_px(float(rng.uniform(*mm)))


def _harmonic_outline(
    rng: np.random.Generator, phi: FloatArray, amp: float, kmax: int
) -> FloatArray:
    out = np.ones_like(phi)
    for k in range(2, kmax + 1):
        a = float(rng.uniform(0, amp)) / (k**0.5)
        out += np.float32(a) * np.cos(k * phi + np.float32(rng.uniform(0, 2 * np.pi)))
    return out


def _dome(dist_norm: FloatArray, edge_px: float, radius: float) -> FloatArray:
    """Mass profile: a flattened dome with a soft edge ``edge_px`` wide."""
    inside = np.clip((1.0 - dist_norm) * radius / max(edge_px, 0.5), 0.0, 1.0)
    dome = np.sqrt(np.clip(1.0 - dist_norm**2, 0.0, 1.0))
    return (inside * (0.45 + 0.55 * dome)).astype(np.float32)


def _segment_distance(
    yy: FloatArray, xx: FloatArray, p0: tuple[float, float], p1: tuple[float, float]
) -> tuple[FloatArray, FloatArray]:
    """Distance of every pixel to segment p0→p1 and the position along it (0–1)."""
    dy, dx = p1[0] - p0[0], p1[1] - p0[1]
    length2 = max(dy * dy + dx * dx, 1e-6)
    t = np.clip(((yy - p0[0]) * dy + (xx - p0[1]) * dx) / length2, 0.0, 1.0)
    d = np.hypot(yy - (p0[0] + t * dy), xx - (p0[1] + t * dx))
    return d.astype(np.float32), t.astype(np.float32)


def _lines(
    yy: FloatArray,
    xx: FloatArray,
    rng: np.random.Generator,
    n: int,
    r_start: float,
    length: tuple[float, float],
    width: float,
) -> FloatArray:
    """Thin, slightly curved, tapering radial lines (spicules) starting at radius ``r_start``."""
    out = np.zeros_like(yy)
    for angle in rng.uniform(0, 2 * np.pi, n):
        ln = float(rng.uniform(*length))
        strength = float(rng.uniform(0.45, 1.0))
        p0 = (r_start * np.sin(angle), r_start * np.cos(angle))
        a1 = angle + float(rng.normal(0, 0.12))
        mid = (p0[0] + 0.5 * ln * np.sin(a1), p0[1] + 0.5 * ln * np.cos(a1))
        a2 = a1 + float(rng.normal(0, 0.25))
        p1 = (mid[0] + 0.5 * ln * np.sin(a2), mid[1] + 0.5 * ln * np.cos(a2))
        for (q0, q1), t0 in (((p0, mid), 0.0), ((mid, p1), 0.5)):
            d, t = _segment_distance(yy, xx, q0, q1)
            along = t0 + 0.5 * t
            w = width * (1.0 - 0.6 * along)
            line = np.exp(-((d / w) ** 2)) * (1.0 - 0.8 * along) * strength
            out = np.maximum(out, line)
    return out


def draw_spiculated_mass(preset: SynthPreset, rng: np.random.Generator) -> FindingPatch:
    r = _radius_px(preset, rng, preset.mass_radius_mm)
    spicule = (0.8 * r, 2.0 * r)
    half = int(np.ceil(r * 1.15 + spicule[1])) + 2
    yy, xx = _grid(half)
    phi = np.arctan2(yy, xx)
    radius = r * _harmonic_outline(rng, phi, 0.10, 9)
    dist = np.hypot(yy, xx) / radius
    core = gaussian_filter(_dome(dist, 0.25 * r, r), max(0.4, 0.04 * r))
    width = max(0.7, 0.09 * r)
    lines = _lines(yy, xx, rng, int(rng.integers(8, 18)), 0.8 * r, spicule, width)
    patch = np.maximum(core, 0.55 * lines)
    return FindingPatch("spiculated_mass", True, patch.astype(np.float32), core > 0.3)


def draw_irregular_mass(preset: SynthPreset, rng: np.random.Generator) -> FindingPatch:
    r = _radius_px(preset, rng, preset.mass_radius_mm)
    half = int(np.ceil(r * 1.6)) + 2
    yy, xx = _grid(half)
    phi = np.arctan2(yy, xx)
    radius = r * _harmonic_outline(rng, phi, 0.45, 7)
    dist = np.hypot(yy, xx) / radius
    core = _dome(dist, 0.3 * r, r)
    core = gaussian_filter(core, max(0.4, 0.05 * r))
    return FindingPatch("irregular_mass", True, core.astype(np.float32), core > 0.3)


def _speck(
    yy: FloatArray, xx: FloatArray, cy: float, cx: float, r: float, aspect: float, angle: float
) -> FloatArray:
    c, s = np.cos(angle), np.sin(angle)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    return np.exp(-((u / (r * aspect)) ** 2 + (v / r) ** 2)).astype(np.float32)


def draw_calcification_cluster(preset: SynthPreset, rng: np.random.Generator) -> FindingPatch:
    """Pleomorphic cluster: 5–16 irregular, elongated or branching specks within ~1 cm²."""
    rc = _radius_px(preset, rng, preset.calc_cluster_radius_mm)
    half = int(np.ceil(rc * 1.3)) + 3
    yy, xx = _grid(half)
    patch = np.zeros_like(yy)
    n = int(rng.integers(5, 17))
    centers = []
    for _ in range(n):
        rad = rc * np.sqrt(rng.uniform(0, 1))
        ang = rng.uniform(0, 2 * np.pi)
        cy, cx = rad * np.sin(ang), rad * np.cos(ang)
        r = max(preset.min_calc_radius_px, _radius_px(preset, rng, preset.calc_radius_mm))
        aspect = float(rng.uniform(1.0, 3.0))
        angle = float(rng.uniform(0, np.pi))
        speck = _speck(yy, xx, cy, cx, r, aspect, angle)
        if rng.uniform() < 0.3:  # branching: a second arm
            speck = np.maximum(speck, _speck(yy, xx, cy, cx, r, aspect, angle + 1.1))
        patch = np.maximum(patch, speck * np.float32(rng.uniform(0.7, 1.0)))
        centers.append((cy, cx))
    reach = 0.35 * rc + 2.0 * preset.min_calc_radius_px
    near = np.min([np.hypot(yy - cy, xx - cx) for cy, cx in centers], axis=0)
    return FindingPatch("calcification_cluster", True, patch, near <= reach)


def draw_architectural_distortion(preset: SynthPreset, rng: np.random.Generator) -> FindingPatch:
    r = _radius_px(preset, rng, preset.mass_radius_mm) * 1.3
    half = int(np.ceil(r * 2.2)) + 2
    yy, xx = _grid(half)
    width = max(0.6, 0.05 * r)
    lines = _lines(yy, xx, rng, int(rng.integers(8, 16)), 0.1 * r, (1.0 * r, 2.0 * r), width)
    center = np.exp(-(yy**2 + xx**2) / (2 * (0.3 * r) ** 2)).astype(np.float32)
    patch = np.maximum(lines, 0.45 * center)
    support = gaussian_filter(patch, max(1.0, 0.3 * r))
    return FindingPatch(
        "architectural_distortion", True, patch.astype(np.float32), support > 0.25 * support.max()
    )


def draw_focal_asymmetry(preset: SynthPreset, rng: np.random.Generator) -> FindingPatch:
    r = _radius_px(preset, rng, preset.asymmetry_radius_mm)
    half = int(np.ceil(r * 1.5)) + 2
    yy, xx = _grid(half)
    phi = np.arctan2(yy, xx)
    radius = r * _harmonic_outline(rng, phi, 0.3, 4)
    dist = np.hypot(yy, xx) / radius
    blob = np.exp(-2.5 * dist**2).astype(np.float32)
    texture = power_law_noise(yy.shape, rng, beta=2.6)
    patch = blob * np.clip(1.0 + 0.35 * texture, 0.0, None)
    return FindingPatch("focal_asymmetry", True, patch.astype(np.float32), blob > 0.35)


def draw_round_mass(preset: SynthPreset, rng: np.random.Generator) -> FindingPatch:
    r = _radius_px(preset, rng, preset.mass_radius_mm)
    half = int(np.ceil(r * 1.5)) + 2
    yy, xx = _grid(half)
    aspect = float(rng.uniform(1.0, 1.4))
    angle = float(rng.uniform(0, np.pi))
    c, s = np.cos(angle), np.sin(angle)
    u = (xx * c + yy * s) / aspect
    v = -xx * s + yy * c
    dist = np.hypot(u, v) / r
    core = _dome(dist, 0.8, r)
    return FindingPatch("round_mass", False, core, core > 0.3)


def draw_benign_calcifications(preset: SynthPreset, rng: np.random.Generator) -> FindingPatch:
    """Scattered, round, coarse calcifications spread over several centimetres."""
    spread = _radius_px(preset, rng, preset.calc_cluster_radius_mm) * 3.0
    half = int(np.ceil(spread)) + 4
    yy, xx = _grid(half)
    patch = np.zeros_like(yy)
    for _ in range(int(rng.integers(3, 8))):
        rad = spread * np.sqrt(rng.uniform(0.1, 1.0))
        ang = rng.uniform(0, 2 * np.pi)
        r = 1.8 * max(preset.min_calc_radius_px, _radius_px(preset, rng, preset.calc_radius_mm))
        speck = _speck(yy, xx, rad * np.sin(ang), rad * np.cos(ang), r, 1.0, 0.0)
        patch = np.maximum(patch, speck)
    return FindingPatch("benign_calcifications", False, patch, patch > 0.3)


def draw_vessel(preset: SynthPreset, rng: np.random.Generator) -> FindingPatch:
    """A curved tubular vessel a few centimetres long, about 1–2 mm wide."""
    length = preset.mm_to_px(float(rng.uniform(35.0, 70.0)))
    half = int(np.ceil(length / 2)) + 3
    yy, xx = _grid(half)
    angle = float(rng.uniform(-0.5, 0.5))  # roughly along the chest-wall → nipple axis
    p0 = np.array([-np.sin(angle), -np.cos(angle)]) * length / 2
    p2 = -p0
    p1 = np.array([rng.normal(0, 0.2), rng.normal(0, 0.2)]) * length
    width = max(0.7, preset.mm_to_px(float(rng.uniform(0.5, 1.1))))
    out = np.zeros_like(yy)
    ts = np.linspace(0, 1, 9)
    pts = [(1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2 for t in ts]
    for a, b in itertools.pairwise(pts):
        d, _ = _segment_distance(yy, xx, (a[0], a[1]), (b[0], b[1]))
        out = np.maximum(out, np.exp(-((d / width) ** 2)))
    return FindingPatch("vessel", False, out.astype(np.float32), out > 0.3)


DRAWERS: dict[str, Callable[[SynthPreset, np.random.Generator], FindingPatch]] = {
    "spiculated_mass": draw_spiculated_mass,
    "irregular_mass": draw_irregular_mass,
    "calcification_cluster": draw_calcification_cluster,
    "architectural_distortion": draw_architectural_distortion,
    "focal_asymmetry": draw_focal_asymmetry,
    "round_mass": draw_round_mass,
    "benign_calcifications": draw_benign_calcifications,
    "vessel": draw_vessel,
}


def draw(kind: str, preset: SynthPreset, rng: np.random.Generator) -> FindingPatch:
    """Draw one finding of ``kind``; ``ValueError`` for an unknown kind."""
    try:
        drawer = DRAWERS[kind]
    except KeyError:
        raise ValueError(f"unknown finding kind {kind!r}; known: {', '.join(DRAWERS)}") from None
    return drawer(preset, rng)


def paste(
    image: FloatArray,
    finding: FindingPatch,
    center: tuple[float, float],
    amplitude: float,
    region: BoolArray | None = None,
    mask_out: BoolArray | None = None,
) -> tuple[int, int, int, int] | None:
    """Add ``amplitude × patch`` to ``image`` centred at ``center`` (row, col), in place.

    The finding is clipped to ``region`` (the breast) where given. Its mask, clipped the same way,
    is OR-ed into ``mask_out`` when given. Returns the clipped box ``(x0, y0, x1, y1)`` in image
    pixels, or ``None`` when nothing of the mask landed inside.
    """
    rows, cols = image.shape
    h = finding.half
    cy, cx = round(center[0]), round(center[1])
    y0, x0 = cy - h, cx - h
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(rows, y0 + finding.patch.shape[0]), min(cols, x0 + finding.patch.shape[1])
    if ys >= ye or xs >= xe:
        return None
    sub = (slice(ys, ye), slice(xs, xe))
    psub = (slice(ys - y0, ye - y0), slice(xs - x0, xe - x0))
    contribution = finding.patch[psub] * np.float32(amplitude)
    mask = finding.mask[psub]
    if region is not None:
        contribution = contribution * region[sub]
        mask = mask & (region[sub] > 0.5)
    image[sub] += contribution
    if not mask.any():
        return None
    if mask_out is not None:
        mask_out[sub] |= mask
    bx0, by0, bx1, by1 = mask_box(mask)
    return (bx0 + xs, by0 + ys, bx1 + xs, by1 + ys)
