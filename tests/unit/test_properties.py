"""Property tests over generated function StatefulSets: idempotence, patches that apply,
valid labels, and no secret value ever leaking into output, patches or warnings."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import worker
from tests.reviews import admission_review
from webhook.core import command, config, mutation, naming, patch, policy, review

NAME_CHARS = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="'\"\\$`"
)
pulsar_names = st.text(NAME_CHARS, min_size=1, max_size=40)
label_values = st.text(NAME_CHARS, max_size=80)
secret_values = st.text(
    st.characters(codec="ascii", categories=("L", "N")), min_size=12, max_size=24
).map(lambda s: "S3CRET" + s)
env_names = st.from_regex(r"[A-Z][A-Z0-9_]{0,15}", fullmatch=True)
dns_names = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)

secret_maps = st.dictionaries(
    env_names,
    st.one_of(
        st.fixed_dictionaries(
            {"path": dns_names, "key": st.from_regex(r"[a-z][a-z0-9._-]{0,10}", fullmatch=True)}
        ),
        st.just("not-a-map"),
        st.fixed_dictionaries({"path": dns_names}),
    ),
    max_size=4,
)
tolerations = st.lists(
    st.fixed_dictionaries(
        {
            "key": st.sampled_from(["gpu", "dedicated", "spot"]),
            "operator": st.just("Exists"),
            "effect": st.sampled_from(["NoSchedule", "NoExecute"]),
        }
    ),
    max_size=3,
)
options = st.fixed_dictionaries(
    {},
    optional={
        "extraLabels": st.dictionaries(
            st.sampled_from(["team", "tier", "tenant", "cost"]), label_values, max_size=3
        ),
        "extractLabels": st.dictionaries(
            st.sampled_from(["env", "team"]), label_values, max_size=2
        ),
        "extraAnnotations": st.dictionaries(
            st.sampled_from(["owner", "note"]), st.text(NAME_CHARS, max_size=20), max_size=2
        ),
        "nodeSelectorLabels": st.dictionaries(
            st.sampled_from(["disktype", "pool"]), dns_names, max_size=2
        ),
        "tolerations": tolerations,
        "resourceRequirements": st.fixed_dictionaries(
            {},
            optional={
                "limits": st.dictionaries(
                    st.sampled_from(["cpu", "memory"]),
                    st.sampled_from(["1", "500m", "2Gi", "4G"]),
                    max_size=2,
                ),
                "requests": st.dictionaries(
                    st.sampled_from(["cpu", "memory"]),
                    st.sampled_from(["1", "250m", "1Gi"]),
                    max_size=2,
                ),
            },
        ),
    },
)

ALL_ON = {
    "secretsProviderConfiguratorClassName": config.KUBERNETES_SECRETS_CONFIGURATOR,
    "authenticationEnabled": True,  # the worker uses the auth provider only then
    "functionAuthProviderClassName": config.SA_TOKEN_AUTH_PROVIDER,
    "runtimeCustomizerClassName": config.BASIC_CUSTOMIZER,
}


AUTHS: tuple[worker.Auth, ...] = ("none", "sa-token", "token-secret")


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], config.Config, str]:
    """A worker StatefulSet (sometimes with hand edits), a config, and a secret planted in it."""
    auth = draw(st.sampled_from(AUTHS))
    ca = draw(st.one_of(st.none(), dns_names)) if auth == "sa-token" else None
    secrets = draw(st.one_of(st.none(), secret_maps))
    obj = worker.statefulset(
        tenant=draw(pulsar_names),
        namespace=draw(pulsar_names),
        name=draw(pulsar_names),
        runtime=draw(st.sampled_from(["JAVA", "PYTHON", "GO"])),
        secrets=secrets,
        secrets_configurator=draw(st.booleans()),
        auth=auth,
        ca_secret=ca,
        audience=draw(st.one_of(st.none(), st.just("pulsar"))),
        custom_runtime_options=draw(st.one_of(st.none(), options)),
        cpu=draw(st.sampled_from([0.5, 1.0, 2.0])),
        ram=draw(st.sampled_from([0, 1073741824, 2147483648])),
    )
    for where in ("metadata", "template"):
        extra = draw(
            st.dictionaries(st.sampled_from(["app", "release", "x"]), label_values, max_size=2)
        )
        if where == "metadata":
            obj["metadata"]["labels"].update(extra)
        else:
            obj["spec"]["template"]["metadata"]["labels"].update(extra)
            obj["spec"]["selector"]["matchLabels"].update(extra)
    # a literal secret the webhook must replace and must never repeat
    planted = draw(secret_values)
    container = obj["spec"]["template"]["spec"]["containers"][0]
    if (
        secrets
        and isinstance(next(iter(secrets.values())), dict)
        and "key" in next(iter(secrets.values()))
    ):
        container["env"].append({"name": next(iter(secrets)), "value": planted})
    script = container["command"][2]
    if "-instance-conf" not in script:
        # names sh reads as operators (`;`, `)`, `#`...) make the command uneditable: no plant
        with contextlib.suppress(command.CommandError):
            container["command"][2] = command.set_flag(
                script, "--client_auth_params", f"token:{planted}"
            )
    doc: dict[str, Any] = dict(ALL_ON) if draw(st.booleans()) else {}
    if doc:
        doc["functionRuntimeFactoryConfigs"] = {
            "kubernetesFunctionAuthProviderConfig": {
                "serviceAccountTokenAudience": "pulsar",
                "brokerClientTrustCertsSecretName": draw(st.one_of(st.none(), dns_names)),
            }
        }
        doc["runtimeCustomizerConfig"] = draw(options)
    doc["webhook"] = {
        "naming": {"labelStyle": draw(st.sampled_from(["documented", "pulsar-runtime"]))}
    }
    return obj, config.from_mapping(doc), planted


COMMON = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@COMMON
@given(cases())
def test_mutation_is_idempotent(case: tuple[dict[str, Any], config.Config, str]) -> None:
    obj, cfg, _ = case
    once = mutation.mutate(obj, cfg)
    twice = mutation.mutate(once.obj, cfg)
    assert twice.obj == once.obj
    assert patch.diff(once.obj, twice.obj) == []


@COMMON
@given(cases())
def test_the_patch_applied_to_the_input_gives_the_output(
    case: tuple[dict[str, Any], config.Config, str],
) -> None:
    obj, cfg, _ = case
    before = copy.deepcopy(obj)
    result = mutation.mutate(obj, cfg)
    assert obj == before, "mutate must not touch its input"
    ops = patch.diff(obj, result.obj)
    assert jsonpatch.apply_patch(copy.deepcopy(obj), ops) == result.obj


@COMMON
@given(cases())
def test_every_label_value_in_the_output_is_valid(
    case: tuple[dict[str, Any], config.Config, str],
) -> None:
    obj, cfg, _ = case
    result = mutation.mutate(obj, cfg)
    if result.denial:  # labels overriding the selector, denied by default: nothing to check
        assert "[customizer/options]" in result.denial
        return
    if any(w.startswith("left unchanged: ") for w in result.warnings):
        # details unreadable (e.g. a name sh reads as an operator): left as is, and denied
        assert not policy.validate(obj, cfg).allowed
        return
    out = result.obj
    maps = [
        out["metadata"]["labels"],
        out["spec"]["selector"]["matchLabels"],
        out["spec"]["template"]["metadata"]["labels"],
    ]
    for labels in maps:
        for value in labels.values():
            assert naming.is_label_value(value), value
    selector = out["spec"]["selector"]["matchLabels"]
    template = out["spec"]["template"]["metadata"]["labels"]
    assert all(template.get(k) == v for k, v in selector.items()), (
        "the selector must still select the template"
    )


@COMMON
@given(cases())
def test_no_secret_value_appears_in_output_patch_or_warnings(
    case: tuple[dict[str, Any], config.Config, str],
) -> None:
    obj, cfg, planted = case
    result = mutation.mutate(obj, cfg)
    said = json.dumps([list(result.warnings), dict(result.audit)])
    assert planted not in said
    # the planted credential sat in --client_auth_params, which token projection replaces
    script = obj["spec"]["template"]["spec"]["containers"][0]["command"][2]
    # (a denied object is not admitted at all: nothing of it is stored)
    if cfg.tokens_enabled and "-instance-conf" not in script and not result.denial:
        if any(w.startswith("command left unchanged: ") for w in result.warnings):
            # names sh reads as operators (`)`, `;`...): the worker's command cannot run as
            # written, we do not guess where the instance is, and the validation denies it
            assert not policy.validate(result.obj, cfg).allowed
        else:
            assert planted not in json.dumps(result.obj)
    doc = admission_review(obj, uid="u", namespace=None)
    reply, _ = review.respond(review.parse(doc, cfg), mode="validate")
    assert planted not in json.dumps(reply)


@COMMON
@given(st.text(NAME_CHARS, max_size=120), st.sampled_from(["documented", "pulsar-runtime"]))
def test_converted_label_values_are_always_valid_and_stable(
    value: str, style: naming.LabelStyle
) -> None:
    converted = naming.to_label_value(value, style)
    assert naming.is_label_value(converted)
    assert naming.to_label_value(converted, style) == converted
    if naming.is_label_value(value):
        assert converted == value
