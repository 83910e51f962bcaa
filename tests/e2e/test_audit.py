"""`pf-webhook audit` against a real kube-apiserver: tokens minted by the TokenRequest API and
verified with the API server's own issuer discovery and JWKS; StatefulSets listed from the
cluster. No webhook is installed here: the StatefulSets are stored exactly as the worker shapes
them. Namespaces start with `e2e-audit` so no other test module's webhook selects them.
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from controlplane import ControlPlane
from cryptography.hazmat.primitives.asymmetric import ec

from tests import worker
from webhook import cli, configfile
from webhook.core import mutation

TOKEN_NS = "e2e-audit"
CLUSTER_NS = "e2e-audit-cluster"
ACCOUNT = "fn-audit"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Hidden(str):
    """A token in a test: a failing assertion or traceback shows ``<token>``, never the value."""

    def __repr__(self) -> str:
        return "<token>"


def _leaks(text: str, token: str) -> bool:
    return any(part and part in text for part in [token, *token.split(".")])


def _run(capsys: pytest.CaptureFixture[str], *argv: str, token: str | None = None) -> Run:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    if token is not None:
        leaked = _leaks(captured.out, token) or _leaks(captured.err, token)
        assert not leaked, "token leaked"
    return Run(code, captured.out, captured.err)


def _ensure_namespace(cp: ControlPlane, name: str) -> None:
    if not cp.kubectl("get", "namespace", name, "--ignore-not-found", "-o", "name").strip():
        cp.kubectl("create", "namespace", name)


@pytest.fixture(scope="module")
def minted(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _ensure_namespace(control_plane, TOKEN_NS)
    control_plane.kubectl("create", "serviceaccount", ACCOUNT, "-n", TOKEN_NS)
    token = control_plane.kubectl(
        "create", "token", ACCOUNT, "-n", TOKEN_NS, "--audience", "pulsar", "--duration", "10m"
    ).strip()
    path = tmp_path_factory.mktemp("audit") / "token"
    path.write_text(token + "\n")
    return path


def test_token_verifies_against_the_cluster(
    control_plane: ControlPlane, minted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = Hidden(minted.read_text().strip())
    kubeconfig = str(control_plane.kubeconfig)
    run = _run(
        capsys,
        *("audit", "token", str(minted), "--kubeconfig", kubeconfig, "--audience", "pulsar"),
        "-o",
        "json",
        token=token,
    )
    assert run.code == 0, run.out + run.err
    doc = run.json()
    assert doc["verified"] is True
    assert doc["findings"] == []
    assert doc["role"] == f"system:serviceaccount:{TOKEN_NS}:{ACCOUNT}"
    assert doc["issuer"] == control_plane.sa_issuer
    assert doc["claims"]["iss"] == control_plane.sa_issuer
    assert doc["namespace"] == TOKEN_NS
    assert doc["serviceAccount"] == ACCOUNT
    assert doc["algorithm"] == "ES256"
    assert doc["lifetimeSeconds"] == 600
    assert doc["keySource"].endswith("/openid/v1/jwks")

    text = _run(capsys, "audit", "token", str(minted), "--kubeconfig", kubeconfig, token=token)
    assert text.code == 0, text.out + text.err
    assert f"pulsar role:     system:serviceaccount:{TOKEN_NS}:{ACCOUNT}" in text.out
    assert "verified:        yes" in text.out


def test_token_for_another_audience(
    control_plane: ControlPlane, minted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = Hidden(minted.read_text().strip())
    run = _run(
        capsys,
        *("audit", "token", str(minted), "--kubeconfig", str(control_plane.kubeconfig)),
        *("--audience", "other"),
        token=token,
    )
    assert run.code == 1
    assert "verified:        yes" in run.out
    assert "FINDING [aud] audience pulsar is not one of other" in run.out


def test_token_of_another_issuer(
    control_plane: ControlPlane, minted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cluster's keys, but the user expects another issuer: an `iss` finding."""
    run = _run(
        capsys,
        *("audit", "token", str(minted), "--kubeconfig", str(control_plane.kubeconfig)),
        *("--issuer", "https://other.example", "-o", "json"),
        token=Hidden(minted.read_text().strip()),
    )
    assert run.code == 1
    doc = run.json()
    assert doc["verified"] is True
    assert [f["check"] for f in doc["findings"]] == ["iss"]


