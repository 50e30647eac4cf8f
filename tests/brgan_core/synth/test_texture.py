from __future__ import annotations

import numpy as np
import pytest

from brgan_core.synth.texture import power_law_noise, smooth_field


@pytest.mark.parametrize("beta", [2.0, 3.0])
def test_power_law_noise_has_unit_sd_and_the_requested_spectral_slope(beta: float) -> None:
    field = power_law_noise((256, 256), np.random.default_rng(0), beta=beta)
    assert field.dtype == np.float32
    assert abs(float(field.mean())) < 1e-4 and float(field.std()) == pytest.approx(1.0, rel=1e-3)
    power = np.abs(np.fft.fft2(field)) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(256), indexing="ij"))
    band = (f > 0.01) & (f < 0.3)
    slope = np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0]
    assert slope == pytest.approx(-beta, abs=0.15)


def test_noise_is_deterministic_in_the_generator() -> None:
    a = power_law_noise((64, 48), np.random.default_rng(5))
    b = power_law_noise((64, 48), np.random.default_rng(5))
    assert a.shape == (64, 48) and np.array_equal(a, b)


def test_smooth_field_shape_and_scale() -> None:
    field = smooth_field((100, 70), np.random.default_rng(1), grid=5)
    assert field.shape == (100, 70)
    assert float(field.std()) == pytest.approx(1.0, rel=1e-3)
    # smooth: neighbouring pixels strongly correlated
    lag1 = np.corrcoef(field[:, 1:].ravel(), field[:, :-1].ravel())[0, 1]
    assert lag1 > 0.95
