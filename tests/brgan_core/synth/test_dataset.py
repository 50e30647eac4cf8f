from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from brgan_core.data.records import MANIFEST_COLUMNS, ImageRecord
from brgan_core.synth import WriteOptions, get_preset, write_dataset

CPU = get_preset("bench-cpu")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    return write_dataset(out, 6, CPU, seed=4)


def _rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
        return list(reader)


def test_manifest_follows_the_records_schema(written: Path) -> None:
    rows = _rows(written)
    assert len(rows) == 24
    assert len({r["patient_id"] for r in rows}) == 6
    assert len({r["study_uid"] for r in rows}) == 6
    assert len({r["sop_instance_uid"] for r in rows}) == 24
    for row in rows:
        record = ImageRecord(
            path=written.parent / row["path"],
            patient_id=row["patient_id"],
            laterality=row["laterality"],  # type: ignore[arg-type]
            view=row["view"],
            label=int(row["label"]),
            study_uid=row["study_uid"],
            sop_instance_uid=row["sop_instance_uid"],
            birads=row["birads"],
            density=row["density"],
            findings=tuple(f for f in row["findings"].split(";") if f),
            boxes=tuple(tuple(b) for b in json.loads(row["boxes"])),  # type: ignore[misc]
            mask_path=(written.parent / row["mask_path"]) if row["mask_path"] else None,
        )
        assert record.view in ("CC", "MLO") and record.density in "abcd"
        assert not Path(row["path"]).is_absolute()


def test_files_masks_and_boxes_agree_with_the_manifest(written: Path) -> None:
    for row in _rows(written):
        ds = pydicom.dcmread(written.parent / row["path"])
        assert ds.SOPInstanceUID == row["sop_instance_uid"]
        assert ds.StudyInstanceUID == row["study_uid"]
        assert ds.PatientID == row["patient_id"]
        assert (ds.ImageLaterality, ds.ViewPosition) == (row["laterality"], row["view"])
        boxes = json.loads(row["boxes"])
        assert bool(boxes) == (row["label"] == "1") == bool(row["mask_path"])
        if row["mask_path"]:
            mask = np.asarray(Image.open(written.parent / row["mask_path"])) > 0
            assert mask.shape == (ds.Rows, ds.Columns)
            for x0, y0, x1, y1 in boxes:
                assert mask[y0:y1, x0:x1].any()
            _ys, xs = np.nonzero(mask)
            assert min(b[0] for b in boxes) == xs.min() and max(b[2] for b in boxes) == xs.max() + 1


def test_workers_write_the_same_dataset(tmp_path: Path, written: Path) -> None:
    manifest = write_dataset(
        tmp_path, 6, CPU, seed=4, workers=2, options=WriteOptions(), progress=None
    )
    assert manifest.read_text() == written.read_text()
    for row in _rows(manifest):
        assert (tmp_path / row["path"]).read_bytes() == (written.parent / row["path"]).read_bytes()


def test_progress_is_reported_per_patient(tmp_path: Path) -> None:
    seen: list[int] = []
    write_dataset(tmp_path, 2, CPU, seed=1, progress=seen.append)
    assert seen == [1, 2]


def test_zero_patients_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        write_dataset(tmp_path, 0, CPU, seed=1)


def test_the_manifest_reader_pairs_every_image(written: Path) -> None:
    from brgan_core.data.manifest import read_manifest

    report = read_manifest(written)
    assert report.images == 24 and len(report.pairs) == 24 and not report.dropped
    for pair in report.pairs:
        assert pair.target.path.is_file()
        assert pair.target.view == pair.contralateral.view
        assert pair.target.laterality != pair.contralateral.laterality
        assert (pair.target.mask_path is not None) == bool(pair.label)
