"""`pf-webhook audit token` with tokens minted here (ES256, a fresh P-256 key), and the pure
parts of `audit cluster` on worker-shaped StatefulSets.

Every CLI call goes through `webhook.cli.main` in-process; after each one the captured stdout
and stderr are checked for the token and its parts, which must never be printed.
"""

from __future__ import annotations

import http.server
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests import worker
from webhook import cli
from webhook.audit import cluster, jwt_parse
from webhook.core.config import default_config, loads

NOW = 1_800_000_000
ISSUER = "https://kubernetes.default.svc.cluster.local"
KID = "test-key-1"
ROLE = "system:serviceaccount:pulsar-functions:fn-exclamation"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Keys:
    private: ec.EllipticCurvePrivateKey
    jwks_path: Path
    jwks: dict[str, Any]


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": ROLE,
        "aud": ["pulsar"],
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3540,
        "jti": "6f1c0e6e-1111-4a3b-9c1d-000000000001",
        "kubernetes.io": {
            "namespace": "pulsar-functions",
            "serviceaccount": {"name": "fn-exclamation", "uid": "sa-uid-1"},
            "pod": {"name": "pf-public-default-exclamation-0", "uid": "pod-uid-1"},
            "node": {"name": "node-a", "uid": "node-uid-1"},
        },
    }
    claims.update(overrides)
    return claims


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": KID, "alg": "ES256", "use": "sig"})
    jwks = {"keys": [jwk]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    return Keys(private=private, jwks_path=path, jwks=jwks)


def _mint(keys: Keys, *, kid: str | None = KID, **overrides: Any) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(_claims(**overrides), keys.private, algorithm="ES256", headers=headers)


def _write(tmp_path: Path, token: str, name: str = "token") -> Path:
    path = tmp_path / name
    path.write_text(token + "\n")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str, secrets: tuple[str, ...] = ()) -> Run:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    run = Run(code, captured.out, captured.err)
    for token in secrets:
        _assert_not_leaked(run, token)
    return run


def _assert_not_leaked(run: Run, token: str) -> None:
    """Neither the token nor any of its three parts is in the output."""
    parts = [token, *[p for p in token.split(".") if len(p) >= 8]]
    for part in parts:
        assert part not in run.out, "token material on stdout"
        assert part not in run.err, "token material on stderr"


def _audit(capsys: pytest.CaptureFixture[str], token: str, tmp_path: Path, *extra: str) -> Run:
    path = _write(tmp_path, token)
    return _run(capsys, "audit", "token", str(path), "--now", str(NOW), *extra, secrets=(token,))


# --------------------------------------------------------------------------- verification


def test_valid_token_verifies(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
) -> None:
    token = _mint(keys)
    run = _audit(
        capsys,
        token,
        tmp_path,
        "--jwks",
        str(keys.jwks_path),
        "--issuer",
        ISSUER,
        "--audience",
        "pulsar",
    )
    assert run.code == 0, run.out + run.err
    assert run.err == ""
    assert f"pulsar role:     {ROLE}" in run.out
    assert "verified:        yes" in run.out
    assert "namespace:       pulsar-functions" in run.out
    assert "service account: fn-exclamation (uid sa-uid-1)" in run.out
    assert "pod:             pf-public-default-exclamation-0" in run.out
    assert "issued:          2027-01-15T07:59:00Z" in run.out
    assert "lifetime:        1h (3600s)" in run.out
    assert f"key id:          {KID}" in run.out
    assert "algorithm:       ES256" in run.out
    assert "findings:        none" in run.out


def test_json_output_shape(capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path) -> None:
    token = _mint(keys)
    run = _audit(
        capsys, token, tmp_path, "--jwks", str(keys.jwks_path), "--audience", "pulsar", "-o", "json"
    )
    assert run.code == 0, run.err
    doc = run.json()
    assert {"verified", "claims", "role", "findings"} <= set(doc)
    assert doc["verified"] is True
    assert doc["role"] == ROLE
    assert doc["findings"] == []
    assert doc["claims"]["sub"] == ROLE
    assert doc["claims"]["aud"] == ["pulsar"]
    assert doc["claims"]["exp"] == NOW + 3540
    assert doc["claims"]["kubernetes.io"]["pod"] == {
        "name": "pf-public-default-exclamation-0",
        "uid": "pod-uid-1",
    }
    assert doc["namespace"] == "pulsar-functions"
    assert doc["serviceAccount"] == "fn-exclamation"
    assert doc["pod"] == "pf-public-default-exclamation-0"
    assert doc["keyId"] == KID
    assert doc["algorithm"] == "ES256"
    assert doc["lifetimeSeconds"] == 3600
    assert doc["expires"] == "2027-01-15T08:59:00Z"
    assert doc["issuer"] is None  # --jwks alone: the issuer is not known


