"""Pure: every validation rule over a function workload, with the action each rule has in the
config (deny / warn / audit / off).

Checks that need the cluster read a `ClusterFacts` value the shell gathered beforehand, making
the `lookups` this module asks for (resolve first, then decide); without facts those rules are
not evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from webhook.core import (
    customizer,
    labels,
    naming,
    podspec,
    quantity,
    rules,
    selector,
    shape,
    tokens,
    workload,
)
from webhook.core.analysis import Analysis, Subject, classify, command_edits
from webhook.core.cluster import ClusterFacts, Lookups, OtherStatefulSet
from webhook.core.config import Config, Resources
from webhook.core.rules import Action, Finding

UNEDITABLE = rules.declare(
    "command/uneditable",
    "our flags (`--secrets_provider`, `--client_auth_*`, `--tls_trust_cert_path`, Go's "
    "`-instance-conf` members, the download step's auth flags) can be shown to reach the "
    "instance's own argv; otherwise the mutation leaves the script untouched and says why",
)
STATEFULSET_NAME = rules.declare(
    "naming/statefulset-name",
    "DNS-1123 label, at most **52** characters; the message proposes a `jobName`",
)
SERVICE_NAME = rules.declare(
    "naming/service-name",
    "`spec.serviceName` (and a function Service's name) is a DNS-1035 label",
)
SECRET_EXISTS = rules.declare(
    "secrets/exists",
    "the Secret and key exist (needs a cluster; action from `secrets.verify`)",
)
CA_SECRET = rules.declare(
    "tokens/ca-secret",
    "the CA Secret exists and holds `ca.crt` (needs a cluster)",
)
SERVICE_ACCOUNT = rules.declare(
    "tokens/service-account",
    "the ServiceAccount the template names (`serviceAccountName`) exists, so a function "
    "never starts under an identity nobody created (needs a cluster; a template naming "
    "none runs as `default`)",
)
REQUESTS_WITHIN_LIMITS = rules.declare(
    "resources/requests-within-limits",
    "every request ≤ its limit (as quantities)",
)
BOUNDS = rules.declare(
    "resources/bounds",
    "Pulsar's min/max/granularity checks, and `customizer.maxResources`",
)
JOB_NAMESPACE = rules.declare(
    "namespace/job-namespace",
    "the object's namespace equals the merged `jobNamespace`",
)


@dataclass(frozen=True)
class Decision:
    rule: str
    action: Action
    path: str
    message: str

    def line(self) -> str:
        return f"{self.action.upper()} [{self.rule}] {self.path}: {self.message}"


@dataclass(frozen=True)
class ValidationResult:
    decisions: tuple[Decision, ...] = ()
    refusal: str | None = None
    is_function: bool = False

    @property
    def allowed(self) -> bool:
        return self.refusal is None and not any(d.action == "deny" for d in self.decisions)


def lookups(subject: Subject, config: Config) -> Lookups:
    """What the cluster-backed rules need looked up for this object, from its one analysis:
    the Secrets of its secrets map and its CA Secret, the ServiceAccount it names, the other
    StatefulSets of the namespace. Nothing for objects those rules do not read or refuse."""
    if subject.refusal is not None or subject.kind == "other":
        return Lookups()
    if subject.kind == "service":
        return Lookups(statefulsets=True)
    analysis = subject.analysis
    assert analysis is not None
    pod = subject.obj["spec"]["template"]["spec"]
    refs = {r.secret for r in analysis.secret_refs} if config.secrets_enabled else set()
    cas = {name for name, _ in tokens.ca_secrets(pod)}
    account = _named_account(pod)
    return Lookups(
        secrets=tuple(sorted(refs | cas)),
        service_accounts=(account,) if account is not None else (),
        statefulsets=True,
    )


def needed_secrets(obj: Any, config: Config) -> tuple[set[str], set[str]]:
    """(Secret names the secrets map refers to, CA Secret names) to look up for `validate`."""
    subject = classify(obj, config.limits)
    if subject.kind != "workload" or subject.analysis is None:
        return set(), set()
    refs = {r.secret for r in subject.analysis.secret_refs} if config.secrets_enabled else set()
    cas = {name for name, _ in tokens.ca_secrets(obj["spec"]["template"]["spec"])}
    return refs, cas


def named_service_account(obj: Any) -> str | None:
    """The ServiceAccount a function workload's template names, if it names one. A template
    naming none runs as `default`, which the ServiceAccount admission plugin guarantees."""
    if not workload.is_function_workload(obj):
        return None
    try:
        pod = obj["spec"]["template"]["spec"]
    except (KeyError, TypeError):
        return None
    return _named_account(pod)


def _named_account(pod: object) -> str | None:
    if not isinstance(pod, Mapping):
        return None
    name = pod.get("serviceAccountName") or pod.get("serviceAccount")
    return name if isinstance(name, str) and name else None


def _decide(findings: list[Finding], config: Config) -> tuple[Decision, ...]:
    decisions = []
    for finding in findings:
        action = config.action(finding.rule.id)
        if action != "off":
            decisions.append(Decision(finding.rule.id, action, finding.path, finding.message))
    return tuple(dict.fromkeys(decisions))


def validate_service(
    obj: Any, config: Config, *, facts: ClusterFacts | None = None
) -> ValidationResult:
    """A function's Service: its name, its labels and selector, no selector-key override, and
    (with cluster facts) a selector consistent with the function's StatefulSet."""
    problem = shape.service_problem(obj)
    if problem:
        return ValidationResult(refusal=f"object of the wrong shape: {problem}", is_function=True)
    return _validate_service(obj, config, facts=facts)


