"""webhook.command: reading and editing flags in the worker's `sh -c` instance command line,
on the command lines tests/worker.py builds exactly as the worker does (Java, Python, Go)."""

from __future__ import annotations

import itertools
import json
import shlex
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import worker
from webhook import command
from webhook.command import CommandError

JAVA_PROVIDER = "org.apache.pulsar.functions.secretsprovider.EnvironmentBasedSecretsProvider"
SECRETS = {"DATABASE_PASSWORD": {"path": "database-creds", "key": "password"}}


def _script(runtime: worker.Runtime, **kwargs: object) -> str:
    sts = worker.statefulset(runtime=runtime, **kwargs)  # type: ignore[arg-type]
    return sts["spec"]["template"]["spec"]["containers"][0]["command"][2]


JAVA = _script("JAVA", auth="sa-token", ca_secret="my-secret", secrets=SECRETS)
PYTHON = _script("PYTHON", auth="sa-token", ca_secret="my-secret", secrets=SECRETS)
GO = _script("GO", auth="sa-token", ca_secret="my-secret")
PLAIN_JAVA = _script("JAVA")

SCRIPTS = [
    pytest.param(JAVA, id="java"),
    pytest.param(PYTHON, id="python"),
    pytest.param(GO, id="go"),
    pytest.param(PLAIN_JAVA, id="java-no-auth"),
]


# ---------------------------------------------------------------------------------------------
# tokenize


@pytest.mark.parametrize("script", SCRIPTS)
def test_tokenize_splits_worker_command_lines_as_a_posix_shell_does(script: str) -> None:
    assert [t.text for t in command.tokenize(script)] == shlex.split(script)


@pytest.mark.parametrize("script", SCRIPTS)
def test_token_spans_cover_the_raw_words_of_the_script(script: str) -> None:
    tokens = command.tokenize(script)
    for token in tokens:
        raw = script[token.start : token.end]
        assert shlex.split(raw) == [token.text]
    for before, after in itertools.pairwise(tokens):
        assert before.end < after.start
        assert script[before.end : after.start].isspace()


def test_the_function_details_token_keeps_its_single_quotes_in_the_span() -> None:
    tokens = command.tokenize(JAVA)
    index = next(i for i, t in enumerate(tokens) if t.text == "--function_details")
    details = tokens[index + 1]
    raw = JAVA[details.start : details.end]
    assert raw.startswith("'{") and raw.endswith("}'")
    assert details.text == raw[1:-1]


@pytest.mark.parametrize(
    ("script", "words"),
    [
        pytest.param("a  b\tc\n d", ["a", "b", "c", "d"], id="whitespace"),
        pytest.param("a 'b c' d", ["a", "b c", "d"], id="single-quotes"),
        pytest.param('a "b c" d', ["a", "b c", "d"], id="double-quotes"),
        pytest.param('a "b\\"c"', ["a", 'b"c'], id="escaped-double-quote"),
        pytest.param("a\\ b", ["a b"], id="escaped-space"),
        pytest.param("x'y'\"z\"w", ["xyzw"], id="adjacent-quotes"),
        pytest.param("''", [""], id="empty-word"),
        pytest.param("", [], id="empty-script"),
        pytest.param("'it'\"'\"'s'", ["it's"], id="quote-in-single-quotes"),
        pytest.param("it'\"'\"'s", None, id="unbalanced-quotes"),
    ],
)
def test_tokenize_handles_shell_quoting(script: str, words: list[str] | None) -> None:
    if words is None:
        with pytest.raises(ValueError):
            shlex.split(script)
        with pytest.raises(CommandError):
            command.tokenize(script)
        return
    assert [t.text for t in command.tokenize(script)] == words
    assert shlex.split(script) == words


