"""REDCap exports: a records CSV read together with the project's data dictionary.

Both the raw export (choice codes, variable names as headers) and the labels export (choice
labels, field labels as headers) are read; labels are turned back into the dictionary's codes,
so one mapping serves both. The dictionary decides what each column is:

- choice fields (radio, dropdown, yesno, truefalse) keep their codes, with the choice labels as
  value labels; a value that is neither a code nor a label of the field is a cell issue
  (``not_in_dictionary_choices``), never a silent guess;
- checkbox fields are exported one column per choice (``var___1``), 1/0 or Checked/Unchecked;
- text fields with integer or number validation must parse (``redcap_validation(integer)``) and
  lie within the validation minimum and maximum (``redcap_range(lo, hi)``);
- ``<form>_complete`` columns and the ``redcap_*`` columns of longitudinal projects
  (``redcap_event_name``, ``redcap_repeat_instrument``, ``redcap_repeat_instance``) are known;
- a records column the dictionary does not describe stops the run: the two files disagree;
- fields flagged as identifiers ("Identifier?" = y) are refused unless acknowledged;
- with the project's event list (``events.csv``: ``event_name``, ``arm_num``,
  ``unique_event_name``, as REDCap's "Download events" or the API's "Export Events" write it),
  a labels export's event labels such as ``Session 3 (Arm 1: Treatment)`` are read back to
  unique event names (``session_3_arm_1``), so ``where`` and ``session_from`` name events the
  same way in both exports.

Reference: REDCap data dictionary and data export formats (Vanderbilt University, REDCap
documentation "Data Dictionary" and "Data Exports, Reports, and Stats").
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from accord.core.errors import IdentifierError, StudyError
from accord.core.identifiers import Finding, GuardReport, column_phrase, shown_column
from accord.ingest.sources import (
    SourceFrame,
    frame_from_rows,
    read_csv_rows,
    read_source,
    replace_missing_codes,
)

#: Dictionary columns: the REDCap web export's header, then the API's name for it.
_DICTIONARY_COLUMNS = {
    "field": ("Variable / Field Name", "field_name"),
    "form": ("Form Name", "form_name"),
    "type": ("Field Type", "field_type"),
    "label": ("Field Label", "field_label"),
    "choices": ("Choices, Calculations, OR Slider Labels", "select_choices_or_calculations"),
    "validation": (
        "Text Validation Type OR Show Slider Number",
        "text_validation_type_or_show_slider_number",
    ),
    "min": ("Text Validation Min", "text_validation_min"),
    "max": ("Text Validation Max", "text_validation_max"),
    "identifier": ("Identifier?", "identifier"),
}
_SPECIAL_COLUMNS = {
    "redcap_event_name": "Event Name",
    "redcap_repeat_instrument": "Repeat Instrument",
    "redcap_repeat_instance": "Repeat Instance",
    "redcap_data_access_group": "Data Access Group",
    "redcap_survey_identifier": "Survey Identifier",
}
_FIXED_CHOICES = {
    "yesno": {"1": "Yes", "0": "No"},
    "truefalse": {"1": "True", "0": "False"},
}
_COMPLETE = {"0": "Incomplete", "1": "Unverified", "2": "Complete"}
_CHECKBOX = {"1": "Checked", "0": "Unchecked"}
_NUMERIC_VALIDATION = re.compile(r"^(integer|number(_\d+dp)?(_comma_decimal)?)$")
_NO_DATA_TYPES = {"descriptive"}


@dataclass(frozen=True)
class FlaggedField(Finding):
    """A guard finding for a field the data dictionary flags as an identifier."""

    @property
    def label(self) -> str:
        return "field flagged as an identifier in the REDCap data dictionary"


@dataclass(frozen=True)
class Field:
    """One data dictionary row."""

    name: str
    form: str
    type: str
    label: str
    choices: dict[str, str]
    validation: str
    minimum: float | None
    maximum: float | None
    identifier: bool


def read_dictionary(path: str | Path) -> dict[str, Field]:
    """The data dictionary (web or API export) as fields by name, in dictionary order."""
    path = Path(path)
    source = read_source(path)
    frame = source.frame
    columns = {}
    for key, names in _DICTIONARY_COLUMNS.items():
        found = [name for name in names if name in frame]
        if not found and key in ("field", "form", "type"):
            raise StudyError(
                f"{path.name}: the data dictionary has no '{names[0]}' column; export it from "
                "REDCap (Project Setup > Data Dictionary) without editing the header.",
                file=path.name,
                column=names[0],
            )
        columns[key] = found[0] if found else None
    fields: dict[str, Field] = {}
    for i, row in frame.iterrows():

        def cell(key: str, row: pd.Series = row) -> str:
            name = columns[key]
            return (row[name] or "").strip() if name else ""

        name, kind = cell("field"), cell("type").lower()
        if not name:
            raise StudyError(f"{path.name}: row {i + 1} has no field name.", file=path.name)
        choices = _FIXED_CHOICES.get(kind) or (
            _parse_choices(cell("choices"), path.name, name)
            if kind in ("radio", "dropdown", "checkbox")
            else {}
        )
        fields[name] = Field(
            name=name,
            form=cell("form"),
            type=kind,
            label=cell("label"),
            choices=choices,
            validation=cell("validation").lower(),
            minimum=_number(cell("min")),
            maximum=_number(cell("max")),
            identifier=cell("identifier").lower() in ("y", "yes", "1"),
        )
    if not fields:
        raise StudyError(f"{path.name}: the data dictionary has no fields.", file=path.name)
    return fields


def _parse_choices(text: str, file: str, field: str) -> dict[str, str]:
    choices = {}
    for part in text.split("|"):
        if not part.strip():
            continue
        code, sep, label = part.partition(",")
        if not sep:
            raise StudyError(
                f"{file}: the choices of field '{field}' are not 'code, label | ...'.",
                file=file,
                column=field,
            )
        choices[code.strip()] = label.strip()
    return choices


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_events(path: str | Path) -> dict[str, str]:
    """The event list as {label as a labels export shows it: unique event name}.

    Each event is found under its unique name, its name (a one-arm project's labels may omit
    the arm) and ``name (Arm n: ...)``, matched on its start since the arm's own name is not in
    the list."""
    path = Path(path)
    frame = read_source(path).frame
    needed = ("event_name", "arm_num", "unique_event_name")
    for column in needed:
        if column not in frame:
            raise StudyError(
                f"{path.name}: the event list has no '{column}' column; export it from REDCap "
                "(Project Setup > Define My Events > Download events, or the API's Export "
                "Events).",
                file=path.name,
                column=column,
            )
    events: dict[str, str] = {}
    for row in frame[list(needed)].itertuples(index=False):
        name, arm, unique = (str(v or "").strip() for v in row)
        if unique:
            events[unique] = unique
            events[f"{name} (Arm {arm}:"] = unique
            events.setdefault(name, unique)
    return events


def _event_names(frame: pd.DataFrame, events: dict[str, str], records: str, listing: str) -> None:
    """A labels export's event labels as unique event names, in place."""
    if "redcap_event_name" not in frame:
        return
    cells = frame["redcap_event_name"].to_numpy(dtype=object)
    out = cells.copy()
    for i, cell in enumerate(cells):
        if cell is None or cell in events:
            out[i] = None if cell is None else events[cell]
            continue
        labelled = re.fullmatch(r"(.*) \(Arm (\d+): .*\)", cell)
        found = events.get(f"{labelled[1]} (Arm {labelled[2]}:") if labelled else None
        if found is None:
            raise StudyError(
                f"{records}: data row {i + 1}: the event '{cell}' is not in the event list "
                f"{listing}; export both from the same project.",
                file=records,
                column="redcap_event_name",
            )
        out[i] = found
    frame["redcap_event_name"] = out


