"""Mammogram preprocessing: DICOM pixel data to a canonical model input, and back.

Steps (each a module, each a pure function):

* :mod:`.decode` — decode, Modality LUT (PS3.3 C.11.1), VOI LUT (C.11.2), MONOCHROME1
  inversion (C.7.6.3.1.2) → display image in [0, 1];
* :mod:`.mask` — breast mask (Otsu, clean-up, largest component);
* :mod:`.orientation` — canonical orientation from PatientOrientation (C.7.6.1.1.1) or the mask;
* :mod:`.geometry` — the affine record mapping model space back to stored pixels;
* :mod:`.pipeline` — :func:`preprocess` / :func:`preprocess_array` tying them together.

Failures raise :class:`brgan_core.errors.DecodeError` naming the file and the reason.
"""

from brgan_core.preprocess.decode import read_dataset, to_display, window
from brgan_core.preprocess.geometry import Geometry
from brgan_core.preprocess.mask import apply_mask, breast_mask, otsu_threshold, tissue_threshold
from brgan_core.preprocess.orientation import (
    Orientation,
    canonical_orientation,
    parse_patient_orientation,
)
from brgan_core.preprocess.pipeline import (
    DEFAULT_SIZE,
    ImageHeader,
    PreprocessedImage,
    preprocess,
    preprocess_array,
    read_header,
    read_laterality,
    read_view,
)

__all__ = [
    "DEFAULT_SIZE",
    "Geometry",
    "ImageHeader",
    "Orientation",
    "PreprocessedImage",
    "apply_mask",
    "breast_mask",
    "canonical_orientation",
    "otsu_threshold",
    "parse_patient_orientation",
    "preprocess",
    "preprocess_array",
    "read_dataset",
    "read_header",
    "read_laterality",
    "read_view",
    "tissue_threshold",
    "to_display",
    "window",
]
