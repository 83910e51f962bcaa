"""Pure: read an object once — is it a function workload or Service, and for a workload its
function container, FunctionDetails, secrets and customizer options — for both the mutation
and the validation to use (`classify` is the one pass; `Subject` what it found)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from webhook.core import command, customizer, secrets, shape, tokens, workload
from webhook.core.bounded import DEFAULT_LIMITS, Limits
from webhook.core.config import Config, RuntimeOptions
from webhook.core.errors import UserError
from webhook.core.rules import Finding


class Refusal(UserError, ValueError):
    """The object cannot be handled at all (wrong shape, no function container)."""


@dataclass(frozen=True)
class Analysis:
    container_index: int
    details: workload.FunctionDetails
    details_findings: tuple[Finding, ...]
    secret_refs: tuple[secrets.SecretRef, ...]
    secret_findings: tuple[Finding, ...]
    options: RuntimeOptions | None  # the function's own customRuntimeOptions
    options_doc: Mapping[str, Any] = field(default_factory=dict)
    options_findings: tuple[Finding, ...] = ()
    options_notes: tuple[str, ...] = ()
    script: command.Script | None = None  # the instance's `sh -c` script, parsed once

    @property
    def container_path(self) -> str:
        return f"{workload.CONTAINERS_PATH}[{self.container_index}]"

    def merged_options(self, config: Config) -> RuntimeOptions:
        return customizer.merge(config.cluster_options, self.options)


@dataclass(frozen=True)
class Subject:
    """What an object is to the webhook, found once per review: a function workload (with its
    analysis), a function Service, or anything else (passed through); or why it is refused."""

    kind: Literal["workload", "service", "other"]
    obj: Any = None  # as given (a mapping for a workload or a Service)
    analysis: Analysis | None = None  # a workload that can be read
    refusal: str | None = None  # the object cannot be handled at all (shape, limits...)

    @property
    def is_function(self) -> bool:
        return self.kind != "other"


def classify(obj: object, limits: Limits = DEFAULT_LIMITS) -> Subject:
    """Detect what `obj` is and, for a function workload, analyse it: the one pass over the
    object that both webhooks (and the cluster lookups) read from."""
    if not isinstance(obj, Mapping):
        return Subject("other", obj)
    if workload.is_function_service(obj):
        problem = shape.service_problem(obj)
        refusal = f"object of the wrong shape: {problem}" if problem else None
        return Subject("service", obj, refusal=refusal)
    if not workload.is_function_workload(obj):
        return Subject("other", obj)
    try:
        return Subject("workload", obj, analysis=analyse(obj, limits))
    except Refusal as exc:
        return Subject("workload", obj, refusal=str(exc))


def analyse(obj: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Analysis:
    """Raises Refusal when the object is not a StatefulSet we can read."""
    problem = shape.statefulset_problem(obj)
    if problem:
        raise Refusal(f"object of the wrong shape: {problem}")
    sts = cast(shape.StatefulSet, obj)  # what the check just proved
    try:
        index = workload.function_container_index(sts)
    except workload.WorkloadError as exc:
        raise Refusal(str(exc)) from None
    container = sts["spec"]["template"]["spec"]["containers"][index]
    script: command.Script | None = None
    script_problem: str | None = None
    try:
        script = workload.parse_script(container, max_length=limits.max_command_length)
    except command.CommandError as exc:
        script_problem = str(exc)
    details, problems = workload.details_from(obj, index, script, script_problem, limits)
    refs, secret_findings = secrets.parse(
        details.secrets_map, details.secrets_source or "secretsMap", limits
    )
    options, doc, option_findings, notes = customizer.parse(
        details.custom_runtime_options, details.options_source or "customRuntimeOptions", limits
    )
    return Analysis(
        container_index=index,
        details=details,
        details_findings=tuple(Finding(workload.DETAILS, p.path, p.message) for p in problems),
        secret_refs=tuple(refs),
        secret_findings=tuple(secret_findings),
        options=options,
        options_doc=doc,
        options_findings=tuple(option_findings),
        options_notes=tuple(notes),
        script=script,
    )


@dataclass
class CommandEdits:
    """What the mutation does to the instance command line, worked out once for both webhooks:
    the mutation renders `edit`, the validation denies what `edit.refused` lists."""

    edit: command.Edit | None
    provider_warnings: list[str] = field(default_factory=list)
    auth_warnings: list[str] = field(default_factory=list)


def command_edits(analysis: Analysis, config: Config) -> CommandEdits:
    """Our flags on the instance command (secrets provider, token auth), not yet rendered."""
    script = analysis.script
    if script is None:
        return CommandEdits(None)
    edit = command.Edit(script, limits=config.limits)
    result = CommandEdits(edit)
    if config.secrets_enabled and analysis.secret_refs:
        result.provider_warnings = secrets.set_provider(edit, analysis.details.runtime)
    if config.tokens_enabled:
        try:
            result.auth_warnings = tokens.set_auth_flags(edit, config)
        except command.CommandError as exc:
            edit.refused.append(f"cannot set the token flags: {exc}")
    return result