def read_redcap(
    records: str | Path,
    dictionary: str | Path,
    acknowledged: Collection[str] = (),
    missing_codes: Sequence[object] = (),
    events: str | Path | None = None,
) -> SourceFrame:
    """Read a REDCap records export (raw or labels) checked against its data dictionary.

    Returns the records as a text `SourceFrame` in raw codes, with the dictionary's choice
    labels as value labels and cells that break the dictionary as cell issues (emptied).
    Raises StudyError when the files disagree (a records column the dictionary lacks) and
    IdentifierError for fields flagged as identifiers that are not in ``acknowledged``
    (``field`` or ``records.field``). The study's ``missing_codes`` are emptied (and
    counted) before the dictionary's rules are checked. With ``events`` (the project's event
    list), event labels are read back to unique event names.
    """
    records, dictionary = Path(records), Path(dictionary)
    fields = read_dictionary(dictionary)
    if not records.exists():
        raise StudyError(f"{records}: the REDCap records export does not exist.", file=records.name)
    rows = read_csv_rows(records)
    if not rows:
        raise StudyError(f"{records.name}: the file is empty.", file=records.name)
    expected = _expected_columns(fields)
    rows[0] = _raw_headers(rows[0], expected, records.name, dictionary.name)
    source = SourceFrame(frame_from_rows(records.name, rows), records.name)
    replace_missing_codes(source, missing_codes)
    frame = source.frame
    _refuse_undescribed_columns(frame, expected, records.name, dictionary.name)
    _refuse_flagged_identifiers(frame, fields, expected, records.name, acknowledged)
    if events is not None:
        _event_names(frame, read_events(events), records.name, Path(events).name)
    out, value_labels, cell_issues = _checked_values(frame, expected)
    return SourceFrame(
        pd.DataFrame(out, index=frame.index, dtype=object),
        records.name,
        value_labels=value_labels,
        user_missing=source.user_missing,
        cell_issues=cell_issues,
        checkboxes=frozenset(
            name for name, f in expected.items() if f is not None and f.type == "checkbox"
        ),
    )


