"""Exact sums over clients, the same for any order of the clients and any partition of them.

Floating-point sums taken in different orders differ in the last bits, so a mean over clients
computed in partitions would not be the one-job mean. Here every finite float64 is taken as
what it is, an integer mantissa times a power of two (``x = m * 2**e``, `np.frexp`), the
mantissas are added as Python integers (no rounding, no overflow) and the count, the sum and
the sum of squares are kept as exact dyadic rationals. Partitions' moments add up exactly
(`Moments.combine`); the mean and the sample SD are rounded to float once, at the end:

- mean = S1 / n, correctly rounded;
- var = (n * S2 - S1**2) / (n * (n - 1)), exact; SD = its square root, correctly rounded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

#: Bits of a float64 mantissa: `np.frexp` gives m in [0.5, 1), so m * 2**53 is an integer.
MANTISSA_BITS = 53


@dataclass(frozen=True)
class Dyadic:
    """An exact number ``numerator * 2**exponent`` (an integer times a power of two)."""

    numerator: int = 0
    exponent: int = 0

    def __add__(self, other: Dyadic) -> Dyadic:
        low = min(self.exponent, other.exponent)
        total = (self.numerator << (self.exponent - low)) + (
            other.numerator << (other.exponent - low)
        )
        return Dyadic(total, low).normalized()

    def normalized(self) -> Dyadic:
        """The same number with an odd numerator (or 0 * 2**0): one spelling per value."""
        if self.numerator == 0:
            return Dyadic(0, 0)
        zeros = (self.numerator & -self.numerator).bit_length() - 1
        return Dyadic(self.numerator >> zeros, self.exponent + zeros)

    def fraction(self) -> Fraction:
        if self.exponent >= 0:
            return Fraction(self.numerator << self.exponent)
        return Fraction(self.numerator, 1 << -self.exponent)


def _mantissas(values: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Each value as an integer mantissa (Python int) and its power of two."""
    mantissa, exponent = np.frexp(values)
    scaled = np.ldexp(mantissa, MANTISSA_BITS).astype(np.int64)
    return scaled.tolist(), exponent.astype(np.int64) - MANTISSA_BITS


def exact_sum(values: np.ndarray) -> Dyadic:
    """The exact sum of finite float64 values."""
    return _power_sum(values, 1)


def exact_sum_of_squares(values: np.ndarray) -> Dyadic:
    """The exact sum of the squares of finite float64 values (a square of a float is not
    a float: it is kept as the integer m**2 times 2**(2e))."""
    return _power_sum(values, 2)


def _power_sum(values: np.ndarray, power: int) -> Dyadic:
    """The exact sum of the values' `power`-th powers: sum of m**power * 2**(power e)."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("an exact sum needs finite values")
    if len(values) == 0:
        return Dyadic()
    ints, exponent = _mantissas(values)
    low = int(exponent.min())
    shifts = (power * (exponent - low)).tolist()
    total = sum((m**power) << s for m, s in zip(ints, shifts, strict=True))
    return Dyadic(total, power * low).normalized()


def sqrt_rounded(value: Fraction) -> float:
    """The correctly rounded square root of a non-negative rational.

    The root is taken as an integer square root with at least 56 significant bits; a sticky
    last bit says whether it was exact, so rounding that to 53 bits rounds the true root.
    """
    if value < 0:
        raise ValueError("square root of a negative number")
    if value == 0:
        return 0.0
    p, q = value.numerator, value.denominator
    # scale by 4**k so that the integer root has at least 56 bits
    k = max(0, (2 * 56 - (p.bit_length() - q.bit_length())) // 2 + 2)
    scaled_num = p << (2 * k)
    root = math.isqrt(scaled_num // q)
    exact = root * root * q == scaled_num
    return float(Fraction(2 * root + (0 if exact else 1), 1 << (k + 1)))


@dataclass(frozen=True)
class Moments:
    """Count, exact sum and exact sum of squares of some float64 values."""

    n: int = 0
    total: Dyadic = Dyadic()
    squares: Dyadic = Dyadic()

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        """The moments of `values`; missing values (NaN) are left out."""
        values = np.asarray(values, dtype=np.float64)
        values = values[~np.isnan(values)]
        return cls(len(values), exact_sum(values), exact_sum_of_squares(values))

    @classmethod
    def combine(cls, parts: Iterable[Moments]) -> Moments:
        """The moments of all the parts' values together (exact, in any order)."""
        out = cls()
        for part in parts:
            out = cls(out.n + part.n, out.total + part.total, out.squares + part.squares)
        return out

    def mean(self) -> float:
        """S1 / n rounded once (NaN without values)."""
        if self.n == 0:
            return math.nan
        return float(self.total.fraction() / self.n)

    def variance(self) -> Fraction | None:
        """The exact sample variance (ddof = 1); None below two values."""
        if self.n < 2:
            return None
        s1, s2 = self.total.fraction(), self.squares.fraction()
        return (self.n * s2 - s1 * s1) / (self.n * (self.n - 1))

    def sd(self) -> float:
        """The sample SD (ddof = 1) rounded once (NaN below two values)."""
        variance = self.variance()
        return math.nan if variance is None else sqrt_rounded(variance)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (integers as decimal text, so any reader keeps every digit)."""
        return {
            "n": self.n,
            "total": [str(self.total.numerator), self.total.exponent],
            "squares": [str(self.squares.numerator), self.squares.exponent],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Moments:
        def dyadic(pair: Any) -> Dyadic:
            return Dyadic(int(pair[0]), int(pair[1]))

        return cls(int(data["n"]), dyadic(data["total"]), dyadic(data["squares"]))