@pytest.mark.parametrize(
    ("script", "kind"),
    [
        pytest.param("exec a --x 'open", "single", id="single"),
        pytest.param('exec a --x "open', "double", id="double"),
        pytest.param('exec a --x "open\\"', "double", id="escaped-closing-double"),
    ],
)
def test_an_unterminated_quote_raises_command_error(script: str, kind: str) -> None:
    with pytest.raises(CommandError, match=f"unterminated {kind} quote at character 11"):
        command.tokenize(script)
    with pytest.raises(CommandError):
        command.get_flag(script, "--x")
    with pytest.raises(CommandError):
        command.set_flag(script, "--x", "v")


def test_a_backslash_inside_double_quotes_is_kept_as_sh_keeps_it() -> None:
    script = 'printf "%s" "a\\b"'
    shell = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert shell.stdout == "a\\b"
    assert command.tokenize(script)[-1].text == shell.stdout


# ---------------------------------------------------------------------------------------------
# get_flag

GET_FLAG = [
    pytest.param(JAVA, "--jar", "/pulsar/api-examples.jar", id="java-jar"),
    pytest.param(JAVA, "--cluster_name", "standalone", id="java-cluster-name"),
    pytest.param(JAVA, "--metrics_port", "9094", id="java-metrics-port"),
    pytest.param(JAVA, "--instance_id", "$SHARD_ID", id="java-instance-id-unexpanded"),
    pytest.param(JAVA, "--nar_extraction_directory", "/tmp/pulsar-nar", id="java-last-flag"),
    pytest.param(
        JAVA,
        "--client_auth_plugin",
        "org.apache.pulsar.client.impl.auth.AuthenticationToken",
        id="java-auth-plugin",
    ),
    pytest.param(JAVA, "--client_auth_params", "file:///etc/auth/token", id="java-auth-params"),
    pytest.param(JAVA, "--tls_trust_cert_path", "/etc/auth/ca.crt", id="java-trust-path"),
    pytest.param(JAVA, "--secrets_provider", JAVA_PROVIDER, id="java-secrets-provider"),
    pytest.param(JAVA, "--use_tls", "false", id="java-use-tls"),
    pytest.param(PYTHON, "--py", "/pulsar/fn.py", id="python-py"),
    pytest.param(
        PYTHON,
        "--logging_config_file",
        "/pulsar/conf/functions-logging/console_logging_config.ini",
        id="python-logging-config",
    ),
    pytest.param(
        PYTHON,
        "--secrets_provider",
        "secretsprovider.EnvironmentBasedSecretsProvider",
        id="python-secrets-provider",
    ),
    pytest.param(PYTHON, "--tls_trust_cert_path", "/etc/auth/ca.crt", id="python-trust-path"),
    pytest.param(PLAIN_JAVA, "--client_auth_plugin", None, id="absent"),
    pytest.param(JAVA, "--tenant", None, id="download-flags-are-not-instance-flags"),
    pytest.param(JAVA, "--admin-url", None, id="admin-url-is-in-the-download"),
    pytest.param(GO, "--client_auth_plugin", None, id="go-has-no-auth-flags"),
    pytest.param(GO, "--function_details", None, id="go-has-no-function-details-flag"),
]


@pytest.mark.parametrize(("script", "flag", "value"), GET_FLAG)
def test_get_flag_reads_the_instance_flags_of_a_worker_command(
    script: str, flag: str, value: str | None
) -> None:
    assert command.get_flag(script, flag) == value


def test_a_python_function_named_exec_keeps_its_details_readable() -> None:
    script = _script("PYTHON", name="exec")
    details = command.get_json_flag(script, "--function_details")
    assert details is not None and details["name"] == "exec"
    assert command.get_flag(script, "--logging_file") == "exec"


def test_a_python_function_named_exec_keeps_the_flags_before_its_name_readable() -> None:
    script = _script("PYTHON", name="exec")
    assert command.get_flag(script, "--py") == "/pulsar/fn.py"


# ---------------------------------------------------------------------------------------------
# get_json_flag


