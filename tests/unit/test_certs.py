"""Unit tests for webhook.certs: generation, CA reuse, TLS handshake, CA bundle reading, CLI."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from webhook import cli
from webhook.certs import pki
from webhook.certs.pki import CertError, CertPaths


def _generate(out_dir: Path, **kwargs: object) -> CertPaths:
    params: dict[str, object] = {"service": "svc", "namespace": "ns", "out_dir": out_dir}
    params.update(kwargs)
    return pki.generate(**params)  # type: ignore[arg-type]


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        ext.get_values_for_type(x509.DNSName),
        [str(a) for a in ext.get_values_for_type(x509.IPAddress)],
    )


def test_generate_writes_four_files_and_keys_are_private(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "certs"
    paths = _generate(out)
    assert paths == CertPaths(
        ca_cert=out / "ca.crt",
        ca_key=out / "ca.key",
        tls_cert=out / "tls.crt",
        tls_key=out / "tls.key",
    )
    for p in (paths.ca_cert, paths.ca_key, paths.tls_cert, paths.tls_key):
        assert p.is_file()
    assert stat.S_IMODE(paths.ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.tls_key.stat().st_mode) == 0o600
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]


def test_cert_paths_is_frozen(tmp_path: Path) -> None:
    paths = _generate(tmp_path)
    with pytest.raises(AttributeError):
        paths.ca_cert = tmp_path  # type: ignore[misc]


def test_serving_cert_verifies_against_the_ca(tmp_path: Path) -> None:
    paths = _generate(tmp_path)
    ca = _load_cert(paths.ca_cert)
    leaf = _load_cert(paths.tls_cert)
    leaf.verify_directly_issued_by(ca)
    ca.verify_directly_issued_by(ca)
    assert ca.subject.rfc4514_string() == "CN=pf-webhook CA"
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    leaf_constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert leaf_constraints.ca is False


def test_serving_cert_has_exactly_the_specified_sans_and_server_auth(tmp_path: Path) -> None:
    paths = _generate(
        tmp_path, hosts=("localhost", "webhook.example.com"), ips=("127.0.0.1", "::1")
    )
    dns, ips = _sans(_load_cert(paths.tls_cert))
    assert dns == [
        "svc",
        "svc.ns",
        "svc.ns.svc",
        "svc.ns.svc.cluster.local",
        "localhost",
        "webhook.example.com",
    ]
    assert ips == ["127.0.0.1", "::1"]
    eku = _load_cert(paths.tls_cert).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_serving_cert_without_extras_has_only_service_names(tmp_path: Path) -> None:
    paths = _generate(tmp_path)
    dns, ips = _sans(_load_cert(paths.tls_cert))
    assert dns == ["svc", "svc.ns", "svc.ns.svc", "svc.ns.svc.cluster.local"]
    assert ips == []


def test_serving_cert_validity_follows_days(tmp_path: Path) -> None:
    paths = _generate(tmp_path, days=30)
    leaf = _load_cert(paths.tls_cert)
    lifetime = leaf.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=29, hours=23) < lifetime <= datetime.timedelta(days=30)
    assert leaf.not_valid_before_utc <= datetime.datetime.now(datetime.UTC)


def test_keys_are_ecdsa_p256(tmp_path: Path) -> None:
    paths = _generate(tmp_path)
    for key_path, cert_path in ((paths.ca_key, paths.ca_cert), (paths.tls_key, paths.tls_cert)):
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)
        public = _load_cert(cert_path).public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert isinstance(public.curve, ec.SECP256R1)
        assert public == key.public_key()


def test_regenerate_reuses_the_ca_and_new_ca_replaces_it(tmp_path: Path) -> None:
    first = _generate(tmp_path)
    ca_bytes = first.ca_cert.read_bytes()
    ca_key_bytes = first.ca_key.read_bytes()
    tls_bytes = first.tls_cert.read_bytes()

    second = _generate(tmp_path)
    assert second.ca_cert.read_bytes() == ca_bytes
    assert second.ca_key.read_bytes() == ca_key_bytes
    assert second.tls_cert.read_bytes() != tls_bytes
    _load_cert(second.tls_cert).verify_directly_issued_by(x509.load_pem_x509_certificate(ca_bytes))

    third = _generate(tmp_path, new_ca=True)
    assert third.ca_cert.read_bytes() != ca_bytes
    assert third.ca_key.read_bytes() != ca_key_bytes
    _load_cert(third.tls_cert).verify_directly_issued_by(_load_cert(third.ca_cert))


def test_a_broken_ca_pair_is_replaced_instead_of_reused(tmp_path: Path) -> None:
    first = _generate(tmp_path)
    old_ca = first.ca_cert.read_bytes()
    first.ca_key.write_bytes(b"not a key")
    second = _generate(tmp_path)
    assert second.ca_cert.read_bytes() != old_ca
    _load_cert(second.tls_cert).verify_directly_issued_by(_load_cert(second.ca_cert))
    key = serialization.load_pem_private_key(second.ca_key.read_bytes(), password=None)
    assert key.public_key() == _load_cert(second.ca_cert).public_key()


def test_generate_rejects_an_invalid_ip(tmp_path: Path) -> None:
    with pytest.raises(CertError, match="not-an-ip"):
        _generate(tmp_path, ips=("not-an-ip",))


def test_ensure_serving_certs_creates_once_then_returns_false(tmp_path: Path) -> None:
    cert_dir = tmp_path / "certs"
    assert pki.ensure_serving_certs(cert_dir) is True
    tls = (cert_dir / "tls.crt").read_bytes()
    dns, ips = _sans(x509.load_pem_x509_certificate(tls))
    assert dns == [
        "pf-webhook",
        "pf-webhook.pf-webhook",
        "pf-webhook.pf-webhook.svc",
        "pf-webhook.pf-webhook.svc.cluster.local",
        "localhost",
    ]
    assert [ipaddress.ip_address(i) for i in ips] == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert pki.ensure_serving_certs(cert_dir) is False
    assert (cert_dir / "tls.crt").read_bytes() == tls


def test_real_tls_handshake_succeeds_trusting_only_the_ca(tmp_path: Path) -> None:
    paths = pki.generate(
        service="svc", namespace="ns", out_dir=tmp_path, hosts=("localhost",), ips=("127.0.0.1",)
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(paths.tls_cert, paths.tls_key)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    port = listener.getsockname()[1]
    server_errors: list[BaseException] = []

    def serve_one() -> None:
        try:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
                tls_conn.settimeout(10)
                tls_conn.sendall(tls_conn.recv(64).upper())
        except BaseException as exc:
            server_errors.append(exc)

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_ctx.load_verify_locations(cafile=paths.ca_cert)
        assert client_ctx.check_hostname is True
        assert client_ctx.verify_mode == ssl.CERT_REQUIRED
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname="localhost") as tls_sock,
        ):
            tls_sock.sendall(b"hello")
            assert tls_sock.recv(64) == b"HELLO"
            peer = tls_sock.getpeercert()
            assert peer is not None
    finally:
        thread.join(timeout=10)
        listener.close()
    assert not thread.is_alive()
    assert server_errors == []


def test_tls_handshake_fails_when_trusting_a_different_ca(tmp_path: Path) -> None:
    paths = pki.generate(
        service="svc", namespace="ns", out_dir=tmp_path / "a", hosts=("localhost",)
    )
    other = pki.generate(service="svc", namespace="ns", out_dir=tmp_path / "b")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(paths.tls_cert, paths.tls_key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cafile=other.ca_cert)

    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(server_in, server_out, server_side=True)
    client = client_ctx.wrap_bio(client_in, client_out, server_hostname="localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        for _ in range(10):
            for side in (client, server):
                with contextlib.suppress(ssl.SSLWantReadError):
                    side.do_handshake()
            server_in.write(client_out.read())
            client_in.write(server_out.read())


def test_read_ca_bundle_returns_the_pem_certificate(tmp_path: Path) -> None:
    paths = _generate(tmp_path)
    assert pki.read_ca_bundle(paths.ca_cert) == paths.ca_cert.read_bytes()


def test_read_ca_bundle_drops_a_private_key_in_a_combined_file(tmp_path: Path) -> None:
    paths = _generate(tmp_path)
    combined = tmp_path / "combined.pem"
    combined.write_bytes(paths.ca_cert.read_bytes() + paths.ca_key.read_bytes())
    bundle = pki.read_ca_bundle(combined)
    assert b"PRIVATE KEY" not in bundle
    assert bundle == paths.ca_cert.read_bytes()


def test_read_ca_bundle_on_a_garbage_file_raises_cert_error_naming_the_file(
    tmp_path: Path,
) -> None:
    garbage = tmp_path / "garbage.crt"
    garbage.write_bytes(b"this is not a certificate\n")
    with pytest.raises(CertError) as info:
        pki.read_ca_bundle(garbage)
    assert str(garbage) in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_read_ca_bundle_on_a_missing_file_raises_cert_error_naming_the_file(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing.crt"
    with pytest.raises(CertError) as info:
        pki.read_ca_bundle(missing)
    assert str(missing) in str(info.value)
    assert "\n" not in str(info.value)


def test_load_pair_summary_is_one_line_with_subject_sans_and_not_after(tmp_path: Path) -> None:
    paths = _generate(tmp_path, hosts=("localhost",), ips=("127.0.0.1",))
    summary = pki.load_pair_summary(paths.tls_cert)
    assert "\n" not in summary
    assert "CN=svc.ns.svc" in summary
    assert "DNS:svc.ns.svc.cluster.local" in summary
    assert "DNS:localhost" in summary
    assert "IP:127.0.0.1" in summary
    not_after = _load_cert(paths.tls_cert).not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"notAfter={not_after}" in summary
    assert "PRIVATE" not in summary


def _cli() -> argparse.ArgumentParser:
    return cli.build_parser()


def test_cli_generate_writes_the_files_and_returns_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli-certs"
    args = _cli().parse_args(
        [
            "certs",
            "generate",
            "--service",
            "pf",
            "--namespace",
            "pulsar",
            "--out",
            str(out),
            "--days",
            "10",
            "--host",
            "localhost",
            "--host",
            "example.test",
            "--ip",
            "127.0.0.1",
            "--new-ca",
        ]
    )
    assert args.handler(args) == 0
    for name in ("ca.crt", "ca.key", "tls.crt", "tls.key"):
        assert (out / name).is_file()
    dns, ips = _sans(_load_cert(out / "tls.crt"))
    assert dns[-2:] == ["localhost", "example.test"]
    assert ips == ["127.0.0.1"]
    captured = capsys.readouterr()
    assert str(out / "ca.crt") in captured.out
    assert "PRIVATE KEY" not in captured.out + captured.err
    assert captured.err == ""


def test_cli_generate_reports_bad_input_as_one_error_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        *("certs", "generate", "--service", "s", "--namespace", "n"),
        *("--out", str(tmp_path), "--ip", "999.1.1.1"),
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_cli_inject_with_a_missing_ca_file_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["certs", "inject", "--ca-file", str(tmp_path / "nope.crt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "nope.crt" in err
    assert err.count("\n") == 1


def test_cli_defaults(tmp_path: Path) -> None:
    parser = _cli()
    gen = parser.parse_args(["certs", "generate", "--service", "s", "--namespace", "n"])
    assert gen.out == Path("certs")
    assert gen.days == 365
    assert gen.host == []
    assert gen.ip == []
    assert gen.new_ca is False
    inj = parser.parse_args(["certs", "inject"])
    assert inj.ca_file == Path("certs/ca.crt")
    assert inj.kubeconfig is None
    assert inj.mutating == "pf-webhook"
    assert inj.validating == "pf-webhook"
