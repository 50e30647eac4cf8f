"""The STOW-RS sink against a recording HTTP endpoint (stdlib ``http.server`` in a thread)
that counts POSTs, reads every instance in them and answers what the test says."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pydicom
import pytest

from pacs_adapters.destination import DestinationConfig
from pacs_adapters.sink import Outcome, Sink, make_sink
from pacs_adapters.stow import StowSink, map_response, parse_store_response
from tests.deploy.orthanc import free_ports
from tests.pacs_adapters.conftest import paths

SECRET = "Bearer s3cr3t-t0ken-do-not-log"
JSON = "application/dicom+json"

Reply = tuple[int, str, bytes]  # status, content type, body


def sop_item(uid: str, reason_tag: str | None = None, reason: int | None = None) -> dict:
    item: dict[str, Any] = {
        "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]},
        "00081155": {"vr": "UI", "Value": [uid]},
    }
    if reason_tag is not None:
        item[reason_tag] = {"vr": "US", "Value": [reason]}
    return item


def store_response(
    referenced: list[str] = (),  # type: ignore[assignment]
    failed: dict[str, int] | None = None,
    warnings: dict[str, int] | None = None,
) -> bytes:
    """A Store Instances Response (PS3.18 Table 10.5.3-2) in DICOM JSON."""
    body: dict[str, Any] = {}
    if failed:
        body["00081198"] = {
            "vr": "SQ",
            "Value": [sop_item(uid, "00081197", reason) for uid, reason in failed.items()],
        }
    if referenced:
        warnings = warnings or {}
        body["00081199"] = {
            "vr": "SQ",
            "Value": [
                sop_item(uid, "00081196", warnings[uid]) if uid in warnings else sop_item(uid)
                for uid in referenced
            ],
        }
    return json.dumps(body).encode()


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    uids: list[str]


@dataclass
class Recorder:
    """What the endpoint received, and how it answers (``respond(uids) -> Reply``)."""

    respond: Callable[[list[str]], Reply] = lambda uids: (
        200,
        JSON,
        store_response(referenced=uids),
    )
    delay: float = 0.0
    posts: list[Post] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = io.BytesIO()
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return out.getvalue()
            out.write(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length", "0")))


def instances_in(content_type: str, body: bytes) -> list[str]:
    """The SOP Instance UIDs of the application/dicom parts of a multipart/related body."""
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"')
    uids = []
    for part in body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        assert b"application/dicom" in head.lower()
        ds = pydicom.dcmread(io.BytesIO(data.removesuffix(b"\r\n")))
        uids.append(str(ds.SOPInstanceUID))
    return uids


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    recorder: Recorder

    def do_POST(self) -> None:
        body = read_body(self)
        uids = instances_in(self.headers["Content-Type"], body)
        recorder = self.server.recorder  # type: ignore[attr-defined]
        with recorder.lock:
            recorder.posts.append(Post(self.path, dict(self.headers.items()), uids))
        if recorder.delay:
            time.sleep(recorder.delay)
        status, content_type, payload = recorder.respond(uids)
        try:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[Recorder, str]]:
    """A recording STOW-RS endpoint; ``(recorder, DICOMweb root URL)``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    recorder = Recorder()
    server.recorder = recorder  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield recorder, f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def stow(url: str, **kwargs: Any) -> Sink:
    values: dict[str, Any] = {"name": "web", "kind": "stow", "url": url, "timeout": 5}
    values.update(kwargs)
    return make_sink(DestinationConfig(**values))


def test_200_every_instance_once_in_one_post(endpoint, result_files) -> None:
    recorder, url = endpoint
    sink = stow(url, auth_header=SECRET)
    assert isinstance(sink, StowSink) and isinstance(sink, Sink) and sink.name == "web"
    results = sink.send(paths(result_files))

    assert [r.outcome for r in results] == [Outcome.DELIVERED] * len(result_files)
    assert {r.status for r in results} == {200}
    assert [r.sop_instance_uid for r in results] == [f.sop_instance_uid for f in result_files]
    assert len(recorder.posts) == 1
    post = recorder.posts[0]
    assert post.path == "/dicom-web/studies"
    assert post.uids == [f.sop_instance_uid for f in result_files]
    assert post.headers["Authorization"] == SECRET
    assert post.headers["Content-Type"].startswith('multipart/related; type="application/dicom"')
    assert post.headers["Accept"] == JSON
    sink.close()


