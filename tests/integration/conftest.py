"""Fixtures for tests against a real `pf-webhook serve` process.

`serve(...)` starts `python -m webhook serve` on free ports (`--port 0 --metrics-port 0`; the
startup line says which ones), with its stdout and stderr captured to files, and stops it at
teardown. Its certificates are a copy of the session's `pki` (tests/pki.py) unless a test gives
its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from tests.pki import Pki

STARTUP = re.compile(
    r"pf-webhook serving (?P<https>https://\S+) \(/mutate, /validate\), "
    r"health and metrics on (?P<http>http://\S+);"
)
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


class Served:
    """A running `pf-webhook serve` process."""

    def __init__(self, proc: subprocess.Popen[bytes], workdir: Path, cert_dir: Path) -> None:
        self.proc = proc
        self.workdir = workdir
        self.cert_dir = cert_dir
        self.https = ""
        self.http = ""

    @property
    def stdout(self) -> str:
        return (self.workdir / "stdout.txt").read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return (self.workdir / "stderr.txt").read_text(errors="replace")

    def logs(self) -> str:
        return self.stdout + self.stderr

    def wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = STARTUP.search(self.stdout)
            if found:
                self.https, self.http = found["https"], found["http"]
                return
            if self.proc.poll() is not None:
                pytest.fail(f"pf-webhook serve exited {self.proc.returncode}:\n{self.logs()}")
            time.sleep(0.02)
        pytest.fail(f"pf-webhook serve did not start within {START_TIMEOUT}s:\n{self.logs()}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


class ServeFactory(Protocol):
    def __call__(
        self,
        *args: str,
        config: str | None = None,
        env: dict[str, str] | None = None,
        cert_source: Path | None = None,
    ) -> Served: ...


@pytest.fixture
def serve(tmp_path: Path, pki: Pki) -> Iterator[ServeFactory]:
    """Start `pf-webhook serve` with a copy of the session's serving certificates (or none)."""
    started: list[Served] = []

    def start(
        *args: str,
        config: str | None = None,
        env: dict[str, str] | None = None,
        cert_source: Path | None = pki.serving,
    ) -> Served:
        workdir = tmp_path / f"serve-{len(started)}"
        workdir.mkdir()
        cert_dir = workdir / "certs"
        if cert_source is not None:
            shutil.copytree(cert_source, cert_dir)
        argv: list[str] = [sys.executable, "-m", "webhook", "serve"]
        argv += ["--cert-dir", str(cert_dir), "--host", "127.0.0.1"]
        argv += ["--port", "0", "--metrics-port", "0"]
        if config is not None:
            config_path = workdir / "functions_worker.yml"
            config_path.write_text(config)
            argv += ["--config", str(config_path)]
        argv += list(args)
        # no cluster from the machine ($KUBECONFIG, ~/.kube/config, a pod's) unless `env` names one
        environ = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "HOME")}
        environ.pop("KUBERNETES_SERVICE_HOST", None)
        environ |= {"HOME": str(workdir), "PF_WEBHOOK_SHUTDOWN_DELAY": "0.2", **(env or {})}
        with (workdir / "stdout.txt").open("wb") as out, (workdir / "stderr.txt").open("wb") as err:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, env=environ, cwd=workdir)
        served = Served(proc, workdir, cert_dir)
        started.append(served)
        served.wait_started()
        return served

    yield start
    for served in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            served.stop()
