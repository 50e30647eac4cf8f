"""The BR-GAN model (paper Sect. 2): config, modules, losses and inference.

Public API::

    from brgan_core.model import BRGAN, BRGANConfig, Batch, Prediction, build_model

    model = build_model(BRGANConfig.preset("brgan", backbone="resnet50"))
    out = model.forward_train(target, contralateral, label, mask, contralateral_mask)
    g = model.generator_loss(out)  # cls, gan_t2c, gan_c2t, cyc_t, cyc_c, re, aux_pm, total
    d = model.discriminator_loss(out)  # d_c, d_t, total
    pred = model.predict(target, contralateral)  # p_malignant, cam, residual_map, logits

See ``docs/model.md`` for the architecture and every reading of the paper where it is silent.
"""

from brgan_core.model.backbone import FEATURE_CHANNELS, WeightsError, build_backbone
from brgan_core.model.brgan import BRGAN, Batch, Prediction, build_model
from brgan_core.model.config import PRESETS, BRGANConfig

__all__ = [
    "BRGAN",
    "FEATURE_CHANNELS",
    "PRESETS",
    "BRGANConfig",
    "Batch",
    "Prediction",
    "WeightsError",
    "build_backbone",
    "build_model",
]
