"""Synthetic bilateral screening mammography: realistic phantoms written as real DICOM.

Public API::

    from brgan_core.synth import get_preset, generate_patient, write_dataset

    preset = get_preset("bench-cpu")
    study = generate_patient(preset, seed=1, index=0)      # 4 views, labels, boxes, masks
    manifest = write_dataset(Path("out"), 20, preset, seed=1)  # DICOM + masks + manifest.csv

Modules, one job each: :mod:`presets` (named, frozen settings), :mod:`texture` (1/f^β noise),
:mod:`anatomy` (outline, pectoral muscle, glandular tissue by ACR density), :mod:`findings`
(malignant lesions and benign look-alikes), :mod:`bilateral` (shared left/right anatomy with
realistic differences), :mod:`generator` (one patient's study), :mod:`dicom_writer` (the
Digital Mammography X-Ray Image IOD), :mod:`dataset` (folders, masks, manifest).
See ``docs/synthetic-data.md``.
"""

from brgan_core.synth.dataset import MANIFEST_NAME, WriteOptions, write_dataset, write_study
from brgan_core.synth.dicom_writer import TransferSyntax, build_dataset, write_image
from brgan_core.synth.generator import VIEWS, SynthImage, SynthStudy, generate_patient
from brgan_core.synth.presets import PRESETS, SynthPreset, get_preset

__all__ = [
    "MANIFEST_NAME",
    "PRESETS",
    "VIEWS",
    "SynthImage",
    "SynthPreset",
    "SynthStudy",
    "TransferSyntax",
    "WriteOptions",
    "build_dataset",
    "generate_patient",
    "get_preset",
    "write_dataset",
    "write_image",
    "write_study",
]
