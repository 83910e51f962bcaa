"""`audit token --broker-config`: the broker's OpenID provider rules, offline, with tokens minted
here (ES256 and RS256 keys, HS256 and `alg: none` forgeries) and broker settings read from a
broker.conf and from the PULSAR_PREFIX_* entries of a Helm values file.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from webhook import cli
from webhook.audit import broker, jwt_parse
from webhook.audit.keys import KeySource
from webhook.core import broker_config

NOW = 1_800_000_000
ISSUER = "https://issuer.example.com"
KID = "k1"
ROLE = "system:serviceaccount:fns:fn-a"


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": ROLE,
        "aud": ["pulsar"],
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@dataclass
class Signer:
    private: Any
    jwks: dict[str, Any]
    alg: str

    def mint(self, *, kid: str | None = KID, **overrides: Any) -> str:
        headers = {"kid": kid} if kid is not None else {}
        return jwt.encode(_claims(**overrides), self.private, algorithm=self.alg, headers=headers)


@pytest.fixture
def es() -> Signer:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": KID, "alg": "ES256", "use": "sig"})
    return Signer(private, {"keys": [jwk]}, "ES256")


def _settings(text: str) -> broker_config.BrokerSettings:
    return broker_config.parse(text, "broker.conf")


BASE = f"openIDAllowedTokenIssuers={ISSUER}\nopenIDAllowedAudiences=pulsar\n"


def _verdict(
    token: str,
    conf: str = BASE,
    jwks: dict[str, Any] | None = None,
    *,
    api: broker.ApiServer | None = None,
    document_issuer: str | None = None,
    api_host: str | None = None,
) -> broker.Verdict:
    keys = (
        KeySource(
            jwks=jwks,
            origin="jwks.json",
            issuer=ISSUER,
            document_issuer=document_issuer,
            api_host=api_host,
        )
        if jwks is not None
        else None
    )
    return broker.broker_verdict(
        jwt_parse.parse_token(token), _settings(conf), keys=keys, api=api, now=NOW
    )


# -- settings -------------------------------------------------------------------------------------


def test_properties_as_java_reads_them() -> None:
    props = broker_config.parse_properties(
        "# comment\n! other comment\n"
        "a=1\n"
        "b : two words  \n"
        "c three\n"
        "d=first \\\n    second\n"
        "e=x\\u0041\\ty\n"
        "key\\=with=eq\n"
        "a=last\n"
        "empty=\n"
    )
    assert props == {
        "a": "last",
        "b": "two words  ",
        "c": "three",
        "d": "first second",
        "e": "xA\ty",
        "key=with": "eq",
        "empty": "",
    }


def test_values_typed_as_the_provider_does() -> None:
    s = _settings(
        "openIDAllowedTokenIssuers= https://a , https://b,https://c \n"
        "openIDAllowedAudiences=pulsar\n"
        "openIDRequireIssuersUseHttps=yes\n"
        "openIDAcceptedTimeLeewaySeconds=ten\n"
        "openIDTokenIssuerTrustCertsFilePath=  \n"
    )
    assert s.issuers == {"https://a", "https://b", "https://c"}
    assert s.require_https is False  # only "true" is true
    assert s.leeway_seconds == 0  # unparsable: the default
    assert s.trust_certs_file is None  # blank is ignored
    assert _settings(BASE + "openIDRoleClaim=\n").role_claim == ""  # empty stays empty


def test_helm_values_and_env_lines() -> None:
    values = f"""
broker:
  configData:
    authenticationEnabled: true
    authenticationProviders: "{broker_config.OPENID_PROVIDER}"
    PULSAR_PREFIX_openIDAllowedTokenIssuers: "{ISSUER}"
    PULSAR_PREFIX_openIDAllowedAudiences: pulsar,other
    PULSAR_PREFIX_openIDRoleClaim: sub
proxy:
  configData:
    PULSAR_PREFIX_openIDAllowedAudiences: proxy-only
