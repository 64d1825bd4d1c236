"""The instrument registry: built-in values from measures.md, cut-offs, bands and config checks."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from accord.core.errors import ConfigError
from accord.core.instruments import BUILTIN_KEYS, Registry, load_registry

BDI2_YAML = """
bdi2:
  items: 21
  item_min: 0
  item_max: 3
  higher_is: worse
  prorate_max_missing: 0
  cutoff: 14
  reliable_change: 8
"""


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


def custom(**fields) -> dict:
    """A valid custom definition (BDI-II) with some fields replaced or removed (value None)."""
    spec = yaml.safe_load(BDI2_YAML)["bdi2"]
    for name, value in fields.items():
        if value is None:
            spec.pop(name, None)
        else:
            spec[name] = value
    return {"bdi2": spec}


def test_builtin_keys(registry):
    assert list(registry) == ["phq9", "gad7", "wai_sr", "srs", "ors", "core10", "gas"]
    assert tuple(registry) == BUILTIN_KEYS
    assert registry.builtin_keys == frozenset(BUILTIN_KEYS)
    assert registry.custom_keys == ()


@pytest.mark.parametrize(
    ("key", "items", "item_range", "total_range", "score", "higher_is", "prorate", "cutoff"),
    [
        ("phq9", 9, (0, 3), (0, 27), "sum", "worse", 2, 10),
        ("gad7", 7, (0, 3), (0, 21), "sum", "worse", 1, 8),
        ("wai_sr", 12, (1, 5), (1, 5), "mean", "better", 0, None),
        ("srs", 4, (0, 10), (0, 40), "sum", "better", 0, 36),
        ("ors", 4, (0, 10), (0, 40), "sum", "better", 0, 25),
        ("core10", 10, (0, 4), (0, 40), "sum", "worse", 1, 11),
        ("gas", None, (-2, 2), (None, None), "gas", "better", 0, None),
    ],
)
def test_builtin_values_follow_measures_md(
    registry, key, items, item_range, total_range, score, higher_is, prorate, cutoff
):
    inst = registry[key]
    assert inst.items == items
    assert (inst.item_min, inst.item_max) == item_range
    assert (inst.total_min, inst.total_max) == total_range
    assert inst.score == score
    assert inst.higher_is == higher_is
    assert inst.prorate_max_missing == prorate
    assert inst.cutoff == cutoff
    assert inst.source


def test_builtin_details(registry):
    assert registry["phq9"].item_labels == tuple(str(i) for i in range(1, 10))
    assert registry["gas"].item_labels == ()
    wai = registry["wai_sr"]
    assert dict(wai.subscales) == {
        "goal": ("4", "6", "8", "11"),
        "task": ("1", "2", "10", "12"),
        "bond": ("3", "5", "7", "9"),
    }
    assert wai.subscale_prorate_max_missing == 0
    assert wai.reverse_items == ()
    assert wai.scales == ("total", "goal", "task", "bond")
    assert registry["gas"].scales == ("t_score",)
    assert registry["core10"].reverse_items == ("2", "3")
    assert registry["phq9"].caseness == 10
    assert registry["gad7"].caseness == 8
    assert registry["srs"].caseness is None
    rc = {key: registry[key].reliable_change for key in registry}
    assert rc == {
        "phq9": 6,
        "gad7": 4,
        "wai_sr": None,
        "srs": None,
        "ors": 5,
        "core10": 6,
        "gas": None,
    }
    rel = {key: registry[key].reliability for key in registry}
    assert rel == {
        "phq9": 0.89,
        "gad7": 0.92,
        "wai_sr": None,
        "srs": 0.88,
        "ors": 0.93,
        "core10": 0.90,
        "gas": None,
    }
    assert all(registry[key].norms is None for key in registry)
    assert registry["phq9"].bands[-1] == ("severe", 20, 27)
    assert registry["gad7"].bands[-1] == ("severe", 15, 21)


def test_clinical_follows_direction(registry):
    scores = pd.Series([9.0, 9.5, 10.0, None], index=[10, 11, 12, 13])
    # PHQ-9: clinical means score >= 10.
    assert registry["phq9"].clinical(scores).tolist() == [False, False, True, pd.NA]
    assert registry["phq9"].clinical(scores).index.tolist() == [10, 11, 12, 13]
    assert str(registry["phq9"].clinical(scores).dtype) == "boolean"
    # GAD-7: >= 8; CORE-10: >= 11.
    assert registry["gad7"].clinical(pd.Series([7.0, 8.0])).tolist() == [False, True]
    assert registry["core10"].clinical(pd.Series([10.9, 11.0])).tolist() == [False, True]
    # ORS: higher is better, clinical below 25.
    assert registry["ors"].clinical(pd.Series([24.9, 25.0, 40.0])).tolist() == [True, False, False]
    # SRS: alliance concern below 36.
    assert registry["srs"].clinical(pd.Series([35.9, 36.0])).tolist() == [True, False]


def test_clinical_without_cutoff_raises(registry):
    with pytest.raises(ValueError, match="wai_sr"):
        registry["wai_sr"].clinical(pd.Series([3.0]))


def test_phq9_bands(registry):
    scores = pd.Series([0, 4, 4.5, 5, 9.5, 10, 14, 15, 19, 20, 27, None, 28, -1])
    bands = registry["phq9"].band(scores)
    # A prorated score between two published bands falls in the lower band (4.5 -> minimal).
    expected = ["minimal", "minimal", "minimal", "mild", "mild", "moderate", "moderate"]
    expected += ["moderately severe", "moderately severe", "severe", "severe"]
    assert bands.iloc[:11].tolist() == expected
    assert bands.iloc[11:].isna().all()
    assert bands.cat.ordered
    assert list(bands.cat.categories) == [
        "minimal",
        "mild",
        "moderate",
        "moderately severe",
        "severe",
    ]


def test_gad7_bands(registry):
    bands = registry["gad7"].band(pd.Series([4, 5, 10, 15, 21]))
    assert bands.tolist() == ["minimal", "mild", "moderate", "severe", "severe"]


def test_band_without_bands_raises(registry):
    with pytest.raises(ValueError, match="ors"):
        registry["ors"].band(pd.Series([20.0]))


def test_custom_bdi2_from_short_yaml():
    registry = load_registry(yaml.safe_load(BDI2_YAML))
    bdi = registry["bdi2"]
    assert registry.custom_keys == ("bdi2",)
    assert bdi.items == 21
    assert bdi.item_labels[-1] == "21"
    # Totals default from items * range for a sum score: 21 * 0 .. 21 * 3.
    assert (bdi.total_min, bdi.total_max) == (0, 63)
    assert bdi.score == "sum"
    assert bdi.cutoff == 14 and bdi.cutoff_rule == "clinical"
    assert bdi.reliable_change == 8
    assert bdi.name == "bdi2"
    assert bdi.clinical(pd.Series([13.0, 14.0])).tolist() == [False, True]


def test_custom_mean_score_totals_default_to_item_range():
    registry = load_registry(custom(score="mean", cutoff=None))
    assert (registry["bdi2"].total_min, registry["bdi2"].total_max) == (0, 3)


def test_custom_with_every_optional_field():
    spec = custom(
        name="Beck Depression Inventory-II",
        source="Beck, Steer & Brown 1996",
        subscales={"cognitive": [1, 2, 3], "somatic": ["15", "16"]},
        reverse_items=[4],
        subscale_prorate_max_missing=1,
        bands=[["minimal", 0, 13], ["mild", 14, 19], ["moderate", 20, 28], ["severe", 29, 63]],
        reliability=0.9,
        norms={"clinical": {"mean": 25, "sd": 10}, "functional": {"mean": 8, "sd": 6}},
        caseness=14,
        cutoff_rule=">=",
    )
    bdi = load_registry(spec)["bdi2"]
    assert dict(bdi.subscales) == {"cognitive": ("1", "2", "3"), "somatic": ("15", "16")}
    assert bdi.reverse_items == ("4",)
    assert bdi.norms["clinical"]["sd"] == 10
    assert bdi.band(pd.Series([13.5, 20])).tolist() == ["minimal", "moderate"]


def test_no_custom_instruments():
    assert len(load_registry(None)) == 7
    assert len(load_registry({})) == 7


def test_unknown_key_lookup(registry):
    with pytest.raises(KeyError, match="bdi2"):
        registry["bdi2"]
    assert registry.get("bdi2") is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (custom(item_max=0), r"^instruments\.bdi2\.item_max: must be greater than item_min \(0\)"),
        (custom(item_min=3), r"^instruments\.bdi2\.item_max: must be greater than item_min"),
        (custom(cutof=14), r"^instruments\.bdi2\.cutof: unknown field"),
        (custom(items=None), r"^instruments\.bdi2\.items: required"),
        (custom(higher_is="up"), r"^instruments\.bdi2\.higher_is: must be 'worse' or 'better'"),
        (custom(items=True), r"^instruments\.bdi2\.items: must be a whole number"),
        (custom(items=0), r"^instruments\.bdi2\.items: must be at least 1"),
        (custom(items="21"), r"^instruments\.bdi2\.items: must be a whole number"),
        (custom(item_max="3"), r"^instruments\.bdi2\.item_max: must be a finite number"),
        (custom(score="gas"), r"^instruments\.bdi2\.score: must be one of sum, mean"),
        (custom(score="median"), r"^instruments\.bdi2\.score:"),
        (
            custom(subscales={"cognitive": [1, 22]}),
            r"^instruments\.bdi2\.subscales\.cognitive: item 22 does not exist "
            r"\(items are 1\.\.21\)",
        ),
        (
            custom(subscales={"total": [1, 2]}),
            r"^instruments\.bdi2\.subscales\.total: 'total' is reserved",
        ),
        (custom(subscales={"a": []}), r"^instruments\.bdi2\.subscales\.a: needs at least one item"),
        (custom(subscales=[1, 2]), r"^instruments\.bdi2\.subscales: must be a mapping"),
        (custom(reverse_items=[0]), r"^instruments\.bdi2\.reverse_items: item 0 does not exist"),
        (
            custom(reverse_items=[2, 2]),
            r"^instruments\.bdi2\.reverse_items: item 2 is listed twice",
        ),
        (custom(reverse_items=3), r"^instruments\.bdi2\.reverse_items: must be a list"),
        (
            custom(prorate_max_missing=21),
            r"^instruments\.bdi2\.prorate_max_missing: must be less than the number of items",
        ),
        (custom(prorate_max_missing=-1), r"^instruments\.bdi2\.prorate_max_missing: must be at"),
        (
            custom(subscales={"a": [1, 2]}, subscale_prorate_max_missing=2),
            r"^instruments\.bdi2\.subscale_prorate_max_missing:",
        ),
        (custom(cutoff=64), r"^instruments\.bdi2\.cutoff: must lie within the score range 0\.\.63"),
        (custom(cutoff_rule="=="), r"^instruments\.bdi2\.cutoff_rule: must be one of"),
        (custom(reliable_change=0), r"^instruments\.bdi2\.reliable_change: must be positive"),
        (custom(reliability=1.5), r"^instruments\.bdi2\.reliability: must lie strictly between"),
        (custom(total_min=10, total_max=5), r"^instruments\.bdi2\.total_max: must be greater"),
        (
            custom(bands=[["a", 0, 13], ["b", 13, 63]]),
            r"^instruments\.bdi2\.bands\[1\]: bands must ascend without overlapping",
        ),
        (custom(bands=[["a", 0]]), r"^instruments\.bdi2\.bands\[0\]: must be \[label, low, high\]"),
        (custom(bands=[["a", 0, 70]]), r"^instruments\.bdi2\.bands\[0\]: must lie within"),
        (
            custom(norms={"clinical": {"mean": 20, "sd": -1}}),
            r"^instruments\.bdi2\.norms\.clinical\.sd: must be positive",
        ),
        (
            custom(norms={"typical": {"mean": 20, "sd": 1}}),
            r"^instruments\.bdi2\.norms\.typical: unknown norm group",
        ),
        (custom(name=""), r"^instruments\.bdi2\.name: must be non-empty text"),
    ],
)
def test_invalid_custom_definitions(spec, message):
    with pytest.raises(ConfigError, match=message):
        load_registry(spec)


def test_total_range_given_in_part():
    # total_max alone: total_min still defaults from the items (21 * 0).
    bdi = load_registry(custom(total_max=63))["bdi2"]
    assert (bdi.total_min, bdi.total_max) == (0, 63)
    # Both null: supplied totals are not accepted.
    spec = custom()
    spec["bdi2"].update(total_min=None, total_max=None, cutoff=None)
    bdi = load_registry(spec)["bdi2"]
    assert (bdi.total_min, bdi.total_max) == (None, None)


def test_a_total_range_that_does_not_match_the_items_is_refused():
    # 21 items scored 0..3 sum to 0..63; a supplied total of up to 50 cannot be their sum.
    with pytest.raises(ConfigError, match=r"^instruments\.bdi2\.total_max: .*0\.\.63"):
        load_registry(custom(total_max=50))


def test_redefining_a_builtin_is_refused():
    with pytest.raises(ConfigError, match=r"^instruments\.phq9: redefines the built-in"):
        load_registry({"phq9": yaml.safe_load(BDI2_YAML)["bdi2"]})


@pytest.mark.parametrize("key", ["BDI2", "2bdi", "bdi-2", ""])
def test_bad_instrument_keys(key):
    with pytest.raises(ConfigError, match=r"^instruments\."):
        load_registry({key: yaml.safe_load(BDI2_YAML)["bdi2"]})


def test_instruments_section_must_be_a_mapping():
    with pytest.raises(ConfigError, match=r"^instruments: must be a mapping"):
        load_registry(["bdi2"])
    with pytest.raises(ConfigError, match=r"^instruments\.bdi2: must be a mapping"):
        load_registry({"bdi2": 21})


def test_instruments_are_immutable(registry):
    with pytest.raises(AttributeError):
        registry["phq9"].cutoff = 5
    with pytest.raises(TypeError):
        registry["wai_sr"].subscales["goal"] = ("1",)