def test_cluster_reports_functions_and_shared_role(
    control_plane: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    installed = control_plane.kubectl(
        "get", "mutatingwebhookconfigurations,validatingwebhookconfigurations", "-o", "name"
    ).split()
    if installed:  # their selectors would catch our StatefulSets in any namespace
        pytest.fail(
            "admission webhook configurations are still installed (left by another test "
            f"module?): {', '.join(installed)}; this test stores worker StatefulSets as they are"
        )
    _ensure_namespace(control_plane, CLUSTER_NS)
    manifest = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            worker.statefulset(
                k8s_namespace=CLUSTER_NS,
                name=name,
                auth="sa-token",
                audience="pulsar",
                expiration=3600,
            )
            for name in ("audit-one", "audit-two")
        ],
    }
    path = tmp_path / "functions.json"
    path.write_text(json.dumps(manifest))
    control_plane.kubectl("create", "-f", str(path))

    kubeconfig = str(control_plane.kubeconfig)
    run = _run(
        capsys,
        *("audit", "cluster", "--kubeconfig", kubeconfig, "--namespace", CLUSTER_NS, "-o", "json"),
    )
    assert run.code == 0, run.out + run.err
    doc = run.json()
    functions = {f["function"]["name"]: f for f in doc["functions"]}
    assert set(functions) == {"audit-one", "audit-two"}
    for fn in functions.values():
        assert fn["namespace"] == CLUSTER_NS
        assert fn["audience"] == "pulsar"
        assert fn["expirationSeconds"] == 3600
        assert fn["serviceAccount"] == "default"
        assert fn["role"] == f"system:serviceaccount:{CLUSTER_NS}:default"
        assert fn["function"]["tenant"] == "public"
    role = f"system:serviceaccount:{CLUSTER_NS}:default"
    assert [(r["role"], r["count"]) for r in doc["sharedRoles"]] == [(role, 2)]
    assert doc["withoutAudience"] == []
    assert doc["counts"]["functions"] == 2
    assert doc["leftOut"] == 0

    limited = _run(
        capsys,
        *("audit", "cluster", "--kubeconfig", kubeconfig, "--namespace", CLUSTER_NS),
        *("--limit", "1"),
    )
    assert limited.code == 0, limited.err
    assert limited.out.splitlines()[0].startswith("NAMESPACE")
    assert "... 1 more functions left out (raise --limit)" in limited.out
    assert f"{role}  2 functions" in limited.out

    # All namespaces: ours are among them (other test modules may add their own).
    everywhere = _run(capsys, "audit", "cluster", "--kubeconfig", kubeconfig, "-o", "json")
    assert everywhere.code in (0, 1), everywhere.err
    names = {(f["namespace"], f["function"]["name"]) for f in everywhere.json()["functions"]}
    assert {(CLUSTER_NS, "audit-one"), (CLUSTER_NS, "audit-two")} <= names


# --- audit token --broker-config ------------------------------------------------------------------


def _broker(tmp_path: Path, name: str, **keys: str) -> str:
    path = tmp_path / name
    path.write_text("".join(f"{k}={v}\n" for k, v in keys.items()))
    return str(path)


def _answer(
    capsys: pytest.CaptureFixture[str],
    cp: ControlPlane,
    token_file: Path,
    broker: str,
    *extra: str,
) -> Run:
    run = _run(
        capsys,
        *("audit", "token", str(token_file), "--kubeconfig", str(cp.kubeconfig)),
        *("--broker-config", broker, *extra),
        token=Hidden(token_file.read_text().strip()),
    )
    assert run.err == "", run.err
    return run


