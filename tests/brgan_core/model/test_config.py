"""BRGANConfig: validation, JSON round trip, and the Table 3 presets."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from brgan_core.model.config import PRESETS, WEIGHT_KEYS, BRGANConfig


def test_defaults_are_full_brgan() -> None:
    assert BRGANConfig() == BRGANConfig.preset("brgan")
    cfg = BRGANConfig()
    assert all(getattr(cfg, key) == 1.0 for key in WEIGHT_KEYS)
    assert cfg.pretrained_weights is None
    assert cfg.reference == "contralateral"
    assert cfg.gan_loss == "log"


def test_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        BRGANConfig().backbone = "tiny"  # type: ignore[misc]


@pytest.mark.parametrize("name", list(PRESETS))
def test_round_trip_through_json(name: str) -> None:
    cfg = BRGANConfig.preset(name, backbone="alexnet", weight_re=0.5)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert BRGANConfig.from_dict(data) == cfg


def test_weights_path_round_trips_as_string() -> None:
    cfg = BRGANConfig(backbone="resnet50", pretrained_weights="/w/resnet50.pth")  # type: ignore[arg-type]
    assert cfg.pretrained_weights == Path("/w/resnet50.pth")
    data = cfg.to_dict()
    assert data["pretrained_weights"] == "/w/resnet50.pth"
    assert BRGANConfig.from_dict(data) == cfg


def test_unknown_key_is_named() -> None:
    with pytest.raises(ValueError, match=r"^backbon: unknown model config key"):
        BRGANConfig.from_dict({"backbon": "tiny"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("backbone", "vgg16"),
        ("bilateral", "yes"),
        ("consistency", "triple"),
        ("reference", "healthy"),
        ("gan_loss", "wgan"),
        ("in_channels", 0),
        ("in_channels", True),
        ("bottleneck", -3),
        ("disc_width", 2.5),
        ("mask", "yes"),
        ("residual_embedding", 1),
        ("weight_cls", -1.0),
        ("weight_cyc_c", float("nan")),
        ("weight_re", "1"),
    ],
)
def test_bad_value_names_its_key(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{key}"):
        BRGANConfig.from_dict({key: value})


def test_integer_weights_become_floats() -> None:
    cfg = BRGANConfig(weight_cls=2)
    assert cfg.weight_cls == 2.0 and isinstance(cfg.weight_cls, float)


@pytest.mark.parametrize("bilateral", ["none", "sbf"])
def test_non_gan_refuses_gan_switches(bilateral: str) -> None:
    with pytest.raises(ValueError, match=r"^consistency: bilateral="):
        BRGANConfig(bilateral=bilateral)
    with pytest.raises(ValueError, match=r"^mask"):
        replace(BRGANConfig.preset("vanilla"), bilateral=bilateral, mask=True)


def test_no_consistency_cannot_preserve() -> None:
    with pytest.raises(ValueError, match=r"^residual_preserved"):
        BRGANConfig(consistency="none", residual_embedding=False, mask=False)


def test_mask_needs_a_use_for_f_p() -> None:
    with pytest.raises(ValueError, match=r"^mask"):
        BRGANConfig(residual_preserved=False, residual_embedding=False, mask=True)


def test_tiny_has_no_pretrained_weights() -> None:
    with pytest.raises(ValueError, match=r"^pretrained_weights"):
        BRGANConfig(backbone="tiny", pretrained_weights=Path("x.pth"))


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match=r"^preset"):
        BRGANConfig.preset("resnet")


# (Bilateral, L_c, L_RE, Mask) of Table 3, in the paper's row order.
TABLE3 = {
    "vanilla": ("none", "none", False, False),
    "sbf": ("sbf", "none", False, False),
    "gan": ("gan", "none", False, False),
    "gan_single_mask": ("gan", "single", False, True),
    "gan_double_mask": ("gan", "double", False, True),
    "gan_double_re": ("gan", "double", True, False),
    "brgan": ("gan", "double", True, True),
}


@pytest.mark.parametrize(("name", "row"), list(TABLE3.items()))
def test_presets_are_table3_rows(name: str, row: tuple[str, str, bool, bool]) -> None:
    cfg = BRGANConfig.preset(name)
    assert (cfg.bilateral, cfg.consistency, cfg.residual_embedding, cfg.mask) == row
    assert cfg.reference == "contralateral"
    # f_P is fed to G_C2T whenever there is a G_C2T (the residual-preserved mechanism)
    assert cfg.residual_preserved == (cfg.consistency != "none")


def test_cyclegan_baseline() -> None:
    cfg = BRGANConfig.preset("cyclegan_healthy")
    assert cfg.reference == "random_healthy"
    assert (cfg.bilateral, cfg.consistency) == ("gan", "double")
    assert not (cfg.residual_preserved or cfg.residual_embedding or cfg.mask)


def test_derived_properties() -> None:
    assert not BRGANConfig.preset("sbf").builds_generators
    gan = BRGANConfig.preset("gan")
    assert gan.builds_generators and not gan.builds_back_translation
    assert not gan.computes_preserved
    assert BRGANConfig().builds_back_translation and BRGANConfig().computes_preserved
