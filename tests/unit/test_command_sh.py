"""The sh differential proof for our edits of the instance command line.

Worker-shaped `sh -c` scripts (Pulsar 4.0.7's Java, Python and Go commands, with and without
authentication) are generated with hostile shapes mixed in: values the worker writes unquoted
(`a;#x $(touch $PWN)`, `&#`, `|#`, JSON with spaces, `$(a b)`, backquotes, NBSP), trailing
comments and commands, a flag on the next line, a second exec, here-documents, pipelines,
`eval`, `alias`, subshells. Each script goes through the real mutation; when it changes the
script, the original and the mutated script both run under a real dash with stub binaries on
PATH that record their argv. The mutated instance's argv must be the original one with exactly
our flags changed or added, the download step's the original one with its auth flags set to
ours, and every other command must run exactly as before: no injection, no lost flag. When the mutation leaves the script untouched, the validation must deny it with
`command/uneditable` (or the details were unreadable), for exactly the reasons it warned of.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests import worker
from tests.ci import in_ci
from webhook.core import command, config, mutation, policy, secrets, tokens

pytestmark = pytest.mark.slow

DASH = shutil.which("dash")
if DASH is None and not in_ci():  # pragma: no cover
    pytest.skip("dash is needed for the sh differential test", allow_module_level=True)

INSTANCES = ("java", "python3", "fn")
NBSP = "\u00a0"
CONFIG = config.from_mapping(
    {
        "secretsProviderConfiguratorClassName": config.KUBERNETES_SECRETS_CONFIGURATOR,
        "authenticationEnabled": True,  # the worker uses the auth provider only then
        "functionAuthProviderClassName": config.SA_TOKEN_AUTH_PROVIDER,
        "runtimeCustomizerClassName": config.BASIC_CUSTOMIZER,
        "functionRuntimeFactoryConfigs": {
            "kubernetesFunctionAuthProviderConfig": {
                "serviceAccountTokenAudience": "pulsar",
                "brokerClientTrustCertsSecretName": "broker-ca",
            }
        },
    }
)
SECRETS = {"DB_PASSWORD": {"path": "db", "key": "password"}}


# ---------------------------------------------------------------------------------------------
# a sandbox: stub binaries that record their argv


class Sandbox:
    def __init__(self, root: Path) -> None:
        assert DASH is not None
        self.root = root
        self.bin = root / "stubs"
        self.bin.mkdir()
        (root / "bin").mkdir()
        self.work = root / "work"  # the scripts' working directory: empty, so globs match nothing
        self.work.mkdir()
        self.logs = root / "logs"
        self.logs.mkdir()
        stub = f'#!{DASH}\nprintf \'%s\\0\' "$#" "${{0##*/}}" "$@" >> "$PF_LOG"\n'
        for path in [self.bin / n for n in ("java", "python3", "canary", "touch", "chmod")] + [
            root / "bin" / "pulsar-admin",
            root / "fn",
        ]:
            path.write_text(stub)
            path.chmod(0o755)
        self.runs = 0

    def run(self, script: str) -> list[tuple[str, tuple[str, ...]]]:
        """Run `sh -c script` under dash; every stub call as (name, argv), in order."""
        assert DASH is not None
        self.runs += 1
        log = self.logs / f"log-{self.runs}"
        log.write_bytes(b"")
        env = {
            "PATH": str(self.bin),
            "PF_LOG": str(log),
            "POD_NAME": "pf-public-default-fn-0",
            "PWN": str(self.root / "pwned"),
            "HOME": str(self.root),
        }
        subprocess.run(
            [DASH, "-c", script],
            env=env,
            cwd=self.work,
            capture_output=True,  # waits for background jobs too: they hold the pipes
            timeout=20,
            check=False,
        )
        fields = log.read_bytes().split(b"\0")[:-1]
        calls, at = [], 0
        while at < len(fields):
            count = int(fields[at])
            name = fields[at + 1].decode("utf-8", "surrogateescape")
            argv = tuple(
                f.decode("utf-8", "surrogateescape") for f in fields[at + 2 : at + 2 + count]
            )
            calls.append((name, argv))
            at += 2 + count
        log.unlink()
        return calls


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    yield Sandbox(tmp_path_factory.mktemp("sh"))


# ---------------------------------------------------------------------------------------------
# worker-shaped scripts (Pulsar 4.0.7: three --add-opens, netty flags, auth on the download)

JAVA_FLAGS = (
    "-Dlog4j.configurationFile=kubernetes_instance_log4j2.xml "
    "-Dpulsar.function.log.dir=logs/functions/public/default/fn "
    "-Dpulsar.function.log.file=fn-$SHARD_ID "
    "-Dio.netty.tryReflectionSetAccessible=true "
    "-Dorg.apache.pulsar.shade.io.netty.tryReflectionSetAccessible=true "
    "-Dio.grpc.netty.shaded.io.netty.tryReflectionSetAccessible=true "
    "--add-opens java.base/java.nio=ALL-UNNAMED --add-opens java.base/jdk.internal.misc=ALL-UNNAMED "
    "--add-opens java.base/java.util.zip=ALL-UNNAMED -Xmx1073741824"
)


def _details(runtime: str, secrets_map: bool, user_config: str) -> str:
    details = worker.function_details(
        tenant="public",
        namespace="default",
        name="fn",
        runtime=runtime,  # type: ignore[arg-type]
        secrets=SECRETS if secrets_map else None,
    )
    details["userConfig"] = user_config
    text = json.dumps(details, separators=(",", ":"))
    for char in "'<>&=":  # JsonFormat/Gson escape these: a quote cannot end the shell word
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def worker_script(
    root: str,
    runtime: str,
    *,
    auth: str | None,
    trust: str | None,
    provider: str | None,
    secrets_map: bool,
    user_config: str,
    number: str,
) -> str:
    download = f"{root}/bin/pulsar-admin --admin-url http://pulsar-broker:8080"
    if auth is not None:
        download += f" --auth-plugin org.apache.pulsar.client.impl.auth.AuthenticationToken --auth-params {auth}"
        if trust is not None:
            download += f" --tls-trust-cert-path {trust}"
    target = {"JAVA": "fn.jar", "PYTHON": "fn.py", "GO": "fn"}[runtime]
    download += f" functions download --tenant public --namespace default --name fn --destination-file {root}/{target}"
    head = f"{download} && SHARD_ID=${{POD_NAME##*-}} && echo shardId=${{SHARD_ID}} && "
    if runtime == "GO":
        conf: dict[str, Any] = {
            "funcID": "fn",
            "maxBufTuples": 1024,
            "tenant": "public",
            "nameSpace": "default",
            "name": "fn",
            "runtime": 3,
            "functionDetails": _details("GO", secrets_map, user_config),
        }
        if auth is not None:
            conf["clientAuthenticationPlugin"] = (
                "org.apache.pulsar.client.impl.auth.AuthenticationToken"
            )
            conf["clientAuthenticationParameters"] = auth
            if trust is not None:
                conf["tlsTrustCertsFilePath"] = trust
        text = json.dumps(conf, separators=(",", ":"))[:-1] + f',"cpu":{number}}}'
        for char in "'<>&=":
            text = text.replace(char, f"\\u{ord(char):04x}")
        return head + f"chmod 777 {root}/fn && exec {root}/fn -instance-conf '{text}'"
    tail = (
        " --instance_id $SHARD_ID --function_id 3c6a4b1e --function_version 0"
        f" --function_details '{_details(runtime, secrets_map, user_config)}'"
        " --pulsar_serviceurl pulsar://pulsar-broker:6650"
    )
    if auth is not None:
        tail += (
            " --client_auth_plugin org.apache.pulsar.client.impl.auth.AuthenticationToken"
            f" --client_auth_params {auth}"
            " --use_tls false --tls_allow_insecure false --hostname_verification_enabled false"
        )
        if trust is not None:
            tail += f" --tls_trust_cert_path {trust}"
    tail += " --max_buffered_tuples 1024 --port 9093 --metrics_port 9094 --expected_healthcheck_interval -1"
    if provider is not None:
        tail += f" --secrets_provider {provider}"
    tail += " --cluster_name standalone"
    if runtime == "JAVA":
        return head + (
            f"exec java -cp {root}/instances/java-instance.jar:{root}/instances/deps/* "
            f"-Dpulsar.functions.extra.dependencies.dir={root}/instances/deps "
            f"-Dpulsar.functions.instance.classpath={root}/lib/* {JAVA_FLAGS} "
            f"org.apache.pulsar.functions.instance.JavaInstanceMain --jar {root}/fn.jar{tail}"
            " --pending_async_requests 1000 --nar_extraction_directory /tmp/pulsar-nar"
        )
    return head + (
        f"PYTHONPATH=${{PYTHONPATH}}:{root}/instances/deps exec python3 "
        f"{root}/instances/python-instance/python_instance_main.py --py {root}/fn.py "
        "--logging_directory logs/functions --logging_file fn "
        f"--logging_config_file {root}/conf/functions-logging/console_logging_config.ini{tail}"
    )


# values the worker writes without quoting (from its own config): benign and hostile
VALUES = [
    "file:///etc/auth/token",
    "token:eyJhbGciOi.x-y_z",
    "/etc/auth/ca.crt",
    "a;#x $(touch $PWN)",
    "a&#x $(canary amp)",
    "a|#x $(canary pipe)",
    "a;canary semi",
    "a && canary and",
    "a || canary or",
    "a # canary comment",
    "a\ncanary newline",
    "a\n--client_auth_params next-line",
    '{"authParam1": "authParamValue1"}',
    "$(canary a b)",
    '"$(canary quoted)"',
    "`canary backquote`",
    f"a{NBSP}b",
    f"a{NBSP}--client_auth_params{NBSP}b",
    "x'y'",
    "'it''s'",
    "$PWN",
    "${PWN}",
    "~",
    "*",
    "a b",
    "a\\ b",
    "a>$PWN",
    "2>&1",
    "exec",
    "(",
    'x"y',
]
PREFIXES = [
    "",
    "canary pre && ",
    "canary pre; ",
    "canary <<EOF\nbody $(canary heredoc)\nEOF\n",
    "X=1; ",
    "eval 'canary evaluated' && ",
    "alias exec=canary\n",
    ": $(canary sub) && ",
    "echo `canary bq` && ",
    "f() { canary f; } && ",
    "exec 2>&1\n",
    "exec canary first && ",
    "if true; then canary if; fi\n",
    "(canary subshell) && ",
    "canary bg & ",
    "# a comment\n",
    "case x in x) canary case;; esac\n",
]
SUFFIXES = [
    "",
    " # trailing comment",
    "  #",
    " ; canary after",
    "; canary after",
    "\ncanary after",
    " &",
    " & canary after",
    " | canary pipe",
    " 2>&1",
    " >/dev/null",
    "\n--client_auth_params next-line",
    "\n--secrets_provider next-line",
    "\nexec canary second",
    " && exec canary second",
    "\n",
    " \\\n--client_auth_params cont",
    " $(canary end)",
    " `canary end`",
    " --client_auth_params=equals",
    " --client_auth_par abbrev",
    " --tls_trust_cert_path twice",
    " '",
    ' "',
    " $(",
    " ${PWN",
    " <<EOF",
    " |",
    " &&",
    " ;;",
    "\\",
    " \\",
]
PROVIDERS = [
    None,
    "org.apache.pulsar.functions.secretsprovider.ClearTextSecretsProvider",
    secrets.JAVA_PROVIDER,
    "secretsprovider.ClearTextSecretsProvider",
    "$(canary provider)",
    "a;canary provider",
]
NUMBERS = ["1", "1e999", "-0.0", "12345678901234567890123", "1.50"]


@st.composite
def scripts(draw: st.DrawFn, root: str) -> tuple[str, str, bool]:
    runtime = draw(st.sampled_from(["JAVA", "PYTHON", "GO"]))
    with_auth = draw(st.booleans())
    hostile = draw(st.integers(0, 3))  # how many hostile parts: 0 keeps the worker's own shape
    benign = st.sampled_from(VALUES[:3])
    values = st.sampled_from(VALUES)
    auth = draw(values if hostile else benign) if with_auth else None
    trust = draw(st.none() | (values if hostile else benign)) if with_auth else None
    provider = draw(st.sampled_from(PROVIDERS if hostile else PROVIDERS[:4]))
    secrets_map = draw(st.booleans())
    script = worker_script(
        root,
        runtime,
        auth=auth,
        trust=trust,
        provider=provider if runtime != "GO" else None,
        secrets_map=secrets_map,
        user_config=draw(st.sampled_from(["", "it's <b> & a=b", '{"k":"a;#x $(touch $PWN)"}'])),
        number=draw(st.sampled_from(NUMBERS)),
    )
    if hostile:
        script = draw(st.sampled_from(PREFIXES)) + script + draw(st.sampled_from(SUFFIXES))
        if draw(st.booleans()):  # a non-breaking space is not a blank to sh
            flag = draw(st.sampled_from([" --metrics_port", " --cluster_name", " -instance-conf"]))
            script = script.replace(flag, NBSP + flag[1:], 1)
    return runtime, script, secrets_map


# ---------------------------------------------------------------------------------------------
# the proof


def _statefulset(script: str, runtime: str, secrets_map: bool) -> dict[str, Any]:
    obj = worker.statefulset(
        name="fn",
        runtime=runtime,  # type: ignore[arg-type]
        secrets=SECRETS if secrets_map else None,
        auth="sa-token",
        ca_secret="broker-ca",
    )
    obj["spec"]["template"]["spec"]["containers"][0]["command"][2] = script
    return obj


def _ours(runtime: str, secrets_map: bool) -> list[tuple[str, str]]:
    flags = []
    if secrets_map and runtime != "GO":
        provider = secrets.JAVA_PROVIDER if runtime == "JAVA" else secrets.PYTHON_PROVIDER
        flags.append((secrets.PROVIDER_FLAG, provider))
    return flags + list(tokens.auth_flags(CONFIG).items())


def _expected_argv(original: tuple[str, ...], ours: list[tuple[str, str]]) -> list[str]:
    argv = list(original)
    for flag, value in ours:
        at = max((i for i, a in enumerate(argv[:-1]) if a == flag), default=None)
        if at is None:
            argv += [flag, value]
        else:
            argv[at + 1] = value
    return argv


def _download_argv(original: tuple[str, ...], flags: dict[str, str]) -> tuple[str, ...]:
    """The download step's argv with the flags it already has set to ours."""
    argv = list(original)
    for index in range(len(argv) - 1):
        if argv[index] in flags:
            argv[index + 1] = flags[argv[index]]
    return tuple(argv)


