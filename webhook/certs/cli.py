"""Shell: ``pf-webhook certs generate|inject``.

``generate`` writes a CA and a serving pair into a directory (`webhook.certs.pki`); ``inject``
puts the CA into both webhook configurations (`webhook.certs.inject`). A failure is a
`UserError` (`CertError`, `KubeError`), caught once by ``pf-webhook``'s ``main``: one line on
stderr, exit 2; a private key is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from webhook.certs.inject import inject_ca_bundle
from webhook.certs.pki import (
    CertError,
    CertPaths,
    generate,
    load_pair_summary,
    os_reason,
    read_ca_bundle,
)

__all__ = ["register_cli"]


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``certs generate`` and ``certs inject`` to the ``pf-webhook`` subcommands."""
    certs = sub.add_parser("certs", help="create certificates and install the caBundle")
    certs_sub = certs.add_subparsers(dest="certs_command", metavar="COMMAND", required=True)

    gen = certs_sub.add_parser(
        "generate",
        help="write ca.crt/ca.key and tls.crt/tls.key (the CA is reused if present)",
    )
    gen.add_argument("--service", required=True, help="Service name of the webhook")
    gen.add_argument("--namespace", required=True, help="namespace of the Service")
    gen.add_argument("--out", type=Path, default=Path("certs"), help="output dir (default: certs)")
    gen.add_argument("--days", type=int, default=365, help="serving cert validity (default: 365)")
    gen.add_argument(
        "--host", action="append", default=[], metavar="H", help="extra DNS SAN (repeatable)"
    )
    gen.add_argument(
        "--ip", action="append", default=[], metavar="IP", help="extra IP SAN (repeatable)"
    )
    gen.add_argument("--new-ca", action="store_true", help="replace the CA even if one is valid")
    gen.set_defaults(handler=_cmd_generate)

    inj = certs_sub.add_parser(
        "inject", help="set caBundle of the webhook configurations to the CA certificate"
    )
    inj.add_argument(
        "--ca-file", type=Path, default=Path("certs/ca.crt"), help="default: certs/ca.crt"
    )
    inj.add_argument(
        "--kubeconfig", default=None, help="default: $KUBECONFIG, ~/.kube/config, or in-cluster"
    )
    inj.add_argument("--mutating", default="pf-webhook", help="MutatingWebhookConfiguration name")
    inj.add_argument(
        "--validating", default="pf-webhook", help="ValidatingWebhookConfiguration name"
    )
    inj.set_defaults(handler=_cmd_inject)


def _cmd_generate(args: argparse.Namespace) -> int:
    out_dir: Path = args.out
    paths = CertPaths.in_dir(out_dir)
    try:
        ca_before = paths.ca_cert.read_bytes() if paths.ca_cert.is_file() else None
    except OSError as exc:
        raise CertError(f"{paths.ca_cert}: cannot read: {os_reason(exc)}") from None
    paths = generate(
        service=args.service,
        namespace=args.namespace,
        out_dir=out_dir,
        days=args.days,
        hosts=tuple(args.host),
        ips=tuple(args.ip),
        new_ca=args.new_ca,
    )
    try:
        ca_reused = ca_before is not None and paths.ca_cert.read_bytes() == ca_before
    except OSError as exc:
        raise CertError(f"{paths.ca_cert}: cannot read: {os_reason(exc)}") from None
    summary = load_pair_summary(paths.tls_cert)
    print(f"wrote {paths.tls_cert} and {paths.tls_key} ({summary})")
    state = "reused existing CA" if ca_reused else "new CA"
    print(f"CA certificate: {paths.ca_cert} ({state}; key in {paths.ca_key})")
    return 0


def _cmd_inject(args: argparse.Namespace) -> int:
    ca_pem = read_ca_bundle(args.ca_file)
    lines = asyncio.run(
        inject_ca_bundle(
            ca_pem,
            kubeconfig=args.kubeconfig,
            mutating=args.mutating,
            validating=args.validating,
        )
    )
    for line in lines:
        print(line)
    return 0
