"""One kubeconfig policy and one reading of API errors for every command (`webhook.kube.client`):
the flag, else $KUBECONFIG, else ~/.kube/config, else in-cluster, else none; a failed call is one
`KubeError` line naming what was done: the API server's answer, a timeout, an unreachable host.
`serve`, `certs inject` and `audit` are shown to follow the policy against a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from webhook import cli
from webhook.certs import pki
from webhook.core.config import default_config
from webhook.kube.client import (
    NO_CLUSTER,
    KubeError,
    api_client,
    api_error,
    call,
    connect,
    has_cluster,
    kubeconfig_path,
)
from webhook.server import app


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No cluster from the machine: an empty home, no $KUBECONFIG, not in a pod."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return home


def write_kubeconfig(path: Path, server: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def refused() -> Iterator[str]:
    """An address where nothing listens: a bound socket that never listens refuses connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"https://127.0.0.1:{sock.getsockname()[1]}"


# --------------------------------------------------------------------------- which cluster


def test_the_flag_wins_then_kubeconfig_env_then_the_home_file(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kubeconfig_path(None) is None
    assert not has_cluster(None)
    default = write_kubeconfig(home / ".kube" / "config", "https://127.0.0.1:1")
    assert kubeconfig_path(None) == str(default)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "env-config"))
    assert kubeconfig_path(None) == str(tmp_path / "env-config")
    assert kubeconfig_path("/flag/config") == "/flag/config"
    monkeypatch.setenv("KUBECONFIG", "")  # set but empty: as if unset
    assert kubeconfig_path(None) == str(default)


def test_in_a_pod_without_a_kubeconfig_the_in_cluster_config_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not has_cluster(None)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert kubeconfig_path(None) is None and has_cluster(None)


async def test_no_cluster_is_none_or_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await api_client(None) is None
    with pytest.raises(KubeError) as caught:
        await connect(None)
    assert str(caught.value) == NO_CLUSTER
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(KubeError, match=r"^kubeconfig .*absent not found$"):
        await api_client(None)
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(KubeError) as caught:
        await api_client(None)  # no service account token in this process's filesystem
    assert str(caught.value).startswith(
        "cannot load Kubernetes client configuration from the in-cluster config: "
    )
    broken = tmp_path / "broken"
    broken.write_text("clusters: [1, 2]\n")
    with pytest.raises(KubeError, match="cannot load Kubernetes client configuration from"):
        await api_client(str(broken))


# --------------------------------------------------------------------------- its errors


def _api_exception(status: int, body: str) -> ApiException:
    exc = ApiException(status=status, reason="Reason")
    exc.body = body.encode()  # bytes, as read off the response
    return exc


def test_an_api_answer_is_one_line_with_the_servers_words() -> None:
    status = json.dumps({"message": 'secrets "x" is forbidden:\n user\x1b[2J "y"'})
    forbidden = api_error(_api_exception(403, status), "reading Secret ns/x")
    assert (
        str(forbidden)
        == 'reading Secret ns/x: forbidden (403): secrets "x" is forbidden: user\\x1b[2J "y"'
    )
    assert forbidden.status == 403
    missing = api_error(_api_exception(404, "{}"), "reading Secret ns/x")
    assert (str(missing), missing.status) == ("reading Secret ns/x: not found", 404)
    other = api_error(_api_exception(500, "not json at all"), "listing Pods")
    assert str(other) == "listing Pods: HTTP 500: not json at all"
    quiet = api_error(_api_exception(403, status), "reading Secret ns/x", quote_server=False)
    assert str(quiet) == "reading Secret ns/x: HTTP 403 Reason"
    assert quiet.server_message.startswith('secrets "x"')  # kept for a caller's decision


async def test_an_unreachable_api_server_is_named(tmp_path: Path, refused: str) -> None:
    api = await api_client(str(write_kubeconfig(tmp_path / "kubeconfig", refused)))
    assert api is not None
    async with api:
        core = client.CoreV1Api(api)
        with pytest.raises(KubeError) as caught:
            await call(
                core.read_namespaced_secret("x", "ns", _request_timeout=5),
                what="reading Secret ns/x",
                host=refused,
            )
        assert str(caught.value).startswith(
            f"reading Secret ns/x: cannot reach API server {refused}: "
        )
        assert caught.value.status is None
        with pytest.raises(KubeError) as caught:
            await call(
                core.read_namespaced_secret("x", "ns", _request_timeout=5),
                what="reading Secret ns/x",
                quote_server=False,
            )
        assert str(caught.value) == (
            "reading Secret ns/x: cannot reach the API server: ClientConnectorError"
        )


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_an_api_server_that_does_not_answer_times_out(tmp_path: Path) -> None:
    async with silent_server() as url:
        api = await api_client(str(write_kubeconfig(tmp_path / "kubeconfig", url)))
        assert api is not None
        async with api:
            core = client.CoreV1Api(api)
            with pytest.raises(KubeError) as caught:
                await call(
                    core.read_namespaced_secret("x", "ns", _request_timeout=0.2),
                    what="reading Secret ns/x",
                    host=url,
                )
    assert str(caught.value) == f"reading Secret ns/x: timed out talking to API server {url}"


# --------------------------------------------------------------------------- every command


def test_certs_inject_and_audit_follow_the_policy(
    home: Path, tmp_path: Path, refused: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No flag: ~/.kube/config is the cluster, for `certs inject` as for `audit`."""
    write_kubeconfig(home / ".kube" / "config", refused)
    paths = pki.generate(service="s", namespace="n", out_dir=tmp_path / "certs")
    for argv in (
        ["certs", "inject", "--ca-file", str(paths.ca_cert)],
        ["audit", "cluster", "-n", "fns"],
    ):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert f"cannot reach API server {refused}" in err, err


def test_serve_follows_the_policy(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli.build_parser().parse_args(["serve", "--cert-dir", str(tmp_path / "certs")])
    overrides = app._overrides(args)
    assert overrides(default_config()).kube.kubeconfig is None
    default = write_kubeconfig(home / ".kube" / "config", "https://127.0.0.1:1")
    assert overrides(default_config()).kube.kubeconfig == str(default)
    flagged = cli.build_parser().parse_args(["serve", "--kubeconfig", "/flag/config"])
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    assert app._overrides(flagged)(default_config()).kube.kubeconfig == "/flag/config"
    # $KUBECONFIG over ~/.kube/config, all the way to serve's start: it names the file it tried
    args.port, args.metrics_port, args.host = 0, 0, "127.0.0.1"
    assert app.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"kubeconfig {tmp_path / 'absent'} not found" in err, err
