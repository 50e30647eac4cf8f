"""What a radiologist sees in OHIF 3.13.2 (issue 9 §3).

A synthetic 4-view study and all its result objects (``plugin.results.writer.build_objects``) go
into a real Orthanc; the prebuilt OHIF viewer is served from the same origin as Orthanc's
DICOMweb; headless Chromium opens the study and loads the TID 1500 SR the way a radiologist does
(double-click on its thumbnail in the study browser, "Yes" to the "track measurements?" prompt).
From the page the test checks that

- no error reached the browser console or OHIF's error boundary,
- every analyzed image's probability is drawn ("Probability of cancer: NN.NN %" in the SVG
  annotation layer) on the annotation whose UID is that image's Tracking UID in the SR,
- the region of every positive image is drawn on it (a polyline in the SVG layer with the
  points of the SR's SCOORD POLYLINE).

Three OHIF 3.13.2 defects shape the test (none is ours to fix):

- OHIF makes one display set per MG image, and the SR viewport's measurement arrows only move
  within the current display set (``setViewReference`` on the same stack): from the first group
  they log "No image URI found for ..." and stay put. So the SR viewport shows only the SR's
  first measurement group. The test opens the SR as written (its first group), and for every
  other group a copy of the SR with that group moved first (new series, nothing else changed),
  so each group is seen drawn by OHIF on its own image.
- OHIF reads a single-valued VOI LUT Function ("LINEAR") as a string and takes its first
  character (``voiLUTFunction[0]`` = "L"); cornerstone then throws "Invalid VOI LUT function"
  and every image carrying (0028,1056) stays black. The synthetic source images carry it; the
  test stores them without it. The result objects must not carry it (checked).
- After some page loads (5 of 13 to 13 of 14 measured; Chromium 156 headless, 2 cores) OHIF
  shows the SR as selected and draws nothing, with nothing in the console to tell it from a load
  that works; a reload helps, a second double-click does not: ``Page.open_sr`` (``page.py``)
  reloads, up to 8 loads, and after 8 empty loads the test is an expected failure.

Screenshots go to the test's temporary folder; with ``BRGAN_OHIF_SCREENSHOTS=DIR`` the two in the
docs also go to DIR (``docs/img``): ``ohif-study.png``, the study with the SR as written (its
first group, the positive L CC), and ``ohif-study-negative.png``, a negative image's group.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.viewer.harness import (
    OHIF_DIST,
    ViewerServer,
    chromium_driver,
    missing_tools,
    start_dicomweb_orthanc,
)
from tests.viewer.page import SR_ATTEMPTS, Page

pytestmark = pytest.mark.integration

PROBABILITY = re.compile(r"Probability of cancer: ([0-9]+(?:\.[0-9]+)?) %")
SCREENSHOT_ENV = "BRGAN_OHIF_SCREENSHOTS"


def _code(item: Any) -> str:
    return str(item.ConceptNameCodeSequence[0].CodeValue)


def sr_groups(sr: pydicom.Dataset) -> dict[str, dict[str, Any]]:
    """Tracking UID → {image, value, graphic type, points} of each TID 1410 group in the SR."""
    groups: dict[str, dict[str, Any]] = {}
    for container in sr.ContentSequence:
        if container.ValueType != "CONTAINER" or _code(container) != "126010":
            continue
        for group in container.ContentSequence:
            found: dict[str, Any] = {}
            for item in group.ContentSequence:
                code = _code(item)
                if code == "112040":
                    found["uid"] = str(item.UID)
                elif item.ValueType == "NUM" and code == "111047":
                    found["value"] = float(item.MeasuredValueSequence[0].NumericValue)
                elif item.ValueType == "SCOORD":
                    found["graphic_type"] = str(item.GraphicType)
                    found["points"] = len(item.GraphicData) // 2
                    ref = item.ContentSequence[0].ReferencedSOPSequence[0]
                    found["image"] = str(ref.ReferencedSOPInstanceUID)
            groups[found["uid"]] = found
    return groups


def store_sources(orthanc: Any, results: Any) -> None:
    """The study's images as the generator wrote them (it writes no VOI LUT Function, which
    OHIF 3.13.2 turns into a black viewport: module docstring)."""
    for path in results.source_paths.values():
        ds = pydicom.dcmread(path)
        assert "VOILUTFunction" not in ds, "a source with VOI LUT Function is black in OHIF"
        answer = orthanc.request("POST", "/instances", Path(path).read_bytes())
        assert answer["Status"] == "Success", answer


def store_objects(orthanc: Any, objects: list[tuple[str, str | None, Any]]) -> None:
    from plugin.results.writer import encode

    for kind, _, ds in objects:
        assert "VOILUTFunction" not in ds, f"{kind} carries VOI LUT Function: black in OHIF"
        answer = orthanc.request("POST", "/instances", encode(ds))
        assert answer["Status"] == "Success", f"Orthanc refused {kind}: {answer}"


def sr_with_group_first(sr: pydicom.Dataset, uid: str, series_number: int) -> pydicom.Dataset:
    """A copy of ``sr`` in a new series whose group with Tracking UID ``uid`` comes first."""
    out = copy.deepcopy(sr)
    for container in out.ContentSequence:
        if container.ValueType == "CONTAINER" and _code(container) == "126010":
            items = list(container.ContentSequence)
            first = [g for g in items if _tracking_uid(g) == uid]
            container.ContentSequence = first + [g for g in items if _tracking_uid(g) != uid]
    out.SeriesInstanceUID = generate_uid()
    out.SOPInstanceUID = generate_uid()
    out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    out.SeriesNumber = series_number
    out.SeriesDescription = f"OHIF test {series_number}"
    return out


def _tracking_uid(group: Any) -> str | None:
    for item in group.ContentSequence:
        if _code(item) == "112040":
            return str(item.UID)
    return None


@pytest.mark.timeout(480)
def test_ohif_shows_probabilities_and_regions(tmp_path: Path) -> None:
    missing = missing_tools()
    if missing:
        pytest.skip("OHIF viewer test needs: " + "; ".join(missing))

    from plugin.config import Settings
    from plugin.results.writer import build_objects
    from tests.plugin.results.conftest import make_results

    results = make_results(tmp_path / "study")
    objects = build_objects(results, Settings(data_dir=tmp_path / "data"))
    sr = next(ds for kind, _, ds in objects if kind == "tid1500_sr")
    groups = sr_groups(sr)
    by_image = {g["image"]: g for g in groups.values()}
    scores = {a.score.sop_instance_uid: a.score for a in results.analyzed}
    assert set(by_image) == set(scores), "the SR has one region group per analyzed image"
    positives = {uid for uid, s in scores.items() if s.positive}
    assert positives, "the fixture study has a positive image"
    lowest = min(scores, key=lambda u: scores[u].p_malignant)

    shots = tmp_path / "screenshots"
    docs = Path(os.environ[SCREENSHOT_ENV]) if os.environ.get(SCREENSHOT_ENV) else None
    seen: dict[str, str] = {}
    regions_drawn: set[str] = set()

    def check(page: Page, description: str, uid: str, first: bool) -> None:
        """Open one SR; its group ``uid`` must be drawn alone, with its region if positive."""
        drawn = page.open_sr(description, uid, first=first)
        if drawn is None:  # the viewer defect, not ours (module docstring): expected failure
            page.keep_log()
            pytest.xfail(f"OHIF drew nothing for group {uid} in {SR_ATTEMPTS} page loads")
        assert set(drawn) == {uid}, f"OHIF drew {sorted(drawn)}, expected only {uid}"
        seen[uid] = drawn[uid]
        image = groups[uid]["image"]
        name = f"{scores[image].laterality}-{scores[image].view}"
        if image in positives:
            group = groups[uid]
            assert group["graphic_type"] == "POLYLINE", group
            assert group["points"] in page.polylines(), (
                f"region of positive image {name} not drawn: SR polyline of "
                f"{group['points']} points, drawn polylines {page.polylines()}"
            )
            regions_drawn.add(image)
        page.screenshot(f"ohif-{name}.png")
        if docs and description == str(sr.SeriesDescription):
            page.screenshot("ohif-study.png", docs)
        elif docs and image == lowest:
            page.screenshot("ohif-study-negative.png", docs)

    orthanc = start_dicomweb_orthanc(tmp_path / "orthanc")
    try:
        store_sources(orthanc, results)
        store_objects(orthanc, objects)
        with ViewerServer(OHIF_DIST, orthanc.http_port) as server:
            driver = chromium_driver(tmp_path / "chromium-profile")
            try:
                page = Page(driver, shots)
                study_url = f"{server.origin}/viewer?StudyInstanceUIDs={results.study_uid}"
                page.load(study_url)
                # 1. The study with its results, as written: OHIF shows the SR's first group.
                order = list(groups)
                check(page, str(sr.SeriesDescription), order[0], first=True)
                # 2. Every other group, each first in a copy of the SR (module docstring).
                copies = [sr_with_group_first(sr, uid, 9900 + k) for k, uid in enumerate(order)]
                store_objects(orthanc, [("tid1500_sr copy", None, c) for c in copies[1:]])
                page.load(study_url)
                for k, (uid, copy_) in enumerate(zip(order[1:], copies[1:], strict=True)):
                    check(page, str(copy_.SeriesDescription), uid, first=k == 0)
                page.fail_on_errors()
                body = driver.execute_script("return document.body.innerText")
                assert "Something went wrong" not in body
            finally:
                page.keep_log()
                driver.quit()
    finally:
        orthanc.stop()

    assert set(seen) == set(groups)
    for uid, text in seen.items():
        image = groups[uid]["image"]
        match = PROBABILITY.search(text)
        assert match, f"no probability drawn for image {image}: {text!r}"
        expected = scores[image].p_malignant * 100
        assert abs(float(match.group(1)) - expected) <= 0.05 + 1e-9, (image, text, expected)
    assert regions_drawn == positives, "every positive image was shown with its region"
