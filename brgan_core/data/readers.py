"""Pick a dataset reader by name: ``read_dataset("inbreast", root)``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from brgan_core.data.cbis_ddsm import read_cbis_ddsm
from brgan_core.data.inbreast import read_inbreast
from brgan_core.data.manifest import read_manifest
from brgan_core.data.records import ReadReport
from brgan_core.data.vindr import read_vindr
from brgan_core.errors import DatasetError

READERS: dict[str, Callable[[Path], ReadReport]] = {
    "manifest": read_manifest,
    "inbreast": read_inbreast,
    "cbis-ddsm": read_cbis_ddsm,
    "vindr": read_vindr,
}


def read_dataset(kind: str, root: str | Path) -> ReadReport:
    """Read the dataset of ``kind`` (``manifest``, ``inbreast``, ``cbis-ddsm``, ``vindr``).

    ``root`` is the dataset folder (for ``manifest``: the CSV, or a folder holding
    ``manifest.csv``). Spelling is forgiving: case, ``_`` and ``-`` do not matter
    (``CBIS_DDSM``, ``VinDr-Mammo`` → ``vindr``).
    """
    key = kind.strip().lower().replace("_", "-").removesuffix("-mammo")
    if key == "cbisddsm":
        key = "cbis-ddsm"
    reader = READERS.get(key)
    if reader is None:
        raise DatasetError(f"unknown dataset kind {kind!r}; use one of {', '.join(READERS)}")
    return reader(Path(root))
