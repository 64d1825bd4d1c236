"""A bootstrap p-value is never shown below its resolution (analyses.md, Multiplicity)."""

from __future__ import annotations

from accord.report.numbers import p_value


def test_a_p_at_the_bootstrap_floor_reads_at_most_the_floor():
    # B = 500 replicates, none beyond zero: p = 2 (1 + 0) / (1 + 500) = .00399, the smallest
    # p the replicates can give. It reads "<= .004", never "< .001".
    floor = 2 / 501
    assert p_value(floor, floor=floor) == "\u2264 .004"
    # a p of 0 from an older fit is also shown at the floor, not below it
    assert p_value(0.0, floor=floor) == "\u2264 .004"
    # above the floor the usual format; without a floor the usual "< .001"
    assert p_value(0.012, floor=floor) == ".012"
    assert p_value(0.0004) == "< .001"
    # B = 5000: the floor 2 / 5001 = .0004 is below .001 and is shown as it is
    assert p_value(2 / 5001, floor=2 / 5001) == "\u2264 .0004"
