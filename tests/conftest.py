"""Shared pytest options and the Pulsar harness fixture."""

from __future__ import annotations

import pytest

from tests import pki as test_pki
from tests import pulsar_harness
from tests.ci import in_ci


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the expect: blocks of tests/golden/*.yaml from the current behaviour",
    )


@pytest.fixture(scope="session")
def pulsar_harness_command() -> list[str]:
    """The command that runs Pulsar's own worker classes (tests/pulsar-runtime), built once per
    session. Without a JDK or Maven: skipped on a developer machine, a failure under CI=true."""
    try:
        return pulsar_harness.build()
    except pulsar_harness.HarnessUnavailable as exc:
        unavailable = exc
    # Outside the except block, so the report is not cluttered with exception chaining.
    if in_ci():
        pytest.fail(f"CI=true but Pulsar's runtime harness is unavailable: {unavailable}")
    pytest.skip(f"{unavailable}; install a JDK 17+ and Maven to run Pulsar's own classes")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> test_pki.Pki:
    """Serving pairs for localhost (two from one CA, one from another) and a client
    certificate, made once per session (tests/pki.py)."""
    return test_pki.build(tmp_path_factory.mktemp("pki"))