def _refuse_undescribed_columns(
    frame: pd.DataFrame, expected: dict[str, Field | None], records: str, dictionary: str
) -> None:
    unknown = [
        shown_column(name, pos)
        for pos, name in enumerate(frame.columns, start=1)
        if name not in expected
    ]
    if unknown:
        raise StudyError(
            f"{records}: {column_phrase(unknown[0])} is not described by the data "
            f"dictionary {dictionary}"
            + (f" (also: {', '.join(unknown[1:5])})" if len(unknown) > 1 else "")
            + ". Export the records and the dictionary from the same project version.",
            file=records,
            column=unknown[0],
        )


def _checked_values(
    frame: pd.DataFrame, expected: dict[str, Field | None]
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, str]], dict[str, dict[int, str]]]:
    """Each column in raw codes, checked against its field's choices or numeric validation:
    the values, the choice labels per column and the cells that break the dictionary."""
    value_labels: dict[str, dict[str, str]] = {}
    cell_issues: dict[str, dict[int, str]] = {}
    out = {}
    for name in frame.columns:
        field = expected[name]
        values = frame[name].to_numpy(dtype=object)
        if name.endswith("_complete") and field is None:
            choices = _COMPLETE
        elif field is not None and field.type == "checkbox":
            choices = _CHECKBOX
        elif field is not None:
            choices = field.choices
        else:
            choices = {}
        issues: dict[int, str] = {}
        if choices:
            values, bad = _to_codes(values, choices)
            value_labels[name] = dict(choices)
            issues.update(dict.fromkeys(np.flatnonzero(bad).tolist(), "not_in_dictionary_choices"))
        elif field is not None and _NUMERIC_VALIDATION.match(field.validation):
            values, bad = _check_number(values, field)
            issues.update({int(i): rule for i, rule in bad.items()})
        if issues:
            cell_issues[name] = issues
        out[name] = values
    return out, value_labels, cell_issues


def _expected_columns(fields: dict[str, Field]) -> dict[str, Field | None]:
    """Every column a records export of this dictionary may hold, in export order."""
    expected: dict[str, Field | None] = {}
    first = next(iter(fields.values()))
    expected[first.name] = first
    for name in _SPECIAL_COLUMNS:
        expected[name] = None
    forms: list[str] = []
    for field in fields.values():
        if field.form not in forms:
            forms.append(field.form)
        if field.type in _NO_DATA_TYPES or field.name == first.name:
            continue
        if field.type == "checkbox":
            for code in field.choices:
                expected[f"{field.name}___{_checkbox_suffix(code)}"] = field
        else:
            expected[field.name] = field
    for form in forms:
        expected[f"{form}_timestamp"] = None
        expected[f"{form}_complete"] = None
    return expected


