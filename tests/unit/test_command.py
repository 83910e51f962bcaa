"""webhook.command: reading and editing flags in the worker's `sh -c` instance command line,
on the command lines tests/worker.py builds exactly as the worker does (Java, Python, Go)."""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import worker
from webhook.core import command, config, mutation, policy
from webhook.core.command import CommandError

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


def _shell_words(script: str) -> list[str]:
    """shlex's words without the `&&` between the worker's commands (shlex has no operators)."""
    return [w for w in shlex.split(script) if w != "&&"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_tokenize_splits_worker_command_lines_as_a_posix_shell_does(script: str) -> None:
    assert [t.text for t in command.tokenize(script)] == _shell_words(script)


@pytest.mark.parametrize("script", SCRIPTS)
def test_token_spans_cover_the_raw_words_of_the_script(script: str) -> None:
    tokens = command.tokenize(script)
    for token in tokens:
        raw = script[token.start : token.end]
        assert shlex.split(raw) == [token.text]
    for before, after in itertools.pairwise(tokens):
        assert before.end < after.start
        assert script[before.end : after.start].strip() in ("", "&&")


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
    assert [t.text for t in command.tokenize(script)] == _shell_words(script)
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
    ],
)
def test_a_missing_flag_is_appended_at_the_end(script: str, flag: str, value: str) -> None:
    edited = command.set_flag(script, flag, value)
    assert edited == f"{script} {flag} {value}"
    assert command.get_flag(edited, flag) == value


@pytest.mark.parametrize(
    ("script", "edited"),
    [
        pytest.param("exec java  \n", "exec java --a b  \n", id="trailing-whitespace-kept"),
        pytest.param("exec java x # note", "exec java x --a b # note", id="before-a-comment"),
        pytest.param("exec java x 2>&1", "exec java x 2>&1 --a b", id="after-a-redirection"),
        pytest.param("exec java x\n\n", "exec java x --a b\n\n", id="before-blank-lines"),
    ],
)
def test_a_missing_flag_goes_right_after_the_instance_s_last_word(script: str, edited: str) -> None:
    assert command.set_flag(script, "--a", "b") == edited


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


@given(st.text().filter(lambda value: "\0" not in value))
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


# ---------------------------------------------------------------------------------------------
# words end where sh ends them (issue 12)

NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("script", "words"),
    [
        pytest.param("a;b", ["a", "b"], id="semicolon"),
        pytest.param("a&&b||c", ["a", "b", "c"], id="and-or"),
        pytest.param("a|b&c", ["a", "b", "c"], id="pipe-background"),
        pytest.param("a;#x $(touch $PWN)\nb", ["a", "b"], id="comment-after-semicolon"),
        pytest.param("a&#x\nb", ["a", "b"], id="comment-after-ampersand"),
        pytest.param("a#x b", ["a#x", "b"], id="hash-inside-a-word"),
        pytest.param("a #x b", ["a"], id="hash-at-a-word-start"),
        pytest.param(f"a{NBSP}b c", [f"a{NBSP}b", "c"], id="nbsp-is-not-a-blank"),
        pytest.param("a $(b c) d", ["a", "$(b c)", "d"], id="command-substitution"),
        pytest.param('a "$(b ")")" d', ["a", '$(b ")")', "d"], id="quotes-inside-substitution"),
        pytest.param("a $(b # )\n) d", ["a", "$(b # )\n)", "d"], id="comment-inside-substitution"),
        pytest.param("a `b c` d", ["a", "`b c`", "d"], id="backquotes"),
        pytest.param("a ${x:-b c} d", ["a", "${x:-b c}", "d"], id="braced-parameter"),
        pytest.param("a $((1 + (2))) d", ["a", "$((1 + (2)))", "d"], id="arithmetic"),
        pytest.param("a 2>&1 b >f c", ["a", "b", "c"], id="redirections-are-not-words"),
        pytest.param("a $ b$", ["a", "$", "b$"], id="lone-dollars"),
    ],
)
def test_words_end_where_sh_ends_them(script: str, words: list[str]) -> None:
    assert [w.text for w in command.tokenize(script)] == words


