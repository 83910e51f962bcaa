"""webhook.gson: customRuntimeOptions read as Pulsar's worker reads them (lenient Gson)."""

from __future__ import annotations

import pytest

from webhook.core import customizer, gson


def test_lenient_syntax_the_worker_accepts() -> None:
    doc = gson.loads(
        "{'extraLabels': {team: 'data eng', size: 1.50, big: 1e3, gone: null, on: true};"
        " tolerations = [{key: spot, tolerationSeconds: 30.0}] # a comment\n}"
    )
    assert doc["extraLabels"]["team"] == "data eng"
    assert doc["extraLabels"]["size"].text == "1.50"
    assert doc["extraLabels"]["big"].text == "1e3"
    assert doc["extraLabels"]["gone"] is None
    assert doc["extraLabels"]["on"] is True
    assert doc["tolerations"][0]["key"] == "spot"


def test_strict_json_reads_as_json() -> None:
    assert gson.loads('{"a": ["x", 1, {"b": null}], "c": "\\u0027"}') == {
        "a": ["x", "1", {"b": None}],
        "c": "'",
    }


@pytest.mark.parametrize(
    "text",
    ["{", "{'a': 1} trailing", "{'a' 1}", "'unterminated", "{a: [1, 2}"],
)
def test_what_gson_refuses_is_an_error_naming_the_character(text: str) -> None:
    with pytest.raises(gson.GsonError, match="at character"):
        gson.loads(text)


def test_the_webhook_limits_bound_the_lenient_reader_too() -> None:
    with pytest.raises(gson.GsonLimitError, match=r"webhook\.limits\.maxJsonDepth"):
        gson.loads("[" * 100 + "]" * 100)
    with pytest.raises(gson.GsonLimitError, match=r"webhook\.limits\.maxNumberDigits"):
        gson.loads("{a: " + "9" * 100 + "}")


def test_options_keep_numbers_as_written_and_drop_null_labels() -> None:
    options, _, findings, notes = customizer.parse(
        "{extraLabels: {size: 1.50, big: 1e3, gone: null}, "
        "tolerations: [{key: spot, operator: Exists, effect: NoExecute, tolerationSeconds: 30.0}],"
        " resourceRequirements: {limits: {cpu: 2, 'nvidia.com/gpu': '1'}}}",
        "customRuntimeOptions",
    )
    assert findings == []
    assert options is not None
    assert dict(options.extra_labels) == {"size": "1.50", "big": "1e3"}
    assert options.tolerations[0]["tolerationSeconds"] == 30
    assert dict(options.resource_requirements["limits"]) == {"cpu": "2"}
    assert any("nvidia.com/gpu is dropped" in n for n in notes)


def test_a_fractional_long_is_refused_as_gson_refuses_it() -> None:
    _, _, findings, _ = customizer.parse(
        "{tolerations: [{key: a, tolerationSeconds: 30.5}]}", "customRuntimeOptions"
    )
    assert [f.rule.id for f in findings] == ["customizer/options"]
    assert "30.5" in findings[0].message
