"""Left and right: one shared tissue pattern, two honestly different breasts.

Both breasts of a synthetic patient share, per view, one :class:`SharedView` — outline, a 1/f³
gland texture, a fine texture and any bilateral (benign) findings — drawn in the canonical frame.
Each side then sees it through its own :class:`SideTransform`: a small rotation, shift and scale
(positioning, compression), a smooth elastic displacement, its own gain and exposure, a fraction of
independent texture and its own quantum noise. So left and right correlate strongly once mirrored,
yet plain subtraction leaves structured residue everywhere and does not single out a lesion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import map_coordinates

from brgan_core.synth import anatomy
from brgan_core.synth.anatomy import BreastShape
from brgan_core.synth.presets import SynthPreset
from brgan_core.synth.texture import power_law_noise, smooth_field

FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class SharedView:
    """What both breasts share for one view, in the canonical frame."""

    shape: BreastShape
    texture: FloatArray
    fine: FloatArray
    layer: FloatArray  # bilateral findings, in lesion-contrast units (times the side's tissue SD)


@dataclass(frozen=True)
class SideTransform:
    """How one side differs from the shared anatomy: maps output pixels to shared pixels."""

    angle: float
    scale: float
    shift: tuple[float, float]
    elastic: tuple[FloatArray, FloatArray]
    gain: float
    offset: float
    gain_field: FloatArray

    def source_coordinates(
        self, shape: BreastShape, elastic: bool = True
    ) -> tuple[FloatArray, FloatArray]:
        """Shared-frame coordinates ``(ys, xs)`` seen by every output pixel of this side.

        With ``elastic=False`` only the rigid part (rotation, scale, shift) is applied: the skin
        outline and the pectoral muscle move rigidly, the tissue inside also deforms.
        """
        rows, cols = shape.rows, shape.cols
        y, x = np.meshgrid(
            np.arange(rows, dtype=np.float32), np.arange(cols, dtype=np.float32), indexing="ij"
        )
        cy = np.float32(shape.center_row)
        c, s = np.float32(np.cos(self.angle)), np.float32(np.sin(self.angle))
        dy, dx = (y - cy) / np.float32(self.scale), x / np.float32(self.scale)
        ys = cy + c * dy - s * dx + np.float32(self.shift[0])
        xs = s * dy + c * dx + np.float32(self.shift[1])
        if elastic:
            ys, xs = ys + self.elastic[0], xs + self.elastic[1]
        return ys.astype(np.float32), xs.astype(np.float32)

    def to_output(self, shape: BreastShape, point: tuple[float, float]) -> tuple[float, float]:
        """Approximate output position of a shared-frame point (ignores the small elastic part)."""
        cy = shape.center_row
        py, px = point[0] - cy - self.shift[0], point[1] - self.shift[1]
        c, s = np.cos(self.angle), np.sin(self.angle)
        dy, dx = c * py + s * px, -s * py + c * px
        return (cy + dy * self.scale, dx * self.scale)


def identity_transform(rows: int, cols: int) -> SideTransform:
    """No difference at all (tests and illustrations)."""
    zero = np.zeros((rows, cols), np.float32)
    return SideTransform(0.0, 1.0, (0.0, 0.0), (zero, zero), 1.0, 0.0, np.ones_like(zero))


def sample_transform(preset: SynthPreset, rng: np.random.Generator) -> SideTransform:
    """Draw one side's positioning, compression, elastic and exposure differences."""
    rows, cols = preset.image_size
    amp = np.float32(preset.mm_to_px(preset.deformation_mm))
    shift = preset.mm_to_px(preset.shift_mm)
    elastic = (smooth_field((rows, cols), rng, 5) * amp, smooth_field((rows, cols), rng, 5) * amp)
    return SideTransform(
        angle=float(np.deg2rad(rng.uniform(-preset.rotation_deg, preset.rotation_deg))),
        scale=float(1.0 + rng.uniform(-preset.scale_jitter, preset.scale_jitter)),
        shift=(float(rng.uniform(-shift, shift)), float(rng.uniform(-shift, shift))),
        elastic=elastic,
        gain=float(1.0 + rng.uniform(-preset.gain_jitter, preset.gain_jitter)),
        offset=float(rng.uniform(-0.02, 0.02)),
        gain_field=(1.0 + 0.03 * smooth_field((rows, cols), rng, 3)).astype(np.float32),
    )


