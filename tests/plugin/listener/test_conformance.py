"""docs/conformance.md says what the listener really accepts and answers."""

from __future__ import annotations

from pathlib import Path

from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

from plugin.listener import receive
from plugin.listener.contexts import STORAGE_TRANSFER_SYNTAXES, storage_sop_classes
from plugin.listener.server import build_ae
from tests.plugin.listener.conftest import Service, make_settings, scu
from tests.plugin.listener.dicom_data import MG_FOR_PRESENTATION, mg_image

DOC = Path(__file__).resolve().parents[3] / "docs" / "conformance.md"


def test_document_lists_every_sop_class_transfer_syntax_and_status() -> None:
    text = DOC.read_text(encoding="utf-8")
    for uid in storage_sop_classes():
        assert f"`{uid}`" in text, uid
    for ts in STORAGE_TRANSFER_SYNTAXES:
        assert f"`{ts}`" in text, ts
    for code in ("SUCCESS", "OUT_OF_RESOURCES", "TOO_LARGE", "CANNOT_UNDERSTAND", "MISSING_UIDS"):
        assert f"`0x{getattr(receive, code):04X}`" in text, code


def test_ae_supports_all_listed_contexts(tmp_path: Path) -> None:
    ae = build_ae(make_settings(tmp_path))
    supported = {str(cx.abstract_syntax): cx.transfer_syntax for cx in ae.supported_contexts}
    for uid in (
        "1.2.840.10008.5.1.4.1.1.13.1.4",
        "1.2.840.10008.5.1.4.1.1.30",
        MG_FOR_PRESENTATION,
    ):
        assert set(supported[uid]) == set(STORAGE_TRANSFER_SYNTAXES)


def test_every_transfer_syntax_negotiates_without_transcoding(service: Service) -> None:
    ae = scu()
    for ts in STORAGE_TRANSFER_SYNTAXES:
        ae.add_requested_context(MG_FOR_PRESENTATION, ts)
    assoc = ae.associate("127.0.0.1", service.port, ae_title="BRGAN")
    try:
        accepted = {str(cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}
        assert accepted == {str(ts) for ts in STORAGE_TRANSFER_SYNTAXES}
        for ts in (RLELossless, JPEG2000Lossless):
            ds = mg_image(generate_uid(), "L", "CC", rows=32, columns=32)
            ds.compress(ts)
            sent = ds.PixelData
            status = assoc.send_c_store(ds)
            assert status.Status == 0
            [row] = service.index.instances(ds.StudyInstanceUID)
            assert row.transfer_syntax_uid == ts and row.usable
            stored = Path(row.path).read_bytes()
            assert sent in stored  # the compressed stream, byte for byte
    finally:
        assoc.release()
    assert ExplicitVRLittleEndian in STORAGE_TRANSFER_SYNTAXES
    assert ImplicitVRLittleEndian in STORAGE_TRANSFER_SYNTAXES


def test_preference_when_one_context_offers_several(service: Service) -> None:
    from pydicom.uid import JPEGLosslessSV1

    ae = scu()
    ae.add_requested_context(
        MG_FOR_PRESENTATION, [ExplicitVRLittleEndian, JPEGLosslessSV1, ImplicitVRLittleEndian]
    )
    ae.add_requested_context(
        "1.2.840.10008.5.1.4.1.1.7", [ImplicitVRLittleEndian, ExplicitVRLittleEndian]
    )
    assoc = ae.associate("127.0.0.1", service.port, ae_title="BRGAN")
    try:
        chosen = {str(cx.abstract_syntax): cx.transfer_syntax[0] for cx in assoc.accepted_contexts}
    finally:
        assoc.release()
    assert chosen[MG_FOR_PRESENTATION] == JPEGLosslessSV1  # the sender's file goes as it is
    assert chosen["1.2.840.10008.5.1.4.1.1.7"] == ExplicitVRLittleEndian
