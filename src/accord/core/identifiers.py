"""What an identifier looks like, and how to keep one out of every message.

The identifier kinds of the HIPAA Safe Harbor method (45 CFR 164.514(b)(2); section 1 of the
privacy spec) as compiled patterns over text (phone, SSN, dates and partial dates, ZIP codes,
URLs, IP addresses, e-mail, street addresses, prefixed record numbers, personal names), the
rules that read a column *name* as suggesting an identifier, the pseudonym shapes an ID may
take, and the withholding of a header or file name that itself looks identifying. The guard
(`accord.validate.guard`) scans tables with these; ingest uses the withholding to word its
messages. Findings carry the table, file, column, kind and a row count, never a cell value.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from accord.core.personal_names import looks_like_name

DEFAULT_QUASI_IDENTIFIERS: tuple[str, ...] = ("age_band", "age", "gender", "site_id", "intake_year")

#: kind -> short human label, as shown in messages.
KIND_LABELS: dict[str, str] = {
    "column_name": "column name suggests",
    "header_value": "the column name itself looks like a data value (is the header row missing?)",
    "email": "e-mail addresses",
    "phone": "phone numbers",
    "ssn": "SSN-shaped numbers (###-##-#### or 9 digits)",
    "date": "full calendar dates",
    "zip": "ZIP-code-shaped text (5 digits or ZIP+4)",
    "url": "URLs",
    "ip_address": "IP addresses",
    "partial_date": "partial dates (month and year, or day and month)",
    "address": "street addresses or postcodes",
    "record_number": "record numbers with a prefix (MRN, NHS number, account number)",
    "name": "personal names",
    "age_90_plus": "ages of 90 or more (Safe Harbor allows only a single '90+' group)",
    "id_shape": "IDs shaped like an SSN, a phone number or a long account-like digit string",
    "derived_id": "derived ID: client IDs that contain the value of column",
}


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Finding:
    """One suspected identifier in one column. Never holds a cell value.

    ``rows`` is the number of rows that hit (0 for a finding about the column's name).
    ``detail`` qualifies the kind with text taken from column names only: the matched
    name token for ``column_name``, the other column for ``derived_id``.
    """

    table: str
    file: str
    column: str
    kind: str
    rows: int
    detail: str = ""

    @property
    def label(self) -> str:
        base = KIND_LABELS.get(self.kind, self.kind)
        if self.kind == "column_name":
            return f"{base} {self.detail}"
        if self.kind == "derived_id":
            return f"{base} '{self.detail}'"
        return base

    def describe(self) -> str:
        text = f"{self.file}, {column_phrase(self.column)}: {self.label}"
        if self.kind in ("column_name", "header_value"):
            return text
        if self.rows == 0:
            return f"{text} in unused category levels (0 rows)"
        return f"{text} in {_plural(self.rows, 'row')}"

    def to_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "file": self.file,
            "column": self.column,
            "kind": self.kind,
            "label": self.label,
            "rows": self.rows,
            "detail": self.detail,
            "message": self.describe(),
        }


@dataclass(frozen=True)
class QuasiIdentifierWarning:
    """Combinations of quasi-identifiers shared by fewer than ``k`` clients (counts only)."""

    table: str
    columns: tuple[str, ...]
    combinations: int
    clients: int
    k: int

    def describe(self) -> str:
        combos = _plural(self.combinations, "combination")
        verb = "is" if self.combinations == 1 else "are"
        return (
            f"{self.table}: {combos} of ({', '.join(self.columns)}) {verb} shared by fewer "
            f"than {self.k} clients ({_plural(self.clients, 'client')} in all); consider "
            "coarser bands or dropping a column before sharing any client-level output"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "columns": list(self.columns),
            "combinations": self.combinations,
            "clients": self.clients,
            "k": self.k,
            "message": self.describe(),
        }


@dataclass
class GuardReport:
    """Everything the guard found: findings stop a run, warnings do not."""

    findings: list[Finding] = field(default_factory=list)
    warnings: list[QuasiIdentifierWarning] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is nothing that stops the run."""
        return not self.findings

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary: names, kinds and counts, never values."""
        return {
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
            "warnings": [w.to_dict() for w in self.warnings],
        }

    def message(self) -> str:
        """The multi-line message raised by :func:`check_identifiers`."""
        files = sorted({f.file for f in self.findings})
        head = (
            f"Suspected identifiers in the input: {_plural(len(self.findings), 'finding')} "
            f"in {', '.join(files)}. The run stops before anything is written."
        )
        lines = [head, *(f"  {f.describe()}" for f in self.findings)]
        named = [f for f in self.findings if not is_withheld(f.column)]
        if any(is_withheld(f.column) for f in self.findings):
            lines.append(
                "A column whose header is withheld looks like a data row: check that the "
                "export has its header row, or rename the column."
            )
        if named:
            entries = ", ".join(dict.fromkeys(f"{f.table}.{f.column}" for f in named))
            lines.append(
                "To proceed, remove the identifying values (or the column) from the export; "
                "or, if a privacy review finds the column harmless (a pseudonym scheme, say), "
                "acknowledge it in the study's config with exactly: "
                f"acknowledged_columns: [{entries}]"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return (
            f"GuardReport: {_plural(len(self.findings), 'finding')}, "
            f"{_plural(len(self.warnings), 'warning')}"
        )


_WITHHELD = " (header withheld)"


def is_withheld(column: str) -> bool:
    """True for a column shown by position because its header looks identifying."""
    return column.startswith("column ") and column.endswith(_WITHHELD)


def column_phrase(column: str) -> str:
    """How a column is named in a sentence: ``column 'age'`` or ``column 7 (header withheld)``."""
    return column if is_withheld(column) else f"column '{column}'"


def looks_identifying(text: str) -> bool:
    """True when a header or file name reads as a data value: a name, e-mail, date, number..."""
    text = str(text)
    spaced = re.sub(r"[_.]+", " ", text)
    return any(pattern.hits(text) or pattern.hits(spaced) for pattern in PATTERNS.values())


def shown_column(column: object, position: int) -> str:
    """A column's header as shown in messages: the header, or its position if identifying."""
    text = str(column)
    return f"column {position}{_WITHHELD}" if looks_identifying(text) else text


def shown_file(name: str, table: str) -> str:
    """A source file's name as shown in messages and outputs; withheld if identifying."""
    stem = re.sub(r"\.(csv|tsv|txt|parquet|sav|xlsx?|json)(\.gz)?$", "", str(name), flags=re.I)
    if looks_identifying(stem):
        return f"the {table} file (name withheld)"
    return str(name)


_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_SEGMENTS = re.compile(r"(,\s*|:\s+|;\s*)")


def withhold_text(text: str) -> str:
    """A message with every part that looks identifying replaced by ``(withheld)``.

    Quoted parts are judged whole (a header, a label); the rest is searched for the value
    kinds (an e-mail address, a date...), and each comma-separated part for a personal name.
    """

    def quoted(m: re.Match[str]) -> str:
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        return "'(withheld)'" if looks_identifying(inner) else m.group(0)

    def spans(pattern: _Pattern) -> Callable[[re.Match[str]], str]:
        def replace(m: re.Match[str]) -> str:
            kept = pattern.valid is not None and not pattern.valid(m.group())
            return m.group() if kept else "(withheld)"

        return replace

    text = _QUOTED.sub(quoted, str(text))
    for kind, pattern in PATTERNS.items():
        if kind != "name":
            text = pattern.regex.sub(spans(pattern), text)
    parts = _SEGMENTS.split(text)
    return "".join("(withheld)" if looks_like_name(part) else part for part in parts)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# --------------------------------------------------------------------------- column names

# Columns of the data contract. Their names are known-safe; their values are still scanned.
CONTRACT_ID_COLUMNS = frozenset({"client_id", "therapist_id", "site_id", "goal_id"})
# Columns that hold pseudonyms (a GAS rating's item is its goal_id): judged as whole IDs.
PSEUDONYM_COLUMNS = CONTRACT_ID_COLUMNS | {"item"}
# Contract columns that hold numbers; if such a column was read as text and every value is a
# plain number, it is treated as numeric (no ZIP/SSN patterns on session numbers).
CONTRACT_NUMERIC_COLUMNS = frozenset(
    {
        "intake_year",
        "age",
        "session_number",
        "day",
        "duration_min",
        "homework_completion",
        "value",
        "set_session",
        "client_importance",
        "therapist_importance",
        "revised_session",
    }
)

# Column-name tokens that name an identifier, by Safe Harbor category. A token matches on its
# own; a pair matches two adjacent tokens (``member_id``, ``social_security``), so the bare
# words ``member``, ``record`` or ``device`` in a covariate's name do not.
_ID_WORDS = "id ids number numbers no num nr nbr"


def _pairs(heads: str, tails: str = _ID_WORDS) -> list[tuple[str, str]]:
    return [(h, t) for h in heads.split() for t in tails.split()]


_NAME_RULES: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "a personal name",
        "name names firstname lastname surname surnames fullname forename forenames "
        "givenname middlename maidenname nickname initials",
        [],
    ),
    (
        "an address or place",
        "address addresses addr street city town county zip zipcode zipcodes postcode "
        "postal geocode latitude longitude gps",
        [("post", "code")],
    ),
    ("a birth date", "dob birth birthdate birthday birthdays birthplace born", []),
    ("a date", "date dates datetime timestamp", []),
    (
        "a phone or fax number",
        "phone phones telephone tel mobile cell cellphone fax phonenumber",
        [],
    ),
    ("an e-mail address", "email emails mail emailaddress", []),
    ("a Social Security number", "ssn", [("social", "security")]),
    (
        "a medical record number",
        "mrn nhs nhsnumber medicalrecord",
        [
            ("medical", "record"),
            *_pairs("patient hospital chart"),
            *_pairs("record", "number numbers no num nr nbr"),
        ],
    ),
    (
        "a health plan or account number",
        "beneficiary account accounts",
        [("health", "plan"), *_pairs("insurance member policy plan")],
    ),
    ("a licence or certificate number", "license licence certificate passport", []),
    ("a vehicle identifier", "plate vin", [*_pairs("vehicle"), ("license", "plate")]),
    ("a device identifier", "serial imei udi", _pairs("device")),
    ("a web address", "url urls uri website webpage homepage", []),
    ("an IP address", "ip ipaddress ipv4 ipv6", []),
    (
        "a photo or biometric",
        "photo photos photograph image images picture face biometric biometrics "
        "fingerprint voiceprint",
        [],
    ),
    (
        "free text",
        "note notes comment comments freetext description descriptions text remark "
        "remarks memo narrative transcript verbatim",
        [],
    ),
]
_NAME_TOKENS = {tok: cat for cat, toks, _ in _NAME_RULES for tok in toks.split()}
_NAME_PAIRS = {pair: cat for cat, _, pairs in _NAME_RULES for pair in pairs}

