"""webhook.quantity: Kubernetes resource quantities as exact fractions."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from webhook.core import quantity
from webhook.core.quantity import QuantityError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("1", Fraction(1), id="int-string"),
        pytest.param("1.0", Fraction(1), id="pulsar-double"),
        pytest.param("0.769", Fraction(769, 1000), id="decimal"),
        pytest.param(".5", Fraction(1, 2), id="leading-dot"),
        pytest.param("5.", Fraction(5), id="trailing-dot"),
        pytest.param("+1", Fraction(1), id="plus-sign"),
        pytest.param("-1", Fraction(-1), id="minus-sign"),
        pytest.param("0", Fraction(0), id="zero"),
        pytest.param("500m", Fraction(1, 2), id="milli"),
        pytest.param("769m", Fraction(769, 1000), id="milli-cpu"),
        pytest.param("0.5m", Fraction(1, 2000), id="fractional-milli"),
        pytest.param("100u", Fraction(1, 10**4), id="micro"),
        pytest.param("100n", Fraction(1, 10**7), id="nano"),
        pytest.param("1k", Fraction(1000), id="kilo"),
        pytest.param("1M", Fraction(10**6), id="mega"),
        pytest.param("4G", Fraction(4 * 10**9), id="giga"),
        pytest.param("8G", Fraction(8 * 10**9), id="giga-8"),
        pytest.param("1T", Fraction(10**12), id="tera"),
        pytest.param("1P", Fraction(10**15), id="peta"),
        pytest.param("1Ki", Fraction(1024), id="kibi"),
        pytest.param("1Mi", Fraction(2**20), id="mebi"),
        pytest.param("1Gi", Fraction(2**30), id="gibi"),
        pytest.param("1.5Gi", Fraction(3 * 2**29), id="fractional-gibi"),
        pytest.param("8Gi", Fraction(8 * 2**30), id="gibi-8"),
        pytest.param("1Ti", Fraction(2**40), id="tebi"),
        pytest.param("1Pi", Fraction(2**50), id="pebi"),
        pytest.param("1e3", Fraction(1000), id="exponent"),
        pytest.param("1E3", Fraction(1000), id="upper-exponent"),
        pytest.param("1e+3", Fraction(1000), id="signed-exponent"),
        pytest.param("1e-3", Fraction(1, 1000), id="negative-exponent"),
        pytest.param("2.5e2", Fraction(250), id="decimal-exponent"),
        pytest.param("1073741824", Fraction(2**30), id="bytes"),
        pytest.param(1, Fraction(1), id="int"),
        pytest.param(10240, Fraction(10240), id="int-memory"),
        pytest.param(0.5, Fraction(1, 2), id="float"),
        pytest.param(1.1, Fraction(11, 10), id="float-read-as-written"),
        pytest.param(2.0, Fraction(2), id="whole-float"),
    ],
)
def test_a_quantity_parses_to_its_exact_value(value: object, expected: Fraction) -> None:
    assert quantity.parse(value) == expected
    assert quantity.is_quantity(value)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("1", "1000m", id="cores-and-millicores"),
        pytest.param("1Ki", "1024", id="kibi-and-bytes"),
        pytest.param("1k", "1e3", id="kilo-and-exponent"),
        pytest.param("4G", "4000M", id="giga-and-mega"),
        pytest.param("0.1", "100m", id="no-float-rounding"),
        pytest.param(1, "1", id="number-and-string"),
    ],
)
def test_equal_quantities_in_different_notations_compare_equal(a: object, b: object) -> None:
    assert quantity.parse(a) == quantity.parse(b)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="word"),
        pytest.param("m", id="suffix-only"),
        pytest.param("Gi", id="binary-suffix-only"),
        pytest.param("1.2.3", id="two-dots"),
        pytest.param("1Kb", id="unknown-suffix"),
        pytest.param("1K", id="upper-k"),
        pytest.param("1kb", id="trailing-garbage"),
        pytest.param("1 m", id="inner-space"),
        pytest.param("1e", id="exponent-without-digits"),
        pytest.param("1e3m", id="exponent-and-suffix"),
        pytest.param("--1", id="double-sign"),
        pytest.param("0x10", id="hex"),
        pytest.param("1_000", id="underscore"),
        pytest.param(None, id="none"),
        pytest.param(True, id="bool-true"),
        pytest.param(False, id="bool-false"),
        pytest.param([], id="list"),
        pytest.param({"cpu": 1}, id="mapping"),
    ],
)
def test_a_non_quantity_raises_quantity_error(value: object) -> None:
    with pytest.raises(QuantityError, match="is not a quantity"):
        quantity.parse(value)
    assert not quantity.is_quantity(value)


def test_a_quantity_error_names_the_value_and_shows_examples() -> None:
    with pytest.raises(QuantityError) as caught:
        quantity.parse("lots")
    assert str(caught.value) == "'lots' is not a quantity (e.g. 500m, 2, 1Gi, 4G)"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("1E", 10**18, id="exa"),
        pytest.param("2E", 2 * 10**18, id="exa-2"),
        pytest.param("1Ei", 2**60, id="exbi"),
    ],
)
def test_the_exa_and_exbi_suffixes_are_quantities(value: str, expected: int) -> None:
    assert quantity.parse(value) == expected


@pytest.mark.parametrize(
    "text", [pytest.param("NaN", id="nan"), pytest.param("Infinity", id="inf")]
)
def test_nan_and_infinity_from_json_are_not_quantities(text: str) -> None:
    value = json.loads(text)
    assert not quantity.is_quantity(value)
    with pytest.raises(QuantityError):
        quantity.parse(value)


def test_non_ascii_digits_are_not_a_quantity() -> None:
    assert not quantity.is_quantity("１")


@pytest.mark.parametrize(
    ("value", "written"),
    [
        pytest.param("4G", "4G", id="string-kept"),
        pytest.param(" 2 ", "2", id="string-stripped"),
        pytest.param(1, "1", id="int"),
        pytest.param(2.0, "2", id="whole-float"),
        pytest.param(0.5, "0.5", id="float"),
    ],
)
def test_normalise_gives_the_string_written_into_a_manifest(value: object, written: str) -> None:
    assert quantity.normalise(value) == written
    assert quantity.parse(written) == quantity.parse(value)