def test_broker_accepts_the_audience_it_allows(
    control_plane: ControlPlane, minted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    role = f"system:serviceaccount:{TOKEN_NS}:{ACCOUNT}"
    allows_a = _broker(
        tmp_path,
        "a.conf",
        openIDAllowedTokenIssuers=control_plane.sa_issuer,
        openIDAllowedAudiences="pulsar",
    )
    run = _answer(capsys, control_plane, minted, allows_a)
    assert run.code == 0
    assert run.out.count("\n") == 1  # one line
    assert run.out.startswith(f"broker: ACCEPTED as {role} via openIDAllowedTokenIssuers")
    doc = _answer(capsys, control_plane, minted, allows_a, "-o", "json").json()["broker"]
    assert (doc["accepted"], doc["role"], doc["code"]) == (True, role, None)
    assert any("anonymous access" in n for n in doc["notes"])  # the in-cluster issuer caveat

    allows_b = _broker(
        tmp_path,
        "b.conf",
        openIDAllowedTokenIssuers=control_plane.sa_issuer,
        openIDAllowedAudiences="audience-b",
    )
    refused = _answer(capsys, control_plane, minted, allows_b)
    assert refused.code == 1
    assert refused.out.startswith(
        "broker: REFUSED [INVALID_JWT_CLAIM] The Claim 'aud' value doesn't contain the required "
        "audience. (token: pulsar; openIDAllowedAudiences: audience-b)"
    )


def test_broker_refuses_http_issuers_and_a_missing_role_claim(
    control_plane: ControlPlane, minted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    http_issuer = control_plane.sa_issuer.replace("https://", "http://")
    required = _broker(
        tmp_path,
        "http.conf",
        openIDAllowedTokenIssuers=http_issuer,
        openIDAllowedAudiences="pulsar",
    )
    run = _answer(capsys, control_plane, minted, required)
    assert run.code == 1
    assert run.out == (
        f"broker: WOULD NOT START: Issuer URL does not use https, but must: {http_issuer}\n"
    )
    not_required = _broker(
        tmp_path,
        "http-ok.conf",
        openIDAllowedTokenIssuers=http_issuer,
        openIDAllowedAudiences="pulsar",
        openIDRequireIssuersUseHttps="false",
    )
    run = _answer(capsys, control_plane, minted, not_required)
    assert run.out.startswith(
        f"broker: REFUSED [UNSUPPORTED_ISSUER] Issuer not allowed: {control_plane.sa_issuer}"
    )  # compared exactly: the token's issuer is https

    role_claim = _broker(
        tmp_path,
        "role.conf",
        openIDAllowedTokenIssuers=control_plane.sa_issuer,
        openIDAllowedAudiences="pulsar",
        openIDRoleClaim="pulsar_role",
    )
    run = _answer(capsys, control_plane, minted, role_claim)
    assert run.code == 1
    assert run.out.startswith(
        "broker: REFUSED [INVALID_JWT_CLAIM] The Claim 'pulsar_role' is not present in the JWT."
    )


@pytest.mark.parametrize(
    ("mode", "paths"),
    [
        (
            "KUBERNETES_DISCOVER_PUBLIC_KEYS",
            ["/.well-known/openid-configuration/", "/openid/v1/jwks/"],
        ),
        ("KUBERNETES_DISCOVER_TRUSTED_ISSUER", ["/.well-known/openid-configuration/"]),
    ],
)
def test_broker_fallback_discovery_names_the_api_server_endpoints(
    control_plane: ControlPlane,
    minted: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    paths: list[str],
) -> None:
    conf = _broker(
        tmp_path, "fallback.conf", openIDAllowedAudiences="pulsar", openIDFallbackDiscoveryMode=mode
    )
    run = _answer(capsys, control_plane, minted, conf, "-o", "json")
    assert run.code == 0
    doc = run.json()["broker"]
    assert doc["accepted"] is True
    assert doc["role"] == f"system:serviceaccount:{TOKEN_NS}:{ACCOUNT}"
    assert doc["apiServerEndpoints"] == [f"GET {control_plane.server}{p}" for p in paths]
    assert mode in doc["keys"]
    for path in paths:  # the real API server serves what the broker would read
        status, body = control_plane.get(path)
        assert status == 200, (path, body[:200])
    line = _answer(capsys, control_plane, minted, conf).out
    assert f"the broker reads GET {control_plane.server}/.well-known/openid-configuration/" in line


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_broker_refuses_hs256_and_alg_none_whatever_the_key_set(
    control_plane: ControlPlane, minted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = Hidden(minted.read_text().strip())
    header = pyjwt.get_unverified_header(real)
    claims = pyjwt.decode(real, options={"verify_signature": False})
    secret = b"a-shared-secret-of-32-bytes-long!"
    forged = {
        "hs256": Hidden(
            pyjwt.encode(claims, secret, algorithm="HS256", headers={"kid": header["kid"]})
        ),
        "none": Hidden(f"{_b64({'alg': 'none', 'kid': header['kid']})}.{_b64(claims)}."),
    }
    conf = _broker(
        tmp_path,
        "ok.conf",
        openIDAllowedTokenIssuers=control_plane.sa_issuer,
        openIDAllowedAudiences="pulsar",
    )
    oct_jwks = tmp_path / "oct.json"
    oct_key = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    oct_jwks.write_text(json.dumps({"keys": [{"kty": "oct", "kid": header["kid"], "k": oct_key}]}))
    for name, token in forged.items():
        path = tmp_path / name
        path.write_text(token)
        cluster = _answer(capsys, control_plane, path, conf)  # the cluster's keys: all have alg
        assert cluster.code == 1
        assert cluster.out.startswith("broker: REFUSED [ALGORITHM_MISMATCH] JWK's alg [ES256]")
        own = _run(
            capsys,
            *("audit", "token", str(path), "--jwks", str(oct_jwks), "--broker-config", conf),
            token=token,
        )  # a key set holding the shared secret itself
        assert own.code == 1
        assert own.out.startswith("broker: REFUSED [INVALID_PUBLIC_KEY]"), own.out


# --- audit cluster: pods, pf-secret tokens, grants, broker ----------------------------------------

FLEET_NS = "e2e-audit-fleet"


def _local_token(**claims: Any) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return Hidden(pyjwt.encode(claims, key, algorithm="ES256", headers={"kid": "submitter"}))


def _token_secret_function(name: str, secret: str, **kwargs: Any) -> dict[str, Any]:
    sts = worker.statefulset(k8s_namespace=FLEET_NS, name=name, auth="token-secret", **kwargs)
    sts["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] = secret
    return sts


def _pod_of(sts: dict[str, Any], index: int, owner_uid: str | None, **spec: Any) -> dict[str, Any]:
    template = sts["spec"]["template"]
    metadata: dict[str, Any] = {
        "name": f"{sts['metadata']['name']}-{index}",
        "namespace": FLEET_NS,
        "labels": dict(template["metadata"]["labels"]),
    }
    if owner_uid is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": sts["metadata"]["name"],
                "uid": owner_uid,
                "controller": True,
            }
        ]
    pod_spec = {**json.loads(json.dumps(template["spec"])), **spec}
    # what the ServiceAccount admission plugin (off in the test API server) fills in
    pod_spec.setdefault("serviceAccountName", "default")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


@pytest.fixture(scope="module")
def fleet(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Functions with a per-function and a shared service account, two pf-secret functions (an
    expired token, one that never expires), pods (one edited to another account) and a function
    pod without its StatefulSet, stored as they are (no webhook installed)."""
    installed = control_plane.kubectl(
        "get", "mutatingwebhookconfigurations,validatingwebhookconfigurations", "-o", "name"
    ).split()
    if installed:
        pytest.fail(f"admission webhook configurations are still installed: {installed}")
    _ensure_namespace(control_plane, FLEET_NS)
    control_plane.kubectl("create", "serviceaccount", "fn-own", "-n", FLEET_NS)
    now = int(time.time())
    tokens = {
        "pf-secret-expd1": _local_token(
            sub="alice",
            iss="https://auth.example",
            aud="pulsar",
            iat=now - 7200,
            nbf=now - 7200,
            exp=now - 3600,
        ),
        "pf-secret-never": _local_token(sub="bob", iss="https://auth.example", iat=now - 60),
    }
    own = worker.statefulset(
        k8s_namespace=FLEET_NS,
        namespace="orders",
        name="own",
        auth="sa-token",
        audience="pulsar",
        expiration=3600,
    )
    own["spec"]["template"]["spec"]["serviceAccountName"] = "fn-own"
    script = own["spec"]["template"]["spec"]["containers"][0]["command"][2]
    own["spec"]["template"]["spec"]["containers"][0]["command"][2] = script.replace(
        '"componentType":"FUNCTION"',
        '"logTopic":"persistent://public/orders/log","componentType":"FUNCTION"',
    )
    functions = {
        "own": own,
        **{
            name: worker.statefulset(
                k8s_namespace=FLEET_NS,
                namespace="shared",
                name=name,
                auth="sa-token",
                audience="pulsar",
                expiration=3600,
            )
            for name in ("shared-one", "shared-two")
        },
        "expired": _token_secret_function("expired", "pf-secret-expd1", namespace="billing"),
        "forever": _token_secret_function("forever", "pf-secret-never", namespace="billing"),
    }
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": FLEET_NS},
            "data": {"token": base64.b64encode(token.encode()).decode()},
        }
        for secret, token in tokens.items()
    ]
    items += list(functions.values())
    path = tmp_path_factory.mktemp("fleet") / "fleet.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    control_plane.kubectl("create", "-f", str(path))
    uids = {
        key: control_plane.kubectl(
            "get",
            "statefulset",
            sts["metadata"]["name"],
            "-n",
            FLEET_NS,
            "-o",
            "jsonpath={.metadata.uid}",
        ).strip()
        for key, sts in functions.items()
    }
    orphan = worker.statefulset(k8s_namespace=FLEET_NS, namespace="gone", name="deleted")
    pods = [
        _pod_of(functions["own"], 0, uids["own"], serviceAccountName="default"),  # edited
        _pod_of(functions["shared-one"], 0, uids["shared-one"]),
        _pod_of(functions["expired"], 0, None),  # matched by the selector
        _pod_of(orphan, 0, None),
    ]
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}))
    control_plane.kubectl("create", "-f", str(path))
    return {"functions": functions, "tokens": tokens, "orphan": orphan}


def _cluster(
    capsys: pytest.CaptureFixture[str], cp: ControlPlane, fleet: dict[str, Any], *extra: str
) -> Run:
    run = _run(
        capsys, "audit", "cluster", "--kubeconfig", str(cp.kubeconfig), "-n", FLEET_NS, *extra
    )
    leaked = any(_leaks(run.out + run.err, token) for token in fleet["tokens"].values())
    assert not leaked, "a stored token leaked"
    return run


def test_cluster_reports_pods_token_secrets_and_shared_roles(
    control_plane: ControlPlane, fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run = _cluster(capsys, control_plane, fleet, "-o", "json", "--warn-days", "30")
    assert run.code == 1, run.err  # an expired stored token is a finding
    doc = run.json()
    names = {key: sts["metadata"]["name"] for key, sts in fleet["functions"].items()}
    by_key = {key: f for key in names for f in doc["functions"] if f["name"] == names[key]}
    assert sorted(f["name"] for f in doc["functions"]) == sorted(names.values())
    role = f"system:serviceaccount:{FLEET_NS}:".__add__

    own = by_key["own"]
    assert (own["serviceAccount"], own["role"]) == ("fn-own", role("fn-own"))
    [pod] = own["pods"]
    assert pod["serviceAccount"] == "default"
    assert pod["differsFromTemplate"] == ["service account default (template: fn-own)"]
    assert own["pulsarRoles"] == [role("fn-own"), role("default")]

    assert [p["name"] for p in by_key["shared-one"]["pods"]] == [f"{names['shared-one']}-0"]
    assert by_key["shared-one"]["pods"][0]["differsFromTemplate"] == []
    assert by_key["shared-two"]["pods"] == []

    expired = by_key["expired"]["tokenSecrets"]
    assert expired == [
        {
            "secret": "pf-secret-expd1",
            "status": "expired",
            "subject": "alice",
            "issuer": "https://auth.example",
            "audiences": ["pulsar"],
            "expires": expired[0]["expires"],
            "problem": None,
        }
    ]
    assert [p["tokenSecrets"] for p in by_key["expired"]["pods"]] == [["pf-secret-expd1"]]
    assert by_key["expired"]["pulsarRoles"] == ["alice"]
    forever = by_key["forever"]["tokenSecrets"][0]
    assert (forever["status"], forever["subject"], forever["expires"]) == (
        "never-expires",
        "bob",
        None,
    )
    assert by_key["forever"]["pulsarRoles"] == ["bob"]

    shared = {s["role"]: s["functions"] for s in doc["sharedRoles"]}
    assert shared == {
        role("default"): sorted(
            f"{FLEET_NS}/{names[k]}" for k in ("own", "shared-one", "shared-two")
        )
    }
    assert doc["podsWithoutStatefulSet"] == [f"{FLEET_NS}/{fleet['orphan']['metadata']['name']}-0"]
    counts = doc["counts"]
    assert (counts["functions"], counts["pods"], counts["withTokenSecret"]) == (5, 4, 2)
    assert (counts["tokenSecretsExpired"], counts["tokenSecretsNeverExpiring"]) == (1, 1)

    text = _cluster(capsys, control_plane, fleet)
    assert text.code == 1
    header = text.out.splitlines()[0].split()
    assert header[:3] == ["NAMESPACE", "NAME", "FUNCTION"] and "PODS" in header
    assert f"pf-secret-expd1: expired (expires {expired[0]['expires']}), subject alice" in text.out
    assert "pf-secret-never: never-expires, subject bob" in text.out
    assert f"{FLEET_NS}/{names['own']}-0: service account default (template: fn-own)" in text.out
    assert "function pod without a function StatefulSet" in text.out


def test_cluster_grants_match_the_functions_topics(
    control_plane: ControlPlane, fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _cluster(capsys, control_plane, fleet, "-o", "json", "--grants").json()
    grants = {g["role"]: g for g in doc["grants"]}
    own_role = f"system:serviceaccount:{FLEET_NS}:fn-own"
    expected = {
        ("topics", "persistent://public/orders/in", "consume"),
        ("topics", "persistent://public/orders/out", "produce"),
        ("topics", "persistent://public/orders/log", "produce"),
        ("namespaces", "public/orders", "functions"),
    }
    got = set()
    for command in grants[own_role]["commands"]:
        argv = shlex.split(command)
        assert argv[0] == "pulsar-admin" and argv[2] == "grant-permission"
        assert argv[argv.index("--role") + 1] == own_role
        got.add((argv[1], argv[3], argv[argv.index("--actions") + 1]))
    assert got == expected
    assert grants[own_role]["shared"] is False
    default = grants[f"system:serviceaccount:{FLEET_NS}:default"]
    assert default["shared"] is True and len(default["functions"]) == 3
    assert grants["alice"]["functions"] == ["public/billing/expired"]
    text = _cluster(capsys, control_plane, fleet, "--grants").out
    assert f"# role {own_role}: public/orders/own" in text
    assert "[SHARED by 3 functions]" in text
    assert (
        f"pulsar-admin topics grant-permission persistent://public/orders/in --role {own_role} "
        "--actions consume"
    ) in text


def test_cluster_broker_answer_per_function(
    control_plane: ControlPlane,
    fleet: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conf = _broker(
        tmp_path,
        "broker.conf",
        openIDAllowedTokenIssuers=control_plane.sa_issuer,
        openIDAllowedAudiences="pulsar",
    )
    doc = _cluster(capsys, control_plane, fleet, "-o", "json", "--broker-config", conf).json()
    answers = {f["function"]["name"]: f["broker"] for f in doc["functions"]}
    assert answers["own"]["accepted"] is True
    assert answers["own"]["role"] == f"system:serviceaccount:{FLEET_NS}:fn-own"
    assert answers["shared-one"]["accepted"] is True
    pod = f"{fleet['functions']['own']['metadata']['name']}-0"
    assert f"pod {pod} runs as system:serviceaccount:{FLEET_NS}:default" in " ".join(
        answers["own"]["notes"]
    )
    assert answers["expired"]["code"] == "UNSUPPORTED_ISSUER"  # the submitter's issuer
    other = _broker(
        tmp_path,
        "other.conf",
        openIDAllowedTokenIssuers="https://auth.example",
        openIDAllowedAudiences="pulsar",
    )
    doc = _cluster(capsys, control_plane, fleet, "-o", "json", "--broker-config", other).json()
    answers = {f["function"]["name"]: f["broker"] for f in doc["functions"]}
    assert answers["expired"]["code"] == "EXPIRED_JWT"
    assert answers["forever"]["code"] == "INVALID_JWT_CLAIM"  # no aud
    assert answers["own"]["code"] == "UNSUPPORTED_ISSUER"
    text = _cluster(capsys, control_plane, fleet, "--broker-config", other).out
    assert "REFUSED EXPIRED_JWT" in text


def test_no_log_line_contains_a_token(
    control_plane: ControlPlane, minted: Path, fleet: dict[str, Any]
) -> None:
    """The API server's own log and audit log (level Metadata: no bodies) hold none of the tokens
    these tests minted or stored; our CLI output was checked after every call."""
    tokens = [Hidden(minted.read_text().strip()), *fleet["tokens"].values()]
    for log in (control_plane.audit_log, control_plane.apiserver_log):
        text = log.read_text(errors="replace")
        assert text, f"{log.name} is empty"
        leaked = any(_leaks(text, token) for token in tokens)
        assert not leaked, f"a token is in {log.name}"


# --- audit cluster: the cluster-backed rules, as the validating webhook decides them ---------------

FACTS_NS = "e2e-audit-facts"
SECRET_VALUE = "s3cr3t-db-value"  # must never be printed


def _stored_as_admitted(sts: dict[str, Any]) -> dict[str, Any]:
    """The StatefulSet as the mutating webhook would have stored it (the CA Secret moved into the
    token volume), with the default configuration `audit cluster` uses too."""
    return mutation.mutate(sts, configfile.read(None), namespace=FACTS_NS).obj


def _facts_function(name: str, *, account: str, secret: str, ca: str) -> dict[str, Any]:
    sts = worker.statefulset(
        k8s_namespace=FACTS_NS,
        namespace="facts",
        name=name,
        auth="sa-token",
        audience="pulsar",
        expiration=3600,
        ca_secret=ca,
        secrets={"DB_PASSWORD": {"path": secret, "key": "password"}},
    )
    sts["spec"]["template"]["spec"]["serviceAccountName"] = account
    return _stored_as_admitted(sts)


@pytest.fixture(scope="module")
def facts_fleet(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A function lacking its ServiceAccount, a Secret key and its CA Secret, and a complete
    one, stored as admitted (no webhook installed). Returns the Secrets' base64 value."""
    installed = control_plane.kubectl(
        "get", "mutatingwebhookconfigurations,validatingwebhookconfigurations", "-o", "name"
    ).split()
    if installed:
        pytest.fail(f"admission webhook configurations are still installed: {installed}")
    _ensure_namespace(control_plane, FACTS_NS)
    value = base64.b64encode(SECRET_VALUE.encode()).decode()
    secret = {"apiVersion": "v1", "kind": "Secret"}
    items: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "fn-real"}},
        # the lacking function's Secret exists but has another key than the one it needs
        {**secret, "metadata": {"name": "db-partial"}, "data": {"user": value}},
        {**secret, "metadata": {"name": "db-full"}, "data": {"password": value}},
        {**secret, "metadata": {"name": "broker-ca"}, "data": {"ca.crt": value}},
        _facts_function("lacking", account="fn-nobody", secret="db-partial", ca="no-such-ca"),
        _facts_function("complete", account="fn-real", secret="db-full", ca="broker-ca"),
    ]
    path = tmp_path_factory.mktemp("facts") / "facts.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    control_plane.kubectl("create", "-n", FACTS_NS, "-f", str(path))
    return value


