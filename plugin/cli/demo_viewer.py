"""``brgan demo --viewer``: the demo through a local Orthanc, with the results opened in OHIF.

The synthetic studies go to Orthanc's DICOM port from AE ``DEMOSCU``, as a modality would send
them. Orthanc, configured like ``deploy/orthanc`` (the routing script, DICOMweb, REST on loopback
only), routes each stable study to the embedded ``brgan serve``; the outbox stores the result
objects back into Orthanc over C-STORE. Once they are there the demo prints the usual table
(rendered from what Orthanc holds) and each study's OHIF URL, served from one loopback origin
with Orthanc's DICOMweb (:mod:`plugin.viewer.ohif`), until Ctrl-C.

An Orthanc already answering on the HTTP port is reused: the demo points its ``brgan`` modality
at this run's listener, declares its own sending AE, and puts both definitions back at the end;
if that Orthanc does not route a study within :data:`ROUTE_GRACE_S` (no routing script), the
demo asks it to send the study through its REST API, as ``route-mammo.lua`` would. Otherwise
an Orthanc is started from the Debian package with its storage in ``OUT/viewer/orthanc``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from plugin.cli.demo_cmd import SENDER_AE, _send, all_delivered, demo_settings, embedded_serve
from plugin.cli.demo_cmd import report as print_report
from plugin.errors import PluginError
from plugin.viewer import ohif as ohif_mod
from plugin.viewer import orthanc as orthanc_mod

INSTALL_COMMAND = "./scripts/viewer --install"
# Orthanc's name of the modality the routing script sends to (deploy/orthanc/route-mammo.lua).
BRGAN_MODALITY = "brgan"
# Orthanc's name of the demo's own modality (AE DEMOSCU), so the C-STOREs are accepted with
# "DicomAlwaysAllowStore": false. The port is never called (nothing is sent to it).
DEMO_MODALITY = "brgan-demo"
DEMO_MODALITY_PORT = 104
# A reused Orthanc whose routing has not started a study this many seconds after the send is
# asked to route it through its REST API. Longer than Orthanc's default StableAge (60 s), so an
# Orthanc with the routing script always routes by itself first.
ROUTE_GRACE_S = 65.0


def _demo_modality() -> dict[str, Any]:
    """Orthanc's definition of the demo's modality: it may store (and echo), nothing else."""
    return {"AET": SENDER_AE, "Host": "127.0.0.1", "Port": DEMO_MODALITY_PORT,
            "AllowStore": True, "AllowEcho": True, "AllowFind": False, "AllowMove": False,
            "AllowGet": False, "AllowFindWorklist": False,
            "AllowStorageCommitment": False}  # fmt: skip


@dataclass
class OrthancTarget:
    """Where the demo's Orthanc is: one already running (``running``), or ports to start on."""

    http_port: int
    dicom_port: int
    running: orthanc_mod.Orthanc | None


