"""The instrument registry: one place for every instrument's items, ranges, scoring rules and norms.

The built-in instruments (phq9, gad7, wai_sr, srs, ors, core10, gas) are shipped as data in
`instruments.yaml`, each with its published source. Researchers add their own instruments in the
config's `instruments:` section with the same field names; `load_registry` validates both with the
same rules and raises `ConfigError` naming the key path of the first fault, e.g.
`instruments.bdi2.item_max: must be greater than item_min (0)`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import yaml

from accord.core.errors import ConfigError

__all__ = ["BUILTIN_KEYS", "Instrument", "Registry", "load_registry"]

SCORE_RULES = ("sum", "mean", "gas")
DIRECTIONS = ("worse", "better")
CUTOFF_RULES = ("clinical", ">=", ">", "<=", "<")
NORM_GROUPS = ("clinical", "functional")
# Scale names that mean something else in the scores table.
RESERVED_SCALES = ("total", "t_score")

_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_FIELDS = (
    "name",
    "source",
    "items",
    "item_min",
    "item_max",
    "item_step",
    "total_min",
    "total_max",
    "score",
    "higher_is",
    "subscales",
    "reverse_items",
    "prorate_max_missing",
    "subscale_prorate_max_missing",
    "cutoff",
    "cutoff_rule",
    "caseness",
    "bands",
    "reliable_change",
    "reliability",
    "norms",
)
_REQUIRED = ("items", "item_min", "item_max", "higher_is")


@dataclass(frozen=True)
class Instrument:
    """One instrument: how its items are scored and how its scores are read.

    `item_labels` are the values of the `item` column ("1".."k"); GAS has none because its items
    are goal ids. `total_min`/`total_max` bound a supplied total (None: totals are not accepted).
    """

    key: str
    name: str
    items: int | None
    item_labels: tuple[str, ...]
    item_min: float
    item_max: float
    total_min: float | None
    total_max: float | None
    score: str
    higher_is: str
    subscales: Mapping[str, tuple[str, ...]] = field(hash=False)
    reverse_items: tuple[str, ...]
    prorate_max_missing: int
    subscale_prorate_max_missing: int
    cutoff: float | None
    cutoff_rule: str
    caseness: float | None
    bands: tuple[tuple[str, float, float], ...]
    reliable_change: float | None
    reliability: float | None
    norms: Mapping[str, Mapping[str, float]] | None = field(hash=False)
    source: str
    # responses are item_min + k * item_step (1 for a whole-number scale); None: any value
    item_step: float | None = None

    @property
    def scales(self) -> tuple[str, ...]:
        """The `scale` values this instrument produces in the scores table."""
        if self.score == "gas":
            return ("t_score",)
        return ("total", *self.subscales)

    def clinical(self, score: pd.Series) -> pd.Series:
        """Whether each score is at or beyond the cut-off (nullable boolean, NA where score is NA).

        With `cutoff_rule` "clinical" that is score >= cutoff when higher is worse and
        score < cutoff when higher is better (ORS below 25; SRS alliance concern below 36).
        """
        if self.cutoff is None:
            raise ValueError(f"instrument {self.key!r} has no cut-off")
        values = pd.to_numeric(score, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        rule = self.cutoff_rule
        if rule == "clinical":
            rule = ">=" if self.higher_is == "worse" else "<"
        compare = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}
        with np.errstate(invalid="ignore"):
            flags = compare[rule](values, self.cutoff)
        result = pd.array(flags, dtype="boolean")
        result[np.isnan(values)] = pd.NA
        return pd.Series(result, index=score.index)

    def band(self, score: pd.Series) -> pd.Series:
        """Severity band of each score (ordered categorical; NA where score is NA or out of range).

        Bands are published with integer limits (PHQ-9 mild 5-9, moderate 10-14); a prorated score
        between two bands (9.5) falls in the lower one: a band runs from its lower limit up to
        the next band's lower limit, and the top band ends at its upper limit.
        """
        if not self.bands:
            raise ValueError(f"instrument {self.key!r} has no severity bands")
        values = pd.to_numeric(score, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        labels = [label for label, _, _ in self.bands]
        lows = np.array([low for _, low, _ in self.bands], dtype="float64")
        top = self.bands[-1][2]
        position = np.searchsorted(lows, values, side="right") - 1
        outside = np.isnan(values) | (values < lows[0]) | (values > top)
        codes = np.where(outside, -1, position)
        categories = pd.CategoricalDtype(labels, ordered=True)
        return pd.Series(pd.Categorical.from_codes(codes, dtype=categories), index=score.index)


class Registry(Mapping[str, Instrument]):
    """Read-only mapping of instrument key to `Instrument`, built-ins first, then custom ones."""

    def __init__(self, instruments: Mapping[str, Instrument], builtin_keys: frozenset[str]):
        self._instruments = dict(instruments)
        self.builtin_keys = frozenset(builtin_keys)

    @property
    def custom_keys(self) -> tuple[str, ...]:
        return tuple(key for key in self._instruments if key not in self.builtin_keys)

    def __getitem__(self, key: str) -> Instrument:
        try:
            return self._instruments[key]
        except KeyError:
            known = ", ".join(self._instruments)
            raise KeyError(f"unknown instrument {key!r} (known: {known})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._instruments)

    def __len__(self) -> int:
        return len(self._instruments)

    def __repr__(self) -> str:
        return f"Registry({', '.join(self._instruments)})"


def load_registry(custom: Mapping[str, Mapping] | None = None) -> Registry:
    """The built-in instruments plus the custom ones from the config's `instruments:` section.

    Raises ConfigError naming the key path (`instruments.<key>.<field>`) for a custom definition
    that breaks a rule: an unknown field, a missing required field, a value of the wrong type or
    out of range, a subscale or reverse-keyed item that does not exist, or a key that redefines a
    built-in instrument.
    """
    builtin = _builtin_definitions()
    instruments = {
        key: _build(key, spec, f"instruments.yaml: {key}", builtin=True)
        for key, spec in builtin.items()
    }
    if custom is None:
        custom = {}
    if not isinstance(custom, Mapping):
        raise ConfigError("instruments: must be a mapping of instrument key to its definition")
    for key, spec in custom.items():
        path = f"instruments.{key}"
        if not isinstance(key, str) or not _KEY_PATTERN.match(key):
            raise ConfigError(
                f"{path}: an instrument key must be lower-case letters, digits and underscores, "
                "starting with a letter (at most 32 characters)"
            )
        if key in instruments:
            raise ConfigError(
                f"{path}: redefines the built-in instrument {key!r}; give the custom instrument "
                "another key"
            )
        instruments[key] = _build(key, spec, path, builtin=False)
    return Registry(instruments, frozenset(builtin))


def _builtin_definitions() -> dict[str, Any]:
    text = resources.files("accord.core").joinpath("instruments.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


# ---------------------------------------------------------------------------------------------
# Validation of one definition


def _build(key: str, spec: Any, path: str, *, builtin: bool) -> Instrument:
    """One registry entry checked field by field; `path` names it in every error message."""
    _check_fields(spec, path)
    items = _item_fields(spec, path, builtin=builtin)
    return Instrument(
        key=key,
        **items,
        **_prorating_fields(spec, path, items["items"], items["subscales"]),
        **_threshold_fields(spec, path, items["total_min"], items["total_max"]),
        **_text_fields(key, spec, path),
    )


def _check_fields(spec: Any, path: str) -> None:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{path}: must be a mapping of field to value")
    unknown = sorted(str(name) for name in spec if name not in _FIELDS)
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}: unknown field (allowed: {', '.join(_FIELDS)})")
    for name in _REQUIRED:
        if name not in spec:
            raise ConfigError(f"{path}.{name}: required")


def _item_fields(spec: Mapping[str, Any], path: str, *, builtin: bool) -> dict[str, Any]:
    """The items, their range and step, the score rule and direction, subscales and reversed
    items, and the range of a total."""
    score = spec.get("score", "sum")
    allowed_scores = SCORE_RULES if builtin else ("sum", "mean")
    if score not in allowed_scores:
        raise ConfigError(f"{path}.score: must be one of {', '.join(allowed_scores)}")

    if score == "gas":
        if spec["items"] is not None:
            raise ConfigError(f"{path}.items: must be null for GAS (its items are goal ids)")
        items = None
        labels: tuple[str, ...] = ()
    else:
        items = _integer(spec["items"], f"{path}.items", minimum=1)
        labels = tuple(str(i) for i in range(1, items + 1))

    item_min = _number(spec["item_min"], f"{path}.item_min")
    item_max = _number(spec["item_max"], f"{path}.item_max")
    if not item_max > item_min:
        raise ConfigError(f"{path}.item_max: must be greater than item_min ({item_min:g})")
    item_step = _optional_number(spec.get("item_step"), f"{path}.item_step")
    if item_step is not None and not item_step > 0:
        raise ConfigError(f"{path}.item_step: must be greater than 0")

    higher_is = spec["higher_is"]
    if higher_is not in DIRECTIONS:
        raise ConfigError(f"{path}.higher_is: must be 'worse' or 'better'")

    total_min, total_max = _total_range(spec, path, score, items, item_min, item_max)
    return {
        "items": items,
        "item_labels": labels,
        "item_min": item_min,
        "item_max": item_max,
        "item_step": item_step,
        "total_min": total_min,
        "total_max": total_max,
        "score": score,
        "higher_is": higher_is,
        "subscales": MappingProxyType(
            _subscales(spec.get("subscales"), f"{path}.subscales", labels)
        ),
        "reverse_items": _item_list(
            spec.get("reverse_items") or [], f"{path}.reverse_items", labels
        ),
    }


def _prorating_fields(
    spec: Mapping[str, Any], path: str, items: int | None, subscales: Mapping[str, Any]
) -> dict[str, int]:
    """How many missing items a total (and a subscale) may still be prorated over."""
    limit = (items - 1) if items is not None else 0
    prorate = _integer(spec.get("prorate_max_missing", 0), f"{path}.prorate_max_missing", 0)
    if prorate > limit:
        raise ConfigError(
            f"{path}.prorate_max_missing: must be less than the number of items ({items})"
        )
    sub_prorate = _integer(
        spec.get("subscale_prorate_max_missing", 0), f"{path}.subscale_prorate_max_missing", 0
    )
    if subscales and sub_prorate >= min(len(v) for v in subscales.values()):
        raise ConfigError(
            f"{path}.subscale_prorate_max_missing: must be less than the smallest subscale's "
            "number of items"
        )
    return {"prorate_max_missing": prorate, "subscale_prorate_max_missing": sub_prorate}


def _threshold_fields(
    spec: Mapping[str, Any], path: str, total_min: float | None, total_max: float | None
) -> dict[str, Any]:
    """Cut-off, caseness, severity bands, reliable change, reliability and norms."""
    cutoff = _optional_number(spec.get("cutoff"), f"{path}.cutoff")
    cutoff_rule = spec.get("cutoff_rule", "clinical")
    if cutoff_rule not in CUTOFF_RULES:
        raise ConfigError(f"{path}.cutoff_rule: must be one of {', '.join(CUTOFF_RULES)}")
    caseness = _optional_number(spec.get("caseness"), f"{path}.caseness")
    for name, value in (("cutoff", cutoff), ("caseness", caseness)):
        if value is not None and total_min is not None and not total_min <= value <= total_max:
            raise ConfigError(
                f"{path}.{name}: must lie within the score range {total_min:g}..{total_max:g}"
            )
    reliable_change = _optional_number(spec.get("reliable_change"), f"{path}.reliable_change")
    if reliable_change is not None and reliable_change <= 0:
        raise ConfigError(f"{path}.reliable_change: must be positive")
    reliability = _optional_number(spec.get("reliability"), f"{path}.reliability")
    if reliability is not None and not 0 < reliability < 1:
        raise ConfigError(f"{path}.reliability: must lie strictly between 0 and 1")
    return {
        "cutoff": cutoff,
        "cutoff_rule": cutoff_rule,
        "caseness": caseness,
        "bands": _bands(spec.get("bands"), f"{path}.bands", total_min, total_max),
        "reliable_change": reliable_change,
        "reliability": reliability,
        "norms": _norms(spec.get("norms"), f"{path}.norms"),
    }


def _text_fields(key: str, spec: Mapping[str, Any], path: str) -> dict[str, str]:
    name = spec.get("name", key)
    source = spec.get("source", "custom instrument defined in the study's config")
    for field_name, value in (("name", name), ("source", source)):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{path}.{field_name}: must be non-empty text")
    return {"name": name.strip(), "source": " ".join(source.split())}


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{path}: must be a finite number")
    return float(value)


def _optional_number(value: Any, path: str) -> float | None:
    return None if value is None else _number(value, path)


def _integer(value: Any, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{path}: must be a whole number")
    if value < minimum:
        raise ConfigError(f"{path}: must be at least {minimum}")
    return value


def _total_range(
    spec: Mapping, path: str, score: str, items: int | None, item_min: float, item_max: float
) -> tuple[float | None, float | None]:
    if score == "sum":
        default = (items * item_min, items * item_max)
    elif score == "mean":
        default = (item_min, item_max)
    else:
        default = (None, None)
    low = spec["total_min"] if "total_min" in spec else default[0]
    high = spec["total_max"] if "total_max" in spec else default[1]
    if (low is None) != (high is None):
        raise ConfigError(f"{path}.total_min: total_min and total_max are both given or both null")
    if low is None:
        return None, None
    if score == "gas":
        raise ConfigError(f"{path}.total_min: GAS accepts no supplied total")
    low = _number(low, f"{path}.total_min")
    high = _number(high, f"{path}.total_max")
    if not high > low:
        raise ConfigError(f"{path}.total_max: must be greater than total_min ({low:g})")
    if default[0] is not None and (low, high) != default:
        # A supplied total is checked against this range: it must be the items' own range.
        rule = (
            f"{items} items x item_min {item_min:g} .. {items} items x item_max {item_max:g}"
            if score == "sum"
            else f"item_min {item_min:g} .. item_max {item_max:g} (a mean of items)"
        )
        raise ConfigError(
            f"{path}.total_max: the total range {low:g}..{high:g} does not match the items "
            f"({rule} = {default[0]:g}..{default[1]:g}); correct it or leave total_min and "
            "total_max out"
        )
    return low, high


def _item_list(values: Any, path: str, labels: tuple[str, ...]) -> tuple[str, ...]:
    """Item numbers (ints or their text) checked against the instrument's items."""
    if not isinstance(values, list | tuple):
        raise ConfigError(f"{path}: must be a list of item numbers")
    result = []
    for value in values:
        label = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
        if label not in labels:
            span = f"1..{len(labels)}" if labels else "none"
            raise ConfigError(f"{path}: item {value!r} does not exist (items are {span})")
        if label in result:
            raise ConfigError(f"{path}: item {value!r} is listed twice")
        result.append(label)
    return tuple(result)