"""
    s = broker_config.parse(values, "values.yaml")
    assert s.issuers == {ISSUER}
    assert s.audiences == {"pulsar", "other"}
    assert s.authentication_enabled is True
    assert s.notes() == []
    env = broker_config.parse(
        f'export PULSAR_PREFIX_openIDAllowedTokenIssuers="{ISSUER}"\n'
        "PULSAR_PREFIX_openIDAllowedAudiences=pulsar\n",
        "broker.env",
    )
    assert env.issuers == {ISSUER} and env.audiences == {"pulsar"}


def test_not_a_broker_config() -> None:
    with pytest.raises(broker_config.BrokerConfigError, match="no openID"):
        broker_config.parse("brokerServicePort=6650\n", "broker.conf")


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        (
            "openIDAllowedTokenIssuers=https://a\n",
            "Missing configured value for: openIDAllowedAudiences",
        ),
        ("openIDAllowedAudiences=p\n", "Missing configured value for: openIDAllowedTokenIssuers"),
        (
            "openIDAllowedAudiences=p\nopenIDAllowedTokenIssuers=https://a,http://b\n",
            "Issuer URL does not use https, but must: http://b",
        ),
        (
            "openIDAllowedAudiences=p\nopenIDFallbackDiscoveryMode=\n",
            "No enum constant FallbackDiscoveryMode.",
        ),
    ],
)
def test_broker_would_not_start(conf: str, message: str, es: Signer) -> None:
    v = _verdict(es.mint(), conf, es.jwks)
    assert not v.accepted and v.code == "STARTUP"
    assert v.line().startswith(f"broker: WOULD NOT START: {message}")


def test_http_issuer_allowed_when_https_not_required(es: Signer) -> None:
    conf = "openIDAllowedAudiences=pulsar\nopenIDAllowedTokenIssuers=http://plain\nopenIDRequireIssuersUseHttps=false\n"
    v = _verdict(es.mint(iss="http://plain"), conf, es.jwks)
    assert v.accepted, v.line()
    assert any("plain-HTTP issuers allowed" in n for n in v.notes)


# -- the verification pipeline --------------------------------------------------------------------


def test_accepted_as_subject(es: Signer) -> None:
    v = _verdict(es.mint(), BASE, es.jwks)
    assert v.accepted and v.role == ROLE
    assert v.line() == (
        f"broker: ACCEPTED as {ROLE} via openIDAllowedTokenIssuers: "
        f"GET {ISSUER}/.well-known/openid-configuration"
    )


def test_issuer_compared_exactly(es: Signer) -> None:
    for iss in (ISSUER + "/", ISSUER.upper().replace("HTTPS", "https"), None):
        v = _verdict(es.mint(iss=iss), BASE, es.jwks)
        assert v.code == "UNSUPPORTED_ISSUER", v.line()
    assert "Issuer cannot be null" in _verdict(es.mint(iss=None), BASE, es.jwks).reason


def test_audience(es: Signer) -> None:
    assert _verdict(es.mint(aud="pulsar"), BASE, es.jwks).accepted
    assert _verdict(es.mint(aud=["x", "pulsar"]), BASE, es.jwks).accepted
    v = _verdict(es.mint(aud=["other"]), BASE, es.jwks)
    assert v.code == "INVALID_JWT_CLAIM" and "doesn't contain the required audience" in v.reason
    missing = _verdict(es.mint(aud=None), BASE, es.jwks)
    assert missing.code == "INVALID_JWT_CLAIM" and "'aud' is not present" in missing.reason


@pytest.mark.parametrize("claim", ["iat", "exp", "nbf", "sub"])
def test_required_claims(es: Signer, claim: str) -> None:
    v = _verdict(es.mint(**{claim: None}), BASE, es.jwks)
    assert v.code == "INVALID_JWT_CLAIM" and f"'{claim}' is not present" in v.reason


def test_role_claim(es: Signer) -> None:
    conf = BASE + "openIDRoleClaim=pulsar_role\n"
    missing = _verdict(es.mint(), conf, es.jwks)
    assert missing.code == "INVALID_JWT_CLAIM"
    assert "'pulsar_role' is not present" in missing.reason
    assert _verdict(es.mint(pulsar_role="admin"), conf, es.jwks).role == "admin"
    assert _verdict(es.mint(pulsar_role=["first", "second"]), conf, es.jwks).role == "first"
    bad = _verdict(es.mint(pulsar_role=7), conf, es.jwks)
    assert not bad.accepted and bad.code == "NO_ROLE"


def test_times_with_leeway(es: Signer) -> None:
    expired = _verdict(es.mint(exp=NOW), BASE, es.jwks)  # valid only while now - leeway < exp
    assert expired.code == "EXPIRED_JWT"
    assert _verdict(es.mint(exp=NOW + 1), BASE, es.jwks).accepted
    assert _verdict(
        es.mint(exp=NOW - 5), BASE + "openIDAcceptedTimeLeewaySeconds=10\n", es.jwks
    ).accepted
    future = _verdict(es.mint(nbf=NOW + 5), BASE, es.jwks)
    assert future.code == "INVALID_JWT_CLAIM" and "can't be used before" in future.reason
    assert _verdict(
        es.mint(iat=NOW + 5), BASE + "openIDAcceptedTimeLeewaySeconds=5\n", es.jwks
    ).accepted


def test_keys(es: Signer) -> None:
    assert _verdict(es.mint(kid="other"), BASE, es.jwks).code == "ERROR_RETRIEVING_PUBLIC_KEY"
    assert _verdict(es.mint(kid=None), BASE, es.jwks).code == "ERROR_RETRIEVING_PUBLIC_KEY"
    other = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(_claims(), other, algorithm="ES256", headers={"kid": KID})
    assert _verdict(forged, BASE, es.jwks).code == "ERROR_VERIFYING_JWT_SIGNATURE"


def test_key_without_alg_and_wrong_key_type() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk["kid"] = KID  # no alg: the broker skips the alg comparison
    jwks = {"keys": [jwk]}
    token = jwt.encode(_claims(), private, algorithm="RS256", headers={"kid": KID})
    assert _verdict(token, BASE, jwks).accepted
    es_key = ec.generate_private_key(ec.SECP256R1())
    es_token = jwt.encode(_claims(), es_key, algorithm="ES256", headers={"kid": KID})
    v = _verdict(es_token, BASE, jwks)
    assert v.code == "ALGORITHM_MISMATCH" and "Expected PublicKey alg [ES256]" in v.reason
    ps = jwt.encode(_claims(), private, algorithm="PS256", headers={"kid": KID})
    assert _verdict(ps, BASE, jwks).code == "UNSUPPORTED_ALGORITHM"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_hs256_and_none_refused_whatever_the_key_set(es: Signer) -> None:
    secret = b"s" * 32
    hs = jwt.encode(_claims(), secret, algorithm="HS256", headers={"kid": KID})
    none = f"{_b64({'alg': 'none', 'kid': KID})}.{_b64(_claims())}."
    oct_key = {"kty": "oct", "kid": KID, "k": base64.urlsafe_b64encode(secret).decode().rstrip("=")}
    rsa_key = RSAAlgorithm.to_jwk(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(), as_dict=True
    )
    rsa_key["kid"] = KID
    for token in (hs, none):
        # a Kubernetes key set: every key has alg
        assert _verdict(token, BASE, es.jwks).code == "ALGORITHM_MISMATCH"
        # a key set holding the shared secret itself, with or without alg
        assert _verdict(token, BASE, {"keys": [oct_key]}).code == "INVALID_PUBLIC_KEY"
        with_alg = {
            "keys": [{**oct_key, "alg": token and jwt_parse.parse_token(token).header["alg"]}]
        }
        assert _verdict(token, BASE, with_alg).code == "INVALID_PUBLIC_KEY"
        # an RSA key without alg: the algorithm whitelist refuses
        v = _verdict(token, BASE, {"keys": [rsa_key]})
        assert v.code == "UNSUPPORTED_ALGORITHM", v.line()


def test_fallback_modes(es: Signer) -> None:
    conf = "openIDAllowedAudiences=pulsar\nopenIDFallbackDiscoveryMode=KUBERNETES_DISCOVER_PUBLIC_KEYS\n"
    api = broker.ApiServer(host="https://10.0.0.1:443", issuer=ISSUER)
    v = _verdict(es.mint(), conf, es.jwks, api=api, document_issuer=ISSUER, api_host=api.host)
    assert v.accepted, v.line()
    assert v.endpoints == [
        "GET https://10.0.0.1:443/.well-known/openid-configuration/",
        "GET https://10.0.0.1:443/openid/v1/jwks/",
    ]
    assert "/.well-known/openid-configuration/" in v.line()
    other = broker.ApiServer(host="https://10.0.0.1:443", issuer="https://elsewhere")
    refused = _verdict(es.mint(), conf, es.jwks, api=other)
    assert refused.code == "UNSUPPORTED_ISSUER"
    trusted = conf.replace("PUBLIC_KEYS", "TRUSTED_ISSUER")
    t = _verdict(es.mint(), trusted, es.jwks, api=api)
    assert t.accepted and t.endpoints == [
        "GET https://10.0.0.1:443/.well-known/openid-configuration/"
    ]
    unknown = _verdict(es.mint(), conf, es.jwks)
    assert unknown.undetermined and not unknown.accepted
    assert "/.well-known/openid-configuration/" in unknown.line()


def test_issuer_mismatch_in_discovery(es: Signer) -> None:
    v = _verdict(es.mint(), BASE, es.jwks, document_issuer="https://issuer.example.com/")
    assert v.code == "ISSUER_MISMATCH"


def test_cli_one_line_never_the_token(
    es: Signer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = es.mint()
    (tmp_path / "token").write_text(token)
    (tmp_path / "jwks.json").write_text(json.dumps(es.jwks))
    (tmp_path / "broker.conf").write_text(BASE)
    argv = ["audit", "token", str(tmp_path / "token"), "--jwks", str(tmp_path / "jwks.json")]
    argv += ["--broker-config", str(tmp_path / "broker.conf"), "--now", str(NOW)]
    assert cli.main(argv) == 0
    out = capsys.readouterr()
    assert out.out.count("\n") == 1 and out.out.startswith(f"broker: ACCEPTED as {ROLE}")
    assert cli.main([*argv, "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["broker"]["accepted"] is True and doc["broker"]["role"] == ROLE
    (tmp_path / "broker.conf").write_text(BASE.replace("pulsar", "other"))
    assert cli.main(argv) == 1
    refused = capsys.readouterr()
    assert refused.out.startswith("broker: REFUSED [INVALID_JWT_CLAIM]")
    for text in (out.out, out.err, refused.out, refused.err):
        for part in (token, *token.split(".")):
            assert part not in text
    (tmp_path / "broker.conf").write_text("nothing=here\n")
    assert cli.main(argv) == 2
    assert "no openID* settings" in capsys.readouterr().err


def test_umbrella_values_and_a_broker_not_using_the_provider(es: Signer) -> None:
    values = f"""