def sample_shared_view(
    preset: SynthPreset, view: str, rng: np.random.Generator
) -> tuple[BreastShape, FloatArray, FloatArray]:
    """Outline, gland texture (1/f³) and fine texture (1/f²) shared by both sides of ``view``."""
    rows, cols = preset.image_size
    shape = anatomy.sample_shape(
        view, rows, cols, rng, skin_mm=1.5, spacing_mm=preset.pixel_spacing_mm
    )
    texture = power_law_noise((rows, cols), rng, beta=3.0, stretch=1.8)
    fine = power_law_noise((rows, cols), rng, beta=2.2, stretch=2.5)
    return shape, texture, fine


@dataclass
class SideCanvas:
    """One breast while it is being drawn, in the canonical frame (chest wall at column 0)."""

    tissue: FloatArray  # display intensity 0–1 before thickness fall-off, skin and gain
    rho: FloatArray  # normalized breast radius at each output pixel
    pectoral: FloatArray  # pectoral muscle membership 0–1
    alpha: FloatArray  # breast/background membership 0–1
    tissue_sd: float  # SD of tissue intensity inside the breast: the lesion contrast unit

    @property
    def region(self) -> FloatArray:
        """Where findings may be drawn: the breast without skin margin and pectoral muscle."""
        inner = np.clip((0.97 - self.rho) / 0.05, 0.0, 1.0)
        return (inner * (1.0 - self.pectoral)).astype(np.float32)


def render_tissue(
    shared: SharedView,
    transform: SideTransform,
    density: str,
    preset: SynthPreset,
    rng: np.random.Generator,
) -> SideCanvas:
    """Warp the shared anatomy into this side and mix in its independent texture."""
    shape = shared.shape
    ys, xs = transform.source_coordinates(shape)
    coords = np.stack([ys, xs])
    warped = map_coordinates(shared.texture, coords, order=1, mode="mirror")
    fine = map_coordinates(shared.fine, coords, order=1, mode="mirror")
    w = np.float32(preset.independent_texture)
    own = power_law_noise((shape.rows, shape.cols), rng, beta=3.0, stretch=1.8)
    texture = ((1 - w) * warped + w * own) / np.float32(np.hypot(1 - w, w))
    rigid_y, rigid_x = transform.source_coordinates(shape, elastic=False)
    rho = anatomy.normalized_radius(shape, rigid_y, rigid_x)
    envelope = anatomy.gland_envelope(shape, anatomy.normalized_radius(shape, ys, xs), xs)
    gland = anatomy.gland_fraction(texture, envelope, density)
    tissue = anatomy.FAT_LEVEL + (anatomy.GLAND_LEVEL - anatomy.FAT_LEVEL) * gland
    tissue = tissue + np.float32(0.035) * fine
    pectoral = anatomy.pectoral_fraction(shape, rigid_y, rigid_x)
    towards_axilla = np.clip(1.0 - rigid_y / np.float32(max(shape.pectoral_height, 1.0)), 0, 1)
    muscle = (
        anatomy.PECTORAL_LEVEL
        + np.float32(0.06) * towards_axilla
        + np.float32(0.03) * fine
        + np.float32(0.015) * texture
    )
    tissue = tissue * (1 - pectoral) + muscle * pectoral
    interior = (rho < 0.85) & (pectoral < 0.5)
    sd = float(tissue[interior].std()) if interior.any() else 0.05
    if np.any(shared.layer):
        layer = map_coordinates(shared.layer, coords, order=1, mode="constant")
        tissue = tissue + np.float32(sd) * layer * (1 - pectoral)
    alpha = anatomy.edge_alpha(shape, rho)
    return SideCanvas(tissue.astype(np.float32), rho, pectoral, alpha, max(sd, 1e-3))


def finalize(
    canvas: SideCanvas,
    shape: BreastShape,
    transform: SideTransform,
    preset: SynthPreset,
    rng: np.random.Generator,
) -> FloatArray:
    """Thickness fall-off, skin line, background, gain/exposure and quantum noise → 0–1 image."""
    thickness, skin = anatomy.breast_profile(shape, canvas.rho)
    breast = canvas.tissue * thickness + np.float32(anatomy.SKIN_BOOST) * skin
    image = canvas.alpha * breast + (1 - canvas.alpha) * np.float32(anatomy.BACKGROUND_LEVEL)
    image = image * np.float32(transform.gain) * transform.gain_field
    image = image + np.float32(transform.offset) * canvas.alpha
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    image = image + np.float32(preset.noise_sd * canvas.tissue_sd) * noise * (
        0.3 + 0.7 * canvas.alpha
    )
    return np.clip(image, 0.0, 1.0).astype(np.float32)