def _validate_service(obj: Any, config: Config, *, facts: ClusterFacts | None) -> ValidationResult:
    obj = workload.without_nulls(obj)
    findings = labels.check(obj, config.label_style)
    name = obj["metadata"].get("name")
    if name is not None and not naming.is_dns1035_label(name):
        findings.append(_service_name_finding("metadata.name", name))
    for override in selector.find(obj):
        source = selector.option_source(override.key, None, config)
        findings.append(
            Finding(customizer.OPTIONS, override.path, selector.message(override, source))
        )
    if facts is not None and facts.statefulsets is not None:
        findings += _service_selects(obj, facts.statefulsets)
    return ValidationResult(decisions=_decide(findings, config), is_function=True)


def _service_selects(obj: Mapping[str, Any], others: tuple[OtherStatefulSet, ...]) -> list[Finding]:
    """The worker names a function's Service and StatefulSet alike: the Service must select
    that StatefulSet's pods, and no other StatefulSet's. (At CREATE the worker has not sent the
    StatefulSet yet; this bites on later Services and updates.)"""
    name = obj["metadata"].get("name")
    chosen = obj["spec"].get("selector") or {}
    found = []
    for other in others:
        if other.name == name and not _selects(chosen, other.template_labels):
            found.append(
                Finding(
                    selector.COLLISION,
                    "spec.selector",
                    f"the Service does not select the pods of its StatefulSet {other.name} (their labels differ); the function would be unreachable",
                )
            )
        elif other.name != name and _selects(chosen, other.template_labels):
            found.append(
                Finding(
                    selector.COLLISION,
                    "spec.selector",
                    f"the Service selects the pods of StatefulSet {other.name} too (labels truncated or converted to the same values); rename this function or give it a distinct jobName",
                )
            )
    return found


def validate(
    obj: Any, config: Config, *, facts: ClusterFacts | None = None, namespace: str | None = None
) -> ValidationResult:
    return validate_subject(classify(obj, config.limits), config, facts=facts, namespace=namespace)


def validate_subject(
    subject: Subject,
    config: Config,
    *,
    facts: ClusterFacts | None = None,
    namespace: str | None = None,
) -> ValidationResult:
    """Validate the object `classify` read (the review's one pass over it)."""
    if subject.refusal is not None:
        return ValidationResult(refusal=subject.refusal, is_function=subject.is_function)
    if subject.kind == "service":
        return _validate_service(subject.obj, config, facts=facts)
    analysis = subject.analysis
    if analysis is None:
        return ValidationResult()
    # null means absent, as the API server reads it; the shape was checked by `classify`
    obj: shape.StatefulSet = workload.without_nulls(subject.obj)
    findings = list(_findings(obj, analysis, config, facts=facts, namespace=namespace))
    return ValidationResult(decisions=_decide(findings, config), is_function=True)