# 'name' after these is the name of a thing, not of a person.
_THING_NAME_PREFIXES = frozenset(
    {"instrument", "scale", "measure", "questionnaire", "item", "variable", "file", "study"}
    | {"arm", "condition", "group", "medication", "drug"}
)

_TOKEN_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def name_tokens(column: str) -> list[str]:
    """Split a column name on ``_``, ``-``, spaces, camelCase and digits; lower-case tokens."""
    return [t.lower() for t in _TOKEN_RE.findall(str(column))]


def name_matches(column: str) -> list[str]:
    """Categories (with the matching tokens) that a column name suggests, in order."""
    tokens = name_tokens(column)
    hits: dict[str, list[str]] = {}
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1] if i else ""
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if (tok, nxt) in _NAME_PAIRS:
            category, label = _NAME_PAIRS[(tok, nxt)], f"{tok} {nxt}"
        elif tok in _NAME_TOKENS:
            if tok in ("name", "names") and prev in _THING_NAME_PREFIXES:
                continue
            category, label = _NAME_TOKENS[tok], tok
        else:
            continue
        hits.setdefault(category, [])
        if label not in hits[category]:
            hits[category].append(label)
    return [f"{category} ({', '.join(labels)})" for category, labels in hits.items()]


# --------------------------------------------------------------------------- value patterns

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MON_NUM = r"(?:0?[1-9]|1[0-2])"
_YEAR4 = r"(?:1[89]|2[01])\d{2}"


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def _phone_ok(m: str) -> bool:
    n = _digits(m)
    if m.startswith("+"):
        return 8 <= n <= 15
    if m.startswith("0"):
        return 10 <= n <= 11
    return 7 <= n <= 11


