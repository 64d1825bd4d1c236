"""Labels: the words the report prints for a measure, instrument, model or model term, so that
no raw variable name (``joint_goal_share``, ``phq9_recovery``, ``acme``) reaches a table or a
sentence.

A label comes, in order, from the config's ``labels:`` mapping (name -> label; any measure,
instrument, model id or term), from the built-in labels below, from the instrument registry
(``phq9`` -> "PHQ-9"; a measure ``<instrument>_<measure>`` -> "PHQ-9 recovery"), and else from
the name itself with its underscores turned into spaces. A model term joins the labels of its
parts: ``time:joint_goal_share`` -> "Time × Joint goal-setting share".

The labels in force while a report is built are set once by `using_labels`; `label` and
`term_label` read them, so every section writes the same words.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

TIMES = "\u00d7"

#: Short names of the built-in instruments, as the literature writes them.
INSTRUMENT_LABELS: Mapping[str, str] = {
    "phq9": "PHQ-9",
    "gad7": "GAD-7",
    "core10": "CORE-10",
    "ors": "ORS",
    "srs": "SRS",
    "wai_sr": "WAI-SR",
    "gas": "GAS",
}

#: Exposures, client measures and model terms whose label is not their name in words.
BUILT_IN: Mapping[str, str] = {
    "Intercept": "Intercept",
    "time": "Time",
    "joint_goal_share": "Joint goal-setting share",
    "goal_alliance_client": "Goal alliance (client-rated)",
    "goal_consensus": "Goal divergence (client vs therapist)",
    "goal_agreement": "Goal agreement",
    "smart_quality": "Goal SMART quality",
    "alliance": "Alliance",
    "early_alliance": "Early alliance",
    "attendance_rate": "Attendance rate",
    "sessions_attended": "Sessions attended",
    "sessions_to_dropout": "Sessions to dropout",
    "dropout": "Dropout",
    "arm": "Arm",
    "therapist": "Therapist",
    "intake_centred": "Intake score (centred)",
    "acme": "Indirect association (ACME)",
    "ade": "Direct association (ADE)",
    "total_effect": "Total association",
    "proportion_mediated": "Proportion mediated",
    "icc_therapist": "ICC, therapist",
    "icc_client": "ICC, client",
    "set_by": "Set by",
    "goal_review": "Goal review",
    "gas_level": "GAS level",
    "achieved": "Goal achieved",
    "back_on_track": "Back on track",
    "reviewed_after_flag": "Reviewed after the flag",
}

#: A client measure's suffix after its instrument key (`accord.measures.change`,
#: `accord.measures.build`).
MEASURE_SUFFIXES: Mapping[str, str] = {
    "first": "at intake",
    "post": "at end of treatment",
    "last": "at last assessment",
    "change": "change",
    "change_post": "change to end of treatment",
    "change_last": "change to last assessment",
    "rci": "reliable change index",
    "reliable_improvement": "reliable improvement",
    "reliable_deterioration": "reliable deterioration",
    "clinical_first": "in the clinical range at intake",
    "clinical_post": "in the clinical range at end of treatment",
    "category": "change category",
    "recovery": "recovery",
    "response": "response",
    "remission": "remission",
    "back_on_track": "back on track",
}


@dataclass(frozen=True)
class Labels:
    """The labels in force: `names` from the config's ``labels:``, `instruments` the short
    names of every instrument (built-in and the config's own)."""

    names: Mapping[str, str] = field(default_factory=dict)
    instruments: Mapping[str, str] = field(default_factory=lambda: dict(INSTRUMENT_LABELS))


#: Words of a name written in capitals or in full.
ABBREVIATIONS: Mapping[str, str] = {
    "lrt": "LRT",
    "icc": "ICC",
    "rci": "RCI",
    "ancova": "ANCOVA",
    "mice": "MICE",
    "locf": "LOCF",
    "cox": "Cox",
    "cif": "cumulative incidence",
    "km": "Kaplan-Meier",
    "nhs": "NHS",
    "smart": "SMART",
    "gas": "GAS",
}

_LABELS: ContextVar[Labels | None] = ContextVar("accord_report_labels", default=None)
_NAME_IN_TEXT = re.compile(r"(?<![\w.])[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*(?:\[[^\]]*\])?")
_TERM_PART = re.compile(r"^(?P<name>[^\[\]]+)\[(?:T\.)?(?P<level>[^\]]+)\]$")


def _current() -> Labels:
    return _LABELS.get() or Labels()


@contextmanager
def using_labels(config: Mapping[str, Any]) -> Iterator[Labels]:
    """The labels of `config` (its ``labels:`` and the names of its own instruments) in force
    for the report built inside the block."""
    labels = config_labels(config)
    token = _LABELS.set(labels)
    try:
        yield labels
    finally:
        _LABELS.reset(token)


def config_labels(config: Mapping[str, Any]) -> Labels:
    """The labels a config sets: its ``labels:`` entries, and its own instruments, known by
    their key in capitals ("hads_d" -> "HADS-D") unless ``labels:`` names them."""
    names = {str(k): str(v) for k, v in (config.get("labels") or {}).items()}
    instruments = dict(INSTRUMENT_LABELS)
    for key in config.get("instruments") or {}:
        instruments.setdefault(str(key), str(key).upper().replace("_", "-"))
    instruments.update({k: v for k, v in names.items() if k in instruments})
    return Labels(names=names, instruments=instruments)


def label(name: Any) -> str:
    """The label of a measure, instrument, exposure or model id (see the module docstring)."""
    name = str(name)
    labels = _current()
    if name in labels.names:
        return labels.names[name]
    if name in BUILT_IN:
        return BUILT_IN[name]
    if name in labels.instruments:
        return labels.instruments[name]
    measure = _measure_label(name, labels.instruments)
    return measure if measure is not None else words(name)


def term_label(term: Any) -> str:
    """A model term: its parts' labels joined by "×" ("time:x" -> "Time × X"), a factor level
    after a colon ("set_by[joint]" -> "Set by: joint"), an LRT row as the terms it drops."""
    term = str(term)
    names = _current().names
    if term in names:
        return names[term]
    if term.startswith("LRT: "):
        return f"LRT, dropping {term_label(term.removeprefix('LRT: '))}"
    return f" {TIMES} ".join(_part_label(part) for part in term.split(":"))


def in_words(text: str) -> str:
    """Free text (a formula, a model's reading or warning) with every variable name in it
    replaced by its label: a name with an underscore, an instrument key or a name the config
    labels ("phq9_post ~ joint_goal_share" -> "PHQ-9 at end of treatment ~ Joint
    goal-setting share"); plain words ("therapist", "time") stay as they are."""
    known = {*_current().instruments, *_current().names}

    def swap(match: re.Match) -> str:
        name = match.group(0)
        base = name.split("[", 1)[0]
        if "_" in base or base in known:
            return _part_label(name)
        return name

    return _NAME_IN_TEXT.sub(swap, str(text))


def words(name: str) -> str:
    """A name in words: an instrument key by its label, an abbreviation in capitals,
    underscores as spaces, the first letter in capitals ("growth_gad7" -> "Growth GAD-7")."""
    text = str(name)
    for key, short in sorted(_current().instruments.items(), key=lambda kv: -len(kv[0])):
        text = re.sub(rf"(?<![a-z0-9]){re.escape(key)}(?![a-z0-9])", short, text)
    tokens = [ABBREVIATIONS.get(t, t) for t in text.replace("_", " ").split()]
    text = " ".join(tokens)
    return text[:1].upper() + text[1:]


def _part_label(part: str) -> str:
    level = _TERM_PART.match(part)
    if level:
        return f"{label(level['name'])}: {level['level']}"
    return label(part)


def _measure_label(name: str, instruments: Mapping[str, str]) -> str | None:
    """ "phq9_recovery" -> "PHQ-9 recovery"; "wai_sr.bond" -> "WAI-SR bond"."""
    for key in sorted(instruments, key=len, reverse=True):
        if name.startswith(f"{key}_") or name.startswith(f"{key}."):
            rest = name[len(key) + 1 :]
            return f"{instruments[key]} {MEASURE_SUFFIXES.get(rest, words(rest).lower())}"
    return None
