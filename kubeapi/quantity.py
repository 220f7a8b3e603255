"""Kubernetes resource quantities (``100m``, ``128Mi``, ``1.5G``, ``2e3``) as exact numbers.

Used where a quantity is acted on: edged's container limits and the standalone scheduler's resource fit.
"""

from __future__ import annotations

import re
from fractions import Fraction

_SUFFIX = {
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
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


class QuantityError(ValueError):
    pass


def parse_quantity(value: str | int | float) -> Fraction:
    """The exact value of a quantity; raises :class:`QuantityError` naming the bad input."""
    if isinstance(value, int | float):
        return Fraction(value)
    m = _QUANTITY.match(value.strip())
    if m is None:
        raise QuantityError(f"quantities must match the regular expression of Kubernetes: {value!r}")
    number, exponent, suffix = m.groups()
    base = Fraction(number)
    if exponent:
        return base * Fraction(10) ** int(exponent[1:])
    return base * _SUFFIX[suffix or ""]


def millicores(value: str | int | float) -> int:
    """CPU as millicores, rounded up as the kubelet does (``0.1`` -> 100, ``1`` -> 1000)."""
    q = parse_quantity(value) * 1000
    return int(-(-q.numerator // q.denominator))


def to_bytes(value: str | int | float) -> int:
    """Memory or storage as bytes, rounded up."""
    q = parse_quantity(value)
    return int(-(-q.numerator // q.denominator))