def find_orthanc(http_port: int, dicom_port: int) -> OrthancTarget:
    """The Orthanc to use, or a :class:`PluginError` that says what is missing and the command
    that installs it. Starts nothing."""
    missing: list[str] = []
    if not (ohif_mod.OHIF_DIST / "index.html").is_file():
        missing.append(
            f"the OHIF viewer {ohif_mod.OHIF_VERSION} (not in {ohif_mod.OHIF_DIST}; it is "
            f"fetched with npm: `npm pack @ohif/app@{ohif_mod.OHIF_VERSION}`)"
        )
    try:
        running = orthanc_mod.attach(http_port)
    except orthanc_mod.NotAnOrthancError as exc:
        raise PluginError(
            f"something other than an Orthanc without a password answers on 127.0.0.1:"
            f"{http_port} ({exc}): stop it, or choose another port with --orthanc-http-port"
        ) from exc
    if running is not None:
        try:
            plugins = running.get("/plugins") or []
        except (OSError, AssertionError) as exc:
            raise PluginError(
                f"the Orthanc on {running.url} did not list its plugins: {exc}"
            ) from exc
        if "dicom-web" not in plugins:
            raise PluginError(
                f"the Orthanc on {running.url} has no DICOMweb plugin, which OHIF needs: enable "
                "it (Debian: sudo apt-get install orthanc-dicomweb), or choose a free port with "
                "--orthanc-http-port and the demo starts its own Orthanc"
            )
    else:
        if orthanc_mod.orthanc_binary() is None:
            missing.append(
                f"Orthanc (no `Orthanc` on PATH, no {orthanc_mod.DEBIAN_ORTHANC}; Debian/Ubuntu: "
                "`sudo apt-get install orthanc orthanc-dicomweb`)"
            )
        elif not Path(orthanc_mod.DICOMWEB_PLUGIN).is_file():
            missing.append(
                f"Orthanc's DICOMweb plugin (no {orthanc_mod.DICOMWEB_PLUGIN}; Debian/Ubuntu: "
                "`sudo apt-get install orthanc-dicomweb`)"
            )
    if missing:
        raise PluginError(
            "brgan demo --viewer needs " + " and ".join(missing) + f". Install them with "
            f"`{INSTALL_COMMAND}`, then run it again; or run `brgan demo` without --viewer."
        )
    if running is None:
        for path in (orthanc_mod.ORTHANC_CONFIG, orthanc_mod.ROUTING_LUA):
            if not path.is_file():
                raise PluginError(
                    f"brgan demo --viewer starts Orthanc with the source checkout's "
                    f"deploy/orthanc/ configuration, and {path} is missing: run it from a "
                    "checkout of brgan-pacs (pip install -e .)"
                )
        if not orthanc_mod.port_is_free(dicom_port):
            raise PluginError(
                f"port {dicom_port} (Orthanc's DICOM port) is taken on 127.0.0.1: choose another "
                "with --orthanc-dicom-port"
            )
    return OrthancTarget(http_port, dicom_port, running)


