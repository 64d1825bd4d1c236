"""Exact sums over clients: the same bits in any order and any partition of the values."""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest

from accord.measures.exact import (
    Dyadic,
    Moments,
    exact_sum,
    exact_sum_of_squares,
    sqrt_rounded,
)


def _wide_values(seed: int, n: int = 500) -> np.ndarray:
    """Values over many orders of magnitude and both signs: the worst case for float sums."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n) * 10.0 ** rng.integers(-12, 12, n)


def test_a_dyadic_is_its_integer_times_a_power_of_two() -> None:
    assert Dyadic(3, -2).fraction() == Fraction(3, 4)
    assert Dyadic(3, 2).fraction() == 12
    # 3/4 + 1/8 = 7/8; one spelling per value (odd numerator)
    assert Dyadic(3, -2) + Dyadic(1, -3) == Dyadic(7, -3)
    assert Dyadic(4, 0).normalized() == Dyadic(1, 2)


def test_sum_of_tenths_by_hand() -> None:
    # 0.1, 0.2 and 0.3 are not tenths in binary: their exact sum is the sum of the three
    # doubles, which rounds to 0.6 (a left-to-right float sum gives 0.6000000000000001)
    values = np.array([0.1, 0.2, 0.3])
    exact = Fraction(0.1) + Fraction(0.2) + Fraction(0.3)
    assert exact_sum(values).fraction() == exact
    assert float(exact_sum(values).fraction()) == 0.6
    assert 0.1 + 0.2 + 0.3 == 0.6000000000000001


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sums_are_the_fraction_sums_and_round_as_fsum(seed: int) -> None:
    values = _wide_values(seed)
    total = exact_sum(values)
    assert total.fraction() == sum(Fraction(v) for v in values.tolist())
    assert float(total.fraction()) == math.fsum(values.tolist())
    squares = exact_sum_of_squares(values)
    assert squares.fraction() == sum(Fraction(v) ** 2 for v in values.tolist())


def test_moments_are_the_same_for_any_order_and_partition() -> None:
    values = _wide_values(7, 700)
    whole = Moments.of(values)
    shuffled = values.copy()
    random.Random(4).shuffle(shuffled)
    for parts in (1, 3, 7):
        pieces = [Moments.of(piece) for piece in np.array_split(shuffled, parts)]
        combined = Moments.combine(reversed(pieces))
        assert combined == whole
        assert combined.mean() == whole.mean()
        assert combined.sd() == whole.sd()


def test_mean_and_sd_by_hand() -> None:
    # 2, 4, 4, 4, 5, 5, 7, 9: mean 40 / 8 = 5; sum of squared deviations 32; sample variance
    # 32 / 7; SD the square root of 32 / 7 rounded once (checked to 60 digits)
    moments = Moments.of(np.array([2, 4, 4, 4, 5, 5, 7, 9, np.nan]))
    assert moments.n == 8
    assert moments.mean() == 5.0
    assert moments.variance() == Fraction(32, 7)
    getcontext().prec = 60
    assert moments.sd() == float((Decimal(32) / Decimal(7)).sqrt())
    # the mean of 1, 2 and 2 is 5/3 rounded once
    assert Moments.of(np.array([1.0, 2.0, 2.0])).mean() == 5 / 3


def test_mean_and_sd_without_enough_values() -> None:
    assert math.isnan(Moments().mean())
    assert math.isnan(Moments.of(np.array([3.0])).sd())
    assert Moments.of(np.array([3.0, 3.0])).sd() == 0.0


def test_square_root_is_correctly_rounded() -> None:
    assert sqrt_rounded(Fraction(9, 4)) == 1.5
    assert sqrt_rounded(Fraction(0)) == 0.0
    rng = np.random.default_rng(5)
    # math.sqrt of a float is correctly rounded (IEEE 754), so the two agree on floats
    for value in (rng.random(300) * 10.0 ** rng.integers(-30, 30, 300)).tolist():
        assert sqrt_rounded(Fraction(value)) == math.sqrt(value)
    getcontext().prec = 60
    for p, q in ((2, 1), (1, 3), (10**40 + 1, 7), (5, 10**30)):
        assert sqrt_rounded(Fraction(p, q)) == float((Decimal(p) / Decimal(q)).sqrt())
    with pytest.raises(ValueError):
        sqrt_rounded(Fraction(-1))


def test_moments_survive_json() -> None:
    moments = Moments.of(_wide_values(9))
    again = Moments.from_dict(json.loads(json.dumps(moments.to_dict())))
    assert again == moments


def test_infinite_values_are_refused() -> None:
    with pytest.raises(ValueError):
        exact_sum(np.array([1.0, np.inf]))