@pytest.mark.parametrize(
    ("script", "message"),
    [
        pytest.param("cat <<EOF\nx\nEOF\nexec java", "here-document at character 4", id="heredoc"),
        pytest.param("exec java \\\n--a b", "line continuation", id="line-continuation"),
        pytest.param("exec java `a 'b'`", "quotes or backquotes inside a backquoted", id="bq"),
        pytest.param("exec java ${a:-'b'}", "expansion holding quotes", id="braced-quotes"),
        pytest.param("exec java $(a", "unterminated $(", id="open-substitution"),
        pytest.param("exec java `a", "unterminated backquote", id="open-backquote"),
        pytest.param("exec java a\0b", "NUL character at character 11", id="nul"),
        pytest.param("exec java a\\", "a backslash at the very end", id="backslash-at-the-end"),
        pytest.param("exec java " + "$(" * 40 + ")" * 40, "nested over 16 deep", id="deep"),
    ],
)
def test_what_this_reader_cannot_follow_is_unreadable(script: str, message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        command.parse(script)


@pytest.mark.parametrize(
    "script",
    [
        pytest.param("exec java $((" + "$abcdefgh" * 6000, id="arithmetic-without-end"),
        pytest.param("exec java `" + "a\\" * 20000, id="backquote-without-end"),
        pytest.param("exec java " + "a'b " * 15000 + "'", id="quotes-after-words"),
        pytest.param("exec java " + "$(a " * 16 + "b " * 25000, id="substitutions-without-end"),
        pytest.param("exec java " + '"$x' * 20001, id="double-quotes-without-end"),
    ],
)
def test_hostile_scripts_are_read_in_one_pass_and_refused(script: str) -> None:
    # an exponential or quadratic reader would not return from these (pytest-timeout fails it)
    assert len(script) <= command.DEFAULT_MAX_LENGTH
    with pytest.raises(CommandError):
        command.parse(script)


def test_the_command_line_length_is_bounded_before_any_parsing() -> None:
    with pytest.raises(CommandError, match=r"1048576 characters, above the limit of 65536 \("):
        command.parse("x" * 1024 * 1024)
    assert command.parse("exec java " + "y" * 100, max_length=110).problem is None
    with pytest.raises(CommandError, match=r"webhook\.limits\.maxCommandLength"):
        command.parse("exec java " + "y" * 101, max_length=110)


# ---------------------------------------------------------------------------------------------
# edits we cannot prove are refused (the script stays untouched)

UNEDITABLE = [
    pytest.param(
        PLAIN_JAVA.replace("--cluster_name standalone", "--cluster_name a&#x"),
        "in a pipeline or in the background",
        id="ampersand-comment",
    ),
    pytest.param(
        PLAIN_JAVA.replace("--cluster_name standalone", "--cluster_name a|#x"),
        "syntax error: the script ends after '|'",
        id="pipe-comment",
    ),
    pytest.param(PLAIN_JAVA + "; echo done", "a command after the instance's exec", id="trailing"),
    pytest.param(
        PLAIN_JAVA + "\n--client_auth_plugin x", "a command named '--client_auth_plugin'", id="nl"
    ),
    pytest.param(PLAIN_JAVA + "\nexec java other", "a second exec", id="second-exec"),
    pytest.param("eval 'exec java x' && " + PLAIN_JAVA, "`eval`", id="eval"),
    pytest.param("alias exec=echo\n" + PLAIN_JAVA, "`alias`", id="alias"),
    pytest.param("$CMD && " + PLAIN_JAVA, "a command name only known at run time", id="dynamic"),
    pytest.param("if true; then " + PLAIN_JAVA + "; fi", "a compound command", id="if"),
    pytest.param("(" + PLAIN_JAVA + ")", "subshell", id="subshell"),
    pytest.param("echo a | exec java -cp x Main", "in a pipeline", id="pipeline"),
    pytest.param(
        PLAIN_JAVA.replace(" --cluster_name", NBSP + "--cluster_name"), "such as NBSP", id="nbsp"
    ),
    pytest.param("exec $JAVA -cp x Main", "only known at run time", id="program-expansion"),
    pytest.param("exec sleep 100", "not a Pulsar instance", id="not-an-instance"),
    pytest.param("echo hi", "no `exec <program>` command", id="no-exec"),
    pytest.param("exec java --client_auth_plugin $(a b)", "holds a shell expansion", id="subst"),
    pytest.param("exec java --client_auth_plugin `a`", "holds a shell expansion", id="backquote"),
    pytest.param('exec java --client_auth_plugin "$X"', "holds a shell expansion", id="quoted-var"),
    pytest.param("exec java --client_auth_plugin *", "holds a shell expansion", id="glob"),
    pytest.param(
        "exec java --client_auth_plugin a --client_auth_plugin b", "appears 2 times", id="twice"
    ),
    pytest.param("exec java --client_auth_plugin", "with no value", id="no-value"),
    pytest.param(
        "exec java --client_auth_plugin=a", "also given as '--client_auth_plugin'", id="equals"
    ),
    pytest.param(
        "exec java --client_auth_plug a", "also given as '--client_auth_plug'", id="abbreviation"
    ),
]


@pytest.mark.parametrize(("script", "reason"), UNEDITABLE)
def test_an_edit_that_cannot_be_proven_is_refused_and_changes_nothing(
    script: str, reason: str
) -> None:
    edit = command.Edit(command.parse(script))
    edit.set("--client_auth_plugin", "org.example.Auth")
    assert len(edit.refused) == 1
    assert edit.refused[0].startswith("cannot set --client_auth_plugin: ")
    assert reason in edit.refused[0]
    assert edit.render() == script
    with pytest.raises(command.Uneditable, match=re.escape(reason)):
        command.set_flag(script, "--client_auth_plugin", "org.example.Auth")


def test_a_refused_edit_still_lets_the_flags_be_read() -> None:
    script = PLAIN_JAVA + "; echo done"
    assert command.get_flag(script, "--cluster_name") == "standalone"
    assert command.get_json_flag(script, "--function_details") is not None


def test_no_edit_is_needed_when_the_value_is_already_ours_even_if_the_shape_is_refused() -> None:
    script = JAVA + "; echo done"
    edit = command.Edit(command.parse(script))
    edit.set("--client_auth_params", "file:///etc/auth/token")
    assert edit.refused == [] and not edit.changed


def test_the_worker_s_own_shapes_are_editable() -> None:
    for script in (JAVA, PYTHON, GO, PLAIN_JAVA, "exec 2>&1\n" + PLAIN_JAVA):
        assert command.parse(script).problem is None


def test_several_edits_are_rendered_once_in_one_pass() -> None:
    edit = command.Edit(command.parse(JAVA))
    edit.set("--client_auth_params", "a b")
    edit.set("--new_flag", "v")
    edit.set("--cluster_name", "other")
    rendered = edit.render()
    assert rendered.endswith(" --nar_extraction_directory /tmp/pulsar-nar --new_flag v")
    assert "--client_auth_params 'a b' " in rendered
    assert "--cluster_name other " in rendered
    assert len(rendered) == len(JAVA) - len("file:///etc/auth/token") + len("'a b'") + len(
        " --new_flag v"
    ) - len("standalone") + len("other")


def test_a_nul_in_a_value_is_refused() -> None:
    edit = command.Edit(command.parse(PLAIN_JAVA))
    edit.set("--x", "a\0b")
    assert edit.refused == ["cannot set --x: the value holds a NUL character"]


# ---------------------------------------------------------------------------------------------
# Go's -instance-conf: only our members change, every other byte stays


def test_editing_the_instance_conf_keeps_numbers_as_written() -> None:
    script = 'exec /pulsar/fn -instance-conf \'{"cpu":1E2,"ram":1.50,"n":-0.0}\''
    edited = command.set_json_flag(script, "-instance-conf", {"tlsTrustCertsFilePath": "/c"})
    assert edited == (
        "exec /pulsar/fn -instance-conf "
        '\'{"cpu":1E2,"ram":1.50,"n":-0.0,"tlsTrustCertsFilePath":"/c"}\''
    )


def test_a_number_json_cannot_hold_is_refused_never_written_as_infinity() -> None:
    script = "exec /pulsar/fn -instance-conf '{\"cpu\":1e999}'"
    with pytest.raises(CommandError, match="-instance-conf: number 1e999 is out of range"):
        command.set_json_flag(script, "-instance-conf", {"a": "b"})


def test_editing_the_instance_conf_replaces_every_copy_of_a_key_in_place() -> None:
    script = 'exec /f -instance-conf \'{ "a" : "x" , "b":2, "a":"y" }\''
    edited = command.set_json_flag(script, "-instance-conf", {"a": "ours"})
    assert edited == 'exec /f -instance-conf \'{ "a" : "ours" , "b":2, "a":"ours" }\''
    assert command.set_json_flag(edited, "-instance-conf", {"a": "ours"}) == edited


def test_an_empty_instance_conf_gets_our_members() -> None:
    edited = command.set_json_flag("exec /f -instance-conf '{ }'", "-instance-conf", {"a": "b"})
    assert edited == 'exec /f -instance-conf \'{ "a":"b"}\''


def test_deep_json_is_a_command_error_not_a_recursion_error() -> None:
    script = "exec java --function_details '" + "[" * 20_000 + "]" * 20_000 + "'"
    with pytest.raises(CommandError, match="nested deeper than 64 levels"):
        command.get_json_flag(script, "--function_details")


def test_a_comment_after_a_semicolon_ends_the_instance_and_the_edit_stops_there() -> None:
    script = PLAIN_JAVA.replace("--cluster_name standalone", "--cluster_name a;#x $(touch $PWN)")
    edited = command.set_flag(script, "--cluster_name", "b")
    assert edited.endswith(
        " --cluster_name b;#x $(touch $PWN) --nar_extraction_directory /tmp/pulsar-nar"
    )
    appended = command.set_flag(script, "--client_auth_plugin", "p")
    assert appended.endswith(
        " --cluster_name a --client_auth_plugin p;#x $(touch $PWN) --nar_extraction_directory /tmp/pulsar-nar"
    )


def test_a_json_flag_given_twice_is_unreadable() -> None:
    with pytest.raises(CommandError, match="appears 2 times"):
        command.get_json_flag(
            "exec java --function_details '{}' --function_details '{}'", "--function_details"
        )


# ---------------------------------------------------------------------------------------------
# the webhook: the mutation leaves an uneditable script alone, the validation denies it

TOKENS_ON = {
    "authenticationEnabled": True,  # the worker uses the auth provider only then
    "functionAuthProviderClassName": config.SA_TOKEN_AUTH_PROVIDER,
    "secretsProviderConfiguratorClassName": config.KUBERNETES_SECRETS_CONFIGURATOR,
}


def _workload(script: str) -> dict[str, object]:
    sts = worker.statefulset(auth="sa-token", secrets=SECRETS)
    sts["spec"]["template"]["spec"]["containers"][0]["command"][2] = script
    return sts


def test_an_uneditable_command_is_left_alone_by_the_mutation_and_denied_by_the_validation() -> None:
    cfg = config.from_mapping(TOKENS_ON)
    script = _script("JAVA", secrets=SECRETS) + "; echo after"
    result = mutation.mutate(_workload(script), cfg)
    container = result.obj["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][2] == script
    assert container["volumeMounts"][0]["mountPath"] == "/etc/auth"  # the rest is still done
    reason = "a command after the instance's exec (at character"
    left = [w for w in result.warnings if w.startswith("command left unchanged: cannot set ")]
    assert [w.split(": ", 2)[1] for w in left] == [
        "cannot set --client_auth_plugin",
        "cannot set --client_auth_params",
    ]
    assert all(reason in w for w in left)
    verdict = policy.validate(result.obj, cfg)
    denied = [d for d in verdict.decisions if d.rule == "command/uneditable"]
    assert [d.action for d in denied] == ["deny", "deny"]
    assert {d.path for d in denied} == {"spec.template.spec.containers[0].command[2]"}
    assert not verdict.allowed


def test_the_rule_can_be_set_to_warn() -> None:
    cfg = config.from_mapping(
        {**TOKENS_ON, "webhook": {"policy": {"rules": {"command/uneditable": "warn"}}}}
    )
    script = _script("JAVA") + "; echo after"
    verdict = policy.validate(mutation.mutate(_workload(script), cfg).obj, cfg)
    assert verdict.allowed
    assert {d.action for d in verdict.decisions if d.rule == "command/uneditable"} == {"warn"}


def test_an_editable_command_passes_both_webhooks() -> None:
    cfg = config.from_mapping(TOKENS_ON)
    result = mutation.mutate(_workload(PLAIN_JAVA), cfg)
    script = result.obj["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert command.get_flag(script, "--client_auth_params") == "file:///etc/auth/token"
    assert not [
        d for d in policy.validate(result.obj, cfg).decisions if d.rule.startswith("command")
    ]


def test_a_command_line_over_the_limit_is_denied_naming_the_limit() -> None:
    cfg = config.from_mapping({"webhook": {"limits": {"maxCommandLength": 2048}}})
    assert cfg.limits.max_command_length == 2048
    obj = _workload(PLAIN_JAVA + " --padding " + "x" * 2048)
    result = mutation.mutate(obj, cfg)
    assert result.obj == obj
    assert "above the limit of 2048 (webhook.limits.maxCommandLength)" in result.warnings[0]
    verdict = policy.validate(obj, cfg)
    assert not verdict.allowed
    assert (
        "above the limit of 2048 (webhook.limits.maxCommandLength)" in verdict.decisions[0].message
    )


def test_a_megabyte_script_is_refused_by_the_default_limit() -> None:
    obj = _workload("exec java " + "a " * 512 * 1024)
    verdict = policy.validate(obj, config.default_config())
    assert [d.rule for d in verdict.decisions][:1] == ["function/details"]
    assert "above the limit of 65536" in verdict.decisions[0].message


@pytest.mark.parametrize("value", [0, 1023, 1_000_001, "big", True])
def test_the_limit_must_be_sensible(value: object) -> None:
    with pytest.raises(config.ConfigError, match=r"webhook\.limits\.maxCommandLength"):
        config.from_mapping({"webhook": {"limits": {"maxCommandLength": value}}})


# ---------------------------------------------------------------------------------------------
# the download step (`pulsar-admin ... functions download`) gets the same credentials

DOWNLOAD = (
    "/pulsar/bin/pulsar-admin --admin-url http://b:8080 --auth-plugin P --auth-params {params} "
    "functions download --tenant t --namespace n --name f --destination-file /pulsar/f.jar"
    " && exec java -cp x Main --client_auth_plugin P --client_auth_params a"
)


def test_the_download_step_s_flags_change_only_where_present() -> None:
    edit = command.Edit(command.parse(DOWNLOAD.format(params="a")))
    edit.set_download("--auth-params", "file:///etc/auth/token")
    edit.set_download("--tls-trust-cert-path", "/etc/auth/ca.crt")  # absent: not added
    edit.set("--client_auth_params", "file:///etc/auth/token")
    assert edit.refused == []
    assert edit.render() == DOWNLOAD.format(params="file:///etc/auth/token").replace(
        "--client_auth_params a", "--client_auth_params file:///etc/auth/token"
    )


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        pytest.param("$(canary a b)", "holds a shell expansion", id="substitution"),
        pytest.param("a --auth-params b", "appears 2 times", id="twice"),
    ],
)
def test_a_download_flag_we_cannot_prove_is_refused(params: str, reason: str) -> None:
    script = DOWNLOAD.format(params=params)
    edit = command.Edit(command.parse(script))
    edit.set_download("--auth-params", "file:///etc/auth/token")
    assert len(edit.refused) == 1 and reason in edit.refused[0]
    assert edit.refused[0].startswith("cannot set --auth-params (download): ")
    assert edit.render() == script


def test_the_instance_itself_is_never_taken_for_the_download() -> None:
    script = "exec java -cp x Main --auth-params a"
    edit = command.Edit(command.parse(script))
    edit.set_download("--auth-params", "b")
    assert not edit.changed and edit.render() == script


def test_digits_written_right_before_a_redirection_stay_an_argument() -> None:
    edited = command.set_flag("exec java --port abc>/dev/null", "--port", "2")
    assert edited == "exec java --port '2'>/dev/null"
    assert command.get_flag(edited, "--port") == "2"


# the fast path (one regex pass for the worker's plain shapes) reads exactly as the lexer does

FAST_ALPHABET = st.lists(
    st.sampled_from(
        [
            *"ab-=_./:,09 \t\n\r'\"\\;&|#~*?[]{}()<>`!@",
            *("$", "$A", "${A}", "${A##*-}", "${", "$(", "$1", "$#", "\u00a0", "\u2003"),
            *("&&", "||", ";;", "=", "A=", "exec", "case"),
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=2000, deadline=None, database=None)
@given(text=FAST_ALPHABET)
def test_the_fast_path_reads_exactly_as_the_lexer(text: str) -> None:
    fast = command._fast_tokens(text)
    if fast is None:
        return
    slow, end = command._Lexer(text).tokens(0, 0, closing=False)
    assert end == len(text)
    assert fast == slow


def test_the_fast_path_takes_the_worker_script_and_leaves_the_rest() -> None:
    plain = "a && SHARD_ID=${POD_NAME##*-} && exec java -cp x/* --d '{\"a\":1}' ; b | c &"
    assert command._fast_tokens(plain) == command._Lexer(plain).tokens(0, 0, False)[0]
    for other in ('a "b"', "a\\ b", "a $(b)", "a #c", "a ~", "a >x", "a (b)", "a\u00a0b"):
        assert command._fast_tokens(other) is None, other


def test_a_download_flag_that_is_another_flags_value_is_not_edited() -> None:
    # sh gives pulsar-admin `--auth-params --tls-trust-cert-path x`: setting both would turn
    # our trust path into a stray argument; the edit is refused and the script kept
    script = (
        "pulsar-admin --auth-params 2>&1 --tls-trust-cert-path file:///t functions download"
        " && exec java -cp x Main --client_auth_params a"
    )
    for order in (
        ("--auth-params", "--tls-trust-cert-path"),
        ("--tls-trust-cert-path", "--auth-params"),
    ):
        edit = command.Edit(command.parse(script))
        for flag in order:
            edit.set_download(flag, f"/etc/{flag.strip('-')}")
        assert edit.refused and "each other's value" in edit.refused[0]
        assert edit.render() == script
    edit = command.Edit(command.parse(script.replace("2>&1 --tls", "x --tls")))
    edit.set_download("--auth-params", "/etc/a")
    edit.set_download("--tls-trust-cert-path", "/etc/t")
    assert not edit.refused
    assert "--auth-params /etc/a --tls-trust-cert-path /etc/t" in edit.render()


def test_an_instance_flag_that_is_another_flags_value_is_not_edited() -> None:
    script = "exec java -cp x Main --client_auth_params --tls_trust_cert_path /t --port 1"
    for order in (
        ("--client_auth_params", "--tls_trust_cert_path"),
        ("--tls_trust_cert_path", "--client_auth_params"),
    ):
        edit = command.Edit(command.parse(script))
        for flag in order:
            edit.set(flag, f"/etc/{flag.strip('-')}")
        assert edit.refused and "each other's value" in edit.refused[0]
        assert edit.render() == script
