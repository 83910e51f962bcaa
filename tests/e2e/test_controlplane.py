"""Prove the control-plane fixture is a real, usable kube-apiserver.

These cover what the webhook's e2e tests rely on: the stamped version, client-cert admin access
through kubectl, TokenRequest-issued service-account tokens carrying our issuer and audience,
and the OIDC discovery endpoints a token verifier would use.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
from controlplane import ControlPlane  # importable via the sys.path entry in conftest.py


def _jwt_segment(segment: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def test_version_is_the_built_release(control_plane: ControlPlane) -> None:
    version = control_plane.get_json("/version")
    assert version["gitVersion"] == "v1.36.3"
    assert (version["major"], version["minor"]) == ("1", "36")


def test_kubectl_creates_and_reads_a_namespace(control_plane: ControlPlane) -> None:
    control_plane.kubectl("create", "namespace", "e2e-smoke")
    out = control_plane.kubectl("get", "namespace", "e2e-smoke", "-o", "json")
    ns = json.loads(out)
    assert ns["metadata"]["name"] == "e2e-smoke"
    assert ns["status"]["phase"] == "Active"


def test_token_request_issues_audience_bound_token(control_plane: ControlPlane) -> None:
    ns, sa = "e2e-token", "pulsar-fn"
    control_plane.kubectl("create", "namespace", ns)
    control_plane.kubectl("create", "serviceaccount", sa, "-n", ns)
    token = control_plane.kubectl(
        "create", "token", sa, "--audience", "pulsar", "--duration", "10m", "-n", ns
    ).strip()

    # Never print the token: assertions below show only decoded claims.
    header_b64, payload_b64, _sig = token.split(".")
    header, claims = _jwt_segment(header_b64), _jwt_segment(payload_b64)
    assert header["alg"] == "ES256"
    assert claims["aud"] == ["pulsar"]
    assert claims["iss"] == control_plane.sa_issuer
    assert claims["sub"] == f"system:serviceaccount:{ns}:{sa}"
    assert 0 < claims["exp"] - claims["iat"] <= 600

    # The signature verifies against the key the apiserver publishes.
    jwks = control_plane.get_json("/openid/v1/jwks")
    (key,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    verified = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["ES256"],
        audience="pulsar",
        issuer=control_plane.sa_issuer,
    )
    assert verified["sub"] == claims["sub"]


def test_oidc_discovery_and_jwks_are_served(control_plane: ControlPlane) -> None:
    discovery = control_plane.get_json("/.well-known/openid-configuration")
    assert discovery["issuer"] == control_plane.sa_issuer
    # --advertise-address/--service-account-jwks-uri keep this on loopback, not a host IP.
    assert discovery["jwks_uri"] == f"{control_plane.server}/openid/v1/jwks"
    assert "ES256" in discovery["id_token_signing_alg_values_supported"]

    jwks = control_plane.get_json("/openid/v1/jwks")
    assert len(jwks["keys"]) == 1
    (key,) = jwks["keys"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
