"""Pure: run the mutation steps on a function workload: object -> (object, warnings, audit).

Every step is idempotent (mutate(mutate(x)) == mutate(x)), so `reinvocationPolicy: IfNeeded`
is safe and re-applying a stored object changes nothing. Each review works on a fresh deep
copy: nothing from one function can leak into the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.core import customizer, labels, naming, secrets, selector, tokens, workload
from webhook.core.analysis import Analysis, Subject, classify, command_edits
from webhook.core.config import Config


@dataclass(frozen=True)
class MutationResult:
    obj: Any
    warnings: tuple[str, ...] = ()
    audit: Mapping[str, str] = field(default_factory=dict)
    refusal: str | None = None  # set when the object cannot be handled at all
    is_function: bool = False
    denial: str | None = None  # set when a rule denies what mutation cannot fix silently


def mutate(obj: Any, config: Config, *, namespace: str | None = None) -> MutationResult:
    """Mutate a copy of `obj`. Objects that are not function workloads or function Services
    come back unchanged."""
    return mutate_subject(classify(obj, config.limits), config, namespace=namespace)


def mutate_subject(
    subject: Subject, config: Config, *, namespace: str | None = None
) -> MutationResult:
    """Mutate a copy of the object `classify` read (the review's one pass over it)."""
    obj = subject.obj
    if subject.refusal is not None:
        return MutationResult(obj=obj, refusal=subject.refusal, is_function=subject.is_function)
    if subject.kind == "service":
        return _mutate_service(obj, config)
    analysis = subject.analysis
    if analysis is None:
        return MutationResult(obj=obj)
    out = workload.without_nulls(obj)
    overrides = selector.find(out)
    if overrides and config.action(selector.RULE) == "deny":
        sources = [selector.option_source(o.key, analysis.options, config) for o in overrides]
        return MutationResult(
            obj=obj, denial=_override_denial(overrides, sources), is_function=True
        )
    warnings = selector.repair(out, overrides)
    if analysis.details_findings:
        first = analysis.details_findings[0]
        note = f"left unchanged: function details unreadable at {first.path}: {first.message}"
        if not overrides:
            return MutationResult(obj=obj, warnings=(note,), is_function=True)
        warnings.append(note)
        labels.convert(out, config.label_style)
    else:
        warnings += _steps(out, analysis, config, namespace=namespace)
    return MutationResult(
        obj=out,
        warnings=tuple(dict.fromkeys(warnings)),
        audit=audit_annotations(out, config, namespace=namespace),
        is_function=True,
    )


def _override_denial(overrides: list[selector.Override], sources: list[str]) -> str:
    seen: dict[str, str] = {}
    for override, source in zip(overrides, sources, strict=True):
        seen.setdefault(
            override.key, f"[{selector.RULE}] {override.path}: {selector.message(override, source)}"
        )
    return "; ".join(seen.values())


def _mutate_service(obj: Any, config: Config) -> MutationResult:
    """The function's Service (its shape checked by `classify`): the same label conversion as
    its StatefulSet, so both are created and the Service still selects the StatefulSet's pods."""
    out = workload.without_nulls(obj)
    overrides = selector.find(out)
    if overrides and config.action(selector.RULE) == "deny":
        sources = [selector.option_source(o.key, None, config) for o in overrides]
        return MutationResult(
            obj=obj, denial=_override_denial(overrides, sources), is_function=True
        )
    warnings = selector.repair(out, overrides)
    labels.convert(out, config.label_style)
    return MutationResult(obj=out, warnings=tuple(dict.fromkeys(warnings)), is_function=True)


def _steps(
    obj: dict[str, Any], analysis: Analysis, config: Config, *, namespace: str | None
) -> list[str]:
    warnings: list[str] = []
    pod = obj["spec"]["template"]["spec"]
    container = pod["containers"][analysis.container_index]
    details = analysis.details
    edits = command_edits(analysis, config)  # the command line: edited once, rendered below
    for key in details.ignored:
        why = (
            "the function details in the command supply them"
            if details.from_command
            else f'only hand-written workloads with {workload.ENABLED_ANNOTATION}: "true" use it'
        )
        warnings.append(f"annotation {key} ignored: {why}")

    if config.secrets_enabled:
        warnings.extend(secrets.apply(container, list(analysis.secret_refs)))
        warnings.extend(edits.provider_warnings)
        warnings.extend(f"secrets: {f.path}: {f.message}" for f in analysis.secret_findings)

    tokens.repair_layout(pod)
    if config.tokens_enabled:
        warnings.extend(tokens.project(pod, container, config))
        warnings.extend(edits.auth_warnings)
        account = tokens.service_account_name(
            config.service_account_template, details, workload.object_labels(obj)
        )
        warnings.extend(
            tokens.set_identity(
                pod, account=account, automount=config.automount_service_account_token
            )
        )

    if config.customizer_enabled:
        warnings.extend(analysis.options_notes)
        warnings.extend(f"customRuntimeOptions: {f.message}" for f in analysis.options_findings)
        merged = analysis.merged_options(config)
        warnings.extend(customizer.apply(obj, container, merged, config=config))
        warnings.extend(
            _placement_warnings(
                obj,
                analysis,
                merged.job_name or config.job_name,
                merged.job_namespace or config.job_namespace,
                namespace,
            )
        )
    elif analysis.options is not None or analysis.options_findings:
        warnings.append(
            "customRuntimeOptions are ignored: no runtimeCustomizerClassName (BasicKubernetesManifestCustomizer) is configured"
        )

    if edits.edit is not None and edits.edit.refused:
        warnings.extend(f"command left unchanged: {reason}" for reason in edits.edit.refused)
    elif edits.edit is not None and edits.edit.changed:
        container["command"][-1] = edits.edit.render()

    labels.convert(obj, config.label_style)
    return warnings


def _placement_warnings(
    obj: Mapping[str, Any],
    analysis: Analysis,
    job_name: str | None,
    job_namespace: str | None,
    namespace: str | None,
) -> list[str]:
    """jobName/jobNamespace cannot be applied at admission: compare them and say so."""
    warnings = []
    actual_ns = namespace or obj["metadata"].get("namespace")
    if job_namespace and actual_ns and job_namespace != actual_ns:
        warnings.append(f"jobNamespace is {job_namespace!r} but the object is in {actual_ns!r}")
    d = analysis.details
    if job_name and d.tenant and d.namespace and d.name:
        expected = naming.job_name(
            tenant=d.tenant, namespace=d.namespace, name=d.name, custom=job_name
        )
        actual = obj["metadata"].get("name")
        if actual and expected != actual:
            warnings.append(
                f"jobName {job_name!r} names this function {expected!r}, but the object is {actual!r}"
            )
    return warnings


def pulsar_role(obj: Mapping[str, Any], namespace: str | None) -> str:
    pod = obj["spec"]["template"]["spec"]
    account = pod.get("serviceAccountName") or pod.get("serviceAccount") or "default"
    ns = namespace or obj["metadata"].get("namespace") or "default"
    return f"system:serviceaccount:{ns}:{account}"


def audit_annotations(
    obj: Mapping[str, Any], config: Config, *, namespace: str | None
) -> dict[str, str]:
    """What the cluster's audit log should record about this function's identity."""
    pod = obj["spec"]["template"]["spec"]
    found = tokens.projections(pod)
    audit = {"pulsar-role": pulsar_role(obj, namespace)}
    if found:
        audit["token-audience"] = found[0].audience or "(api-server default)"
        audit["token-expiration-seconds"] = str(found[0].expiration_seconds)
        ca = tokens.ca_secrets(pod)
        if ca:
            audit["ca-secret"] = ca[0][0]
    if config.token_secret_auth:
        audit["auth"] = "token-secret"
    elif found:
        audit["auth"] = "service-account-token"
    return audit
