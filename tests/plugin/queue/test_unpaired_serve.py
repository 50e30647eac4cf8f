"""issue 11 §4 through the real service: `brgan serve` in embedded mode (listener, coordinator,
a real `brgan worker` child) with a model whose card says it was evaluated without
contralaterals. A unilateral study (a mastectomy patient: left breast only) and a study missing
R MLO, sent with dcmtk `storescu` as a modality would:

* every left image of the unilateral study is scored alone, its score and every result object
  say that no contralateral was available, and the study is ``done``;
* in the 3-view study L MLO is scored alone and the other three as pairs.

The opposite (a model that was not evaluated so: these images stay *not analyzed: no
contralateral view*) is ``test_hostile_serve.py``'s unilateral study.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pydicom
import pytest

from plugin.index import SqliteIndex, StudyState
from tests.helpers import make_tiny_registry, write_synth_studies
from tests.plugin.listener.conftest import wait_until
from tests.plugin.queue.serve import start_embedded_serve, storescu

pytestmark = pytest.mark.integration

CAUTION = "no contralateral view available"


def _text(path: str) -> str:
    return " ".join(
        str(e.value) for e in pydicom.dcmread(path).iterall() if e.keyword == "TextValue"
    )


def test_images_without_contralateral_are_scored_alone_by_a_model_evaluated_so(
    tmp_path: Path,
) -> None:
    if shutil.which("storescu") is None:
        pytest.skip("dcmtk storescu is needed (scripts/test installs it)")
    data = tmp_path / "data"
    make_tiny_registry(
        data / "models",
        preset="brgan_bilateral",
        metrics={"auc": 0.5, "val_auc_without_contralateral": 0.74},
    )
    proc, port = start_embedded_serve(data, stable_age="2")
    index = None
    try:
        rows = write_synth_studies(tmp_path / "synth", patients=2, seed=37)
        studies = sorted({r["study_uid"] for r in rows})
        left_only = [r for r in rows if r["study_uid"] == studies[0] and r["laterality"] == "L"]
        three = [
            r
            for r in rows
            if r["study_uid"] == studies[1] and (r["laterality"], r["view"]) != ("R", "MLO")
        ]
        storescu(port, [r["path"] for r in left_only + three])
        index = SqliteIndex(data / "index.sqlite3", readonly=True)

        def states() -> list[StudyState | None]:
            return [s.state if (s := index.get_study(u)) else None for u in studies]

        try:
            wait_until(lambda: states() == [StudyState.DONE] * 2, timeout=180)
        except TimeoutError as exc:
            raise AssertionError(
                f"states {states()}; errors {[e.message for e in index.errors(10)]}"
            ) from exc

        alone_uids = {r["sop_instance_uid"] for r in left_only} | {
            r["sop_instance_uid"] for r in three if (r["laterality"], r["view"]) == ("L", "MLO")
        }
        for uid, sent in ((studies[0], left_only), (studies[1], three)):
            pairs = index.pairs(uid)
            assert {p.target_uid for p in pairs} == {r["sop_instance_uid"] for r in sent}
            for pair in pairs:
                score = json.loads(pair.score_json)
                assert score["status"] == "analyzed", score
                alone = pair.target_uid in alone_uids
                assert (pair.contralateral_uid == "") == alone
                assert (score["contralateral_uid"] is None) == alone
                assert any(CAUTION in w for w in score["warnings"]) == alone
            result = json.loads(index.get_study(uid).result_json)
            assert result["not_analyzed"] == {}
            files = {f["kind"]: f["path"] for f in result["result_files"]}
            for kind in ("tid1500_sr", "cad_sr"):
                assert CAUTION in _text(files[kind]), (uid, kind)
            heatmaps = [f for f in result["result_files"] if f["kind"] == "heatmap_sc"]
            assert len(heatmaps) == len(sent)
            cautioned = [CAUTION in str(pydicom.dcmread(f["path"]).ImageComments) for f in heatmaps]
            assert sum(cautioned) == len(alone_uids & {r["sop_instance_uid"] for r in sent})
    finally:
        if index is not None:
            index.close()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
