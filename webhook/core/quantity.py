"""Pure: Kubernetes resource quantities ("500m", "4G", "1Gi", "1e3") as exact fractions.

The API server re-serialises quantities canonically ("1.0" becomes "1", "4000000000" may
become "4G"), so quantities are compared by value, never as strings.
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

from webhook.core.errors import UserError

_SUFFIX: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_QUANTITY = re.compile(
    r"(?P<num>[+-]?([0-9]+\.?[0-9]*|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE])?"
)
_EXPONENT = re.compile(r"[eE][+-]?[0-9]+")
# Kubernetes caps quantities at 2^63-1 and rounds below 1n, so nothing real needs more text or
# a larger exponent; checked before any arithmetic, so `1e6000000` costs nothing.
MAX_LENGTH = 64
MAX_EXPONENT = 64


class QuantityError(UserError, ValueError):
    """A string that is not a Kubernetes quantity."""


def parse(value: object) -> Fraction:
    """Parse a quantity given as a string or a number (customRuntimeOptions allow `1`)."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"{value!r} is not a quantity")
        return Fraction(str(value))
    if not isinstance(value, str):
        raise QuantityError(f"{type(value).__name__} is not a quantity")
    return _parse_text(str(value))


@functools.lru_cache(maxsize=1024)
def _parse_text(value: str) -> Fraction:
    """A quantity string's value (remembered: the same few amounts recur in every object and
    in the config, and a Fraction is slow to make; a bad string raises, and is not kept)."""
    if len(value) > MAX_LENGTH:
        raise QuantityError(
            f"a quantity of {len(value)} characters is too long (at most {MAX_LENGTH})"
        )
    match = _QUANTITY.fullmatch(value.strip())
    if match is None:
        raise QuantityError(f"{value!r} is not a quantity (e.g. 500m, 2, 1Gi, 4G)")
    number = Fraction(match["num"])
    suffix = match["suffix"] or ""
    if _EXPONENT.fullmatch(suffix):
        exponent = int(suffix[1:])
        if abs(exponent) > MAX_EXPONENT:
            raise QuantityError(f"{value!r} has an exponent beyond ±{MAX_EXPONENT}")
        return number * Fraction(10) ** exponent
    return number * _SUFFIX[suffix]


def is_quantity(value: object) -> bool:
    try:
        parse(value)
    except QuantityError:
        return False
    return True


def normalise(value: object) -> str:
    """A quantity as the string we write into a manifest (numbers become strings)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