def _start_orthanc(work: Path, target: OrthancTarget, ae_title: str, listener_port: int) -> Any:
    """Orthanc configured like deploy/orthanc: REST on loopback only (RemoteAccessAllowed
    false), stores only from the declared AEs on 127.0.0.1, the routing script, DICOMweb;
    stable age 1 s (its minimum) so a study is routed a second after its last image."""
    deploy = orthanc_mod.load_orthanc_config()["DicomModalities"][BRGAN_MODALITY]
    modalities = {
        BRGAN_MODALITY: {**deploy, "AET": ae_title, "Host": "127.0.0.1", "Port": listener_port},
        DEMO_MODALITY: _demo_modality(),
    }
    try:
        return orthanc_mod.start_orthanc(
            work,
            listener_port=listener_port,
            stable_age=1,
            http_port=target.http_port,
            dicom_port=target.dicom_port,
            name="brgan-demo",
            modalities=modalities,
            settings={"DicomCheckModalityHost": True},
            verbose=False,
        )
    except (RuntimeError, TimeoutError, FileNotFoundError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PluginError(
            f"Orthanc did not start on 127.0.0.1:{target.http_port} (HTTP) / "
            f"{target.dicom_port} (DICOM): {first}; its log: {work / 'orthanc.log'}"
        ) from exc


def _declare(orthanc: Any, ae_title: str, listener_port: int) -> dict[str, Any]:
    """Point a reused Orthanc's modalities at this run; returns what to put back."""
    before = orthanc.get("/modalities?expand")
    previous = {name: before.get(name) for name in (BRGAN_MODALITY, DEMO_MODALITY)}
    wanted = {
        # As deploy/orthanc/orthanc.json declares it: stores and echoes, nothing else.
        BRGAN_MODALITY: {"AET": ae_title, "Host": "127.0.0.1", "Port": listener_port,
                         "AllowStore": True, "AllowEcho": True, "AllowFind": False,
                         "AllowMove": False, "AllowGet": False, "AllowFindWorklist": False,
                         "AllowStorageCommitment": False},
        DEMO_MODALITY: _demo_modality(),
    }  # fmt: skip
    for name, body in wanted.items():
        orthanc.request("PUT", f"/modalities/{name}", json.dumps(body).encode())
    return previous


def _restore(console: Any, orthanc: Any, previous: dict[str, Any]) -> None:
    for name, body in previous.items():
        try:
            if body is None:
                orthanc.request("DELETE", f"/modalities/{name}")
            else:
                orthanc.request("PUT", f"/modalities/{name}", json.dumps(body).encode())
        except (OSError, AssertionError) as exc:
            console.print(f"[yellow]could not put Orthanc's modality {name!r} back: {exc}[/]")


def _wait(console: Any, index: Any, orthanc: Any, study_uids: list[str], timeout: float,
          *, push: bool) -> bool:  # fmt: skip
    """Until every study is final and its results delivered (True) or ``timeout`` (False).
    ``push``: route studies the listener has not seen after :data:`ROUTE_GRACE_S` via REST."""
    start = time.monotonic()
    pushed: set[str] = set()
    while not all_delivered(index, study_uids):
        now = time.monotonic()
        if now - start >= timeout:
            return False
        if push and now - start >= ROUTE_GRACE_S:
            late = [u for u in study_uids if u not in pushed and index.get_study(u) is None]
            for uid in late:
                study_id = orthanc.lookup(uid)
                if study_id is not None:
                    body = {"Resources": [study_id], "Asynchronous": True}
                    orthanc.request("POST", f"/modalities/{BRGAN_MODALITY}/store",
                                    json.dumps(body).encode())  # fmt: skip
                pushed.add(uid)
            if late:
                console.print(
                    f"== the Orthanc on {orthanc.url} did not route {len(late)} stud"
                    f"{'y' if len(late) == 1 else 'ies'} within {ROUTE_GRACE_S:.0f} s by itself "
                    "(no deploy/orthanc/route-mammo.lua in its configuration?): asked it to send "
                    f"them with POST /modalities/{BRGAN_MODALITY}/store",
                    highlight=False,
                )
        time.sleep(0.5)
    return True


def _result_uids(index: Any, study_uid: str) -> list[str]:
    study = index.get_study(study_uid)
    result = json.loads(study.result_json) if study and study.result_json else {}
    return [f["sop_instance_uid"] for f in result.get("result_files") or []]


def run(ctx: typer.Context, console: Any, base: Any, target: OrthancTarget, rows: list[dict],
        out: Path, *, timeout: float, wait: bool, viewer_port: int) -> None:  # fmt: skip
    """The viewer demo (see the module docstring); Ctrl-C at any point ends it cleanly."""
    from rich.table import Table

    from plugin.index import SqliteIndex

    work = out / "viewer"
    incoming = out / "incoming"
    truth = {r["sop_instance_uid"]: r for r in rows}
    study_uids = sorted({r["study_uid"] for r in rows})
    orthanc = target.running
    ours = orthanc is None
    aet = str(orthanc.aet if orthanc else orthanc_mod.load_orthanc_config()["DicomAet"])
    dicom_port = orthanc.dicom_port if orthanc else target.dicom_port
    settings = demo_settings(
        base, work / "data", calling_ae=aet,
        destination={"name": "orthanc", "ae_title": aet, "port": dicom_port},
    )  # fmt: skip
    done = False
    try:
        # Orthanc (outer) outlives the service (inner): results in flight still land.
        with contextlib.ExitStack() as outer, contextlib.ExitStack() as inner:
            port = inner.enter_context(embedded_serve(ctx, settings))
            if ours:
                console.print(
                    f"== starting Orthanc (deploy/orthanc configuration, REST on loopback only) "
                    f"on HTTP 127.0.0.1:{target.http_port}, DICOM {aet}@{target.dicom_port}; "
                    f"storage in {work / 'orthanc'}",
                    highlight=False,
                )
                orthanc = _start_orthanc(work / "orthanc", target, base.ae_title, port)
                outer.callback(orthanc.stop)
            else:
                assert orthanc is not None
                console.print(
                    f"== reusing the Orthanc on {orthanc.url} (DICOM {aet}@{dicom_port}); its "
                    f"modalities {BRGAN_MODALITY!r} and {DEMO_MODALITY!r} point at this demo "
                    "until it ends",
                    highlight=False,
                )
                previous = _declare(orthanc, base.ae_title, port)
                outer.callback(_restore, console, orthanc, previous)
            console.print(
                f"== sending {len(rows)} images over C-STORE from {SENDER_AE} to Orthanc "
                f"({aet}@127.0.0.1:{dicom_port}), as a modality would",
                highlight=False,
            )
            _send(dicom_port, [incoming / r["path"] for r in rows], called_ae=aet, name="Orthanc")
            console.print(
                "== waiting: Orthanc routes each stable study to the listener, the worker scores "
                "it (it loads torch first), the results go back into Orthanc"
            )
            index = SqliteIndex(settings.index_path, readonly=True)
            inner.callback(index.close)
            done = _wait(console, index, orthanc, study_uids, timeout, push=not ours)
            expected = {u: _result_uids(index, u) for u in study_uids}
            held = sum(1 for uids in expected.values() for s in uids if orthanc.lookup(s))
            total = sum(len(uids) for uids in expected.values())
            done = done and held == total

            def fetch(study_uid: str, sop_uid: str) -> bytes | None:
                instance = orthanc.lookup(sop_uid)
                return orthanc.download(f"/instances/{instance}/file") if instance else None

            png_dir = work / "png"
            print_report(console, Table, index, study_uids, truth, fetch, out, png_dir,
                         title="brgan demo --viewer: what came back to Orthanc",
                         footer=[f"Orthanc ({'started by the demo' if ours else 'reused'}, "
                                 f"{orthanc.url}): {held} of {total} result objects of these "
                                 f"studies held; PNGs in {png_dir}"])  # fmt: skip
            if not done:
                console.print(
                    f"[yellow]not every study's results reached Orthanc within {timeout:.0f} s. "
                    f"Logs: {settings.data_dir / 'worker.log'}"
                    + (f", {work / 'orthanc' / 'orthanc.log'}" if ours else "")
                    + f". A study analyzed in an earlier run is not sent again: if Orthanc lost "
                    f"its results, remove {work} and run again.[/]",
                    highlight=False,
                )
            try:
                server = ohif_mod.ViewerServer(ohif_mod.OHIF_DIST, orthanc.http_port, viewer_port)
            except OSError as exc:
                raise PluginError(
                    f"the OHIF page cannot listen on 127.0.0.1:{viewer_port} ({exc.strerror}): "
                    "choose another port with --viewer-port (0: a free one)"
                ) from exc
            inner.enter_context(server)
            console.print(
                f"OHIF {ohif_mod.OHIF_VERSION} at {server.origin}, on Orthanc's DICOMweb "
                f"({orthanc.url}/dicom-web/); open a study in a browser on this machine:",
                highlight=False,
            )
            for uid in study_uids:
                console.print(
                    f"  …{uid[-10:]}: {ohif_mod.study_url(server.origin, uid)}",
                    highlight=False,
                    soft_wrap=True,
                )
            console.print(
                "In the viewer, double-click the 'BR-GAN measurements' SR thumbnail to see each "
                "image's region and probability on the mammogram; the heatmap Secondary "
                "Captures are series of their own.",
                highlight=False,
            )
            if wait:
                console.print(
                    f"Serving OHIF until Ctrl-C. Meanwhile studies stored into Orthanc "
                    f"({aet}@127.0.0.1:{dicom_port}) from AE {SENDER_AE} are analyzed too.",
                    highlight=False,
                )
                sys.stdout.flush()
                while True:
                    time.sleep(3600)
    except KeyboardInterrupt:
        console.print("== stopped (Ctrl-C)")
        return
    except (orthanc_mod.OrthancHttpError, urllib.error.URLError, ConnectionError) as exc:
        where = f"the Orthanc on 127.0.0.1:{target.http_port}"
        log = f"; its log: {work / 'orthanc' / 'orthanc.log'}" if ours else ""
        raise PluginError(f"{where} failed a REST call of the demo: {exc}{log}") from exc
    if not done:
        raise typer.Exit(1)