def test_wrong_audience_is_a_finding(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
) -> None:
    token = _mint(keys)
    run = _audit(capsys, token, tmp_path, "--jwks", str(keys.jwks_path), "--audience", "other")
    assert run.code == 1
    assert "FINDING [aud] audience pulsar is not one of other" in run.out
    assert "verified:        yes" in run.out


def test_several_audiences_any_match(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
) -> None:
    token = _mint(keys, aud=["vault", "pulsar"])
    run = _audit(
        capsys,
        token,
        tmp_path,
        "--jwks",
        str(keys.jwks_path),
        "--audience",
        "other",
        "--audience",
        "pulsar",
    )
    assert run.code == 0, run.out


def test_expired_token(capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path) -> None:
    token = _mint(keys, iat=NOW - 7200, nbf=NOW - 7200, exp=NOW - 3600)
    run = _audit(capsys, token, tmp_path, "--jwks", str(keys.jwks_path), "-o", "json")
    assert run.code == 1
    findings = run.json()["findings"]
    assert [f["check"] for f in findings] == ["exp"]
    assert "expired at 2027-01-15T07:00:00Z (1h ago)" in findings[0]["message"]


def test_leeway_for_clock_skew(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
) -> None:
    token = _mint(keys, iat=NOW + 30, nbf=NOW + 30, exp=NOW - 30 + 3600)
    run = _audit(capsys, token, tmp_path, "--jwks", str(keys.jwks_path))
    assert run.code == 0, run.out


def test_not_yet_valid_and_issued_in_future(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
) -> None:
    token = _mint(keys, iat=NOW + 600, nbf=NOW + 600, exp=NOW + 4200)
    run = _audit(capsys, token, tmp_path, "--jwks", str(keys.jwks_path), "-o", "json")
    assert run.code == 1
    assert {f["check"] for f in run.json()["findings"]} == {"nbf", "iat"}


def test_tampered_signature(capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path) -> None:
    token = _mint(keys)
    head, payload, sig = token.split(".")
    tampered = f"{head}.{payload}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
    run = _audit(capsys, tampered, tmp_path, "--jwks", str(keys.jwks_path))
    _assert_not_leaked(run, token)
    assert run.code == 1
    assert "FINDING [signature] signature does not verify" in run.out
    assert "verified:        NO" in run.out


def test_tampered_claims_keep_old_signature(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
) -> None:
    token = _mint(keys)
    forged = _mint(keys, sub="system:serviceaccount:pulsar-functions:admin")
    spliced = ".".join([*forged.split(".")[:2], token.split(".")[2]])
    run = _audit(capsys, spliced, tmp_path, "--jwks", str(keys.jwks_path), "-o", "json")
    _assert_not_leaked(run, token)
    _assert_not_leaked(run, forged)
    assert run.code == 1
    doc = run.json()
    assert doc["verified"] is False
    assert doc["findings"][0]["check"] == "signature"