def test_409_partial_failure_is_read_per_instance(endpoint, one_of_each) -> None:
    """A 409 raises HTTPError inside dicomweb-client; its body is still read."""
    recorder, url = endpoint
    ok, refused = one_of_each[0].sop_instance_uid, one_of_each[1].sop_instance_uid
    recorder.respond = lambda uids: (
        409,
        JSON,
        store_response(referenced=[ok], failed={refused: 0xC000}),
    )
    results = stow(url).send(paths(one_of_each[:2]))
    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.PERMANENT]
    assert [r.status for r in results] == [409, 409]
    assert "0xC000" in results[1].detail
    assert len(recorder.posts) == 1 and recorder.posts[0].uids == [ok, refused]


def test_409_mapping_of_each_kind_of_instance(endpoint, one_of_each) -> None:
    recorder, url = endpoint
    uids = [f.sop_instance_uid for f in one_of_each]
    recorder.respond = lambda sent: (
        409,
        JSON,
        store_response(referenced=[uids[0]], failed={uids[1]: 0xC000, uids[2]: 0xA700}),
    )
    results = stow(url).send(paths(one_of_each))
    assert [r.outcome for r in results] == [
        Outcome.DELIVERED,  # referenced
        Outcome.PERMANENT,  # failed, cannot understand
        Outcome.TRANSIENT,  # failed, out of resources
        Outcome.TRANSIENT,  # neither failed nor referenced
    ]
    assert "not acknowledged" in results[3].detail
    assert len(recorder.posts) == 1


def test_409_as_xml(endpoint, one_of_each) -> None:
    recorder, url = endpoint
    ok, refused = one_of_each[0].sop_instance_uid, one_of_each[1].sop_instance_uid
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">
 <DicomAttribute tag="00081198" vr="SQ" keyword="FailedSOPSequence"><Item number="1">
  <DicomAttribute tag="00081155" vr="UI"><Value number="1">{refused}</Value></DicomAttribute>
  <DicomAttribute tag="00081197" vr="US"><Value number="1">49152</Value></DicomAttribute>
 </Item></DicomAttribute>
 <DicomAttribute tag="00081199" vr="SQ" keyword="ReferencedSOPSequence"><Item number="1">
  <DicomAttribute tag="00081155" vr="UI"><Value number="1">{ok}</Value></DicomAttribute>
 </Item></DicomAttribute>
