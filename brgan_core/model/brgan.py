"""BR-GAN, the bilateral residual GAN classifier (paper Sect. 2, Fig. 2), built from a config.

Names follow the paper: ``f_t`` (f_T, target features), ``f_c`` (f_C, contralateral or
reference features), ``f_h`` (f_H^T = G_T2C(f_T), the healthy version), ``f_p`` (f_P^T, the
preserved features of Eq. 2), ``p_m`` (the malignancy head of Eq. 3).

Training follows pytorch-CycleGAN-and-pix2pix: one :meth:`BRGAN.forward_train` per batch, then
:meth:`BRGAN.generator_loss` (backbone, generators and heads; the discriminators are frozen while
their outputs are computed, so this step gives them no gradient) and
:meth:`BRGAN.discriminator_loss` (D_C and D_T on detached features). The optimisers and the loop
live in :mod:`brgan_core.training`.

Inference is :meth:`BRGAN.predict`: backbone, G_T2C and the classification module only. The
discriminators and G_C2T never run. Note what Sect. 2 implies for BR-GAN (bilateral = gan):
f_H = G_T2C(f_T) depends on the target alone, so the contralateral is a *training-time*
reference (for D_C and the cycle losses) and ``predict`` does not compute its features. SBF,
and our ``paired_generator`` extension (f_H = G_T2C(f_T | f_C)), need it at inference.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brgan_core.model import losses
from brgan_core.model.backbone import FEATURE_CHANNELS, build_backbone
from brgan_core.model.config import BRGANConfig
from brgan_core.model.discriminators import FeatureDiscriminator
from brgan_core.model.generators import GeneratorC2T, GeneratorT2C
from brgan_core.model.heads import (
    MALIGNANT,
    ClassifierHead,
    MalignancyHead,
    classifier_input,
    normalize_map,
)
from brgan_core.model.residual import preserved_features

TrainOutput = dict[str, Tensor]


@dataclass(frozen=True)
class Batch:
    """One training batch of pairs.

    Attributes:
        target, contralateral: images ``[B, in_channels, H, W]`` (the contralateral is the
            reference: the other breast's same view, or a random benign image for the
            ``random_healthy`` baseline), already oriented to the same canonical side.
        label: ``[B]`` 1 = target malignant.
        target_mask, contralateral_mask: optional breast masks ``[B, 1, H, W]`` for the
            "selected MSE" cycle losses; ``None`` = every position.
        contralateral_label: optional ``[B]``; 1 = the contralateral is known malignant, which
            leaves it out of D_C's "real" set.
    """

    target: Tensor
    contralateral: Tensor
    label: Tensor
    target_mask: Tensor | None = None
    contralateral_mask: Tensor | None = None
    contralateral_label: Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device``."""
        moved = {
            name: None if value is None else value.to(device, non_blocking=non_blocking)
            for name, value in self.__dict__.items()
        }
        return Batch(**moved)


@dataclass(frozen=True)
class Prediction:
    """What :meth:`BRGAN.predict` returns for a batch of B targets.

    Attributes:
        p_malignant: ``[B]`` probability of malignancy (softmax of temperature-scaled logits).
        cam: ``[B, h, w]`` class activation map of the malignant class (Zhou et al. 2016) on the
            feature grid, min–max normalised to [0, 1] per image.
        residual_map: ``[B, h, w]`` channel mean of ReLU(f_T − f_H) (SBF: f_T − f_C), normalised
            to [0, 1]: where the target has features its healthy version lacks. Zeros for the
            vanilla model, which has no reference.
        logits: ``[B, 2]`` the temperature-scaled {benign, malignant} logits.
    """

    p_malignant: Tensor
    cam: Tensor
    residual_map: Tensor
    logits: Tensor

    def upsampled(self, size: tuple[int, int]) -> Prediction:
        """The maps bilinearly resized to ``size`` (e.g. the model input's H, W)."""

        def resize(maps: Tensor) -> Tensor:
            return F.interpolate(
                maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False
            ).squeeze(1)

        return replace(self, cam=resize(self.cam), residual_map=resize(self.residual_map))


