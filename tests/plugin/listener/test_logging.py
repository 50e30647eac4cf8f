"""plugin.logging: one line per event, JSON option, UID hashing, PHI keys dropped."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from plugin.logging import configure_logging, get_logger, hash_uid


@pytest.fixture
def stream() -> io.StringIO:
    buf = io.StringIO()
    yield buf
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_brgan", False)]:
        root.removeHandler(handler)
    structlog.reset_defaults()
    logging.captureWarnings(False)


def test_json_lines_hash_uids_and_drop_phi(stream: io.StringIO) -> None:
    configure_logging("INFO", json=True, hash_uids=True, stream=stream)
    get_logger("t").info(
        "instance_stored",
        study_uid="1.2.3.4",
        sop_uid="1.2.3.4.5",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.1.2",
        patient_name="Doe^Jane",
        patient_id="12345",
        accession_number="A1",
        size=10,
    )
    logging.getLogger("pynetdicom").info("Received Store Request with PatientID=12345")
    [line] = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "instance_stored" and event["level"] == "info"
    assert event["study_uid"] == hash_uid("1.2.3.4") != "1.2.3.4"
    assert event["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.1.2"
    assert "Doe" not in line and "12345" not in line and "A1" not in line


def test_console_lines_keep_uids_when_not_hashing(stream: io.StringIO) -> None:
    configure_logging("INFO", json=False, hash_uids=False, stream=stream)
    get_logger("t").warning("instance_refused", study_uid="1.2.3", status="0xC000")
    [line] = stream.getvalue().splitlines()
    assert "instance_refused" in line and "study_uid=1.2.3" in line and "warning" in line


@pytest.mark.parametrize("hash_uids", [True, False])
def test_library_warnings_never_print_raw_values(stream: io.StringIO, hash_uids: bool) -> None:
    """Issue 8 §8: pydicom's validation warning quoted a path-like UID (and would quote a
    PatientName the same way: quoted values are hashed whatever hash_uids says) past
    hash_uids_in_logs; it now goes through the log filters."""
    import warnings

    from pydicom.dataset import Dataset

    configure_logging("INFO", hash_uids=hash_uids, stream=stream)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        logging.captureWarnings(True)  # catch_warnings restored showwarning; route it again
        ds = Dataset()
        ds.SOPInstanceUID = "../../etc/x"
    text = stream.getvalue()
    assert "Invalid value for VR UI" in text  # the warning itself is kept
    assert "../../etc/x" not in text
    assert hash_uid("../../etc/x") in text
