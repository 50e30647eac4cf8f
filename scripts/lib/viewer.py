"""``scripts/viewer``: OHIF against a local Orthanc, with files stored in it (for people).

Uses the same Orthanc and same-origin server (``plugin.viewer``) as ``brgan demo --viewer`` and
the OHIF test (``tests/viewer/``), so what a person sees here is what the test checks.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from plugin.viewer.ohif import OHIF_DIST, ViewerServer, study_url
from plugin.viewer.orthanc import start_dicomweb_orthanc


def _files(args: list[str]) -> list[Path]:
    out: list[Path] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*.dcm") if p.is_file())
        elif path.is_file():
            out.append(path)
        else:
            print(f"skipping {path}: not found", file=sys.stderr)
    return out


def main(args: list[str]) -> int:
    if not (OHIF_DIST / "index.html").is_file():
        print(f"OHIF is not in {OHIF_DIST}; run ./scripts/viewer --install", file=sys.stderr)
        return 1
    files = _files(args)
    if not files:
        print("no DICOM files given (run ./scripts/demo first, or pass files/folders)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="brgan-viewer-"))
    orthanc = start_dicomweb_orthanc(work)
    studies: set[str] = set()
    try:
        for path in files:
            answer = orthanc.request("POST", "/instances", path.read_bytes())
            studies.add(orthanc.get(f"/instances/{answer['ID']}/study")["MainDicomTags"]
                        ["StudyInstanceUID"])  # fmt: skip
        with ViewerServer(OHIF_DIST, orthanc.http_port) as server:
            print(f"stored {len(files)} files in Orthanc ({orthanc.url}); OHIF at {server.origin}")
            for uid in sorted(studies):
                print(f"  {study_url(server.origin, uid)}")
            print("In the viewer, double-click the 'BR-GAN measurements' SR thumbnail to see the "
                  "regions and probabilities on the images. Ctrl-C to stop.")  # fmt: skip
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        orthanc.stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