def test_other_key_same_kid(capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(_claims(), other, algorithm="ES256", headers={"kid": KID})
    run = _audit(capsys, token, tmp_path, "--jwks", str(keys.jwks_path))
    assert run.code == 1
    assert "signature does not verify" in run.out


def test_unknown_kid(capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path) -> None:
    token = _mint(keys, kid="rotated-away")
    run = _audit(capsys, token, tmp_path, "--jwks", str(keys.jwks_path))
    assert run.code == 1
    assert "signature NOT verified: no key with id rotated-away" in run.out
    assert f"(key ids: {KID})" in run.out


def test_no_kid_tries_every_key(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
) -> None:
    token = _mint(keys, kid=None)
    run = _audit(capsys, token, tmp_path, "--jwks", str(keys.jwks_path))
    assert run.code == 0, run.out


def test_no_key_source(capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path) -> None:
    token = _mint(keys)
    run = _audit(capsys, token, tmp_path, "-o", "json")
    assert run.code == 1
    doc = run.json()
    assert doc["verified"] is False
    assert doc["role"] == ROLE
    assert len(doc["findings"]) == 1
    assert "not verified" in doc["findings"][0]["message"].lower()
    text = _audit(capsys, token, tmp_path)
    assert "signature NOT verified" in text.out
    assert "verified:        NO (no key source)" in text.out


def test_rsa_key_without_alg_in_jwks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk["kid"] = "rsa-1"
    path = tmp_path / "rsa.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    for alg in ("RS256", "RS512"):  # without `alg` in the JWK, the token's algorithm is used
        token = jwt.encode(_claims(), private, algorithm=alg, headers={"kid": "rsa-1"})
        run = _audit(capsys, token, tmp_path, "--jwks", str(path))
        assert run.code == 0, run.out


def test_algorithm_does_not_fit_the_key(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
) -> None:
    """An ES256 key id on an RS256 token, and an EC key declared ES256 under ES384."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), private, algorithm="RS256", headers={"kid": KID})
    run = _audit(capsys, token, tmp_path, "--jwks", str(keys.jwks_path))
    assert run.code == 1
    assert "the token says RS256 but the matching key is for ES256" in run.out
    undeclared = dict(keys.jwks["keys"][0])
    del undeclared["alg"]
    path = tmp_path / "undeclared.json"
    path.write_text(json.dumps({"keys": [undeclared]}))
    run = _audit(capsys, token, tmp_path, "--jwks", str(path))
    assert run.code == 1
    assert "the token says RS256 but the matching key is for EC keys" in run.out


def test_unsigned_or_hmac_token_is_not_verified(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
) -> None:
    for token in (
        jwt.encode(_claims(), None, algorithm="none"),  # type: ignore[arg-type]  # no key for "none"
        jwt.encode(_claims(), "a-shared-secret-of-at-least-32-bytes!!", algorithm="HS256"),
    ):
        run = _audit(capsys, token, tmp_path, "--jwks", str(keys.jwks_path))
        assert run.code == 1
        assert "signature NOT verified: algorithm" in run.out


def test_issuer_mismatch(capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path) -> None:
    token = _mint(keys, iss="https://evil.example")
    run = _audit(capsys, token, tmp_path, "--jwks", str(keys.jwks_path), "--issuer", ISSUER)
    assert run.code == 1
    assert f"FINDING [iss] issuer https://evil.example is not {ISSUER}" in run.out


def test_subject_not_a_service_account(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
) -> None:
    token = _mint(keys, sub="admin")
    run = _audit(capsys, token, tmp_path, "--jwks", str(keys.jwks_path))
    assert run.code == 1
    assert "FINDING [sub] subject admin is not a service account" in run.out


def test_config_audiences_and_lifetime(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
) -> None:
    config = tmp_path / "functions_worker.yml"
    config.write_text(
        "functionRuntimeFactoryConfigs:\n"
        "  kubernetesFunctionAuthProviderConfig: {serviceAccountTokenExpirationSeconds: 600}\n"
        "webhook:\n  tokens:\n    allowedAudiences: [pulsar-prod]\n    maxExpirationSeconds: 1800\n"
    )
    token = _mint(keys)
    run = _audit(
        capsys,
        token,
        tmp_path,
        "--jwks",
        str(keys.jwks_path),
        "--config",
        str(config),
        "-o",
        "json",
    )
    assert run.code == 1
    messages = {f["check"]: f["message"] for f in run.json()["findings"]}
    assert set(messages) == {"aud", "lifetime"}
    assert "pulsar-prod" in messages["aud"]
    assert "maxExpirationSeconds 1800" in messages["lifetime"]
    # --audience wins over the config
    run = _audit(
        capsys,
        token,
        tmp_path,
        "--jwks",
        str(keys.jwks_path),
        "--config",
        str(config),
        "--audience",
        "pulsar",
        "-o",
        "json",
    )
    assert [f["check"] for f in run.json()["findings"]] == ["lifetime"]


def test_default_max_lifetime_and_warnafter(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
) -> None:
    year = 365 * 86400
    kube = dict(_claims()["kubernetes.io"], warnafter=NOW + 3547)
    claims: dict[str, Any] = {"kubernetes.io": kube}
    token = _mint(keys, iat=NOW - 60, nbf=NOW - 60, exp=NOW - 60 + year, **claims)
    run = _audit(capsys, token, tmp_path, "--jwks", str(keys.jwks_path))
    assert run.code == 1
    assert (
        "FINDING [lifetime] lifetime 365d (31536000s) is longer than maxExpirationSeconds 86400"
        in run.out
    )
    assert "NOTE legacy extended token: kubernetes.io.warnafter 2027-01-15T08:59:07Z" in run.out


def test_token_from_stdin(
    capsys: pytest.CaptureFixture[str], keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _mint(keys)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"\n  {token}  \n"))
    run = _run(
        capsys,
        "audit",
        "token",
        "-",
        "--jwks",
        str(keys.jwks_path),
        "--now",
        str(NOW),
        secrets=(token,),
    )
    assert run.code == 0, run.out


# --------------------------------------------------------------------------- errors (exit 2)


@pytest.mark.parametrize(
    "content, reason",
    [
        ("this is not a token at all", "not a JWT: expected 3 dot-separated parts, found 1"),
        ("", "no token"),
        ("a.b.c.d.e", "encrypted token (JWE)"),
        ("%%%.e30.c2ln", "header is not base64url"),
        ("bm90IGpzb24.e30.c2ln", "header is not JSON"),
        ("WzFd.e30.c2ln", "header is a JSON list"),
    ],
)
def test_garbage_is_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "garbage"
    path.write_text(content)
    run = _run(capsys, "audit", "token", str(path))
    assert run.code == 2
    assert run.out == ""
    assert run.err.count("\n") == 1 and run.err.startswith("error: ")
    assert reason in run.err
    assert "Traceback" not in run.err


def test_binary_and_missing_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    run = _run(capsys, "audit", "token", str(binary))
    assert (run.code, run.out) == (2, "")
    assert run.err.startswith("error: ") and run.err.count("\n") == 1
    run = _run(capsys, "audit", "token", str(tmp_path / "absent"))
    assert run.code == 2
    assert "cannot read" in run.err and run.err.count("\n") == 1


def test_bad_key_sources_are_errors(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
) -> None:
    token = _mint(keys)
    path = _write(tmp_path, token)
    empty = tmp_path / "empty-jwks.json"
    empty.write_text(json.dumps({"keys": []}))
    not_json = tmp_path / "broken.json"
    not_json.write_text("{")
    for extra, reason in (
        (["--jwks", str(tmp_path / "absent.json")], "cannot read"),
        (["--jwks", str(empty)], "did not contain any keys"),
        (["--jwks", str(not_json)], "not JSON"),
        (["--jwks", "http://127.0.0.1:9/jwks"], "cannot fetch JWKS"),
        (["--issuer", "http://127.0.0.1:9"], "cannot fetch OIDC discovery document"),
        (["--issuer", "not-a-url"], "not an http(s) URL"),
        (["--kubeconfig", str(tmp_path / "no-kubeconfig")], "not found"),
    ):
        run = _run(capsys, "audit", "token", str(path), *extra, secrets=(token,))
        assert run.code == 2, (extra, run.out, run.err)
        assert run.out == ""
        assert run.err.startswith("error: ") and run.err.count("\n") == 1, run.err
        assert reason in run.err, run.err


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture
def issuer_server(keys: Keys) -> Iterator[str]:
    """An OIDC issuer on loopback: discovery document and JWKS."""
    base: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": base["url"], "jwks_uri": base["url"] + "/openid/v1/jwks"}
            elif self.path == "/openid/v1/jwks":
                body = keys.jwks
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base["url"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_issuer_discovery(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path, issuer_server: str
) -> None:
    token = _mint(keys, iss=issuer_server)
    run = _audit(capsys, token, tmp_path, "--issuer", issuer_server, "-o", "json")
    assert run.code == 0, run.out + run.err
    doc = run.json()
    assert doc["verified"] is True
    assert doc["issuer"] == issuer_server
    assert doc["keySource"] == issuer_server + "/openid/v1/jwks"
    assert any("plain HTTP" in n for n in doc["notes"])
    # the token of another issuer, verified against this one's keys: the iss check catches it
    run = _audit(capsys, _mint(keys), tmp_path, "--issuer", issuer_server)
    assert run.code == 1
    assert "FINDING [iss]" in run.out


def test_jwks_url(
    capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path, issuer_server: str
) -> None:
    token = _mint(keys)
    run = _audit(capsys, token, tmp_path, "--jwks", issuer_server + "/openid/v1/jwks")
    assert run.code == 0, run.out + run.err
    run = _audit(capsys, token, tmp_path, "--jwks", issuer_server + "/nowhere")
    assert run.code == 2
    assert "HTTP 404" in run.err and run.err.count("\n") == 1


# --------------------------------------------------------------------------- parse_token


def test_parsed_token_never_shows_itself(keys: Keys) -> None:
    token = _mint(keys)
    parsed = jwt_parse.parse_token(token)
    assert token not in repr(parsed) and token not in str(parsed)
    assert parsed.claims["sub"] == ROLE


# --------------------------------------------------------------------------- cluster (pure)


def _sts(name: str, **kwargs: Any) -> dict[str, Any]:
    return worker.statefulset(k8s_namespace="fns", name=name, **kwargs)


def test_summarize_workload() -> None:
    obj = _sts(
        "exclamation", auth="sa-token", audience="pulsar", expiration=3600, ca_secret="broker-ca"
    )
    row = cluster.summarize_workload(obj, default_config())
    assert (row.namespace, row.tenant, row.pulsar_namespace, row.function) == (
        "fns",
        "public",
        "default",
        "exclamation",
    )
    assert row.audience == "pulsar"
    assert row.expiration == 3600
    assert row.service_account == "default"
    assert row.role == "system:serviceaccount:fns:default"
    assert row.ca_secrets == ("broker-ca/ca.crt",)


def test_cluster_report_shared_roles_and_limit() -> None:
    config = loads("webhook:\n  tokens: {allowedAudiences: [pulsar]}\n")
    rows = [
        cluster.summarize_workload(_sts(f"fn{i}", auth="sa-token", audience="pulsar"), config)
        for i in range(3)
    ]
    rows.append(cluster.summarize_workload(_sts("noaud", auth="sa-token"), config))
    rows.append(cluster.summarize_workload(_sts("noauth"), config))
    report = cluster.cluster_report(rows, scanned=7, limit=2, scope="namespace fns")
    assert len(report["functions"]) == 2
    assert report["leftOut"] == 3
    assert report["sharedRoles"][0]["role"] == "system:serviceaccount:fns:default"
    assert report["sharedRoles"][0]["count"] == 5
    assert report["sharedRoles"][0]["leftOut"] == 3
    assert len(report["withoutAudience"]) == 1
    assert "noaud" in report["withoutAudience"][0]
    counts = report["counts"]
    assert counts["statefulSets"] == 7
    assert counts["functions"] == 5
    assert counts["withToken"] == 4
    assert counts["withoutAudience"] == 1
    text = cluster.render_cluster_text(report, limit=2)
    lines = text.splitlines()
    assert lines[0].startswith("NAMESPACE")
    assert "... 3 more functions left out (raise --limit)" in text
    assert "system:serviceaccount:fns:default  5 functions" in text
    assert "summary: 7 StatefulSets and 0 pods in namespace fns, 5 functions" in text
    json.dumps(report)  # serialisable


def test_cluster_report_deny_findings() -> None:
    config = loads("webhook:\n  tokens: {allowedAudiences: [pulsar]}\n")
    row = cluster.summarize_workload(_sts("other", auth="sa-token", audience="vault"), config)
    report = cluster.cluster_report([row], scanned=1, limit=10, scope="all namespaces")
    assert report["allowed"] is False
    fn = report["functions"][0]
    assert fn["allowed"] is False
    assert any(f["rule"] == "tokens/audience" and f["action"] == "deny" for f in fn["findings"])
    text = cluster.render_cluster_text(report, limit=10)
    assert "DENY [tokens/audience]" in text


def test_cluster_without_a_cluster(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = _run(capsys, "audit", "cluster", "--kubeconfig", str(tmp_path / "absent"))
    assert run.code == 2
    assert run.err.startswith("error: kubeconfig") and run.err.count("\n") == 1
    run = _run(capsys, "audit", "cluster", "--limit", "0")
    assert run.code == 2


def test_audit_error_is_one_line_with_control_characters_escaped() -> None:
    from webhook.audit.errors import AuditError

    message = str(AuditError("JWKS http://peer/\x1b[2J: HTTP 500 bad\nreason\x07"))
    assert message == "JWKS http://peer/\\x1b[2J: HTTP 500 bad reason\\x07"
    assert str(AuditError(message)) == message  # escaping twice changes nothing


def test_token_text_escapes_key_origin_notes_and_findings() -> None:
    from webhook.audit.token import TokenReport, render_token_text

    url = "http://peer/\x1b[2Jjwks"
    report = TokenReport(
        verified=False,
        header={},
        claims={},
        key_origin=url,
        findings=[("signature", f"does not verify with keys from {url}")],
        notes=[f"keys fetched over plain HTTP from {url}"],
    )
    text = render_token_text(report)
    assert "\x1b" not in text
    assert text.count("http://peer/\\x1b[2Jjwks") == 3


def test_jwks_file_read_is_bounded(tmp_path: Path) -> None:
    import asyncio

    from webhook.audit import documents, keys
    from webhook.audit.errors import AuditError

    big = tmp_path / "jwks.json"
    big.write_bytes(b" " * (documents.MAX_DOCUMENT_BYTES + 1))
    with pytest.raises(AuditError, match="larger than"):
        asyncio.run(keys.keys_from_urls(issuer=None, jwks=str(big), ca_file=None))