def _findings(
    obj: shape.StatefulSet,
    analysis: Analysis,
    config: Config,
    *,
    facts: ClusterFacts | None,
    namespace: str | None,
) -> list[Finding]:
    pod = obj["spec"]["template"]["spec"]
    found: list[Finding] = list(analysis.details_findings)
    found += labels.check(obj, config.label_style)
    found += _selector_overrides(obj, analysis, config)
    found += _names(obj, analysis)
    if config.secrets_enabled:
        found += analysis.secret_findings
    found += tokens.check(pod, config)
    found += _command(analysis, config)
    if config.customizer_enabled:
        found += analysis.options_findings
        found += customizer.check(
            analysis.options_doc,
            analysis.options,
            analysis.details.options_source or "customRuntimeOptions",
            config,
        )
    found += podspec.check(
        obj,
        container_index=analysis.container_index,
        config=config,
        requested=analysis.options if config.customizer_enabled else None,
    )
    found += _requests_within_limits(pod)
    found += _bounds(analysis, pod, config)
    found += _job_namespace(obj, analysis, config, namespace)
    if facts is not None:
        found += _cluster(obj, analysis, config, facts)
    return found


# ---------------------------------------------------------------------------------------------
# selector keys


def _selector_overrides(
    obj: Mapping[str, Any], analysis: Analysis, config: Config
) -> list[Finding]:
    """Labels, or extraLabels the function asks for, that differ from the selector."""
    found = []
    for override in selector.find(obj):
        source = selector.option_source(override.key, analysis.options, config)
        found.append(Finding(customizer.OPTIONS, override.path, selector.message(override, source)))
    if config.customizer_enabled:
        chosen, _ = selector.selector_of(obj)
        merged = analysis.merged_options(config)
        for key, raw in merged.extra_labels.items():
            selected = chosen.get(key)
            if selected is None or naming.to_label_value(raw, config.label_style) == selected:
                continue
            override = selector.Override(key, raw, str(selected), "spec.selector.matchLabels")
            source = selector.option_source(key, analysis.options, config)
            if not any(f.message == selector.message(override, source) for f in found):
                found.append(
                    Finding(
                        customizer.OPTIONS,
                        f"{analysis.details.options_source or 'customRuntimeOptions'}.extraLabels.{key}",
                        selector.message(override, source),
                    )
                )
    return found


# ---------------------------------------------------------------------------------------------
# names


def _names(obj: Mapping[str, Any], analysis: Analysis) -> list[Finding]:
    found = []
    name = obj["metadata"].get("name") or ""
    if name and (not naming.is_dns1123_label(name) or len(name) > naming.MAX_STATEFULSET_NAME):
        d, lbl = analysis.details, workload.object_labels(obj)
        tenant, ns, fn = (
            d.tenant or lbl.get("tenant"),
            d.namespace or lbl.get("namespace"),
            d.name or lbl.get("name"),
        )
        if len(name) > naming.MAX_STATEFULSET_NAME:
            why = f"is {len(name)} characters; at most {naming.MAX_STATEFULSET_NAME} are safe (pods get label controller-revision-hash=<name>-<up to 10 chars>, limit 63)"
        else:
            why = "is not a DNS-1123 label (lower-case alphanumerics and '-', alphanumeric at both ends, no dots)"
        hint = ""
        if tenant and ns and fn:
            job, result = naming.propose_job_name(
                tenant=str(tenant), namespace=str(ns), name=str(fn)
            )
            hint = f'; set customRuntimeOptions {{"jobName": "{job}"}} (the worker then names it {result})'
        found.append(Finding(STATEFULSET_NAME, "metadata.name", f"{name!r} {why}{hint}"))
    service = obj["spec"].get("serviceName")
    if service is not None and not naming.is_dns1035_label(service):
        found.append(_service_name_finding("spec.serviceName", service))
    return found


def _command(analysis: Analysis, config: Config) -> list[Finding]:
    """Our flags must reach the instance: deny what the mutation could not edit safely."""
    if analysis.details_findings:  # the mutation left the object alone: function/details
        return []
    edit = command_edits(analysis, config).edit
    where = f"{analysis.container_path}.command[2]"
    return [Finding(UNEDITABLE, where, r) for r in (edit.refused if edit else [])]


# ---------------------------------------------------------------------------------------------
# resources