@contextmanager
def _frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Compute through ``modules`` without recording gradients for their parameters."""
    params = [p for m in modules if m is not None for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


class BRGAN(nn.Module):
    """The BR-GAN model; which parts exist depends on :class:`BRGANConfig` (Table 3 switches).

    Modules (``None`` when the config does not build them):
        backbone: shared feature extractor (target and contralateral).
        g_t2c, d_c: G_T2C and D_C (bilateral = gan).
        g_c2t, d_t: G_C2T and D_T (bilateral = gan and consistency ≠ none).
        p_m: the malignancy head of Eq. 3 (residual_embedding).
        classifier: GAP → FC on the classifier input (C, 2C, or 3C with the contralateral branch).
    Buffer ``temperature`` (default 1.0) divides the logits in :meth:`predict` (calibration).
    """

    def __init__(self, config: BRGANConfig) -> None:
        super().__init__()
        if not isinstance(config, BRGANConfig):
            raise TypeError(f"BRGAN needs a BRGANConfig, not {type(config).__name__}")
        self.config = config
        channels = FEATURE_CHANNELS[config.backbone]
        bottleneck = config.bottleneck or max(channels // 8, 16)
        disc_width = config.disc_width or bottleneck
        self.feature_channels = channels

        self.backbone = build_backbone(
            config.backbone, config.in_channels, config.pretrained_weights
        )
        self.g_t2c: GeneratorT2C | None = None
        self.d_c: FeatureDiscriminator | None = None
        self.g_c2t: GeneratorC2T | None = None
        self.d_t: FeatureDiscriminator | None = None
        self.p_m: MalignancyHead | None = None
        if config.builds_generators:
            self.g_t2c = GeneratorT2C(channels, bottleneck, paired=config.paired_generator)
            self.d_c = FeatureDiscriminator(channels, disc_width)
        if config.builds_back_translation:
            self.g_c2t = GeneratorC2T(channels, bottleneck, preserved=config.residual_preserved)
            self.d_t = FeatureDiscriminator(channels, disc_width)
        if config.residual_embedding:
            self.p_m = MalignancyHead(channels, pooling=config.pooling)
        fused = channels if config.bilateral == "none" else 2 * channels
        if config.contralateral_branch:
            fused += channels  # concat[f_T − f_H, f_T, f_T − f_C]
        self.classifier = ClassifierHead(fused, pooling=config.pooling)
        self.register_buffer("temperature", torch.tensor(1.0))

    # -- parameter groups -------------------------------------------------------------------
    @property
    def has_discriminators(self) -> bool:
        return self.d_c is not None

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """Parameters of D_C and D_T (updated by the discriminator step)."""
        return [p for m in (self.d_c, self.d_t) if m is not None for p in m.parameters()]

    def generator_parameters(self) -> list[nn.Parameter]:
        """Everything else: backbone, generators, p_m, classifier (the generator step)."""
        disc = {id(p) for p in self.discriminator_parameters()}
        return [p for p in self.parameters() if id(p) not in disc]

    def set_temperature(self, value: float) -> None:
        """Set the calibration temperature (> 0) used by :meth:`predict`."""
        if not value > 0:
            raise ValueError(f"temperature must be > 0, not {value!r}")
        self.temperature.fill_(float(value))

    # -- building blocks --------------------------------------------------------------------
    def _check_images(self, name: str, images: Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(
                f"{name} must be [B, {self.config.in_channels}, H, W], not {tuple(images.shape)}"
            )

    def encode(self, images: Tensor) -> Tensor:
        """Backbone features f of images ``[B, in_channels, H, W]``."""
        self._check_images("images", images)
        return self.backbone(images)

    def _encode_pair(self, target: Tensor, contralateral: Tensor) -> tuple[Tensor, Tensor]:
        """f_T, f_C from one shared-backbone pass over both images."""
        self._check_images("target", target)
        self._check_images("contralateral", contralateral)
        if contralateral.shape != target.shape:
            raise ValueError(
                f"contralateral {tuple(contralateral.shape)} must match target "
                f"{tuple(target.shape)}"
            )
        f = self.backbone(torch.cat([target, contralateral], dim=0))
        return f[: target.shape[0]], f[target.shape[0] :]

    def generate_healthy(self, f_t: Tensor, f_ref: Tensor | None = None) -> Tensor:
        """f_H = G_T2C(f_T), or G_T2C(f_T | f_ref) with ``paired_generator`` (bilateral = gan)."""
        if self.g_t2c is None:
            raise ValueError(f"bilateral={self.config.bilateral!r} has no generator G_T2C")
        return self.g_t2c(f_t, f_ref if self.config.paired_generator else None)

    def _reference_features(
        self, target: Tensor, contralateral: Tensor | None
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(f_T, the classifier's reference: f_H, f_C or None, the contralateral branch
        f_T − f_C: zeros without a contralateral, None without the branch) for inference."""
        cfg = self.config
        if cfg.contralateral_branch:
            if contralateral is None:
                f_t = self.encode(target)
                return f_t, self.generate_healthy(f_t), torch.zeros_like(f_t)
            f_t, f_c = self._encode_pair(target, contralateral)
            return f_t, self.generate_healthy(f_t), f_t - f_c
        if cfg.requires_contralateral_at_inference:
            if contralateral is None:
                what = "bilateral='sbf'" if cfg.bilateral == "sbf" else "paired_generator"
                raise ValueError(f"{what} needs the contralateral image")
            f_t, f_c = self._encode_pair(target, contralateral)
            if cfg.bilateral == "sbf":
                return f_t, f_c, None
            return f_t, self.generate_healthy(f_t, f_c), None
        f_t = self.encode(target)
        if self.config.bilateral == "gan":
            return f_t, self.generate_healthy(f_t), None
        return f_t, None, None

    def forward(self, target: Tensor, contralateral: Tensor | None = None) -> Tensor:
        """Uncalibrated {benign, malignant} logits ``[B, 2]`` (the classification path only)."""
        f_t, reference, branch = self._reference_features(target, contralateral)
        return self.classifier(classifier_input(f_t, reference, branch))

    # -- training ---------------------------------------------------------------------------
    def forward_train(
        self,
        target: Tensor,
        contralateral: Tensor,
        label: Tensor,
        mask: Tensor | None = None,
        contralateral_mask: Tensor | None = None,
        contralateral_label: Tensor | None = None,
    ) -> TrainOutput:
        """Everything the losses need, as a dict of tensors (Fig. 2, left to right).

        Keys: ``f_t``, ``label``, ``logits`` always; ``f_c`` (sbf, gan); ``f_h`` (gan);
        ``f_p``, ``attention`` (f_P computed); ``f_t_rec`` = G_C2T([f_H, f_P]) and ``f_c2t`` =
        G_C2T([f_C, f_P]) (consistency ≠ none); ``f_c_rec`` = G_T2C(f_c2t) (double);
        ``pm_t``, ``pm_p`` p_m logits (residual_embedding); ``sel_t``, ``sel_c`` downsampled
        breast masks and ``real_c_weight`` (0 = malignant contralateral) when given.
        """
        cfg = self.config
        out: TrainOutput = {"label": label}
        reference: Tensor | None = None
        if cfg.bilateral == "none":
            f_t = self.encode(target)
        else:
            f_t, f_c = self._encode_pair(target, contralateral)
            out["f_c"] = f_c
            reference = f_c
        out["f_t"] = f_t

        if cfg.bilateral == "gan":
            f_h = self.generate_healthy(f_t, out["f_c"])
            out["f_h"] = reference = f_h
            f_p: Tensor | None = None
            if cfg.computes_preserved:
                f_p, attention = preserved_features(f_t, f_h, mask=cfg.mask)
                out["f_p"], out["attention"] = f_p, attention
            if self.g_c2t is not None:
                f_p_in = f_p if cfg.residual_preserved else None
                out["f_t_rec"] = self.g_c2t(f_h, f_p_in)
                out["f_c2t"] = self.g_c2t(out["f_c"], f_p_in)
                if cfg.consistency == "double":
                    # paired: the fake target's reference is the contralateral it was made from
                    out["f_c_rec"] = self.generate_healthy(out["f_c2t"], out["f_c"])
            if self.p_m is not None and f_p is not None:
                out["pm_t"] = self.p_m(f_t)
                out["pm_p"] = self.p_m(f_p)

        branch: Tensor | None = None
        if cfg.contralateral_branch:
            branch = f_t - out["f_c"]
            if self.training and cfg.contralateral_dropout > 0:
                # a missing contralateral for this fraction of the samples (zeros, as predict)
                keep = torch.rand(f_t.shape[0], device=f_t.device) >= cfg.contralateral_dropout
                branch = branch * keep.to(f_t.dtype).view(-1, 1, 1, 1)
        out["logits"] = self.classifier(classifier_input(f_t, reference, branch))
        grid = (f_t.shape[-2], f_t.shape[-1])
        if mask is not None:
            out["sel_t"] = losses.downsample_mask(mask, grid)
        if contralateral_mask is not None:
            out["sel_c"] = losses.downsample_mask(contralateral_mask, grid)
        if contralateral_label is not None:
            out["real_c_weight"] = 1.0 - contralateral_label.to(f_t.dtype)
        return out

    def forward_batch(self, batch: Batch) -> TrainOutput:
        """:meth:`forward_train` on a :class:`Batch`."""
        return self.forward_train(
            batch.target,
            batch.contralateral,
            batch.label,
            batch.target_mask,
            batch.contralateral_mask,
            batch.contralateral_label,
        )

    def _as_output(self, out: Mapping[str, Tensor] | Batch) -> Mapping[str, Tensor]:
        return self.forward_batch(out) if isinstance(out, Batch) else out

    def loss_weights(self) -> dict[str, float]:
        """Eq. 4's weight for each generator-step component name."""
        cfg = self.config
        return {
            "cls": cfg.weight_cls,
            "re": cfg.weight_re,
            "aux_pm": cfg.weight_aux_pm,
            "gan_t2c": cfg.weight_gan_t2c,
            "gan_c2t": cfg.weight_gan_c2t,
            "cyc_t": cfg.weight_cyc_t,
            "cyc_c": cfg.weight_cyc_c,
        }

    def generator_loss(self, out: Mapping[str, Tensor] | Batch) -> dict[str, Tensor]:
        """Eq. 4 for the backbone, generators and heads; named components plus ``total``.

        Components present: ``cls`` always; ``gan_t2c`` (gan); ``gan_c2t``, ``cyc_t``
        (consistency ≠ none); ``cyc_c`` (double); ``re``, ``aux_pm`` (residual_embedding).
        The discriminators are evaluated frozen: this loss gives them no gradient.
        """
        out = self._as_output(out)
        kind = self.config.gan_loss
        parts: dict[str, Tensor] = {"cls": losses.classification_loss(out["logits"], out["label"])}
        if self.d_c is not None:
            with _frozen(self.d_c, self.d_t):
                parts["gan_t2c"] = losses.gan_generator_loss(self.d_c(out["f_h"]), kind)
                if self.d_t is not None:
                    parts["gan_c2t"] = losses.gan_generator_loss(self.d_t(out["f_c2t"]), kind)
        if "f_t_rec" in out:
            parts["cyc_t"] = losses.cycle_loss_target(out["f_t_rec"], out["f_t"], out.get("sel_t"))
        if "f_c_rec" in out:
            parts["cyc_c"] = losses.cycle_loss_contralateral(
                out["f_c_rec"], out["f_c"], out.get("sel_c")
            )
        if "pm_t" in out:
            parts["re"] = losses.residual_embedding_loss(out["pm_p"], out["pm_t"])
            parts["aux_pm"] = losses.auxiliary_malignancy_loss(out["pm_t"], out["label"])
        parts["total"] = losses.total_loss(parts, self.loss_weights())
        return parts

    def discriminator_loss(self, out: Mapping[str, Tensor] | Batch) -> dict[str, Tensor]:
        """Eq. 1 for D_C (real f_C, malignant contralaterals left out, vs f_H) and D_T (real f_T
        vs G_C2T([f_C, f_P])), on detached features; components ``d_c``, ``d_t`` and ``total``.

        A model without discriminators returns a constant zero ``total`` (nothing to train).
        """
        out = self._as_output(out)
        if self.d_c is None:
            return {"total": out["logits"].new_zeros(())}
        kind = self.config.gan_loss
        parts = {
            "d_c": losses.gan_discriminator_loss(
                self.d_c(out["f_c"].detach()),
                self.d_c(out["f_h"].detach()),
                kind,
                out.get("real_c_weight"),
            )
        }
        if self.d_t is not None:
            parts["d_t"] = losses.gan_discriminator_loss(
                self.d_t(out["f_t"].detach()), self.d_t(out["f_c2t"].detach()), kind
            )
        parts["total"] = torch.stack(list(parts.values())).sum()
        return parts

    # -- inference --------------------------------------------------------------------------
    def predict(self, target: Tensor, contralateral: Tensor | None = None) -> Prediction:
        """Score a batch of targets: p(malignant), CAM and residual map (see :class:`Prediction`).

        Runs in eval mode under ``torch.inference_mode()`` (every submodule's previous
        train/eval mode is restored afterwards). Only the backbone, G_T2C and the classifier
        run; ``contralateral`` is needed (and encoded) only for SBF and ``paired_generator``;
        with ``contralateral_branch`` it is used when given and the branch is zeros without it.
        """
        modes = [(module, module.training) for module in self.modules()]
        self.eval()
        try:
            with torch.inference_mode():
                f_t, reference, branch = self._reference_features(target, contralateral)
                fused = classifier_input(f_t, reference, branch)
                logits = self.classifier(fused) / self.temperature
                cam = normalize_map(self.classifier.cam(fused, MALIGNANT))
                if reference is None:
                    residual_map = torch.zeros_like(cam)
                else:
                    residual_map = normalize_map(torch.relu(f_t - reference).mean(dim=1))
                return Prediction(
                    p_malignant=logits.softmax(dim=1)[:, MALIGNANT],
                    cam=cam,
                    residual_map=residual_map,
                    logits=logits,
                )
        finally:
            for module, mode in modes:
                module.training = mode

    def extra_repr(self) -> str:
        cfg = self.config
        return (
            f"backbone={cfg.backbone}, bilateral={cfg.bilateral}, consistency={cfg.consistency}, "
            f"residual_embedding={cfg.residual_embedding}, mask={cfg.mask}"
        )


def build_model(config: BRGANConfig | Mapping[str, Any]) -> BRGAN:
    """A :class:`BRGAN` from a config or its dict (e.g. a checkpoint's ``model_config``)."""
    if not isinstance(config, BRGANConfig):
        config = BRGANConfig.from_dict(dict(config))
    return BRGAN(config)