@pytest.mark.parametrize("runtime", ["JAVA", "PYTHON"])
def test_get_json_flag_reads_the_function_details_as_proto3_json(
    runtime: worker.Runtime,
) -> None:
    details = command.get_json_flag(_script(runtime, secrets=SECRETS), "--function_details")
    assert details is not None
    assert (details["tenant"], details["namespace"], details["name"]) == (
        "public",
        "default",
        "exclamation",
    )
    assert details["resources"]["ram"] == "1073741824"  # int64 as a JSON string
    assert json.loads(details["secretsMap"]) == SECRETS  # a JSON string inside the JSON
    assert ("runtime" in details) is (runtime != "JAVA")  # JAVA is proto3's default: omitted


def test_get_json_flag_reads_the_go_instance_conf_with_details_nested_as_a_string() -> None:
    conf = command.get_json_flag(GO, "-instance-conf")
    assert conf is not None
    assert conf["runtime"] == 3
    assert conf["clientAuthenticationPlugin"] == (
        "org.apache.pulsar.client.impl.auth.AuthenticationToken"
    )
    assert conf["tlsTrustCertsFilePath"] == "/etc/auth/ca.crt"
    assert json.loads(conf["functionDetails"])["runtime"] == "GO"


def test_get_json_flag_is_none_when_the_flag_is_absent() -> None:
    assert command.get_json_flag(JAVA, "-instance-conf") is None
    assert command.get_json_flag(GO, "--function_details") is None


@pytest.mark.parametrize(
    ("script", "message"),
    [
        pytest.param("exec x --d '{\"a\":'", "--d is not valid JSON", id="truncated"),
        pytest.param("exec x --d '[1,2]'", "--d must be a JSON object, got list", id="list"),
        pytest.param("exec x --d 5", "--d must be a JSON object, got int", id="number"),
    ],
)
def test_get_json_flag_says_what_is_wrong_with_the_json(script: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        command.get_json_flag(script, "--d")


def _with_user_config(script: str, user_config: str) -> str:
    field = json.dumps(user_config)
    return script.replace('"className"', f'"userConfig":{field},"className"', 1)


def test_json_with_one_single_quote_breaks_the_command_as_it_breaks_sh() -> None:
    script = _with_user_config(JAVA, '{"greeting":"it\'s"}')
    shell = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, check=False)
    assert shell.returncode != 0
    assert "nterminated" in shell.stderr
    with pytest.raises(CommandError, match="unterminated"):
        command.get_json_flag(script, "--function_details")


def test_json_with_two_single_quotes_is_split_by_the_shell_and_reported_as_invalid_json() -> None:
    script = _with_user_config(JAVA, '{"greeting":"it\'s Bob\'s"}')
    assert [t.text for t in command.tokenize(script)] == shlex.split(script)
    with pytest.raises(CommandError, match="--function_details is not valid JSON"):
        command.get_json_flag(script, "--function_details")


# ---------------------------------------------------------------------------------------------
# set_flag


@pytest.mark.parametrize(
    ("script", "flag", "old", "new"),
    [
        pytest.param(
            JAVA, "--tls_trust_cert_path", "/etc/auth/ca.crt", "/etc/ca.pem", id="java-trust"
        ),
        pytest.param(JAVA, "--metrics_port", "9094", "9095", id="java-metrics-port"),
        pytest.param(
            JAVA, "--nar_extraction_directory", "/tmp/pulsar-nar", "/tmp/nar", id="java-last-flag"
        ),
        pytest.param(
            PYTHON,
            "--secrets_provider",
            "secretsprovider.EnvironmentBasedSecretsProvider",
            "secretsprovider.ClearTextSecretsProvider",
            id="python-secrets-provider",
        ),
        pytest.param(
            JAVA,
            "--client_auth_params",
            "file:///etc/auth/token",
            "file:///x/token",
            id="java-params",
        ),
    ],
)
def test_replacing_a_value_keeps_the_rest_of_the_script_byte_identical(
    script: str, flag: str, old: str, new: str
) -> None:
    assert script.count(f"{flag} {old}") == 1
    at = script.index(f"{flag} {old}") + len(flag) + 1
    edited = command.set_flag(script, flag, new)
    assert edited == script[:at] + new + script[at + len(old) :]
    assert command.get_flag(edited, flag) == new