def test_cluster_reports_the_cluster_backed_rules(
    control_plane: ControlPlane, facts_fleet: str, capsys: pytest.CaptureFixture[str]
) -> None:
    value = facts_fleet
    argv = ("audit", "cluster", "--kubeconfig", str(control_plane.kubeconfig), "-n", FACTS_NS)
    run = _run(capsys, *argv, "-o", "json")
    assert SECRET_VALUE not in run.out + run.err and value not in run.out + run.err
    assert run.code == 1, run.out + run.err  # the lacking function would be denied
    functions = {f["function"]["name"]: f for f in run.json()["functions"]}
    assert set(functions) == {"lacking", "complete"}
    assert functions["complete"]["findings"] == []
    lacking = {(f["rule"], f["action"]): f["message"] for f in functions["lacking"]["findings"]}
    assert set(lacking) == {  # each with its default outcome, as /validate decides it
        ("tokens/service-account", "deny"),
        ("secrets/exists", "warn"),
        ("tokens/ca-secret", "deny"),
    }, lacking
    assert "ServiceAccount fn-nobody does not exist" in lacking[("tokens/service-account", "deny")]
    assert lacking[("secrets/exists", "warn")] == "Secret db-partial has no key 'password'"
    assert "CA Secret no-such-ca does not exist" in lacking[("tokens/ca-secret", "deny")]

    table = _run(capsys, *argv)
    assert SECRET_VALUE not in table.out + table.err and value not in table.out + table.err
    assert table.code == 1, table.err
    for rule in ("tokens/service-account", "secrets/exists", "tokens/ca-secret"):
        assert rule in table.out
    # the key the lacking Secret does have is not the auditor's to show either
    assert "'user'" not in table.out