def _numeric_date_ok(m: str) -> bool:
    a, b, year = (int(p) for p in re.split(r"[/.-]", m))
    if len(str(year)) == 4 and not 1800 <= year <= 2199:
        return False
    return 1 <= a <= 31 and 1 <= b <= 31 and min(a, b) <= 12


def _ipv6_ok(m: str) -> bool:
    try:
        ipaddress.IPv6Address(m)
    except ValueError:
        return False
    return any(ch not in ":." for ch in m)


def _ip_ok(m: str) -> bool:
    return ":" not in m or _ipv6_ok(m)


_NUMERIC_DATE_PARTS = re.compile(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}")


def _date_ok(m: str) -> bool:
    # Only the D/M/Y and M/D/Y forms need a range check; the others are range-checked by regex.
    return _numeric_date_ok(m) if _NUMERIC_DATE_PARTS.fullmatch(m) else True


@dataclass(frozen=True)
class _Pattern:
    """One kind of identifier value.

    ``prefilter`` is a loose RE2 pattern (no look-arounds) that every hit also matches; it
    runs vectorised over all unique values in pyarrow, and only the few candidates it keeps
    are checked with the exact ``regex`` (and ``valid`` on each match) in Python.
    """

    kind: str
    regex: re.Pattern[str]
    prefilter: str
    valid: Callable[[str], bool] | None = None

    def hits(self, value: str) -> bool:
        if self.valid is None:
            return self.regex.search(value) is not None
        return any(self.valid(m.group()) for m in self.regex.finditer(value))


