"""Power-law (1/f^β) noise: the background texture of mammograms.

Mammographic backgrounds have a power spectrum close to ``1/f^β`` with β ≈ 2.8–3 (Burgess et al.,
Med Phys 2001). :func:`power_law_noise` shapes white Gaussian noise in the Fourier domain and
returns a field with zero mean and unit standard deviation.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import fft


def power_law_noise(
    shape: tuple[int, int],
    rng: np.random.Generator,
    beta: float = 3.0,
    cutoff_px: float | None = None,
    stretch: float = 1.0,
) -> NDArray[np.float32]:
    """A zero-mean, unit-SD random field with power spectrum ``1/f^beta``.

    Args:
        shape: ``(rows, columns)``.
        rng: the random generator (the only source of randomness).
        beta: spectral exponent; 3 looks like breast tissue, 2 is finer.
        cutoff_px: wavelength in pixels above which the spectrum is flattened (limits the
            largest structures); default: the larger image side.
        stretch: > 1 elongates structures along the columns (the chest-wall → nipple axis of
            the canonical frame), like the ducts and fibrous strands converging on the nipple.
    """
    rows, cols = shape
    fy = fft.fftfreq(rows).astype(np.float32)[:, None]
    fx = fft.rfftfreq(cols).astype(np.float32)[None, :] * np.float32(stretch)
    f = np.sqrt(fy * fy + fx * fx)
    f_min = 1.0 / float(cutoff_px if cutoff_px else max(rows, cols))
    amplitude = np.maximum(f, f_min) ** np.float32(-beta / 2.0)
    amplitude[0, 0] = 0.0
    white = rng.standard_normal((rows, cols), dtype=np.float32)
    spectrum = fft.rfft2(white, workers=1)
    field = fft.irfft2(spectrum * amplitude, s=(rows, cols), workers=1).astype(np.float32)
    field -= field.mean()
    sd = float(field.std())
    return field / np.float32(sd if sd > 0 else 1.0)


def smooth_field(
    shape: tuple[int, int], rng: np.random.Generator, grid: int = 6
) -> NDArray[np.float32]:
    """A smooth zero-mean, unit-SD field: a ``grid × grid`` random lattice upsampled bicubically.

    Used for elastic displacements and slowly varying gains; much cheaper than an FFT.
    """
    from scipy.ndimage import zoom

    rows, cols = shape
    coarse = rng.standard_normal((grid, grid)).astype(np.float32)
    field = zoom(coarse, (rows / grid, cols / grid), order=3, mode="nearest", grid_mode=True)
    field = field[:rows, :cols]
    if field.shape != (rows, cols):  # zoom may round one pixel short
        field = np.pad(field, ((0, rows - field.shape[0]), (0, cols - field.shape[1])), "edge")
    field -= field.mean()
    sd = float(field.std())
    return (field / (sd if sd > 0 else 1.0)).astype(np.float32)