def _containers(pod: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return [
        (f"spec.template.spec.{key}[{i}]", c)
        for key in ("initContainers", "containers")
        for i, c in enumerate(pod.get(key) or [])
    ]


def _quantity(value: object) -> Any:
    try:
        return quantity.parse(value)
    except quantity.QuantityError:
        return None


def _requests_within_limits(pod: Mapping[str, Any]) -> list[Finding]:
    found = []
    for where, container in _containers(pod):
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        for name, request in requests.items():
            if name not in limits:
                continue
            req, lim = _quantity(request), _quantity(limits[name])
            if req is not None and lim is not None and req > lim:
                found.append(
                    Finding(
                        REQUESTS_WITHIN_LIMITS,
                        f"{where}.resources.requests.{name}",
                        f"request {request} is above the limit {limits[name]}; lower the request or raise the limit",
                    )
                )
    return found


def java_double(value: float) -> str:
    """Java's Double.toString: plain between 1e-3 and 1e7, else computerized scientific."""
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return f"{value:.1f}" if value == int(value) else repr(value)
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    adjusted = len(text) - 1 + int(exponent)
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{adjusted}"


def _java_round(value: float) -> int:
    """Java's Math.round(double): floor(x + 0.5), saturating at the long range, NaN -> 0
    (1000 * 1e306 cores is infinite, and must not raise)."""
    if math.isnan(value):
        return 0
    if value >= 2.0**63:
        return 2**63 - 1
    if value < -(2.0**63):
        return -(2**63)
    return math.floor(value + 0.5)


def pulsar_resource_messages(
    cpu: float,
    ram: int,
    *,
    minimum: Resources | None,
    maximum: Resources | None,
    granularity: Resources | None,
    lock_step: bool,
) -> list[str]:
    """KubernetesRuntimeFactory's resource admission checks, with its exact messages."""
    messages = []
    if minimum is not None:
        if minimum.cpu is not None and cpu < minimum.cpu:
            messages.append(
                f"Per instance CPU requested, {java_double(cpu)}, for function is less than the minimum required, {java_double(minimum.cpu)}"
            )
        if minimum.ram is not None and ram < minimum.ram:
            messages.append(
                f"Per instance RAM requested, {ram}, for function is less than the minimum required, {minimum.ram}"
            )
    if maximum is not None:
        if maximum.cpu is not None and cpu > maximum.cpu:
            messages.append(
                f"Per instance CPU requested, {java_double(cpu)}, for function is greater than the maximum required, {java_double(maximum.cpu)}"
            )
        if maximum.ram is not None and ram > maximum.ram:
            messages.append(
                f"Per instance RAM requested, {ram}, for function is greater than the maximum required, {maximum.ram}"
            )
    if granularity is not None:
        cpu_multiple = ram_multiple = None
        # A granularity that rounds to 0 millicores, or is negative, skips the check (as the
        # worker does: Pulsar 4.0.7, tests/pulsar-fixtures and test_pulsar_vectors)
        grain = _java_round(1000 * granularity.cpu) if granularity.cpu is not None else 0
        if grain > 0:
            cpu_millis = _java_round(1000 * cpu)
            if cpu_millis <= 0 or cpu_millis % grain:
                messages.append(
                    f"Per instance cpu requested, {java_double(cpu)}, for function should be positive and a multiple of the granularity, {java_double(granularity.cpu or 0.0)}"
                )
            else:
                cpu_multiple = cpu_millis // grain
        if granularity.ram is not None and granularity.ram > 0:
            if ram <= 0 or ram % granularity.ram:
                messages.append(
                    f"Per instance ram requested, {ram}, for function should be positive and a multiple of the granularity, {granularity.ram}"
                )
            else:
                ram_multiple = ram // granularity.ram
        if (
            lock_step
            and cpu_multiple is not None
            and ram_multiple is not None
            and cpu_multiple != ram_multiple
        ):
            assert granularity.cpu is not None
            messages.append(
                f"Per instance cpu requested, {java_double(cpu)}, ram requested, {ram}, for function should be positive and the same multiple of the granularity, cpu, {java_double(granularity.cpu)}, ram, {granularity.ram}"
            )
    return messages


def _bounds(analysis: Analysis, pod: Mapping[str, Any], config: Config) -> list[Finding]:
    found = []
    d = analysis.details
    if d.from_command:
        where = f"{analysis.container_path}.command[2] --function_details.resources"
        for message in pulsar_resource_messages(
            d.cpu,
            d.ram,
            minimum=config.min_resources,
            maximum=config.max_resources,
            granularity=config.granularities,
            lock_step=config.lock_step,
        ):
            found.append(Finding(BOUNDS, where, message))
    for name, maximum in config.max_container_resources.items():
        cap = quantity.parse(maximum)
        for where, container in _containers(pod):
            resources = container.get("resources") or {}
            for part in ("limits", "requests"):
                value = (resources.get(part) or {}).get(name)
                amount = _quantity(value)
                if amount is not None and amount > cap:
                    found.append(
                        Finding(
                            BOUNDS,
                            f"{where}.resources.{part}.{name}",
                            f"{value} is above the cluster maximum {maximum} (webhook.customizer.maxResources)",
                        )
                    )
    return found


def _job_namespace(
    obj: Mapping[str, Any], analysis: Analysis, config: Config, namespace: str | None
) -> list[Finding]:
    wanted = analysis.merged_options(config).job_namespace if config.customizer_enabled else None
    wanted = wanted or config.job_namespace
    actual = namespace or obj["metadata"].get("namespace")
    if wanted and actual and wanted != actual:
        return [
            Finding(
                JOB_NAMESPACE,
                "metadata.namespace",
                f"the function belongs in namespace {wanted!r} (jobNamespace) but is in {actual!r}",
            )
        ]
    return []


# ---------------------------------------------------------------------------------------------
# cluster-backed rules


def _cluster(
    obj: Mapping[str, Any], analysis: Analysis, config: Config, facts: ClusterFacts
) -> list[Finding]:
    found = []
    unknown = facts.unavailable or "not looked up"
    if config.secrets_enabled:
        for ref in analysis.secret_refs:
            where = f"{analysis.details.secrets_source}[{ref.env}]"
            if ref.secret not in facts.secrets:
                found.append(
                    Finding(SECRET_EXISTS, where, f"could not check Secret {ref.secret}: {unknown}")
                )
                continue
            keys = facts.secrets[ref.secret]
            if keys is None:
                found.append(
                    Finding(
                        SECRET_EXISTS,
                        where,
                        f"Secret {ref.secret} does not exist in this namespace; create it before the function",
                    )
                )
            elif ref.key not in keys:
                found.append(
                    Finding(
                        SECRET_EXISTS,
                        where,
                        # its other key names are not ours to show to whoever creates this
                        f"Secret {ref.secret} has no key {ref.key!r}",
                    )
                )
    pod = obj["spec"]["template"]["spec"]
    for name, key in tokens.ca_secrets(pod):
        where = "spec.template.spec.volumes[service-account-token]"
        keys = facts.secrets.get(name) if name in facts.secrets else frozenset({"?"})
        if name not in facts.secrets:
            found.append(Finding(CA_SECRET, where, f"could not check CA Secret {name}: {unknown}"))
        elif keys is None:
            found.append(
                Finding(
                    CA_SECRET,
                    where,
                    f"CA Secret {name} does not exist in this namespace (brokerClientTrustCertsSecretName)",
                )
            )
        elif key not in keys:
            found.append(Finding(CA_SECRET, where, f"CA Secret {name} has no key {key!r}"))
    account = _named_account(pod)
    if account is not None:
        where = "spec.template.spec.serviceAccountName"
        if account not in facts.service_accounts:
            found.append(
                Finding(
                    SERVICE_ACCOUNT,
                    where,
                    f"could not check ServiceAccount {account}: {unknown}",
                )
            )
        elif not facts.service_accounts[account]:
            found.append(
                Finding(
                    SERVICE_ACCOUNT,
                    where,
                    f"ServiceAccount {account} does not exist in this namespace; create it before "
                    "the function (its token is the function's Pulsar role)",
                )
            )
    if facts.statefulsets is not None:
        found += _collisions(obj, facts.statefulsets)
    elif facts.unavailable:
        found.append(
            Finding(
                selector.COLLISION,
                "spec.selector",
                f"could not check other StatefulSets: {facts.unavailable}",
            )
        )
    return found


def _selects(selector: Mapping[str, str], target: Mapping[str, str]) -> bool:
    return bool(selector) and all(target.get(k) == v for k, v in selector.items())


def _collisions(obj: Mapping[str, Any], others: tuple[OtherStatefulSet, ...]) -> list[Finding]:
    name = obj["metadata"].get("name")
    mine = (obj["spec"].get("selector") or {}).get("matchLabels") or {}
    my_pods = ((obj["spec"]["template"].get("metadata") or {}).get("labels")) or {}
    found = []
    for other in others:
        if other.name == name:
            continue
        if _selects(other.selector, my_pods) or _selects(mine, other.template_labels):
            found.append(
                Finding(
                    selector.COLLISION,
                    "spec.selector.matchLabels",
                    f"StatefulSet {other.name} in this namespace selects the same pods (labels truncated or converted to the same values); rename this function or give it a distinct jobName",
                )
            )
    return found


def _service_name_finding(path: str, value: object) -> Finding:
    """A Service's name (or a StatefulSet's serviceName) that is not a DNS-1035 label."""
    return Finding(
        SERVICE_NAME,
        path,
        f"{value!r} is not a DNS-1035 label (start with a letter; lower-case alphanumerics and '-'; at most 63)",
    )