def test_setting_the_value_a_flag_already_has_changes_nothing() -> None:
    assert command.set_flag(JAVA, "--cluster_name", "standalone") == JAVA


@pytest.mark.parametrize(
    ("script", "flag", "value"),
    [
        pytest.param(PLAIN_JAVA, "--client_auth_plugin", "org.example.Auth", id="java"),
        pytest.param(PYTHON, "--state_storage_serviceurl", "bk://bookie:4181", id="python"),
        pytest.param("exec x  \n", "--a", "b", id="trailing-whitespace-trimmed"),
    ],
)
def test_a_missing_flag_is_appended_at_the_end(script: str, flag: str, value: str) -> None:
    edited = command.set_flag(script, flag, value)
    assert edited == f"{script.rstrip()} {flag} {value}"
    assert command.get_flag(edited, flag) == value


def test_download_flags_are_never_edited() -> None:
    edited = command.set_flag(JAVA, "--tenant", "other")
    assert edited.startswith(JAVA)
    assert "--tenant public" in edited


@pytest.mark.parametrize(
    ("value", "written"),
    [
        pytest.param("file:///etc/auth/token", "file:///etc/auth/token", id="safe-unquoted"),
        pytest.param("a b", "'a b'", id="space"),
        pytest.param('{"a": 1}', "'{\"a\": 1}'", id="json-with-space"),
        pytest.param("it's", "'it'\"'\"'s'", id="single-quote"),
        pytest.param("", "''", id="empty"),
        pytest.param("$HOME", "'$HOME'", id="dollar-not-expanded"),
        pytest.param("a;b&&c", "'a;b&&c'", id="shell-operators"),
    ],
)
def test_values_are_quoted_for_sh_only_when_needed(value: str, written: str) -> None:
    assert command.quote(value) == written
    edited = command.set_flag(PLAIN_JAVA, "--extra", value)
    assert edited.endswith(f" --extra {written}")
    assert command.get_flag(edited, "--extra") == value
    printed = subprocess.run(
        ["sh", "-c", f"printf %s {written}"], capture_output=True, text=True, check=True
    )
    assert printed.stdout == value


@given(st.text().filter(lambda value: value != "exec"))
def test_any_value_set_is_read_back_unchanged(value: str) -> None:
    replaced = command.set_flag(PLAIN_JAVA, "--cluster_name", value)
    assert command.get_flag(replaced, "--cluster_name") == value
    appended = command.set_flag(PLAIN_JAVA, "--extra", value)
    assert command.get_flag(appended, "--extra") == value
    assert command.get_flag(appended, "--cluster_name") == "standalone"


def test_the_value_exec_is_read_back_unchanged() -> None:
    edited = command.set_flag(PLAIN_JAVA, "--extra", "exec")
    assert command.get_flag(edited, "--extra") == "exec"


# ---------------------------------------------------------------------------------------------
# set_json_flag


def test_set_json_flag_replaces_only_the_go_instance_conf() -> None:
    conf = command.get_json_flag(GO, "-instance-conf")
    assert conf is not None
    conf["tlsTrustCertsFilePath"] = "/etc/other/ca.crt"
    edited = command.set_json_flag(GO, "-instance-conf", conf)
    prefix = GO[: GO.index("-instance-conf ") + len("-instance-conf ")]
    assert edited.startswith(prefix)
    assert command.get_json_flag(edited, "-instance-conf") == conf


def test_set_json_flag_quotes_a_single_quote_so_the_json_survives() -> None:
    conf = command.get_json_flag(GO, "-instance-conf")
    assert conf is not None
    conf["userConfig"] = '{"greeting":"it\'s"}'
    edited = command.set_json_flag(GO, "-instance-conf", conf)
    assert command.get_json_flag(edited, "-instance-conf") == conf
    shell = subprocess.run(["sh", "-n", "-c", edited], capture_output=True, text=True, check=False)
    assert shell.returncode == 0
