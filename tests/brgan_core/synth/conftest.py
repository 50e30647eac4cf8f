"""Shared fixtures of the synthetic generator tests: a few small studies, generated once."""

from __future__ import annotations

import pytest

from brgan_core.synth import SynthStudy, generate_patient, get_preset


@pytest.fixture(scope="session")
def cpu_studies() -> list[SynthStudy]:
    """24 bench-cpu patients (seed 3): enough to hold malignant, benign and normal images."""
    preset = get_preset("bench-cpu")
    return [generate_patient(preset, 3, i) for i in range(24)]
