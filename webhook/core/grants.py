"""Pure: what a function's Pulsar role must be granted, and nothing more, from its details.

From the FunctionDetails the worker wrote into the instance command: ``consume`` on each input
topic (a topic pattern needs namespace-level ``consume``), ``produce`` on the output topic, the
log topic and the dead-letter topic (only used when ``maxMessageRetries`` is set), and the
namespace's ``functions`` action for the package download at pod start (``sources``/``sinks``
for connectors). ``commands`` turns the needs of every function sharing one role into
``pulsar-admin`` commands, one per topic, each argument shell-quoted.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.core import command, workload

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DOWNLOAD_ACTION = {"FUNCTION": "functions", "SOURCE": "sources", "SINK": "sinks"}


@dataclass(frozen=True)
class Needs:
    """One function's topics and namespace, as its instance uses them."""

    function: str  # tenant/namespace/name
    tenant: str | None
    namespace: str | None
    component: str = "FUNCTION"
    consume: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    produce: tuple[str, ...] = ()
    subscription: str | None = None
    notes: tuple[str, ...] = field(default=())


def details_document(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The FunctionDetails (proto3 JSON) of a worker StatefulSet, or None when absent or
    unreadable."""
    try:
        index = workload.function_container_index(obj)
        container = obj["spec"]["template"]["spec"]["containers"][index]
        script = workload.instance_script(container)
        if script is None:
            return None
        details = command.get_json_flag(script, "--function_details")
        if details is not None:
            return details
        conf = command.get_json_flag(script, "-instance-conf")
    except (workload.WorkloadError, command.CommandError, KeyError, IndexError, TypeError):
        return None
    if conf is None:
        return None
    raw = conf.get("functionDetails")
    try:
        details = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    return details if isinstance(details, dict) else None


def _strings(value: object) -> list[str]:
    if isinstance(value, Mapping):
        return [k for k in value if isinstance(k, str)]
    return []


def _component(details: Mapping[str, Any]) -> str:
    kind = details.get("componentType")
    if kind in ("FUNCTION", "SOURCE", "SINK"):
        return str(kind)
    source = details.get("source") if isinstance(details.get("source"), Mapping) else {}
    if not (source or {}).get("inputSpecs") and not (source or {}).get("topicsToSerDeClassName"):
        return "SOURCE"
    return "FUNCTION"


def needs(details: Mapping[str, Any]) -> Needs:
    """The topics ``details`` consumes and produces, and its default subscription."""
    tenant, ns, name = (details.get(k) for k in ("tenant", "namespace", "name"))
    tenant = tenant if isinstance(tenant, str) else None
    ns = ns if isinstance(ns, str) else None
    name = name if isinstance(name, str) else None
    fqfn = "/".join(p or "?" for p in (tenant, ns, name))
    source = details.get("source")
    source = source if isinstance(source, Mapping) else {}
    sink = details.get("sink")
    sink = sink if isinstance(sink, Mapping) else {}
    consume: list[str] = []
    patterns: list[str] = []
    specs = source.get("inputSpecs")
    if isinstance(specs, Mapping):
        for topic, spec in specs.items():
            regex = isinstance(spec, Mapping) and spec.get("isRegexPattern") is True
            (patterns if regex else consume).append(str(topic))
    consume.extend(_strings(source.get("topicsToSerDeClassName")))
    if isinstance(source.get("topicsPattern"), str) and source["topicsPattern"]:
        patterns.append(source["topicsPattern"])
    produce: list[str] = []
    notes: list[str] = []
    if isinstance(sink.get("topic"), str) and sink["topic"]:
        produce.append(sink["topic"])
    if isinstance(details.get("logTopic"), str) and details["logTopic"]:
        produce.append(details["logTopic"])
    retry = details.get("retryDetails")
    retry = retry if isinstance(retry, Mapping) else {}
    retries = retry.get("maxMessageRetries")
    if isinstance(retries, int) and not isinstance(retries, bool) and retries > 0:
        dlq = retry.get("deadLetterTopic")
        if isinstance(dlq, str) and dlq:
            produce.append(dlq)
        else:
            notes.append(
                "maxMessageRetries is set without a dead-letter topic: the client's default "
                "<input>-<subscription>-DLQ contains '/' with the default subscription; set "
                "--dead-letter-topic"
            )
    subscription = source.get("subscriptionName")
    if not isinstance(subscription, str) or not subscription:
        subscription = fqfn if all((tenant, ns, name)) else None
    return Needs(
        function=fqfn,
        tenant=tenant,
        namespace=ns,
        component=_component(details),
        consume=tuple(dict.fromkeys(consume)),
        patterns=tuple(dict.fromkeys(patterns)),
        produce=tuple(dict.fromkeys(produce)),
        subscription=subscription if consume or patterns else None,
        notes=tuple(notes),
    )


def _topic_namespace(topic: str, fallback: str | None) -> str | None:
    """tenant/namespace of a topic name (full or short), for namespace-level grants."""
    rest = topic.split("://", 1)[1] if "://" in topic else topic
    parts = rest.split("/")
    if len(parts) >= 3:
        return f"{parts[0]}/{parts[1]}"
    return fallback


@dataclass(frozen=True)
class RoleGrants:
    role: str
    functions: tuple[str, ...]
    commands: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def shared(self) -> bool:
        return len(self.functions) > 1

    def as_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "functions": list(self.functions),
            "shared": self.shared,
            "commands": list(self.commands),
            "notes": list(self.notes),
        }


def _arg(value: str) -> str:
    return shlex.quote(value)


def _unsafe(target: str) -> bool:
    """A topic or namespace not to put in a command: control characters, or a leading ``-``
    that pulsar-admin would read as an option (``--role=...``) however it is quoted."""
    return bool(_CONTROL.search(target)) or target.startswith("-")


def commands(role: str, all_needs: Iterable[Needs]) -> RoleGrants:
    """The ``pulsar-admin`` commands granting ``role`` exactly what these functions need."""
    wanted: dict[str, set[str]] = {}
    namespaces: dict[str, set[str]] = {}
    functions: list[str] = []
    notes: list[str] = []
    refused: list[str] = []
    for need in all_needs:
        functions.append(need.function)
        notes.extend(f"{need.function}: {n}" for n in need.notes)
        for action, topics in (("consume", need.consume), ("produce", need.produce)):
            for topic in topics:
                if _unsafe(topic):
                    refused.append(topic)
                    continue
                wanted.setdefault(topic, set()).add(action)
        home = f"{need.tenant}/{need.namespace}" if need.tenant and need.namespace else None
        for pattern in need.patterns:
            where = _topic_namespace(pattern, home)
            if where and not _unsafe(where):
                namespaces.setdefault(where, set()).add("consume")
        if home and not _unsafe(home):
            namespaces.setdefault(home, set()).add(_DOWNLOAD_ACTION[need.component])
            if need.component != "FUNCTION":
                notes.append(
                    f"{need.function}: a {need.component.lower()}'s package download was not "
                    f"verified to need '{_DOWNLOAD_ACTION[need.component]}'"
                )
        if need.subscription and need.subscription == need.function:
            notes.append(
                f"{need.function}: default subscription {need.subscription!r}; with "
                "subscription_auth_mode=Prefix it must start with the role: set a subscription name"
            )
    lines = [
        f"pulsar-admin topics grant-permission {_arg(topic)} --role {_arg(role)} "
        f"--actions {','.join(sorted(actions))}"
        for topic, actions in sorted(wanted.items())
    ]
    lines += [
        f"pulsar-admin namespaces grant-permission {_arg(ns)} --role {_arg(role)} "
        f"--actions {','.join(sorted(actions))}"
        for ns, actions in sorted(namespaces.items())
    ]
    if _CONTROL.search(role):
        lines = []
        notes.append("the role has control characters: no commands written for it")
    if refused:
        notes.append(
            f"{len(refused)} topic name(s) with control characters or a leading '-' left out"
        )
    if any("functions" in a for a in namespaces.values()):
        notes.append(
            "the namespace 'functions' action (package download) also lets the role register "
            "and delete functions there"
        )
    return RoleGrants(
        role=role,
        functions=tuple(dict.fromkeys(functions)),
        commands=tuple(lines),
        notes=tuple(dict.fromkeys(notes)),
    )
