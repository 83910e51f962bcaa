"""Shell: ``pf-webhook audit token|cluster``: who a function is to Pulsar, checked after the fact.

``audit token`` decodes a projected service-account token (a file or stdin), verifies its
signature against the issuer's keys and checks its claims:

* keys come from ``--jwks FILE|URL``, from ``--issuer URL`` (OIDC discovery:
  ``<issuer>/.well-known/openid-configuration`` → ``jwks_uri``), or from the cluster of
  ``--kubeconfig`` (``/.well-known/openid-configuration`` and ``/openid/v1/jwks``, fetched with
  the kubeconfig's credentials). Without a key source the signature is reported as NOT verified;
* ``iss`` must be the issuer (when known), ``aud`` must share a value with ``--audience`` (or
  the config's ``webhook.tokens.allowedAudiences``), ``exp`` must be in the future, ``nbf`` and
  ``iat`` not in the future (60 s leeway), and ``exp - iat`` at most the config's
  ``maxExpirationSeconds``; ``kubernetes.io.warnafter`` marks a legacy extended token.

The report names the Pulsar role (the ``sub`` claim, ``system:serviceaccount:<ns>:<sa>``), the
namespace, service account and pod. The token itself, and its signature, are never printed or
put into an error message: only decoded claims are shown.

``audit cluster`` lists the StatefulSets that are function workloads and reports, per function,
the token audience and expiration, service account, Pulsar role, CA Secret and policy findings;
then the roles shared by several functions (they share Pulsar permissions) and the functions
whose token has no audience. Output is bounded by ``--limit``.

Exit codes: 0 ok, 1 findings (``cluster``: a deny finding), 2 error (one line on stderr).

This module is the command line only: the token is read by ``jwt_parse``, its keys found by
``keys`` and checked by ``token`` (or, with ``--broker-config``, by ``broker`` as the broker
would); the cluster is read by ``scan`` and reported by ``cluster``. Every failure is a
`UserError`, caught once by ``pf-webhook``'s ``main``: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from webhook import configfile
from webhook.audit import broker, cluster, jwt_parse, keys, scan, token
from webhook.audit.errors import AuditError
from webhook.core import broker_config

__all__ = ["DEFAULT_LIMIT", "register_cli"]

DEFAULT_LIMIT = 500


def _broker_settings(path: str | None) -> broker_config.BrokerSettings | None:
    """The broker's OpenID settings from --broker-config (broker.conf or PULSAR_PREFIX_* env)."""
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read(broker_config.MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise AuditError(f"--broker-config {path}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AuditError(f"--broker-config {path}: not UTF-8 text") from None
    return broker_config.parse(text, path)


async def _key_source(args: argparse.Namespace) -> keys.KeySource | None:
    if args.kubeconfig is not None:
        return await keys.keys_from_cluster(args.kubeconfig, issuer=args.issuer)
    if args.jwks is not None or args.issuer is not None:
        if args.jwks is None and not keys.is_url(args.issuer):
            raise AuditError(f"--issuer {args.issuer}: not an http(s) URL")
        return await keys.keys_from_urls(issuer=args.issuer, jwks=args.jwks, ca_file=args.ca_file)
    return None


def _cmd_token(args: argparse.Namespace) -> int:
    parsed = jwt_parse.read_token(args.file)
    config = configfile.read(args.config) if args.config else None
    audiences = list(args.audience or [])
    if not audiences and config is not None:
        audiences = list(config.allowed_audiences)
    max_lifetime = config.max_expiration_seconds if config is not None else 86400
    settings = _broker_settings(args.broker_config)
    source = asyncio.run(_key_source(args))
    if settings is not None:
        return _broker_answer(args, parsed, settings, source)
    report = token.audit_token(
        parsed,
        keys=source,
        audiences=audiences,
        max_lifetime=max_lifetime,
        now=args.now,
        issuer=args.issuer,
    )
    if args.output == "json":
        sys.stdout.write(json.dumps(report.as_json(), indent=2) + "\n")
    else:
        sys.stdout.write(token.render_token_text(report))
    return report.exit_code


def _broker_answer(
    args: argparse.Namespace,
    parsed: jwt_parse.ParsedToken,
    settings: broker_config.BrokerSettings,
    source: keys.KeySource | None,
) -> int:
    """``audit token --broker-config``: one line, the broker's answer."""
    api = (
        broker.ApiServer(host=source.api_host, issuer=source.document_issuer)
        if source is not None and source.api_host is not None
        else None
    )
    verdict = broker.broker_verdict(parsed, settings, keys=source, api=api, now=args.now)
    if args.output == "json":
        doc = {"broker": verdict.as_json(), "brokerConfig": settings.source}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(verdict.line() + "\n")
    return verdict.exit_code


def _cmd_cluster(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise AuditError(f"--limit must be at least 1, got {args.limit}")
    if args.warn_days < 0:
        raise AuditError(f"--warn-days must be at least 0, got {args.warn_days}")
    config = configfile.read(args.config)
    settings = _broker_settings(args.broker_config)
    found = asyncio.run(
        scan.scan_cluster(
            args.kubeconfig,
            args.namespace,
            config,
            warn_days=args.warn_days,
            settings=settings,
            now=args.now,
        )
    )
    scope = f"namespace {args.namespace}" if args.namespace else "all namespaces"
    report = cluster.cluster_report(
        found.rows,
        scanned=found.scanned,
        limit=args.limit,
        scope=scope,
        with_grants=args.grants,
        orphan_pods=found.orphan_pods,
        pods_scanned=found.pods_scanned,
        warn_days=args.warn_days,
        broker=settings.source if settings is not None else None,
    )
    if args.output == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(cluster.render_cluster_text(report, limit=args.limit))
    return 0 if report["ok"] else 1


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit token`` and ``audit cluster`` to the ``pf-webhook`` subcommands."""
    audit = sub.add_parser("audit", help="check a function's token, or every function in a cluster")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)

    tok = audit_sub.add_parser(
        "token",
        help="decode and verify a projected service-account token (never prints the token)",
    )
    tok.add_argument("file", nargs="?", default="-", help="token file, or - for stdin (default)")
    source = tok.add_mutually_exclusive_group()
    source.add_argument("--jwks", metavar="FILE|URL", help="the issuer's key set (JWKS)")
    source.add_argument(
        "--kubeconfig",
        metavar="F",
        help="verify against this cluster's issuer and keys (/openid/v1/jwks)",
    )
    tok.add_argument(
        "--issuer",
        metavar="URL",
        help="expected issuer; alone, its keys are found by OIDC discovery",
    )
    tok.add_argument(
        "--audience",
        action="append",
        metavar="A",
        help="accepted audience (repeatable; default: the config's allowedAudiences)",
    )
    tok.add_argument("--config", metavar="F", help="functions_worker.yml (audiences, max lifetime)")
    tok.add_argument("--ca-file", metavar="F", help="CA bundle for https --issuer/--jwks URLs")
    tok.add_argument(
        "--broker-config",
        metavar="F",
        help="broker.conf or Helm values (PULSAR_PREFIX_openID*): answer in one line whether "
        "the broker's OpenID provider accepts the token, and as which role",
    )
    tok.add_argument("-o", "--output", choices=("text", "json"), default="text")
    tok.add_argument("--now", type=float, metavar="UNIX", help="check times as of this moment")
    tok.set_defaults(handler=_cmd_token)

    clu = audit_sub.add_parser("cluster", help="report every function workload in a cluster")
    clu.add_argument(
        "--kubeconfig", metavar="F", help="default: $KUBECONFIG, ~/.kube/config, or in-cluster"
    )
    clu.add_argument("-n", "--namespace", metavar="N", help="one namespace (default: all)")
    clu.add_argument("--config", metavar="F", help="functions_worker.yml (policy)")
    clu.add_argument("-o", "--output", choices=("text", "json"), default="text")
    clu.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N functions listed (default {DEFAULT_LIMIT})",
    )
    clu.add_argument(
        "--warn-days",
        type=int,
        default=cluster.DEFAULT_WARN_DAYS,
        metavar="D",
        help="pf-secret-* tokens expiring within D days are reported as expiring "
        f"(default {cluster.DEFAULT_WARN_DAYS})",
    )
    clu.add_argument(
        "--grants",
        action="store_true",
        help="print, per role, the pulsar-admin commands granting exactly what its functions need",
    )
    clu.add_argument(
        "--broker-config",
        metavar="F",
        help="broker.conf or Helm values: would the broker accept each function's token?",
    )
    clu.add_argument("--now", type=float, metavar="UNIX", help="check expiry as of this moment")
    clu.set_defaults(handler=_cmd_cluster)
