from __future__ import annotations

import pytest

from brgan_core.synth import PRESETS, get_preset
from brgan_core.synth.presets import MALIGNANT_KINDS


def test_named_presets_exist_with_expected_sizes() -> None:
    assert set(PRESETS) == {"bench-cpu", "bench-gpu", "clinical"}
    assert get_preset("bench-gpu").image_size[0] == 1024
    assert get_preset("clinical").image_size == (3328, 2560)
    assert get_preset("clinical").pixel_spacing_mm == pytest.approx(0.07)
    assert get_preset("bench-cpu").model_input_size == (128, 104)


def test_bench_cpu_test_set_has_at_least_1000_images_from_its_own_seed() -> None:
    preset = get_preset("bench-cpu")
    assert preset.test_patients * 4 >= 1000
    assert preset.test_seed != preset.train_seed


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="bench-cpu"):
        get_preset("tiny")


def test_with_changes_a_copy_and_validates() -> None:
    preset = get_preset("bench-cpu")
    harder = preset.with_(lesion_contrast=1.0)
    assert harder.lesion_contrast == 1.0 and preset.lesion_contrast != 1.0
    with pytest.raises(ValueError, match="density_mix"):
        preset.with_(density_mix=(0.5, 0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="kind_weights"):
        preset.with_(kind_weights=(1.0,))
    with pytest.raises(ValueError, match="malignant_fraction"):
        preset.with_(malignant_fraction=1.5)
    assert len(preset.kind_weights) == len(MALIGNANT_KINDS)
