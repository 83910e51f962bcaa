"""Pure: Kubernetes name and label syntax, label-value conversion, Pulsar's job names.

Label values are converted, never names: the worker addresses pods and deletes by name, and
finds pods by the (converted) tenant/namespace/name label values.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import string
from typing import Literal

LabelStyle = Literal["documented", "pulsar-runtime"]

MAX_LABEL = 63
# pods get `controller-revision-hash=<name>-<hash>`, hash up to 10 chars, value <= 63
# (kubernetes/kubernetes#64023); Pulsar allows 53, which breaks pod creation.
MAX_STATEFULSET_NAME = 52
PULSAR_MAX_JOB_NAME = 53

_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_CONFIG_MAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_ALNUM = re.compile(r"[A-Za-z0-9]")


def is_label_value(value: str) -> bool:
    return len(value) <= MAX_LABEL and _LABEL_VALUE.fullmatch(value) is not None


def label_key_error(key: str) -> str | None:
    """Why `key` is not a valid label (or annotation) key, or None when it is."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "prefix before '/' must not be empty"
    if prefix and not is_dns1123_subdomain(prefix):
        return f"prefix {prefix!r} must be a DNS-1123 subdomain"
    if not name:
        return "name part must not be empty"
    if len(name) > MAX_LABEL:
        return f"name part must be at most {MAX_LABEL} characters"
    if _LABEL_VALUE.fullmatch(name) is None:
        return "name part must be alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
    return None


def is_dns1123_label(name: str) -> bool:
    return len(name) <= MAX_LABEL and _DNS1123_LABEL.fullmatch(name) is not None


def is_dns1035_label(name: str) -> bool:
    return len(name) <= MAX_LABEL and _DNS1035_LABEL.fullmatch(name) is not None


def is_dns1123_subdomain(name: str) -> bool:
    return len(name) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(name) is not None


def is_env_var_name(name: str) -> bool:
    return _ENV_VAR_NAME.fullmatch(name) is not None


def is_secret_key(key: str) -> bool:
    return len(key) <= 253 and _CONFIG_MAP_KEY.fullmatch(key) is not None


def _fix_ends(value: str) -> str:
    if value and not _ALNUM.fullmatch(value[0]):
        value = "0" + value[1:]
    if value and not _ALNUM.fullmatch(value[-1]):
        value = value[:-1] + "0"
    return value


def to_label_value(value: str, style: LabelStyle = "documented") -> str:
    """Convert `value` into a valid label value; a valid value comes back unchanged.

    `documented`: Pulsar's documented rule (every non-alphanumeric becomes `-`).
    `pulsar-runtime`: the worker's toValidLabelName (lower-case, keeps `_` and `.`).
    Both fix the ends after truncating, which the worker does not (it can leave a trailing
    `-`, an invalid value).
    """
    if is_label_value(value):
        return value
    if style == "documented":
        converted = re.sub(r"[^A-Za-z0-9]", "-", value)
    else:
        converted = re.sub(r"[^a-zA-Z0-9\-_.]", "-", value.lower())
    return _fix_ends(_fix_ends(converted)[:MAX_LABEL])


def pulsar_label_value(value: str) -> str:
    """The worker's toValidLabelName exactly, bug included (truncates after the end fix)."""
    converted = re.sub(r"[^a-zA-Z0-9\-_.]", "-", value.lower())
    return _fix_ends(converted)[:MAX_LABEL]


def to_valid_pod_name(value: str) -> str:
    """The worker's toValidPodName: lower-case, every char outside [a-z0-9-.] becomes `-`."""
    return re.sub(r"[^a-z0-9\-.]", "-", value.lower())


def _sha1_prefix(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def job_name(*, tenant: str, namespace: str, name: str, custom: str | None = None) -> str:
    """The StatefulSet name the worker gives a function (its createJobName)."""
    if custom is None:
        base = f"{tenant}-{namespace}-{name}"
        candidate = "pf-" + base
        converted = to_valid_pod_name(candidate)
        return candidate if converted == candidate else f"{converted}-{_sha1_prefix(base)}"
    return f"{to_valid_pod_name(custom)}-{_sha1_prefix(f'{custom}-{tenant}-{namespace}-{name}')}"


def pulsar_job_name_error(job: str) -> str | None:
    """The worker's own doChecks on a job name, with its exact messages."""
    if job != job.lower():
        return "Kubernetes does not allow upper case jobNames."
    if _DNS1123_SUBDOMAIN.fullmatch(job) is None:
        return f"Kubernetes only admits lower case and numbers. (jobName={job})"
    if len(job) > PULSAR_MAX_JOB_NAME:
        return "Kubernetes job name size should be less than 53"
    return None


def propose_job_name(*, tenant: str, namespace: str, name: str) -> tuple[str, str]:
    """A customRuntimeOptions jobName that yields a safe StatefulSet name, and that name."""
    budget = MAX_STATEFULSET_NAME - 9  # "-" + 8 hash characters follow the jobName
    stem = to_valid_pod_name(f"{tenant}-{namespace}-{name}").replace(".", "-")
    stem = re.sub(r"-+", "-", stem).strip("-")[:budget].rstrip("-") or "fn"
    return stem, job_name(tenant=tenant, namespace=namespace, name=name, custom=stem)


SERVICE_ACCOUNT_HASH = 16  # hex characters of SHA-256: 64 bits


@functools.lru_cache(maxsize=64)
def _template_fields(template: str) -> tuple[str, ...]:
    """The fields a serviceAccountName template names, sorted (read once per template: it is
    the config's, not the request's)."""
    fields = {"tenant", "namespace", "name"}
    return tuple(sorted({f for _, f, _, _ in string.Formatter().parse(template) if f in fields}))


def service_account_name(template: str, *, tenant: str, namespace: str, name: str) -> str:
    """The ServiceAccount for a function: the template filled in and made a DNS-1123 label
    (lower-case, runs of other characters become one `-`, cut to fit), then `-` and the first
    16 hex characters of the SHA-256 of the fields the template names, as compact JSON with
    sorted keys (`{"name":"charge","namespace":"payments","tenant":"acme-prod"}`).

    Pulsar's job-name scheme does not fit: it adds no hash when conversion changes nothing, so
    `acme-prod/payments/charge` and `acme/prod-payments/charge` would share a name. The hash
    over the unconverted fields makes the name injective in them (up to a 64-bit collision),
    whatever the conversion or the cut did, and stable: it depends on nothing else.
    """
    values = {"tenant": tenant, "namespace": namespace, "name": name}
    used = _template_fields(template)
    rendered = template.format(**values)
    readable = re.sub(r"[^a-z0-9]+", "-", rendered.lower()).strip("-")
    digest = hashlib.sha256(
        json.dumps(
            {field: values[field] for field in used},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
    ).hexdigest()[:SERVICE_ACCOUNT_HASH]
    stem = readable[: MAX_LABEL - 1 - SERVICE_ACCOUNT_HASH].rstrip("-") or "pf"
    return f"{stem}-{digest}"