def test_cluster_says_which_rules_the_auditor_could_not_check(
    control_plane: ControlPlane,
    facts_fleet: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An auditor who may list StatefulSets and pods but not read Secrets or ServiceAccounts
    gets findings saying the cluster-backed rules could not be checked, and why: no silent pass."""
    rbac = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "lister"}},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "lister"},
                "rules": [
                    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["list"]},
                    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "lister"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "lister",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "lister", "namespace": FACTS_NS}],
            },
        ],
    }
    path = tmp_path / "lister.json"
    path.write_text(json.dumps(rbac))
    control_plane.kubectl("create", "-n", FACTS_NS, "-f", str(path))
    token = Hidden(
        control_plane.kubectl(
            "create", "token", "lister", "-n", FACTS_NS, "--duration", "10m"
        ).strip()
    )
    admin = json.loads(control_plane.kubeconfig.read_text())
    admin["users"] = [{"name": "lister", "user": {"token": token}}]
    admin["contexts"] = [{"name": "e2e", "context": {"cluster": "e2e", "user": "lister"}}]
    kubeconfig = tmp_path / "lister.kubeconfig"
    kubeconfig.write_text(json.dumps(admin))
    kubeconfig.chmod(0o600)

    run = _run(
        capsys,
        *("audit", "cluster", "--kubeconfig", str(kubeconfig), "-n", FACTS_NS, "-o", "json"),
        token=token,
    )
    assert facts_fleet not in run.out + run.err
    assert run.code == 1, run.out + run.err
    for fn in run.json()["functions"]:
        findings = {f["rule"]: f["message"] for f in fn["findings"]}
        assert set(findings) == {"secrets/exists", "tokens/ca-secret", "tokens/service-account"}
        for message in findings.values():
            assert message.startswith("could not check "), message
            assert "forbidden (403)" in message, message
