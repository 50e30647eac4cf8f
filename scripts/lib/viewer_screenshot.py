"""``./scripts/viewer --screenshot PNG``: the picture of what a radiologist sees, for the docs.

Stores a study (by default the demo's: ``./scripts/demo`` made it with the shipped demo model) and
its result objects in a local Orthanc, opens it in OHIF 3.13.2 in headless Chromium, loads the
"BR-GAN measurements" SR the way a radiologist does (double-click, "Yes" to "track
measurements?"), which draws its first region group -- the most suspicious image's region and
probability -- and puts that image's heatmap Secondary Capture in a second viewport beside it
(OHIF's 1x2 layout, the commands and services the toolbar's layout menu uses). Of several studies
it takes the one whose most suspicious image scored highest.

Uses the viewer test's page driver (``tests/viewer/page.py``), so the picture is made the way the
test checks it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pydicom

from plugin.viewer.ohif import OHIF_DIST, ViewerServer, study_url
from plugin.viewer.orthanc import start_dicomweb_orthanc
from scripts.lib.viewer import _files
from tests.viewer.harness import chromium_driver, missing_tools
from tests.viewer.page import Page

TID1500_SR_BASE = "BR-GAN measurements"
WINDOW = (2200, 1400)
# OHIF's 1x2 layout (the command the toolbar's layout menu runs); the grid updates asynchronously.
TWO_VIEWPORTS = (
    "window.commandsManager.runCommand('setViewportGridLayout', {numRows: 1, numCols: 2});"
)
VIEWPORT_IDS = "return Array.from(window.services.viewportGridService.getState().viewports.keys());"
# Put the heatmap SC (series, instance) in viewport ``id`` (what dropping its thumbnail there
# does); returns an error text or null.
SHOW_IN_VIEWPORT = """
const [seriesUid, sopUid, viewportId] = arguments;
const sets = window.services.displaySetService.getActiveDisplaySets();
const set = sets.find(s => s.SeriesInstanceUID === seriesUid
                           && (s.images || []).some(i => i.SOPInstanceUID === sopUid));
if (!set) return 'no display set holds the heatmap SC';
const index = set.images.findIndex(i => i.SOPInstanceUID === sopUid);
window.services.viewportGridService.setDisplaySetsForViewports([{
  viewportId: viewportId, displaySetInstanceUIDs: [set.displaySetInstanceUID],
  viewportOptions: {initialImageOptions: {index: index}}}]);
return null;
"""


@dataclass(frozen=True)
class Pick:
    """The study to show: its SR, its most suspicious image and that image's heatmap SC."""

    study_uid: str
    sr_description: str
    group_uid: str
    probability: float
    heatmap_series: str
    heatmap_sop: str


def _code(item: pydicom.Dataset) -> str:
    return str(item.ConceptNameCodeSequence[0].CodeValue)


def first_group(sr: pydicom.Dataset) -> tuple[str, str, float] | None:
    """(Tracking UID, source image, probability %) of the SR's first TID 1410/1411 group (the
    TID 1500 Measurement Group container, 126010 Imaging Measurements)."""
    for container in sr.get("ContentSequence", []):
        if container.ValueType != "CONTAINER" or _code(container) != "126010":
            continue
        for group in container.ContentSequence:
            uid = image = None
            value = None
            for item in group.ContentSequence:
                if _code(item) == "112040":
                    uid = str(item.UID)
                elif item.ValueType == "NUM" and _code(item) == "111047":
                    value = float(item.MeasuredValueSequence[0].NumericValue)
                elif item.ValueType == "SCOORD":
                    ref = item.ContentSequence[0].ReferencedSOPSequence[0]
                    image = str(ref.ReferencedSOPInstanceUID)
            if uid and image and value is not None:
                return uid, image, value
    return None


def pick(files: list[Path]) -> tuple[Pick, list[Path]]:
    """The study whose SR's first group scored highest, and that study's files."""
    headers = {p: pydicom.dcmread(p, stop_before_pixels=True) for p in files}
    best: Pick | None = None
    for ds in headers.values():
        if ds.get("Modality") != "SR" or not str(ds.get("SeriesDescription", "")).startswith(
            TID1500_SR_BASE
        ):
            continue
        group = first_group(ds)
        if group is None:
            continue
        uid, image, value = group
        heatmaps = [
            h
            for h in headers.values()
            if "heatmap" in str(h.get("SeriesDescription", ""))
            and h.get("SourceImageSequence")
            and str(h.SourceImageSequence[0].ReferencedSOPInstanceUID) == image
        ]
        if not heatmaps:
            continue
        if best is None or value > best.probability:
            best = Pick(
                study_uid=str(ds.StudyInstanceUID),
                sr_description=str(ds.SeriesDescription),
                group_uid=uid,
                probability=value,
                heatmap_series=str(heatmaps[0].SeriesInstanceUID),
                heatmap_sop=str(heatmaps[0].SOPInstanceUID),
            )
    if best is None:
        raise SystemExit("no study with a BR-GAN measurements SR and its heatmap SC in the files")
    return best, [p for p, h in headers.items() if str(h.StudyInstanceUID) == best.study_uid]


def main(out: Path, args: list[str]) -> int:
    missing = missing_tools()
    if missing:
        print("the screenshot needs: " + "; ".join(missing), file=sys.stderr)
        return 1
    files = _files(args or ["demo-out/demo/incoming", "demo-out/demo/pacs"])
    if not files:
        print("no DICOM files given (run ./scripts/demo first, or pass files/folders)")
        return 1
    chosen, study_files = pick(files)
    print(f"study {chosen.study_uid[-12:]}: first region {chosen.probability:.2f} %, "
          f"{len(study_files)} files")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="brgan-screenshot-"))
    orthanc = start_dicomweb_orthanc(work / "orthanc")
    try:
        for path in study_files:
            answer = orthanc.request("POST", "/instances", path.read_bytes())
            if answer.get("Status") not in ("Success", "AlreadyStored"):
                raise SystemExit(f"Orthanc refused {path}: {answer}")
        with ViewerServer(OHIF_DIST, orthanc.http_port) as server:
            driver = chromium_driver(work / "chromium", window_size=WINDOW)
            page = Page(driver, work / "shots")
            try:
                page.load(study_url(server.origin, chosen.study_uid))
                if page.open_sr(chosen.sr_description, chosen.group_uid, first=True) is None:
                    page.keep_log()
                    print(f"OHIF drew nothing in 8 page loads; console in {work}/shots",
                          file=sys.stderr)  # fmt: skip
                    return 1
                driver.execute_script(TWO_VIEWPORTS)
                ids = page.wait(
                    "OHIF's 1x2 layout",
                    lambda: (v := driver.execute_script(VIEWPORT_IDS)) and len(v) >= 2 and v,
                    timeout=20.0,
                )
                error = driver.execute_script(SHOW_IN_VIEWPORT, chosen.heatmap_series,
                                              chosen.heatmap_sop, ids[1])  # fmt: skip
                if error:
                    print(f"could not put the heatmap beside the image: {error}", file=sys.stderr)
                    return 1
                time.sleep(4.0)  # let both viewports render
                page.fail_on_errors()
                if chosen.group_uid not in page.annotations():
                    print("the region vanished after the layout change", file=sys.stderr)
                    return 1
                page.screenshot(out.name, out.parent)
            finally:
                page.keep_log()
                driver.quit()
    finally:
        orthanc.stop()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), sys.argv[2:]))
