"""Named presets of the synthetic bilateral mammography generator.

A :class:`SynthPreset` fixes everything that decides how a synthetic study looks and how hard it
is: the stored image size and pixel spacing, the model input size the model issue trains at, the
lesion contrast (in units of the tissue texture's standard deviation — the steep difficulty knob),
lesion sizes, the left/right differences, the density mix and the finding rates.

Three presets are shared with the model issue:

``bench-cpu``
    256 × 208 stored images, 128 × 104 model input: the whole ablation table trains on a 2-core
    CPU. Lesion sizes are enlarged (in mm) so that every finding kind is still visible at the model
    input size. Separately seeded train and test sets (the test set has 1,000 images).
``bench-gpu``
    1024 × 832 stored images (0.225 mm), 512 × 416 model input; physical lesion sizes.
``clinical``
    Full-field 3328 × 2560 images at 0.07 mm (a Hologic-like detector), 1024 × 832 model input.

Sizes are in millimetres and converted with the preset's pixel spacing, so the anatomy looks the
same at every resolution; ``min_calc_radius_px`` keeps calcifications at least that large where
the resolution is coarse.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

DENSITIES: tuple[str, ...] = ("a", "b", "c", "d")

MALIGNANT_KINDS: tuple[str, ...] = (
    "spiculated_mass",
    "irregular_mass",
    "calcification_cluster",
    "architectural_distortion",
    "focal_asymmetry",
)
BENIGN_KINDS: tuple[str, ...] = ("round_mass", "benign_calcifications", "vessel")


@dataclass(frozen=True)
class SynthPreset:
    """Everything that defines a synthetic data set; immutable, so it can key caches and logs.

    Attributes:
        name: preset name (``bench-cpu``, ``bench-gpu``, ``clinical``, or a custom one).
        image_size: stored image size ``(rows, columns)``.
        pixel_spacing_mm: ImagerPixelSpacing (square pixels), mm.
        bits_stored: bit depth of the stored pixel values (BitsAllocated is always 16).
        model_input_size: ``(H, W)`` the model issue resizes the cropped breast to.
        lesion_contrast: peak lesion contrast in units of the SD of the breast tissue intensity
            of the same image. The steep knob: see ``docs/synthetic-data.md``.
        lesion_contrast_jitter: each lesion's contrast is ``lesion_contrast`` times a factor drawn
            uniformly from ``1 ± jitter``.
        mass_radius_mm: range of mass radii (spiculated, irregular, round), mm.
        calc_cluster_radius_mm: range of calcification cluster radii, mm.
        calc_radius_mm: range of single calcification radii, mm.
        min_calc_radius_px: lower bound on a calcification radius in pixels.
        asymmetry_radius_mm: range of focal asymmetry radii, mm.
        deformation_mm: amplitude of the smooth elastic left/right deformation, mm.
        shift_mm: maximum left/right translation, mm.
        rotation_deg: maximum left/right rotation, degrees.
        scale_jitter: maximum relative left/right size (compression) difference.
        gain_jitter: maximum relative left/right gain (exposure) difference.
        independent_texture: weight of the texture that is *not* shared between the sides.
        noise_sd: white (quantum) noise SD, in tissue-SD units.
        density_mix: probabilities of ACR density a, b, c, d.
        density_masking: per density a–d, a factor on lesion contrast (dense tissue hides lesions).
        malignant_fraction: probability that a patient has a malignant finding (in one breast).
        benign_rate: probability that a patient has benign look-alike findings.
        benign_bilateral: given benign look-alikes, probability that they sit at mirrored
            positions in both breasts (otherwise in one breast only).
        kind_weights: relative frequency of each malignant finding kind (order of
            :data:`MALIGNANT_KINDS`).
        train_patients, train_seed, test_patients, test_seed: the default benchmark data sets.
    """

    name: str
    image_size: tuple[int, int]
    pixel_spacing_mm: float
    model_input_size: tuple[int, int]
    bits_stored: int = 14
    lesion_contrast: float = 2.0
    lesion_contrast_jitter: float = 0.25
    mass_radius_mm: tuple[float, float] = (3.0, 12.0)
    calc_cluster_radius_mm: tuple[float, float] = (3.0, 6.0)
    calc_radius_mm: tuple[float, float] = (0.1, 0.3)
    min_calc_radius_px: float = 1.0
    asymmetry_radius_mm: tuple[float, float] = (8.0, 18.0)
    deformation_mm: float = 5.0
    shift_mm: float = 4.0
    rotation_deg: float = 2.0
    scale_jitter: float = 0.03
    gain_jitter: float = 0.10
    independent_texture: float = 0.20
    noise_sd: float = 0.05
    density_mix: tuple[float, float, float, float] = (0.10, 0.40, 0.40, 0.10)
    density_masking: tuple[float, float, float, float] = (1.15, 1.0, 0.9, 0.8)
    malignant_fraction: float = 0.5
    benign_rate: float = 0.6
    benign_bilateral: float = 0.6
    kind_weights: tuple[float, ...] = (0.3, 0.2, 0.2, 0.15, 0.15)
    train_patients: int = 400
    train_seed: int = 1
    test_patients: int = 250
    test_seed: int = 2

    def __post_init__(self) -> None:
        rows, cols = self.image_size
        if rows < 64 or cols < 48:
            raise ValueError(f"preset {self.name}: image_size {self.image_size} is below 64 × 48")
        if not 10 <= self.bits_stored <= 16:
            raise ValueError(f"preset {self.name}: bits_stored must be 10–16")
        if self.pixel_spacing_mm <= 0:
            raise ValueError(f"preset {self.name}: pixel_spacing_mm must be positive")
        if abs(sum(self.density_mix) - 1.0) > 1e-6 or len(self.density_mix) != 4:
            raise ValueError(
                f"preset {self.name}: density_mix must be 4 probabilities summing to 1"
            )
        if len(self.kind_weights) != len(MALIGNANT_KINDS):
            raise ValueError(
                f"preset {self.name}: kind_weights needs {len(MALIGNANT_KINDS)} values"
            )
        for attr in (
            "malignant_fraction",
            "benign_rate",
            "benign_bilateral",
            "independent_texture",
        ):
            if not 0.0 <= getattr(self, attr) <= 1.0:
                raise ValueError(f"preset {self.name}: {attr} must be within [0, 1]")
        if self.lesion_contrast < 0:
            raise ValueError(f"preset {self.name}: lesion_contrast must be >= 0")

    def mm_to_px(self, mm: float) -> float:
        """A length in millimetres as stored-image pixels."""
        return mm / self.pixel_spacing_mm

    def with_(self, **changes: object) -> SynthPreset:
        """A copy with some fields changed, e.g. ``preset.with_(lesion_contrast=2.0)``."""
        return replace(self, **changes)  # type: ignore[arg-type]


BENCH_CPU = SynthPreset(
    name="bench-cpu",
    image_size=(256, 208),
    pixel_spacing_mm=0.9,
    model_input_size=(128, 104),
    # 2.0 → vanilla BR-GAN-code baseline at test AUC 0.668 (below the 0.70–0.85 band of issue 3);
    # raised once, before any bilateral model was trained (docs/synthetic-data.md, calibration).
    lesion_contrast=2.5,
    mass_radius_mm=(6.0, 13.0),
    calc_cluster_radius_mm=(7.0, 11.0),
    calc_radius_mm=(0.6, 1.2),
    min_calc_radius_px=0.9,
    asymmetry_radius_mm=(11.0, 18.0),
    train_patients=400,
    train_seed=1,
    test_patients=250,
    test_seed=2,
)

BENCH_GPU = SynthPreset(
    name="bench-gpu",
    image_size=(1024, 832),
    pixel_spacing_mm=0.225,
    model_input_size=(512, 416),
    lesion_contrast=2.0,
    mass_radius_mm=(4.0, 12.0),
    calc_cluster_radius_mm=(4.0, 7.0),
    calc_radius_mm=(0.2, 0.45),
    min_calc_radius_px=1.0,
    train_patients=1000,
    train_seed=11,
    test_patients=250,
    test_seed=12,
)

CLINICAL = SynthPreset(
    name="clinical",
    image_size=(3328, 2560),
    pixel_spacing_mm=0.07,
    model_input_size=(1024, 832),
    lesion_contrast=2.0,
    mass_radius_mm=(2.5, 15.0),
    calc_cluster_radius_mm=(3.0, 6.0),
    calc_radius_mm=(0.1, 0.3),
    min_calc_radius_px=1.0,
    train_patients=1000,
    train_seed=21,
    test_patients=250,
    test_seed=22,
)

PRESETS: dict[str, SynthPreset] = {p.name: p for p in (BENCH_CPU, BENCH_GPU, CLINICAL)}


def get_preset(name: str) -> SynthPreset:
    """The preset called ``name``; ``ValueError`` naming the known presets otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(PRESETS)
        raise ValueError(f"unknown synth preset {name!r}; choose one of: {known}") from None