def _alt(*parts: str) -> str:
    return "|".join(f"(?:{p})" for p in parts)


_MONTH3 = "(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"

# Boundaries: a phone number must not be glued to other digits or words.
_PB = r"(?<![\w+.-])"
_PE = r"(?!\w|[.-]\d)"

_PHONE = (
    _PB
    + "(?:"
    + _alt(
        # international: +44 20 7946 0958, +1 (555) 867-5309, +33612345678
        r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{1,4}){1,5}",
        # North American: (555) 867-5309, 555-867-5309, 555.867.5309, 1-555-867-5309
        r"(?:1[ .-]?)?\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}",
        r"(?:1-)?\d{3}-\d{3}-\d{4}",
        r"(?:1\.)?\d{3}\.\d{3}\.\d{4}",
        r"(?:1 )?\d{3} \d{3} \d{4}",
        # UK national: 020 7946 0958, 07700 900123, 01632 960001
        r"0\d{2,4}[ -]\d{3,6}(?:[ -]\d{3,4})?",
        # bare digits: UK 07700900123, US 5558675309 or 15558675309
        r"0\d{9,10}",
        r"1?[2-9]\d{9}",
    )
    + ")"
    + _PE
    # a local number on its own: 867-5309
    + r"|^\s*[2-9]\d{2}-\d{4}\s*$"
)

_SSN = _alt(
    r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])",
    r"(?<![\d-])(?<!\d )\d{3} \d{2} \d{4}(?! ?\d)",
    r"(?<![\d.])\d{9}(?!\d|\.\d)",
)

_DATE = _alt(
    # ISO and year-first: 2024-03-05, 2024/3/5, 2024.03.05, 2024-03-05T10:00
    *(rf"(?<!\d){_YEAR4}{re.escape(sep)}{_MON_NUM}{re.escape(sep)}{_DAY}(?!\d)" for sep in "-/."),
    # compact: 20240305
    rf"(?<![\d.]){_YEAR4}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d|\.\d)",
    # 05/03/2024, 3/5/24, 05-03-2024, 05.03.2024
    r"(?<![\d/.-])\d{1,2}/\d{1,2}/(?:\d{4}|\d{2})(?![\d/]|[.-]\d)",
    r"(?<![\d/.-])\d{1,2}-\d{1,2}-(?:\d{4}|\d{2})(?![\d-]|[./]\d)",
    r"(?<![\d/.-])\d{1,2}\.\d{1,2}\.\d{4}(?![\d.]|[/-]\d)",
    # 5 March 2024, 5th of March 2024, 05-Mar-24, 12MAR2024
    rf"(?i:(?<![a-z\d]){_DAY}(?:st|nd|rd|th)?(?:[ /-]|\s+of\s+)?{_MONTH}\.?(?![a-z])"
    rf"[ ,/-]*(?:\d{{4}}|\d{{2}})(?![a-z\d]))",
    # March 5, 2024; Mar 5 2024
    rf"(?i:(?<![a-z]){_MONTH}\.?(?![a-z])\s*{_DAY}(?:st|nd|rd|th)?,?\s*\d{{4}}(?!\d))",
)

_IP = _alt(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
    r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\d|\.\d)",
    r"(?i:(?<![\w:.])(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?"
    r"(?![\w:]))",
)


