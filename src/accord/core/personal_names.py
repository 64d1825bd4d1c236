"""Personal names in values: by shape and against lists of common given names and surnames.

A value holds a personal name when two neighbouring words read as one:

- a given name from the list followed by a surname from the list, in any case
  (``jane smith``, ``MARIA GARCIA``, ``jane_smith``);
- a given name from the list followed by a capitalised word (``Jane Goldberg``), the shape of
  "Firstname Lastname" even for a surname the list does not hold;
- a capitalised surname, a comma and a given name (``Goldberg, Jane``);
- a title and a capitalised word (``Dr Goldberg``, ``Mrs. Patel``);
- an initial and a surname from the list (``J. Smith``).

A single given name on its own (``Mark``, ``Hope``) is not judged a name: too many are ordinary
words, and names that are everyday words too (Summer, Max, Rose) count only beside a surname
from the list, both capitalised (``Summer Jones``, not ``Summer School``). Category columns
are protected against a lone name by their vocabulary instead (see
`accord.validate.categories`). The lists ship with the package (``accord/core/data/*.txt``).
"""

from __future__ import annotations

import functools
import itertools
import re
from importlib import resources

__all__ = ["looks_like_name"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "rev"})
# Words that follow a given name in ordinary labels (``Hope Group``, ``Grace Clinic``).
_LABEL_WORDS = _words(
    "group groups care therapy treatment arm clinic clinics centre center site control "
    "usual waitlist online team service services program programme study trial phase "
    "wave cohort condition intervention session sessions unit ward house hall street "
    "road project school term period dose garden patrol complete station valley ward avenue "
    "referral list order plan level stage step band score scale"
)
_MONTHS = _words(
    "january february march april may june july august september october november december"
)
# Given names and surnames that are also everyday words (steps_per_day, will_attend): in
# lower case they are read as words.
_COMMON_WORDS = _words(
    "per will may mark hope grace joy faith art bill chance guy pat sue ray don van del "
    "de la le von max rich bob jack frank earl page miles day week month year time care "
    "long short young small little brown green white black gray grey rose hill wood "
    "field ford bay lane dale park case price cash hunt king lord law love low rice ash "
    "star stone moon sun new old good best well last first self home house end head summer "
    "autumn winter spring dawn sandy holly ivy iris lily daisy heather hazel jade amber ruby "
    "pearl crystal destiny harmony melody sky river brook forest sunny storm honey candy "
    "cherry ginger misty august april june"
)
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_CAPITALISED = re.compile(r"[^\W\d_a-z][^\W\d_A-Z]+(?:['’-][^\W\d_][^\W\d_A-Z]*)*")
# what may stand between the two words of one name
_SPACE = re.compile(r"[\s_.-]+")
_COMMA = re.compile(r"\s*,\s*")


@functools.cache
def _names(resource: str) -> frozenset[str]:
    text = resources.files("accord.core").joinpath(f"data/{resource}").read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def given_names() -> frozenset[str]:
    """Common given names, lower case."""
    return _names("given_names.txt")


def surnames() -> frozenset[str]:
    """Common surnames, lower case."""
    return _names("surnames.txt")


def _capitalised(word: str) -> bool:
    return len(word) >= 2 and (_CAPITALISED.fullmatch(word) is not None or word.isupper())


def _pair_is_name(first: str, gap: str, second: str) -> bool:
    given, family = given_names(), surnames()
    a, b = first.casefold(), second.casefold()
    if _SPACE.fullmatch(gap):
        capitals = _capitalised(first) and _capitalised(second)
        everyday = a in _COMMON_WORDS  # Summer School, Max Dose: words before they are names
        # jane_smith; an everyday first word only when both are capitalised (Summer Jones)
        if a in given and b in family and b not in _COMMON_WORDS and (capitals or not everyday):
            return True
        # Jane Goldberg: a given name and a capitalised word that is not a label word
        if a in given and not everyday and capitals and " " in gap and b not in _LABEL_WORDS:
            return True
        # Goldberg Jane: surname first (neither word a label word, a month or an everyday word)
        plain = _LABEL_WORDS | _MONTHS | _COMMON_WORDS
        if capitals and " " in gap and b in given and b not in plain and a not in plain:
            return True
        if a.rstrip(".") in _TITLES and _capitalised(second) and b not in _TITLES:
            return True
        if len(first) == 1 and first.isupper() and b in family and _capitalised(second):
            return True
    elif _COMMA.fullmatch(gap):
        # Goldberg, Jane
        return _capitalised(first) and _capitalised(second) and b in given and a not in _LABEL_WORDS
    return False


def looks_like_name(value: str) -> bool:
    """True when ``value`` holds what reads as a person's name (see the module docstring)."""
    words = list(_WORD.finditer(value))
    for left, right in itertools.pairwise(words):
        gap = value[left.end() : right.start()]
        if len(gap) > 3 or not gap:
            continue
        if _pair_is_name(left.group(), gap, right.group()):
            return True
    return False