</NativeDicomModel>""".encode()
    recorder.respond = lambda uids: (409, "application/dicom+xml", xml)
    results = stow(url).send(paths(one_of_each[:2]))
    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.PERMANENT]


def test_202_with_failures_and_warnings(endpoint, one_of_each) -> None:
    recorder, url = endpoint
    uids = [f.sop_instance_uid for f in one_of_each[:3]]
    recorder.respond = lambda sent: (
        202,
        JSON,
        store_response(referenced=uids[:2], failed={uids[2]: 0xA900}, warnings={uids[1]: 0xB000}),
    )
    results = stow(url).send(paths(one_of_each[:3]))
    assert [r.outcome for r in results] == [
        Outcome.DELIVERED,
        Outcome.DELIVERED,
        Outcome.PERMANENT,
    ]
    assert "warning 0xB000" in results[1].detail and "0xA900" in results[2].detail
    assert {r.status for r in results} == {202}


@pytest.mark.parametrize(
    ("reply", "outcome", "words"),
    [
        ((503, "text/plain", b"busy"), Outcome.TRANSIENT, "busy or unavailable"),
        ((500, "", b""), Outcome.TRANSIENT, "busy or unavailable"),
        ((429, "", b""), Outcome.TRANSIENT, "busy or unavailable"),
        ((408, "", b""), Outcome.TRANSIENT, "busy or unavailable"),
        ((400, "", b""), Outcome.PERMANENT, "no Store Instances Response"),
        ((409, "text/html", b"<html>conflict</html>"), Outcome.PERMANENT, "refused"),
        ((415, "", b""), Outcome.PERMANENT, "refused"),
        ((401, "", b""), Outcome.TRANSIENT, "check auth_header"),
        ((404, "", b""), Outcome.TRANSIENT, "check url"),
        ((200, "", b""), Outcome.TRANSIENT, "without a Store Instances Response"),
        ((200, JSON, b"{}"), Outcome.TRANSIENT, "without a Store Instances Response"),
    ],
)
def test_whole_request_answers(
    endpoint, one_of_each, reply: Reply, outcome: Outcome, words: str
) -> None:
    """One POST, never retried by the library (its default retries 503 five times)."""
    recorder, url = endpoint
    recorder.respond = lambda uids: reply
    started = time.monotonic()
    results = stow(url).send(paths(one_of_each[:2]))
    assert time.monotonic() - started < 3
    assert [r.outcome for r in results] == [outcome] * 2
    assert {r.status for r in results} == {reply[0]}
    assert words in results[0].detail, results[0].detail
    assert len(recorder.posts) == 1


def test_nothing_listening_is_transient_and_not_retried(one_of_each) -> None:
    (port,) = free_ports(1)
    started = time.monotonic()
    results = stow(f"http://127.0.0.1:{port}/dicom-web").send(paths(one_of_each[:2]))
    # dicomweb-client's default would try 5 times, waiting 2 + 4 + 8 + 16 s.
    assert time.monotonic() - started < 2
    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 2
    assert all(r.status is None for r in results)
    assert "cannot connect" in results[0].detail


def test_no_answer_within_timeout_is_transient(endpoint, one_of_each) -> None:
    recorder, url = endpoint
    recorder.delay = 1.5
    started = time.monotonic()
    results = stow(url, timeout=0.5).send(paths(one_of_each[:1]))
    assert time.monotonic() - started < 1.4
    assert results[0].outcome is Outcome.TRANSIENT and "timeout" in results[0].detail
    assert len(recorder.posts) == 1


def test_unreadable_file_is_permanent_and_not_posted(endpoint, one_of_each, tmp_path: Path) -> None:
    recorder, url = endpoint
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"nonsense")
    results = stow(url).send([garbage, Path(one_of_each[0].path)])
    assert [r.outcome for r in results] == [Outcome.PERMANENT, Outcome.DELIVERED]
    assert results[0].status is None and results[0].sop_instance_uid is None
    assert [p.uids for p in recorder.posts] == [[one_of_each[0].sop_instance_uid]]
    # Nothing readable: no POST at all.
    assert [r.outcome for r in stow(url).send([garbage])] == [Outcome.PERMANENT]
    assert len(recorder.posts) == 1


def test_auth_header_is_never_shown(
    endpoint, one_of_each, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    recorder, url = endpoint
    caplog.set_level(logging.DEBUG)
    config = DestinationConfig(name="web", kind="stow", url=url, auth_header=SECRET)
    sink = make_sink(config)
    recorder.respond = lambda uids: (503, "", b"")
    results = sink.send(paths(one_of_each[:1]))
    shown = [repr(config), str(config), config.describe(), repr(sink), repr(results)]
    shown += [caplog.text, *capsys.readouterr()]
    assert recorder.posts[0].headers["Authorization"] == SECRET
    assert all(SECRET not in text and "s3cr3t" not in text for text in shown)


# -- the response parser on its own ---------------------------------------------------------


def test_parser_accepts_an_array_and_missing_reasons() -> None:
    body = json.dumps(
        [{"00081198": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3"]}}]}}]
    ).encode()
    answer = parse_store_response(JSON, body)
    assert answer is not None and answer.failed == {"1.2.3": None}
    assert map_response(409, JSON, body, ["1.2.3"]) == [
        (Outcome.PERMANENT, "HTTP 409: failed, reason unknown")
    ]
    assert parse_store_response(JSON, b"not json") is None
    assert parse_store_response("application/dicom+xml", b"<broken") is None
    assert parse_store_response(JSON, b"[1, 2]") is None