_PARTIAL_DATE = _alt(
    # April 2023, Apr-23, apr '23, May 5, March 2nd
    rf"(?i:(?<![a-z]){_MONTH}\.?(?![a-z])[ ,/'-]*\d{{1,4}}(?:st|nd|rd|th)?(?![\d]|[a-z]{{2}}))",
    # 17 April, 17-Apr, 17th of April
    rf"(?i:(?<![a-z\d]){_DAY}(?:st|nd|rd|th)?(?:[ /-]|\s+of\s+)?{_MONTH}(?![a-z]))",
    # 2023-04, 2023/4
    rf"(?<![\d/.-]){_YEAR4}[-/.](?:0?[1-9]|1[0-2])(?![\d]|[-/.]\d)",
    # 04/2023
    rf"(?<![\d/.-])(?:0?[1-9]|1[0-2])[/.-]{_YEAR4}(?![\d]|[-/.]\d)",
    # 17/04, 03/12 (a two-digit month; 3/4 reads as a fraction)
    r"(?<![\d/.-])(?:0?[1-9]|[12]\d|3[01])/(?:0[1-9]|1[0-2])(?![\d]|[-/.]\d)",
)

_STREET_TYPES = (
    "street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|court|ct|place|pl|terrace"
    "|way|close|crescent|square|sq|highway|hwy|parkway|pkwy|gardens|grove|row|mews"
)
_ADDRESS = _alt(
    # 12 Baker Street, 1600 Pennsylvania Ave
    rf"(?i:(?<![a-z\d])\d{{1,5}}[a-z]?,?\s+(?:[a-z'.-]+\s+){{1,4}}(?:{_STREET_TYPES})\.?(?![a-z]))",
    r"(?i:(?<![a-z])p\.?\s?o\.?\s+box\s+\d+)",
    # UK postcodes: SW1A 1AA, M1 1AE
    r"(?<![A-Za-z\d])[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}(?![A-Za-z\d])",
)

_RECORD_NUMBER = (
    r"(?i:(?<![a-z])(?:(?:mrn|nhs|chi|ssn|nin|upi)\s*(?:no\.?|number|num|nr|#|id)?"
    r"|(?:medical\s+record|hospital|record|chart|account|acct|policy|member|insurance|patient)"
    r"\s*(?:no\.?|number|num|nr|#|id))\s*[:#.]?\s*\d[\d -]{3,}\d)"
)


_LOWER_MAY = re.compile(r"(?<![A-Za-z])may(?![a-z])")


def _partial_date_ok(m: str) -> bool:
    # "at 5 may go": a lower-case "may" is a month only beside a year
    return _LOWER_MAY.search(m) is None or re.search(r"\d{4}|'\d\d", m) is not None


def _ascii(source: str) -> re.Pattern[str]:
    # ASCII classes, as in RE2, so the vectorised and the plain-Python paths agree.
    return re.compile(source, re.ASCII)


PATTERNS: dict[str, _Pattern] = {
    p.kind: p
    for p in [
        _Pattern(
            "email",
            _ascii(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
            r"@[A-Za-z0-9-]+\.",
        ),
        # prefilter: seven or more digits, at most three other characters apart
        _Pattern("phone", _ascii(_PHONE), r"(?:\d[^0-9]{0,3}){6}\d", _phone_ok),
        _Pattern("ssn", _ascii(_SSN), r"\d{3}[ -]?\d{2}[ -]?\d{4}"),
        _Pattern(
            "date",
            _ascii(_DATE),
            r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{8}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2}"
            rf"|(?i:\d.*{_MONTH3}|{_MONTH3}.*\d)",
            _date_ok,
        ),
        _Pattern(
            "zip",
            _ascii(_alt(r"^\s*\d{5}(?:-\d{4})?\s*$", r"(?<![\d-])\d{5}-\d{4}(?![\d-])")),
            r"^\s*\d{5}\s*$|\d{5}-\d{4}",
        ),
        _Pattern(
            "url",
            _ascii(r"(?i:\b(?:https?|ftp)://[^\s/$.?#]\S*|\bwww\.[a-z0-9-]+(?:\.[a-z0-9-]+)+)"),
            r"(?i:(?:https?|ftp)://|www\.)",
        ),
        _Pattern(
            "ip_address",
            _ascii(_IP),
            r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]*:[0-9A-Fa-f]*:",
            _ip_ok,
        ),
        _Pattern(
            "partial_date",
            _ascii(_PARTIAL_DATE),
            rf"(?i:{_MONTH3})|\d{{4}}[-/.]\d|\d[/.-]\d{{4}}|\d/\d\d",
            _partial_date_ok,
        ),
        _Pattern(
            "address",
            _ascii(_ADDRESS),
            r"(?i:\d[a-z]?,?\s+\S+\s|box\s+\d)|[A-Z]\d[A-Z\d]? \d[A-Z]{2}",
        ),
        _Pattern(
            "record_number",
            _ascii(_RECORD_NUMBER),
            r"(?i:(?:mrn|nhs|chi|ssn|nin|upi|record|hospital|chart|acc|policy|member|insurance"
            r"|patient).{0,16}\d)",
        ),
        # any value with two words; the name lists decide
        _Pattern(
            "name", re.compile(r"(?s).+"), r"[^\s_.,-][\s_.,-]{1,3}[^\s_.,-]", looks_like_name
        ),
    ]
}

