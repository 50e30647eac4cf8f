"""The exception hierarchy of :mod:`brgan_core`.

Every error a user may see names the thing that was wrong and, where possible, what to do.
"""

from __future__ import annotations

from pathlib import Path


class BrganCoreError(Exception):
    """Base class of every error raised on purpose by :mod:`brgan_core`."""


class DecodeError(BrganCoreError):
    """A DICOM file could not be turned into an image.

    Carries the file (or a short description of the source when there is no file) and a
    human-readable reason, e.g. "transfer syntax JPEG Extended (1.2.840.10008.1.2.4.51)
    cannot be decoded by the installed pylibjpeg plugins".
    """

    def __init__(self, source: str | Path, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: cannot decode image: {reason}")


class DatasetError(BrganCoreError):
    """A dataset folder, manifest or label file is missing or malformed."""
