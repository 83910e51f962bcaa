"""Shell: the `pf-webhook` command line (serve | mutate | validate | certs | audit).

Exit codes: 0 allowed/ok, 1 denied/findings, 2 unreadable input or bad config. Errors are one
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from webhook import __version__, configfile
from webhook.audit import cli as audit_cli
from webhook.certs import cli as certs_cli
from webhook.core import bounded, mutation, patch, policy, review
from webhook.core.config import Config
from webhook.core.errors import UserError


class InputError(UserError, ValueError):
    """Input we cannot read; the message names the file and the problem."""


def load_config(path: str | None) -> Config:
    config = configfile.read(path)
    for note in config.notes:
        print(f"warning: {path}: {note}", file=sys.stderr)
    return config


# YAML aliases can make a small file a huge tree: the walk stops after this many values
MAX_VALUES = 2_000_000


def read_documents(source: str) -> list[Any]:
    """YAML or JSON, one or more documents; a `List` is flattened to its items."""
    name = "<stdin>" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{name}: not UTF-8 text") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except RecursionError:
        raise InputError(f"{name}: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer beyond Python's 4,300-digit conversion limit
        raise InputError(f"{name}: {review.short(str(exc).splitlines()[0], 200)}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise InputError(
            f"{name}:{where}: {getattr(exc, 'problem', None) or 'not valid YAML or JSON'}"
        ) from None
    if not docs:
        raise InputError(f"{name}: no documents")
    flat: list[Any] = []
    for index, doc in enumerate(docs):
        # the structure every later walk can afford; the object's own limits are checked where
        # it is answered (a denial for a review, exit 2 for a manifest)
        problem = bounded.problem_in(doc, review.ENVELOPE_LIMITS, max_nodes=MAX_VALUES)
        if problem:
            raise InputError(f"{name}: document {index + 1}: {problem}")
        if not isinstance(doc, dict):
            raise InputError(
                f"{name}: document {index + 1} is a {type(doc).__name__}, not an object"
            )
        if doc.get("kind") == "List" or (
            str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list)
        ):
            items = doc.get("items")
            if not isinstance(items, list):
                raise InputError(f"{name}: document {index + 1}: List without items")
            flat.extend(items)
        else:
            flat.append(doc)
    return flat


def _within_limits(docs: list[Any], config: Config) -> None:
    """Manifests are held to the same limits as a review's object (InputError otherwise)."""
    for doc in docs:
        problem = bounded.problem_in(doc, config.limits)
        if problem:
            raise InputError(f"{_label(doc)}: {problem}")


def _is_review(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == review.KIND


def _dump(docs: Sequence[Any], fmt: str) -> str:
    if fmt == "json":
        return (
            json.dumps(
                docs[0]
                if len(docs) == 1
                else {"apiVersion": "v1", "kind": "List", "items": list(docs)},
                indent=2,
            )
            + "\n"
        )
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)


def _reviews(
    docs: list[Any], config: Config, mode: review.Mode
) -> Iterator[review.AdmissionReview]:
    for doc in docs:
        try:
            parsed = review.parse(doc, config)
        except review.ReviewError as exc:
            raise InputError(f"AdmissionReview: {exc}") from None
        yield review.respond(parsed, mode=mode)[0]


def cmd_mutate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    docs = read_documents(args.file)
    if all(_is_review(d) for d in docs):
        out = list(_reviews(docs, config, "mutate"))
        sys.stdout.write(_dump(out, "yaml" if args.output == "yaml" else "json"))
        return 0
    _within_limits(docs, config)
    results, refused = [], False
    for doc in docs:
        label = _label(doc)
        if isinstance(doc, dict) and not doc.get("kind"):
            # e.g. a body captured from the worker's Java client, which sends none (the API
            # server fills apiVersion/kind in before admission): not passed through silently
            print(
                f"error: {label}: no kind (and apiVersion); add kind: StatefulSet or Service",
                file=sys.stderr,
            )
            refused = True
            results.append((doc, doc))
            continue
        result = mutation.mutate(doc, config)
        for warning in result.warnings:
            print(f"warning: {label}: {warning}", file=sys.stderr)
        if result.refusal or result.denial:
            print(f"error: {label}: {result.refusal or result.denial}", file=sys.stderr)
            refused = True
        results.append((doc, result.obj))
    if args.output == "patch":
        patches = [patch.diff(before, after) for before, after in results]
        sys.stdout.write(json.dumps(patches[0] if len(patches) == 1 else patches, indent=2) + "\n")
    else:
        sys.stdout.write(_dump([after for _, after in results], args.output or "yaml"))
    return 1 if refused else 0


