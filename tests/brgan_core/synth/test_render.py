from __future__ import annotations

import numpy as np

from brgan_core.synth import SynthStudy
from brgan_core.synth.render import closeup, montage, subtraction


def test_pictures_have_the_expected_shapes(cpu_studies: list[SynthStudy]) -> None:
    study = next(s for s in cpu_studies if s.malignant_side)
    rows, cols = study.preset.image_size
    picture = montage(study)
    assert picture.dtype == np.uint8 and picture.shape == (rows, 4 * cols + 12, 3)
    assert (picture == (255, 40, 40)).all(axis=2).any()  # the malignant box is drawn
    assert subtraction(study, "CC").shape == (rows, 3 * cols + 12, 3)
    image = next(i for i in study.images if i.boxes)
    assert closeup(image, study.preset.bits_stored, 32, zoom=2).shape == (64, 64, 3)
