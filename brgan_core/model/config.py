"""The BR-GAN model configuration: one frozen dataclass, stored in every checkpoint.

:class:`BRGANConfig` says which backbone extracts the features, which parts of the paper's
model (Sect. 2, Fig. 2) are built, and how the terms of the joint objective (Eq. 4) are
weighted. The switches reproduce the rows of the paper's ablation (Table 3); the named
:data:`PRESETS` are those rows plus the two baselines (vanilla, CycleGAN with a healthy
reference). ``to_dict`` / ``from_dict`` round-trip through JSON; a bad key or value raises
``ValueError`` naming it.

Switches (see ``docs/model.md`` for the full mapping to Table 3):

``bilateral``           ``none`` — vanilla single-view classifier on f_T;
                        ``sbf`` — simple bilateral fusion: classifier on concat[f_T − f_C, f_T];
                        ``gan`` — BR-GAN: classifier on concat[f_T − f_H, f_T], f_H = G_T2C(f_T).
``consistency``         ``none`` — G_T2C + D_C only (Table 3 row "GAN × × ×": no G_C2T, no D_T);
                        ``single`` — G_C2T, D_T and L_c^T; ``double`` — also L_c^C (Eq. 2 text).
``residual_preserved``  feed f_P to G_C2T, i.e. G_C2T([f, f_P]) (paper); off = plain CycleGAN
                        back translation G_C2T(f).
``residual_embedding``  L_RE (Eq. 3) with the malignancy head p_m (and its auxiliary CE).
``mask``                f_P = f_T ⊙ A, A = spatial softmax of f_T − f_H (Eq. 2);
                        off: f_P = f_T − f_H.
``paired_generator``    our extension, off in every paper row: G_T2C also sees the reference,
                        f_H = G_T2C(f_T | f_C), so the contralateral is used at inference too
                        (preset ``brgan_paired``). The paper's G_T2C sees f_T only.
``contralateral_branch`` our extension (issue 11 §4), off in every paper row: BR-GAN's generation
                        and classification plus an f_T − f_C branch, classifier on
                        concat[f_T − f_H, f_T, f_T − f_C]; the branch is zeros when no
                        contralateral is given, and ``contralateral_dropout`` zeroes it for that
                        fraction of training samples so the model learns to score without one
                        (preset ``brgan_bilateral``).
``reference``           ``contralateral`` (BR-GAN) or ``random_healthy`` (the "CycleGAN with a
                        healthy reference" baseline). The network is the same; only the data
                        pipeline reads this key, to decide what it passes as the reference image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

BACKBONES = ("alexnet", "resnet18", "resnet50", "tiny", "cnn4")
POOLING = ("avg", "max")
BILATERAL = ("none", "sbf", "gan")
CONSISTENCY = ("none", "single", "double")
REFERENCES = ("contralateral", "random_healthy")
GAN_LOSSES = ("log", "lsgan")

#: Loss-weight keys of Eq. 4 (plus the auxiliary p_m supervision), all default 1.
WEIGHT_KEYS = (
    "weight_cls",
    "weight_re",
    "weight_aux_pm",
    "weight_gan_t2c",
    "weight_gan_c2t",
    "weight_cyc_t",
    "weight_cyc_c",
)


@dataclass(frozen=True)
class BRGANConfig:
    """Everything needed to build a :class:`~brgan_core.model.brgan.BRGAN` (defaults: full BR-GAN).

    Attributes:
        backbone: feature extractor shared by target and contralateral; ``tiny`` is a 3-layer
            CNN (stride 8, 64 channels) for tests and CPU smoke runs; ``cnn4`` is four double
            conv/BN/ReLU blocks with max-pooling (stride 16, 128 channels) for the CPU benchmark.
        pooling: global pooling of the heads (p_m and the classifier): ``avg`` (GAP, the CAM
            paper's head) or ``max`` (GMP; suits small lesions, DESIGN.md calibration notes). The
            CAM is the same linear map of the features either way.
        in_channels: channels of the input image (1 for mammograms). Torchvision stems are
            adapted to it (RGB filters summed, which equals replicating a grey image to RGB).
        pretrained_weights: optional *local* ImageNet weights file for the torchvision backbone
            (``.pth`` read with ``torch.load(weights_only=True)``, or ``.safetensors``). Nothing
            is ever downloaded.
        bottleneck: inner width of the generators' 1×1 bottleneck residual blocks; ``None`` =
            feature channels // 8 (at least 16), e.g. 2048→256→2048 on ResNet-50.
        disc_width: hidden width of the feature-level discriminators; ``None`` = as bottleneck.
        paired_generator: G_T2C conditioned on the reference features, f_H = ReLU(f_T +
            block(concat[f_T, f_C])) (our extension, not the paper's reading; ``predict`` then
            needs and encodes the contralateral). Default off: the paper's f_H = G_T2C(f_T).
        contralateral_branch: add the f_T − f_C branch to the classifier input (our extension;
            ``predict`` uses the contralateral when given and scores without it otherwise).
        contralateral_dropout: fraction in [0, 1) of training samples whose branch is zeroed
            (each sample drawn independently every step), as if the contralateral were missing.
        gan_loss: ``log`` (the paper's Eq. 1, as BCE with logits) or ``lsgan`` (least squares).
        weight_*: the weights of Eq. 4's terms; ``weight_aux_pm`` weighs the cross-entropy that
            supervises the malignancy head p_m with the image label (our reading, DESIGN.md).
    """

    backbone: str = "resnet18"
    in_channels: int = 1
    pretrained_weights: Path | None = None
    bottleneck: int | None = None
    disc_width: int | None = None
    pooling: str = "avg"
    bilateral: str = "gan"
    consistency: str = "double"
    residual_preserved: bool = True
    residual_embedding: bool = True
    mask: bool = True
    paired_generator: bool = False
    contralateral_branch: bool = False
    contralateral_dropout: float = 0.0
    reference: str = "contralateral"
    gan_loss: str = "log"
    weight_cls: float = 1.0
    weight_re: float = 1.0
    weight_aux_pm: float = 1.0
    weight_gan_t2c: float = 1.0
    weight_gan_c2t: float = 1.0
    weight_cyc_t: float = 1.0
    weight_cyc_c: float = 1.0

    def __post_init__(self) -> None:
        if self.pretrained_weights is not None and not isinstance(self.pretrained_weights, Path):
            object.__setattr__(self, "pretrained_weights", Path(self.pretrained_weights))
        _check_choice("backbone", self.backbone, BACKBONES)
        _check_choice("pooling", self.pooling, POOLING)
        _check_choice("bilateral", self.bilateral, BILATERAL)
        _check_choice("consistency", self.consistency, CONSISTENCY)
        _check_choice("reference", self.reference, REFERENCES)
        _check_choice("gan_loss", self.gan_loss, GAN_LOSSES)
        _check_int("in_channels", self.in_channels, allow_none=False)
        _check_int("bottleneck", self.bottleneck, allow_none=True)
        _check_int("disc_width", self.disc_width, allow_none=True)
        for key in (
            "residual_preserved",
            "residual_embedding",
            "mask",
            "paired_generator",
            "contralateral_branch",
        ):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key} must be true or false, not {getattr(self, key)!r}")
        for key in WEIGHT_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number, not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{key} must be a finite number >= 0, not {value!r}")
            object.__setattr__(self, key, float(value))
        dropout = self.contralateral_dropout
        if isinstance(dropout, bool) or not isinstance(dropout, int | float):
            raise ValueError(f"contralateral_dropout must be a number, not {dropout!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"contralateral_dropout must be in [0, 1), not {dropout!r}")
        object.__setattr__(self, "contralateral_dropout", float(dropout))
        if self.pretrained_weights is not None and self.backbone in ("tiny", "cnn4"):
            raise ValueError(f"pretrained_weights: the {self.backbone} backbone has no weights")
        self._check_switches()

    def _check_switches(self) -> None:
        """Refuse combinations that build nothing coherent (each names the key to change)."""
        if self.bilateral != "gan":
            for key, off in (
                ("consistency", "none"),
                ("paired_generator", False),
                ("contralateral_branch", False),
                ("residual_preserved", False),
                ("residual_embedding", False),
                ("mask", False),
            ):
                if getattr(self, key) != off:
                    raise ValueError(
                        f"{key}: bilateral={self.bilateral!r} builds no generators, so {key} "
                        f"must be {off!r} (or use BRGANConfig.preset('vanilla' / 'sbf'))"
                    )
        if self.contralateral_dropout and not self.contralateral_branch:
            raise ValueError(
                "contralateral_dropout: only the contralateral_branch can be dropped; set "
                "contralateral_branch=true or contralateral_dropout=0"
            )
        if self.contralateral_branch and self.paired_generator:
            raise ValueError(
                "contralateral_branch: paired_generator already needs the contralateral at "
                "inference; use one of the two"
            )
        if self.consistency == "none" and self.residual_preserved:
            raise ValueError(
                "residual_preserved: consistency='none' builds no G_C2T to feed f_P to; set "
                "residual_preserved=false (Table 3 row 'GAN × × ×' is preset 'gan')"
            )
        if self.mask and not (self.residual_preserved or self.residual_embedding):
            raise ValueError(
                "mask: f_P is neither fed to G_C2T nor used by L_RE, so the residual-preserved "
                "mask has no effect; set mask=false"
            )

    # -- derived properties -------------------------------------------------------------
    @property
    def builds_generators(self) -> bool:
        """G_T2C and D_C exist (bilateral = gan)."""
        return self.bilateral == "gan"

    @property
    def builds_back_translation(self) -> bool:
        """G_C2T and D_T exist (bilateral = gan with a consistency loss)."""
        return self.bilateral == "gan" and self.consistency != "none"

    @property
    def needs_contralateral_at_inference(self) -> bool:
        """``predict`` encodes the contralateral when given, in one backbone pass with the
        target (SBF, a paired G_T2C, the contralateral branch)."""
        return self.requires_contralateral_at_inference or self.contralateral_branch

    @property
    def requires_contralateral_at_inference(self) -> bool:
        """``predict`` cannot score without the contralateral (SBF, a paired G_T2C); the
        contralateral branch scores without it (the branch is then zeros)."""
        return self.bilateral == "sbf" or self.paired_generator

    @property
    def computes_preserved(self) -> bool:
        """The residual-preserved module (f_P) is computed."""
        return self.residual_preserved or self.residual_embedding

    # -- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings) that :meth:`from_dict` reads back."""
        data = asdict(self)
        if data["pretrained_weights"] is not None:
            data["pretrained_weights"] = str(data["pretrained_weights"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BRGANConfig:
        """Build from a dict (a checkpoint's ``model_config`` or a TOML table).

        Raises ``ValueError`` naming the first unknown key or bad value.
        """
        if not isinstance(data, dict):
            raise ValueError(f"model config must be a mapping, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ValueError(
                    f"{key}: unknown model config key (known keys: {', '.join(sorted(known))})"
                )
        return cls(**data)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> BRGANConfig:
        """A row of Table 3 or a baseline by name (see :data:`PRESETS`), with overrides."""
        if name not in PRESETS:
            raise ValueError(f"preset: unknown name {name!r} (known: {', '.join(PRESETS)})")
        return replace(cls(**PRESETS[name]), **overrides) if overrides else cls(**PRESETS[name])


def _check_choice(key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}, not {value!r}")


def _check_int(key: str, value: object, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be a positive integer, not {value!r}")


_OFF: dict[str, Any] = {
    "consistency": "none",
    "residual_preserved": False,
    "residual_embedding": False,
    "mask": False,
}

#: Table 3 rows (Bilateral, L_c, L_RE, Mask) and the baselines, as config overrides.
PRESETS: dict[str, dict[str, Any]] = {
    # × × × ×  — vanilla CNN (Table 1 "Vanilla*")
    "vanilla": {**_OFF, "bilateral": "none"},
    # SBF × × ×
    "sbf": {**_OFF, "bilateral": "sbf"},
    # GAN × × ×  — G_T2C + D_C, no back translation
    "gan": {**_OFF, "bilateral": "gan"},
    # GAN Single × ✓
    "gan_single_mask": {
        "bilateral": "gan",
        "consistency": "single",
        "residual_preserved": True,
        "residual_embedding": False,
        "mask": True,
    },
    # GAN Double × ✓
    "gan_double_mask": {
        "bilateral": "gan",
        "consistency": "double",
        "residual_preserved": True,
        "residual_embedding": False,
        "mask": True,
    },
    # GAN Double ✓ ×
    "gan_double_re": {
        "bilateral": "gan",
        "consistency": "double",
        "residual_preserved": True,
        "residual_embedding": True,
        "mask": False,
    },
    # GAN Double ✓ ✓  — the proposed BR-GAN (also the dataclass defaults)
    "brgan": {
        "bilateral": "gan",
        "consistency": "double",
        "residual_preserved": True,
        "residual_embedding": True,
        "mask": True,
    },
    # Not in the paper: full BR-GAN whose G_T2C also sees the contralateral,
    # f_H = G_T2C(f_T | f_C), so the contralateral is used at inference as well as in training.
    "brgan_paired": {
        "bilateral": "gan",
        "consistency": "double",
        "residual_preserved": True,
        "residual_embedding": True,
        "mask": True,
        "paired_generator": True,
    },
    # Not in the paper (issue 11 §4): full BR-GAN plus an f_T − f_C branch into the classifier,
    # trained with the branch zeroed for a quarter of the samples (a missing contralateral).
    "brgan_bilateral": {
        "bilateral": "gan",
        "consistency": "double",
        "residual_preserved": True,
        "residual_embedding": True,
        "mask": True,
        "contralateral_branch": True,
        "contralateral_dropout": 0.25,
    },
    # Table 1 "CycleGAN*": healthy images of other patients as reference, plain back translation
    "cyclegan_healthy": {
        **_OFF,
        "bilateral": "gan",
        "consistency": "double",
        "reference": "random_healthy",
    },
}
