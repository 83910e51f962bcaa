"""Fixtures for end-to-end tests against a real etcd + kube-apiserver.

Every test collected from this directory is marked ``e2e`` so ``make unit`` (``-m 'not e2e'``)
leaves them out. Missing binaries skip the tests on a developer machine but fail them in CI, so a
broken CI setup can never pass by skipping everything.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CONTROLPLANE_DIR = HERE.parent / "controlplane"
if str(CONTROLPLANE_DIR) not in sys.path:
    # tests/controlplane is not a package (it also holds Go modules); import it as a module.
    sys.path.insert(0, str(CONTROLPLANE_DIR))

from controlplane import (  # noqa: E402 - needs the sys.path entry above
    ControlPlane,
    ControlPlaneUnavailable,
    binaries_dir,
)

from tests.ci import in_ci  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark e2e tests; exclude the shared control plane's start-up from per-test timeouts.

    This hook sees every collected item, not only ours, hence the path filter. The session
    fixture starts in the setup of whichever test needs it first; with the default timeout that
    one test would pay for the start-up (and for a cold build of the binaries when
    ``$PF_WEBHOOK_CONTROLPLANE`` is unset). ``func_only`` times just the test body instead: the
    fixture bounds its own waits (etcd 30 s, apiserver 90 s, namespace 30 s, stop 2x10 s).
    Tests with their own ``timeout`` marker keep it unchanged.
    """
    for item in items:
        if HERE not in item.path.parents:
            continue
        item.add_marker(pytest.mark.e2e)
        uses_cp = "control_plane" in getattr(item, "fixturenames", ())
        if uses_cp and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(func_only=True))


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """One etcd + kube-apiserver for the whole session (start-up takes seconds, not ms).

    Tests share it, so they must use unique names (e.g. their own namespace). Namespaces cannot
    be deleted for real (no controller-manager finalises them), so do not rely on deletion.
    """
    unavailable: ControlPlaneUnavailable | None
    try:
        bins = binaries_dir()
    except ControlPlaneUnavailable as exc:
        unavailable = exc
    else:
        unavailable = None
    # Outside the except block, so the report is not cluttered with exception chaining.
    if unavailable is not None:
        if in_ci():
            pytest.fail(f"CI=true but the e2e control plane is unavailable: {unavailable}")
        pytest.skip(f"{unavailable.reason}; run: make controlplane")
    with ControlPlane(bins) as cp:
        yield cp


TOOLS_DIR = HERE.parent / "tools"


def _tool(env: str, script: Path, what: str) -> Path:
    """A test tool: from `$env`, else from its script (which builds or fetches it when missing).
    Skipped locally without Go; a failure under CI=true."""
    import subprocess

    value = os.environ.get(env)
    if not value:
        proc = subprocess.run([str(script)], capture_output=True, text=True, check=False)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            reason = f"{what} unavailable ({script} exit {proc.returncode}: {proc.stderr.strip()[-300:]})"
            if in_ci():
                pytest.fail(f"CI=true but {reason}")
            pytest.skip(reason)
        value = lines[-1]
    path = Path(value)
    if not path.exists():
        if in_ci():
            pytest.fail(f"CI=true but {what} is missing: {path}")
        pytest.skip(f"{what} is missing: {path}")
    return path


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm, built from its Go module by tests/tools/helm/build.sh (cached by version)."""
    return _tool("PF_WEBHOOK_HELM", TOOLS_DIR / "helm" / "build.sh", "helm")


@pytest.fixture(scope="session")
def cert_manager_crds() -> Path:
    """cert-manager's CRD files, from its Go module (tests/tools/cert-manager/crds.sh)."""
    return _tool(
        "PF_WEBHOOK_CERT_MANAGER_CRDS", TOOLS_DIR / "cert-manager" / "crds.sh", "cert-manager CRDs"
    )
