"""Embedded mode: ``brgan serve`` alone does the whole job on one machine.

With no broker configured, the Celery app uses kombu's filesystem transport and a filesystem
result backend under ``<data_dir>/queue`` (:mod:`plugin.queue.app`), and ``brgan serve`` starts
one ``brgan worker`` as a child process. Same code and task as production; the listener
process itself still never imports torch (the worker is another process). The child is
restarted with back-off if it dies, and stopped with the service.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from plugin.logging import get_logger

log = get_logger(__name__)


#: Set for the embedded worker child: the pid of the `brgan serve` that started it.
PARENT_ENV = "BRGAN_EMBEDDED_PARENT"


def die_with_parent() -> None:
    """In the embedded worker: get SIGTERM when the `brgan serve` that started it dies, even by
    SIGKILL (Linux ``PR_SET_PDEATHSIG``), so a restarted service never finds an orphaned worker
    of the previous one on its queue. Exits at once if that parent is already gone."""
    parent = os.environ.pop(PARENT_ENV, None)  # never inherited further
    if not parent or not sys.platform.startswith("linux"):
        return
    if not parent.isdigit() or int(parent) != os.getppid():
        if parent.isdigit() and not Path(f"/proc/{parent}").exists():
            raise SystemExit("brgan serve that started this embedded worker is gone")
        # Set but not our parent (an environment file that copied it): a worker of its own.
        log.warning("embedded_parent_ignored", detail=f"{PARENT_ENV} is not this worker's parent")
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        done = ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        done = -1
    if done != 0:
        log.warning("embedded_parent_death_signal_unavailable", errno=ctypes.get_errno())
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        raise SystemExit("brgan serve that started this embedded worker is gone")


class EmbeddedWorker:
    """Supervise one ``brgan worker --pool solo`` child process."""

    def __init__(self, config_file: Path | None = None, log_file: Path | None = None) -> None:
        # (a `brgan serve` killed with SIGKILL takes its worker along: die_with_parent)
        self.config_file = config_file
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "plugin.cli.main"]
        if self.config_file is not None:
            args += ["--config", str(self.config_file)]
        return [*args, "worker", "--pool", "solo", "--loglevel", "WARNING"]

    def _spawn(self) -> subprocess.Popen[bytes]:
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        try:
            proc = subprocess.Popen(self.command(), env=env, stdout=out, stderr=subprocess.STDOUT)
        finally:
            if self.log_file:
                out.close()  # type: ignore[union-attr]
        log.info("embedded_worker_started", pid=proc.pid)
        return proc

    def start(self) -> None:
        self._proc = self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="brgan-embedded-worker")
        self._thread.daemon = True
        self._thread.start()

    def _supervise(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            proc = self._proc
            if proc is not None and proc.poll() is not None:
                log.warning("embedded_worker_exited", code=proc.returncode, restart_in_s=delay)
                if self._stop.wait(delay):
                    return
                self.restarts += 1
                self._proc = self._spawn()
                delay = min(delay * 2, 60.0)
            self._stop.wait(0.5)

    def stop(self, timeout: float = 20.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.info("embedded_worker_stopped")