pulsar:
  broker:
    configData:
      authenticationProviders: org.apache.pulsar.broker.authentication.AuthenticationProviderToken
      PULSAR_PREFIX_openIDAllowedTokenIssuers: "{ISSUER}"
      PULSAR_PREFIX_openIDAllowedAudiences: pulsar
"""
    settings = broker_config.parse(values, "values.yaml")
    assert settings.issuers == {ISSUER}
    verdict = broker.broker_verdict(
        jwt_parse.parse_token(es.mint()),
        settings,
        keys=KeySource(jwks=es.jwks, origin="jwks.json", issuer=ISSUER),
        api=None,
        now=NOW,
    )
    assert verdict.accepted
    assert verdict.line().endswith(
        "; BUT authenticationProviders does not list AuthenticationProviderOpenID"
    )


def test_unreadable_broker_config_is_one_line(
    es: Signer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "token").write_text(es.mint())
    (tmp_path / "binary.conf").write_bytes(b"\xff\xfe\x00")
    for conf in (tmp_path / "binary.conf", tmp_path, tmp_path / "absent.conf"):
        code = cli.main(["audit", "token", str(tmp_path / "token"), "--broker-config", str(conf)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: --broker-config") and err.count("\n") == 1, err


def test_functions_worker_yml_properties() -> None:
    worker_yml = f"""
authenticationEnabled: true
authenticationProviders: [{broker_config.OPENID_PROVIDER}]
properties:
  openIDAllowedTokenIssuers: {ISSUER}
  openIDAllowedAudiences: [pulsar]   # a YAML list is not a String: unset
"""
    settings = broker_config.parse(worker_yml, "functions_worker.yml")
    assert settings.issuers == {ISSUER}
    assert settings.audiences == frozenset()
    assert settings.startup_error() == "Missing configured value for: openIDAllowedAudiences"
    assert settings.warnings() == []