def _subscales(value: Any, path: str, labels: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: must be a mapping of subscale name to item numbers")
    result = {}
    for name, items in value.items():
        sub_path = f"{path}.{name}"
        if not isinstance(name, str) or not _KEY_PATTERN.match(name):
            raise ConfigError(
                f"{sub_path}: a subscale name must be lower-case letters, digits and underscores"
            )
        if name in RESERVED_SCALES:
            raise ConfigError(f"{sub_path}: {name!r} is reserved for the instrument's own score")
        members = _item_list(items, sub_path, labels)
        if not members:
            raise ConfigError(f"{sub_path}: needs at least one item")
        result[name] = members
    return result


def _bands(
    value: Any, path: str, total_min: float | None, total_max: float | None
) -> tuple[tuple[str, float, float], ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"{path}: must be a list of [label, low, high]")
    result: list[tuple[str, float, float]] = []
    for i, band in enumerate(value):
        band_path = f"{path}[{i}]"
        if not isinstance(band, list | tuple) or len(band) != 3:
            raise ConfigError(f"{band_path}: must be [label, low, high]")
        label, low, high = band
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f"{band_path}: the label must be non-empty text")
        low = _number(low, band_path)
        high = _number(high, band_path)
        if high < low:
            raise ConfigError(f"{band_path}: high must not be below low")
        if result and low <= result[-1][2]:
            raise ConfigError(f"{band_path}: bands must ascend without overlapping")
        if total_min is not None and (low < total_min or high > total_max):
            raise ConfigError(
                f"{band_path}: must lie within the score range {total_min:g}..{total_max:g}"
            )
        result.append((label.strip(), low, high))
    return tuple(result)


def _norms(value: Any, path: str) -> Mapping[str, Mapping[str, float]] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{path}: must map clinical/functional to {{mean, sd}}")
    result = {}
    for group, stats in value.items():
        group_path = f"{path}.{group}"
        if group not in NORM_GROUPS:
            raise ConfigError(f"{group_path}: unknown norm group (allowed: clinical, functional)")
        if not isinstance(stats, Mapping) or set(stats) != {"mean", "sd"}:
            raise ConfigError(f"{group_path}: must give exactly mean and sd")
        mean = _number(stats["mean"], f"{group_path}.mean")
        sd = _number(stats["sd"], f"{group_path}.sd")
        if sd <= 0:
            raise ConfigError(f"{group_path}.sd: must be positive")
        result[group] = MappingProxyType({"mean": mean, "sd": sd})
    return MappingProxyType(result)


BUILTIN_KEYS: tuple[str, ...] = tuple(_builtin_definitions())