def _label(doc: Any) -> str:
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{doc.get('kind', '?')}/{name or '?'}" if isinstance(doc, dict) else "?"


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    docs = read_documents(args.file)
    if all(_is_review(d) for d in docs):
        out = list(_reviews(docs, config, "validate"))
        sys.stdout.write(_dump(out, "json"))
        return 0 if all(r["response"]["allowed"] for r in out) else 1
    _within_limits(docs, config)
    allowed = True
    report: list[dict[str, Any]] = []
    lines: list[str] = []
    for doc in docs:
        result = policy.validate(doc, config)
        allowed = allowed and result.allowed
        prefix = f"{_label(doc)}: " if len(docs) > 1 else ""
        if result.refusal:
            lines.append(f"DENY {prefix}{result.refusal}")
            report.append(
                {"rule": "object", "action": "deny", "path": "", "message": result.refusal}
            )
        for d in result.decisions:
            lines.append(f"{d.action.upper()} [{d.rule}] {prefix}{d.path}: {d.message}")
            report.append(
                {"rule": d.rule, "action": d.action, "path": d.path, "message": d.message}
            )
    if args.output == "json":
        sys.stdout.write(json.dumps({"allowed": allowed, "findings": report}, indent=2) + "\n")
    else:
        sys.stdout.write("".join(line + "\n" for line in lines))
    return 0 if allowed else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from webhook.server import app  # the server's imports (aiohttp, prometheus) only when serving

    return app.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pf-webhook", description="Admission webhook for Apache Pulsar Functions StatefulSets."
    )
    parser.add_argument("--version", action="version", version=f"pf-webhook {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTPS admission webhook")
    serve.add_argument("--config", help="functions_worker.yml (default: built-in defaults)")
    serve.add_argument("--cert-dir", help="directory with tls.crt/tls.key (created when absent)")
    serve.add_argument("--port", type=int, help="HTTPS port for /mutate and /validate")
    serve.add_argument("--metrics-port", type=int, help="HTTP port for /healthz, /readyz, /metrics")
    serve.add_argument("--client-ca", help="only accept clients with a certificate from this CA")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    serve.add_argument(
        "--kubeconfig",
        help="cluster for the Secret/StatefulSet checks "
        "(default: $KUBECONFIG, ~/.kube/config, in-cluster, else none)",
    )
    serve.add_argument(
        "--function-namespace",
        action="append",
        metavar="NS",
        help="a namespace where functions run: Secrets are watched only there (repeatable or "
        "comma-separated; default: all namespaces, which needs cluster-wide Secret access)",
    )
    managed = serve.add_argument_group(
        "self-managed certificates (--manage-certs): a CA and serving certificate in one Secret, "
        "renewed by the replica holding a Lease, caBundle kept in both webhook configurations"
    )
    managed.add_argument("--manage-certs", action="store_true", help="enable (needs a cluster)")
    managed.add_argument(
        "--namespace", help="the webhook's namespace (default: $POD_NAMESPACE, else the pod's)"
    )
    managed.add_argument(
        "--cert-secret", default="pf-webhook-certs", help="Secret name (default: pf-webhook-certs)"
    )
    managed.add_argument(
        "--lease", default="pf-webhook-certs", help="Lease name (default: pf-webhook-certs)"
    )
    managed.add_argument("--lease-duration", type=float, default=30.0, help="seconds (default: 30)")
    managed.add_argument(
        "--service",
        default="pf-webhook",
        help="Service name in the certificate (default: pf-webhook)",
    )
    managed.add_argument(
        "--cert-san",
        action="append",
        default=[],
        metavar="NAME",
        help="extra DNS or IP name (repeatable)",
    )
    managed.add_argument(
        "--mutating",
        default="pf-webhook",
        help="MutatingWebhookConfiguration to keep the caBundle of",
    )
    managed.add_argument(
        "--validating",
        default="pf-webhook",
        help="ValidatingWebhookConfiguration to keep the caBundle of",
    )
    managed.add_argument(
        "--ca-propagation",
        type=float,
        default=60.0,
        help="seconds between publishing a new CA and serving a leaf it signed (default: 60)",
    )
    serve.set_defaults(handler=cmd_serve)

    mutate = sub.add_parser("mutate", help="print the mutated documents (or the JSONPatch)")
    mutate.add_argument("-f", "--file", required=True, help="YAML/JSON file, or - for stdin")
    mutate.add_argument("--config", help="functions_worker.yml")
    mutate.add_argument(
        "-o",
        "--output",
        choices=("yaml", "json", "patch"),
        help="default: yaml for manifests, json for an AdmissionReview (as `serve` answers)",
    )
    mutate.set_defaults(handler=cmd_mutate)

    validate = sub.add_parser("validate", help="print the policy findings")
    validate.add_argument("-f", "--file", required=True, help="YAML/JSON file, or - for stdin")
    validate.add_argument("--config", help="functions_worker.yml")
    validate.add_argument("-o", "--output", choices=("text", "json"), default="text")
    validate.set_defaults(handler=cmd_validate)

    certs_cli.register_cli(sub)
    audit_cli.register_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except UserError as exc:  # bad input, config, certificate, cluster...: one line, exit 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except Exception as exc:  # our bug: still one line, never a traceback
        print(f"error: internal error in pf-webhook: {type(exc).__name__}", file=sys.stderr)
        return 2
    return code