# An ID is refused for its shape only when the whole value, or one delimited part of it, is
# an SSN (123-45-6789, 123456789), a phone number or an account-like run of 12+ digits.
ID_PREFILTER = r"\d{3}[^0-9]{0,2}\d{2}"
_ID_SSN = re.compile(r"\d{3}([- ]?)\d{2}\1\d{4}")
_ID_PHONE_DIGITS = re.compile(r"0\d{9,10}|1?[2-9]\d{9}")
_ID_LONG = re.compile(r"\d{12,}")
# UUIDs (hyphenated or not) and other hex tokens: their letters and digits mean nothing
HEX_ID = re.compile(r"[0-9a-f]{8}(?:-?[0-9a-f]{4}){3}-?[0-9a-f]{12}|[0-9a-f]{16,}", re.I)
_ID_DELIMITERS = re.compile(r"[-_./ ]+")


def id_shaped(value: str) -> bool:
    whole = value.strip()
    if _ID_SSN.fullmatch(whole) or _ID_PHONE_DIGITS.fullmatch(whole) or _ID_LONG.fullmatch(whole):
        return True
    phone = PATTERNS["phone"].regex.fullmatch(whole)
    if phone is not None and _phone_ok(phone.group()):
        return True
    parts = [p for p in _ID_DELIMITERS.split(whole) if p]
    if len(parts) < 2:
        return False
    if any(_ID_SSN.fullmatch(p) or _ID_PHONE_DIGITS.fullmatch(p) for p in parts):
        return True
    widths = [len(p) if p.isdigit() else 0 for p in parts]
    runs = (tuple(widths[i : i + 3]) for i in range(len(widths) - 2))
    return any(run in ((3, 2, 4), (3, 3, 4)) for run in runs)


LEADING_ZERO = re.compile(r"\s*0\d")
PLAIN_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")


# Below this many unique values, Python's re beats setting up a vectorised pyarrow call.
_VECTORISE_FROM = 500


@functools.cache
def _compiled(prefilter: str) -> re.Pattern[str]:
    return _ascii(prefilter)


def candidate_rows(values: Sequence[str], prefilter: str, arr: pa.Array | None) -> list[int]:
    """Indices of the values that match ``prefilter``: RE2 over ``arr`` when given."""
    if arr is None:
        search = _compiled(prefilter).search
        return [i for i, v in enumerate(values) if search(v) is not None]
    hit = pc.match_substring_regex(arr, prefilter)
    return np.flatnonzero(hit.fill_null(False).to_numpy(zero_copy_only=False)).tolist()


def arrow_strings(values: Sequence[str]) -> pa.Array | None:
    if len(values) < _VECTORISE_FROM:
        return None
    return pa.array(values, type=pa.large_string())


def scan_values(values: Sequence[str], kinds: Collection[str]) -> dict[str, np.ndarray]:
    """For each kind, a boolean mask over ``values`` of the values that hit it."""
    masks: dict[str, np.ndarray] = {}
    arr = arrow_strings(values)
    for kind in kinds:
        pattern = PATTERNS[kind]
        mask = np.zeros(len(values), dtype=bool)
        for i in candidate_rows(values, pattern.prefilter, arr):
            mask[i] = pattern.hits(values[i])
        if mask.any():
            masks[kind] = mask
    if "name" in masks:
        # a name inside an e-mail address or another hit is reported once, as that kind
        others = [m for k, m in masks.items() if k != "name"]
        masks["name"] = masks["name"] & ~np.logical_or.reduce(others) if others else masks["name"]
        if not masks["name"].any():
            del masks["name"]
    return masks


# --------------------------------------------------------------------------- column access
