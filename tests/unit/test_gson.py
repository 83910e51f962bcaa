"""webhook.gson: customRuntimeOptions read as Pulsar's worker reads them (lenient Gson)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**80), max_value=10**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_json_values, indent=st.sampled_from([None, 1]), ascii=st.booleans())
def test_strict_json_reads_the_same_by_the_fast_path_and_the_lenient_reader(
    value: Any, indent: int | None, ascii: bool
) -> None:
    """Strict JSON goes through the C parser; it must read exactly as the lenient reader
    reads it (numbers kept as written, the same limits and errors), or fall back to it."""
    text = json.dumps(value, indent=indent, ensure_ascii=ascii)
    for depth, digits in ((64, 64), (2, 64), (64, 5)):
        try:
            lenient: Any = gson._Reader(text, depth, digits).value(0)
        except gson.GsonError as exc:
            with pytest.raises(gson.GsonError) as caught:
                gson.loads(text, max_depth=depth, max_digits=digits)
            assert str(caught.value) == str(exc)
            continue
        fast = gson.loads(text, max_depth=depth, max_digits=digits)
        assert fast == lenient and _types(fast) == _types(lenient)


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__