def _text_json(text: str) -> Any:
    """JSON with every number kept as its text, and NaN/Infinity refused (not JSON)."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_float=str, parse_int=str, parse_constant=refuse)


def check(sandbox: Sandbox, runtime: str, script: str, secrets_map: bool) -> str:
    """The differential check for one script; returns what happened (for the statistics)."""
    obj = _statefulset(script, runtime, secrets_map)
    result = mutation.mutate(obj, CONFIG)
    assert result.refusal is None
    mutated = result.obj["spec"]["template"]["spec"]["containers"][0]["command"][2]
    left = sorted(
        w.split(": ", 1)[1] for w in result.warnings if w.startswith("command left unchanged: ")
    )
    verdict = policy.validate(result.obj, CONFIG)
    denied = sorted(d.message for d in verdict.decisions if d.rule == "command/uneditable")
    assert left == denied, "the mutation's refusals and the validation's denials must agree"
    unreadable = any(d.rule == "function/details" for d in verdict.decisions)
    if mutated == script:
        return "denied" if (denied or unreadable) else "already-right"
    assert not denied and not unreadable, "a script we edited must validate"

    before, after = sandbox.run(script), sandbox.run(mutated)
    instance_before = [c for c in before if c[0] in INSTANCES]
    instance_after = [c for c in after if c[0] in INSTANCES]
    others_before = [c for c in before if c[0] not in INSTANCES]
    first = re.sub(r"\A(?:[ \t]*(?:#[^\n]*)?\n)*", "", script)  # past comment lines
    if first.startswith(f"{sandbox.root}/bin/pulsar-admin "):  # the download step: same auth
        download = {tokens.DOWNLOAD_FLAGS[f]: v for f, v in tokens.auth_flags(CONFIG).items()}
        others_before = [
            (name, _download_argv(argv, download) if name == "pulsar-admin" else argv)
            for name, argv in others_before
        ]
    others_after = [c for c in after if c[0] not in INSTANCES]
    # background jobs may log in either order: compare as multisets
    assert sorted(others_after) == sorted(others_before), (
        f"injection: the edit changed which commands run: {script!r} -> {mutated!r}: "
        f"{others_before} -> {others_after}"
    )
    assert len(instance_before) == 1, (
        f"we edited a script whose instance does not run once: {script!r}"
    )
    assert len(instance_after) == 1, "the edited script does not run the instance once"
    assert instance_after[0][0] == instance_before[0][0]
    old, new = instance_before[0][1], instance_after[0][1]
    if runtime == "GO":
        at = old.index("-instance-conf") + 1
        assert len(new) == len(old) and new[:at] == old[:at] and new[at + 1 :] == old[at + 1 :]
        members = {tokens.GO_KEYS[f]: v for f, v in tokens.auth_flags(CONFIG).items()}
        assert _text_json(new[at]) == {**_text_json(old[at]), **members}
    else:
        assert list(new) == _expected_argv(old, _ours(runtime, secrets_map)), "lost or extra flags"
    return "edited"


STATS: dict[str, int] = {}


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
@given(data=st.data())
@pytest.mark.timeout(600)  # about 30 s alone; allow for a machine shared with other work
def test_edits_change_exactly_our_flags_under_a_real_sh(
    sandbox: Sandbox, data: st.DataObject
) -> None:
    runtime, script, secrets_map = data.draw(scripts(str(sandbox.root)))
    outcome = check(sandbox, runtime, script, secrets_map)
    STATS[outcome] = STATS.get(outcome, 0) + 1
    event(outcome)


def test_the_generated_corpus_exercised_both_edits_and_denials() -> None:
    # runs after the property test in file order; alone, it has nothing to count
    if not STATS:
        pytest.skip("run with test_edits_change_exactly_our_flags_under_a_real_sh")
    assert STATS.get("edited", 0) >= 100, STATS
    assert STATS.get("denied", 0) >= 100, STATS


# ---------------------------------------------------------------------------------------------
# named shapes from the issue, each with its outcome

ROOT = "/p"


def _java(**changes: Any) -> str:
    args: dict[str, Any] = {
        "auth": "file:///etc/auth/token",
        "trust": None,
        "provider": None,
        "secrets_map": False,
        "user_config": "",
        "number": "1",
    }
    args.update(changes)
    return worker_script(ROOT, "JAVA", **args)


SHAPES = [
    pytest.param(_java(), "edited", id="worker-java-with-auth"),
    pytest.param(_java(auth=None), "edited", id="worker-java-no-auth"),
    pytest.param(_java(auth="token:x", trust="/x/ca.pem"), "edited", id="download-auth-follows"),
    pytest.param(
        worker_script(
            ROOT,
            "PYTHON",
            auth=None,
            trust=None,
            provider=None,
            secrets_map=True,
            user_config="",
            number="1",
        ),
        "edited",
        id="worker-python",
    ),
    pytest.param(
        worker_script(
            ROOT,
            "GO",
            auth="x",
            trust="/t",
            provider=None,
            secrets_map=False,
            user_config="",
            number="1.50",
        ),
        "edited",
        id="worker-go-number-kept-as-written",
    ),
    pytest.param(
        worker_script(
            ROOT,
            "GO",
            auth="x",
            trust="/t",
            provider=None,
            secrets_map=False,
            user_config="",
            number="1e999",
        ),
        "denied",  # not a finite number: the details are unreadable (limits), never Infinity
        id="worker-go-1e999",
    ),
    pytest.param(_java(auth="a;#x $(touch $PWN)"), "denied", id="semicolon-comment"),
    pytest.param(_java(auth="a&#x $(touch $PWN)"), "denied", id="ampersand-comment"),
    pytest.param(_java(auth="a|#x $(touch $PWN)"), "denied", id="pipe-comment"),
    pytest.param(_java() + " # trailing", "edited", id="trailing-comment"),
    pytest.param(_java() + "; canary after", "denied", id="trailing-command"),
    pytest.param(_java() + "\n--client_auth_params x", "denied", id="flag-on-next-line"),
    pytest.param(_java() + "\nexec canary second", "denied", id="second-exec"),
    pytest.param("canary <<EOF\nx\nEOF\n" + _java(), "denied", id="heredoc"),
    pytest.param(
        _java().replace(" --client_auth_params", NBSP + "--client_auth_params"),
        "denied",
        id="nbsp-before-flag",
    ),
    pytest.param(_java(auth="$(canary a b)"), "denied", id="command-substitution-value"),
    pytest.param(_java(auth="`canary a`"), "denied", id="backquote-value"),
    pytest.param(_java(auth='{"a": "b"}'), "edited", id="json-with-space-value"),
    pytest.param(_java() + " '", "denied", id="unbalanced-quote"),
]


@pytest.mark.parametrize(("script", "outcome"), SHAPES)
def test_shapes_from_the_issue(sandbox: Sandbox, script: str, outcome: str) -> None:
    script = script.replace(ROOT + "/", str(sandbox.root) + "/")
    runtime = "GO" if "-instance-conf" in script else "PYTHON" if "python3" in script else "JAVA"
    secrets_map = "secretsMap" in script
    assert check(sandbox, runtime, script, secrets_map) == outcome


# ---------------------------------------------------------------------------------------------
# the reader itself against dash: words and quotes

TRICKY = st.text(
    st.sampled_from(
        [*"ab-=_./:,", " ", "\t", "'", '"', "\\", ";", "&", "|", "#", "\n", NBSP, "{", "}", "~"]
    ),
    max_size=40,
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
@given(text=TRICKY)
@pytest.mark.timeout(600)
def test_the_reader_splits_words_as_dash_does(sandbox: Sandbox, text: str) -> None:
    script = "canary " + text
    try:
        parsed = command.parse(script)
    except command.CommandError as exc:
        if "unterminated" in str(exc) and "\n" not in text:  # dash refuses the line: nothing runs
            assert sandbox.run(script) == []
        return
    calls = sandbox.run(script)
    expected = [
        ("canary", tuple(w.text for w in c.words[1:]))
        for c in parsed.commands
        if c.words and c.words[0].text == "canary"
    ]
    grammar = parsed.problem is None or "no `exec <program>`" in parsed.problem
    if grammar and all(not w.expands for c in parsed.commands for w in c.words):
        # background jobs (`&`) may log in either order
        assert sorted(calls) == sorted(expected), (script, parsed.commands)
