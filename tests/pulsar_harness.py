"""Run Pulsar's own functions-worker classes (tests/pulsar-runtime, a Maven module) from Python.

`render` gives the Service and StatefulSet exactly as Pulsar 4.0.x's KubernetesRuntime sends
them (its client talks to an in-process stand-in); `start` runs `KubernetesRuntime.start()`
against the cluster in `$KUBECONFIG`, through whatever admission webhooks it has.

The module is built once (`mvn package`, cached by Maven in target/) and reused while its
sources and pom are unchanged. Java and Maven missing raise HarnessUnavailable; the pytest
fixtures turn that into a skip on a developer machine and a failure under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "tests" / "pulsar-runtime"
TARGET = MODULE / "target"
CLASSPATH_FILE = TARGET / "classpath.txt"
STAMP = TARGET / "pf-webhook-build.stamp"
MAIN = "pfwebhook.harness.Harness"
PULSAR_VERSION = "4.0.7"
BUILD_TIMEOUT = 1800  # a cold Maven download of Pulsar's dependencies
RUN_TIMEOUT = 900

Mode = Literal["render", "start"]


class HarnessUnavailable(RuntimeError):
    """Java or Maven is missing, or the module does not build."""


def _sources() -> list[Path]:
    return [MODULE / "pom.xml", *sorted((MODULE / "src").rglob("*.java"))]


def _fresh() -> bool:
    if not (STAMP.exists() and CLASSPATH_FILE.exists()):
        return False
    built = STAMP.stat().st_mtime
    return all(path.stat().st_mtime <= built for path in _sources())


def tools() -> tuple[str, str]:
    java, mvn = shutil.which("java"), shutil.which("mvn")
    if java is None or mvn is None:
        missing = " and ".join(n for n, p in (("java", java), ("mvn", mvn)) if p is None)
        raise HarnessUnavailable(f"{missing} not found on PATH (JDK 17+ and Maven are needed)")
    return java, mvn


def build() -> list[str]:
    """The java command line that runs the harness; builds the module first when stale."""
    java, mvn = tools()
    if not _fresh():
        proc = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "package",
                "dependency:build-classpath",
                f"-Dmdep.outputFile={CLASSPATH_FILE}",
            ],
            cwd=MODULE,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-20:]
            raise HarnessUnavailable("mvn package failed:\n" + "\n".join(tail))
        STAMP.write_text(PULSAR_VERSION, encoding="utf-8")
    classpath = f"{TARGET / 'classes'}:{CLASSPATH_FILE.read_text(encoding='utf-8').strip()}"
    return [java, "-cp", classpath, MAIN]


def run(
    command: Sequence[str],
    mode: Mode,
    cases: Sequence[Mapping[str, Any]],
    *,
    kubeconfig: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Run a batch of cases in one JVM; returns each case's result by id."""
    with tempfile.TemporaryDirectory(prefix="pf-harness-") as tmp:
        cases_file, results_file = Path(tmp) / "cases.json", Path(tmp) / "results.jsonl"
        cases_file.write_text(json.dumps(list(cases)), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        else:
            # render mode: the worker's default client must not find a real cluster
            env["KUBECONFIG"] = str(Path(tmp) / "no-kubeconfig")
            env["HOME"] = tmp
        proc = subprocess.run(
            [*command, mode, str(cases_file), str(results_file)],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            env=env,
            check=False,
        )
        if proc.returncode != 0 or not results_file.exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-30:]
            raise RuntimeError("the Pulsar harness failed:\n" + "\n".join(tail))
        results = {}
        for line in results_file.read_text(encoding="utf-8").splitlines():
            result = json.loads(line)
            results[result["id"]] = result
        return results