def _checkbox_suffix(code: str) -> str:
    # REDCap writes a negative code -1 as ___neg1 and lower-cases letters.
    return code.lower().replace("-", "neg").replace(".", "_")


def _raw_headers(
    header: list[str],
    expected: dict[str, Field | None],
    records: str,
    dictionary: str,
) -> list[str]:
    """Translate a labels export's headers (field labels) back to variable names."""
    if not header or header[0] in expected:
        return header
    by_label: dict[str, list[str]] = {}
    for name, field in expected.items():
        if field is None:
            continue
        if "___" in name:
            code = next(c for c in field.choices if name.endswith(f"___{_checkbox_suffix(c)}"))
            label = f"{field.label} (choice={field.choices[code]})"
        else:
            label = field.label
        by_label.setdefault(label, []).append(name)
    for name, label in _SPECIAL_COLUMNS.items():
        by_label.setdefault(label, []).append(name)
    renamed = []
    form = None
    for position, text in enumerate(header, start=1):
        names = by_label.get(str(text).strip(), [])
        if text == "Complete?" and form is not None:
            names = [f"{form}_complete"]
        if len(names) != 1:
            why = "matches no field label" if not names else "matches several field labels"
            raise StudyError(
                f"{records}: header #{position} {why} in the data dictionary {dictionary}; "
                "export the records with variable names as headers, or check that both files "
                "come from the same project.",
                file=records,
            )
        renamed.append(names[0])
        field = expected[names[0]]
        if field is not None:
            form = field.form
    return renamed


def _refuse_flagged_identifiers(
    frame: pd.DataFrame,
    fields: dict[str, Field],
    expected: dict[str, Field | None],
    records: str,
    acknowledged: Collection[str],
) -> None:
    cleared = {str(a).strip().casefold() for a in acknowledged}
    report = GuardReport()
    for name in frame.columns:
        field = expected[name]
        if field is None or not field.identifier:
            continue
        if field.name.casefold() in cleared or f"records.{field.name}".casefold() in cleared:
            continue
        rows = int(frame[name].notna().sum())
        if rows == 0:
            continue  # an empty column holds nothing to protect
        report.findings.append(FlaggedField("records", records, name, "flagged_identifier", rows))
    if report.findings:
        first = report.findings[0]
        error = IdentifierError(report.message(), file=first.file, column=first.column)
        error.report = report  # type: ignore[attr-defined]
        raise error


def _to_codes(values: np.ndarray, choices: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Cells as choice codes: a code stays, a label becomes its code, anything else is bad."""
    by_label = {label: code for code, label in choices.items()}
    by_label.update({label.casefold(): code for code, label in choices.items()})
    out = np.empty(len(values), dtype=object)
    bad = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if value is None:
            out[i] = None
        elif value in choices:
            out[i] = value
        elif value in by_label or value.casefold() in by_label:
            out[i] = by_label.get(value, by_label.get(value.casefold()))
        else:
            out[i], bad[i] = None, True
    return out, bad


def _check_number(values: np.ndarray, field: Field) -> tuple[np.ndarray, dict[int, str]]:
    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(float)
    present = pd.notna(values)
    issues: dict[int, str] = {}
    kind = "integer" if field.validation == "integer" else "number"
    unparsed = present & ~np.isfinite(numbers)
    if kind == "integer":
        unparsed |= present & np.isfinite(numbers) & (numbers != np.round(numbers))
    for i in np.flatnonzero(unparsed):
        issues[int(i)] = f"redcap_validation({kind})"
    lo = -np.inf if field.minimum is None else field.minimum
    hi = np.inf if field.maximum is None else field.maximum
    outside = present & ~unparsed & ((numbers < lo) | (numbers > hi))
    for i in np.flatnonzero(outside):
        issues[int(i)] = f"redcap_range({_fmt(field.minimum)}, {_fmt(field.maximum)})"
    out = np.where(unparsed | outside, None, values)
    return out, issues


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
