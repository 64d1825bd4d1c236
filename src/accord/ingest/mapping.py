"""Column and value maps, and the reshape of wide questionnaire columns into long rows.

One *table map* (a study's ``mapping.<table>`` entry, or one element of a list of them) turns
the rows of one source into rows of one contract table:

``where``
    keep only the source rows whose columns hold these values (a list allows several; ``null``
    means an empty cell), e.g. one REDCap event or repeating instrument. A map that selects no
    row stops, naming the values the column does hold where they are structural (REDCap's
    events, instruments and data access groups) or coded choices, never other values;
``session_from``
    ``{column, pattern, sessions}``: keep only the rows whose column matches the pattern (or
    one of a list), e.g. ``session_{session}_arm_1``, and read the session number (the goal's
    ``set_session`` in goals) from its ``{session}`` token;
``columns``
    ``contract_column: source_column``;
``join``
    a list of ``{where, columns, on}``: columns taken from the row of the same record (``on``,
    default the source of client_id) that meets ``where``, e.g. the end reason recorded at a
    REDCap end-of-treatment event; several such rows make ``join_ambiguous``;
``values``
    ``contract_column: {source_value: contract_value}``; a source value may be given as the
    code or as its value label (SPSS value labels, REDCap choices). A value without an entry is
    quarantined as ``unmapped_value``, never guessed. Without a map, a text column whose source
    carries value labels takes the label (``1 = attended`` gives ``attended``);
``rescale``
    ``contract_column: {from: [a, b], to: [c, d]}``: x becomes c + (x - a)(d - c)/(b - a),
    e.g. a 0-100 slider onto the contract's 0-1;
``constants``
    ``contract_column: value`` for every row;
``wide``
    blocks that make one row per filled cell of a family of columns. A block with
    ``instrument`` (measures) reads ``pattern`` such as ``phq9_{item}_t{session}``: ``{item}``
    (digits, so ``phq9_complete`` is not an item) becomes the item, ``{session}`` (letters or
    digits) the session number (through ``sessions``, a map from the token in the column name
    to a session number, when the names use visit labels), ``{goal}`` the item of a GAS
    rating. A block with ``column`` (any table) fills that contract column, one row per
    session and goal token, e.g. ``{pattern: "status_s{session}", column: status}`` for a wide
    attendance record or ``{pattern: "goal{goal}_by", column: set_by}`` (``{goal}`` is the
    goal_id) for a block of goals; a slot holding only unchecked REDCap checkboxes makes no row.

Each output row remembers its source row (so the quarantine points at the row to fix) and,
for a row made from a wide cell, the cell's column.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from accord.core import contract
from accord.core.errors import ConfigError, StudyError
from accord.core.identifiers import looks_identifying
from accord.ingest.sources import SourceFrame

_TOKEN = "[A-Za-z0-9]+"


@dataclass
class MappedPart:
    """Contract-shaped rows from one source, and where each came from."""

    frame: pd.DataFrame
    source: str
    source_row: np.ndarray
    cell_column: np.ndarray
    column_sources: dict[str, str]
    wide_targets: frozenset[str]
    issues: pd.DataFrame
    missing_replaced: dict[str, int] = field(default_factory=dict)
    rows_selected: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    first_row_number: int = 1
    notes: list[str] = field(default_factory=list)


def text_key(value: Any) -> str:
    """A config value as the text a source cell would hold (1 and 1.0 are both ``1``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


#: Columns whose values may be shown in a message: REDCap's record of events, arms, instruments
#: and data access groups describes the project's structure, not a person.
_STRUCTURAL = ("redcap_event_name", "redcap_repeat_instrument", "redcap_data_access_group")
_SHOWN_VALUES = 12


@dataclass(frozen=True)
class _TableMap:
    """A table map's settings, checked against the contract."""

    columns: dict[str, str]
    constants: dict[str, Any]
    values: dict[str, Any]
    rescale: dict[str, tuple[float, float, float, float]]
    wide: list[Mapping[str, Any]]
    joins: list[Mapping[str, Any]]


def map_part(
    source: SourceFrame,
    spec: Mapping[str, Any],
    table: str,
    key: str,
    extra_columns: Sequence[str] = (),
    rows_required: bool = True,
) -> MappedPart:
    """Apply one table map (`spec`, found at config key `key`) to `source`.

    A map that selects no row stops the run when `rows_required` (the table's only map) and
    is noted otherwise (one of a list: a later event no one has reached yet, say)."""
    known = contract.columns(table)
    parsed = _parse_map(spec, table, key, extra_columns)
    for contract_column, source_column in parsed.columns.items():
        _require_column(source, source_column, f"{key}.columns.{contract_column}")
    notes: list[str] = []
    rows, sessions = _select_rows(source, spec, key, notes, rows_required)
    base: dict[str, np.ndarray] = {}
    base_issue_rows: dict[str, dict[str, np.ndarray]] = {}
    issues: list[pd.DataFrame] = []
    missing: dict[str, int] = {}
    column_sources = dict(parsed.columns)
    for contract_column, source_column in parsed.columns.items():
        cells, flagged, n = _map_cells(source, source_column, rows, contract_column, parsed, table)
        base[contract_column], base_issue_rows[contract_column] = cells, flagged
        if n:
            missing[contract_column] = missing.get(contract_column, 0) + n
    selected = [rows]
    for j, entry in enumerate(parsed.joins):
        joined = _join(source, entry, rows, parsed, table, f"{key}.join[{j}]")
        base.update(joined.cells)
        base_issue_rows.update(joined.flagged)
        column_sources.update(joined.column_sources)
        for column, n in joined.missing.items():
            missing[column] = missing.get(column, 0) + n
        selected.append(joined.rows)
        notes.extend(joined.notes)
    if sessions is not None:
        target = _session_target(table)
        base[target] = sessions
        column_sources[target] = str(spec["session_from"]["column"])
    for contract_column, value in parsed.constants.items():
        base[contract_column] = np.full(len(rows), None if value is None else text_key(value))

    if not parsed.wide:
        out = dict(base)
        source_row = rows
        cell_column = np.full(len(rows), None, dtype=object)
        picked = np.arange(len(rows))
        wide_targets: frozenset[str] = frozenset()
    else:
        out, picked, cell_column, wide_issues, wide_missing, wide_targets = _reshape(
            source, rows, base, parsed, table, key
        )
        source_row = rows[picked]
        issues.extend(wide_issues)
        for column, n in wide_missing.items():
            missing[column] = missing.get(column, 0) + n
    for contract_column, flagged in base_issue_rows.items():
        for rule, mask in flagged.items():
            hit = np.flatnonzero(mask[picked])
            if len(hit):
                issues.append(_issues(hit, rule, contract_column))
    ordered = [c for c in known if c in out] + [c for c in out if c not in known]
    result = pd.DataFrame({c: out[c] for c in ordered}, index=pd.RangeIndex(len(source_row)))
    return MappedPart(
        frame=result.astype(object),
        source=source.label,
        source_row=np.asarray(source_row, dtype=np.int64),
        cell_column=cell_column,
        column_sources=column_sources,
        wide_targets=wide_targets,
        issues=_concat(issues),
        missing_replaced=missing,
        rows_selected=np.unique(np.concatenate(selected)).astype(np.int64),
        first_row_number=source.first_row_number,
        notes=notes,
    )


def _parse_map(
    spec: Mapping[str, Any], table: str, key: str, extra_columns: Sequence[str]
) -> _TableMap:
    """A table map's settings, each column checked against the contract's table."""
    known = contract.columns(table)
    allowed = set(known) | set(extra_columns)
    columns = {str(k): str(v) for k, v in (spec.get("columns") or {}).items()}
    constants = {str(k): v for k, v in (spec.get("constants") or {}).items()}
    values = {str(k): v for k, v in (spec.get("values") or {}).items()}
    wide = list(spec.get("wide") or [])
    joins = _parse_joins(spec.get("join"), columns, key)
    joined = {c: j for j in joins for c in j["columns"]}
    named = (
        ("columns", columns),
        ("constants", constants),
        ("values", values),
        ("rescale", spec.get("rescale") or {}),
    )
    for j, entry in enumerate(joins):
        named += ((f"join[{j}].columns", entry["columns"]),)
    for name, where in named:
        for column in where:
            if column not in allowed:
                raise ConfigError(
                    f"config key '{key}.{name}.{column}': '{column}' is not a column of the "
                    f"contract's {table} table; declare it under extra_columns.{table} if it "
                    "belongs in the study."
                )
    if "session_from" in spec and _session_target(table) not in known:
        raise ConfigError(f"config key '{key}.session_from': the {table} table has no session.")
    wide_columns = {str(b.get("column")) for b in wide if b.get("column") is not None}
    if table == "measures" and any(b.get("instrument") is not None for b in wide):
        wide_columns.add("value")
    for name, what in (("values", "value map"), ("rescale", "rescaling")):
        for column in spec.get(name) or {}:
            if column not in columns and column not in joined and column not in wide_columns:
                raise ConfigError(
                    f"config key '{key}.{name}.{column}': a {what} for a column that is not "
                    "mapped from the source."
                )
    rescale = {
        str(column): _parse_rescale(rule, table, str(column), f"{key}.rescale.{column}")
        for column, rule in (spec.get("rescale") or {}).items()
    }
    return _TableMap(columns, constants, values, rescale, wide, joins)


def _parse_joins(joins: Any, columns: Mapping[str, str], key: str) -> list[Mapping[str, Any]]:
    if joins is None:
        return []
    if not isinstance(joins, list):
        joins = [joins]
    out = []
    for j, entry in enumerate(joins):
        where = f"{key}.join[{j}]"
        if not isinstance(entry, Mapping) or not entry.get("columns"):
            raise ConfigError(f"config key '{where}.columns': a join needs the columns it adds.")
        on = entry.get("on") or columns.get("client_id")
        if on is None:
            raise ConfigError(
                f"config key '{where}.on': name the column both rows share (the record), or "
                "map client_id."
            )
        added = {str(k): str(v) for k, v in entry["columns"].items()}
        clash = [c for c in added if c in columns]
        if clash:
            raise ConfigError(
                f"config key '{where}.columns.{clash[0]}': already mapped under "
                f"'{key}.columns'; a column comes from one event."
            )
        out.append({"where": dict(entry.get("where") or {}), "on": str(on), "columns": added})
    return out


def _parse_rescale(rule: Any, table: str, column: str, key: str) -> tuple[float, ...]:
    spec = contract.columns(table).get(column)
    if spec is not None and spec.kind not in ("integer", "number"):
        raise ConfigError(f"config key '{key}': '{column}' is not a number column.")
    try:
        (a, b), (c, d) = rule["from"], rule["to"]
        bounds = tuple(float(x) for x in (a, b, c, d))
    except (TypeError, KeyError, ValueError):
        raise ConfigError(
            f"config key '{key}': give the scales as {{from: [low, high], to: [low, high]}}."
        ) from None
    if bounds[0] == bounds[1]:
        raise ConfigError(f"config key '{key}.from': the two ends must differ.")
    return bounds


def _session_target(table: str) -> str:
    """The contract column a session token fills: the goal's set_session, else session_number."""
    return "set_session" if table == "goals" else "session_number"


def _map_cells(
    source: SourceFrame,
    source_column: str,
    rows: np.ndarray,
    contract_column: str,
    parsed: _TableMap,
    table: str,
) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """One source column's cells at `rows` as contract values, their issues, missing count."""
    cells = source.frame[source_column].to_numpy(dtype=object)[rows]
    translated, unmapped = _translate(
        cells,
        parsed.values.get(contract_column),
        source.value_labels.get(source_column),
        _is_label_column(table, contract_column),
    )
    translated = _rescaled(translated, parsed.rescale.get(contract_column))
    flagged = {"unmapped_value": unmapped}
    for rule, mask in _source_cell_issues(source, source_column, rows).items():
        flagged[rule] = flagged.get(rule, np.zeros(len(rows), bool)) | mask
    hit = source.user_missing.get(source_column)
    missing = 0 if hit is None else int(hit[rows].sum())
    return translated, flagged, missing


def _rescaled(cells: np.ndarray, bounds: tuple[float, ...] | None) -> np.ndarray:
    """Cells moved linearly from one scale onto another (a 0-100 slider onto 0-1, say).

    A cell that is not a number is left as it is, for validation to quarantine as a type error.
    """
    if bounds is None:
        return cells
    a, b, c, d = bounds
    out = cells.copy()
    for i, cell in enumerate(cells):
        if cell is None:
            continue
        try:
            number = float(cell)
        except ValueError:
            continue
        out[i] = f"{c + (number - a) * (d - c) / (b - a):.12g}"
    return out


@dataclass
class _Joined:
    cells: dict[str, np.ndarray]
    flagged: dict[str, dict[str, np.ndarray]]
    column_sources: dict[str, str]
    missing: dict[str, int]
    rows: np.ndarray
    notes: list[str]


def _join(
    source: SourceFrame,
    entry: Mapping[str, Any],
    rows: np.ndarray,
    parsed: _TableMap,
    table: str,
    key: str,
) -> _Joined:
    """Columns from other rows of the same record (another REDCap event), one per base row.

    A base row without a partner gets empty cells; one with several partners gets empty cells
    and the issue ``join_ambiguous`` (which partner is meant cannot be told).
    """
    on = entry["on"]
    _require_column(source, on, f"{key}.on")
    for contract_column, source_column in entry["columns"].items():
        _require_column(source, source_column, f"{key}.columns.{contract_column}")
    keep, _ = _where_masks(source, entry["where"], f"{key}.where")
    partners = np.flatnonzero(keep)
    notes = []
    if len(partners) == 0:
        notes.append(
            f"{source.label}: config key '{key}.where' selects no rows, so "
            f"{', '.join(entry['columns'])} stay empty ({_values_seen(source, entry['where'])})."
        )
    ids = source.frame[on].to_numpy(dtype=object)
    by_key: dict[Any, list[int]] = {}
    for row in partners:
        if ids[row] is not None:
            by_key.setdefault(ids[row], []).append(int(row))
    match = np.full(len(rows), -1, dtype=np.int64)
    ambiguous = np.zeros(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        found = by_key.get(ids[row], []) if ids[row] is not None else []
        if len(found) == 1:
            match[i] = found[0]
        ambiguous[i] = len(found) > 1
    present = match >= 0
    joined = _Joined({}, {}, dict(entry["columns"]), {}, partners, notes)
    for contract_column, source_column in entry["columns"].items():
        cells, flagged, _ = _map_cells(
            source, source_column, np.where(present, match, 0), contract_column, parsed, table
        )
        joined.cells[contract_column] = np.where(present, cells, None)
        joined.flagged[contract_column] = {r: m & present for r, m in flagged.items()}
        joined.flagged[contract_column]["join_ambiguous"] = ambiguous
        hit = source.user_missing.get(source_column)
        if hit is not None and hit[match[present]].any():
            joined.missing[contract_column] = int(hit[match[present]].sum())
    return joined


def _require_column(source: SourceFrame, column: str, key: str) -> None:
    if column in source.frame:
        return
    near = difflib.get_close_matches(column, [str(c) for c in source.frame.columns], n=1)
    hint = f" (did you mean '{near[0]}'?)" if near and not looks_identifying(near[0]) else ""
    raise StudyError(
        f"{source.label}: column '{column}' named by config key '{key}' is not in the "
        f"source{hint}.",
        file=source.label,
        column=column,
    )


def _where_masks(
    source: SourceFrame, where: Mapping[str, Any], key: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The rows meeting every condition of `where`, and the rows meeting each one alone."""
    frame = source.frame
    keep = np.ones(len(frame), dtype=bool)
    each = {}
    for column, wanted in where.items():
        _require_column(source, str(column), f"{key}.{column}")
        options = wanted if isinstance(wanted, list) else [wanted]
        texts = {text_key(v) for v in options if v is not None}
        cells = frame[str(column)].to_numpy(dtype=object)
        match = np.array([c is not None and c in texts for c in cells], dtype=bool)
        if any(v is None for v in options):
            match |= pd.isna(cells)
        each[str(column)] = match
        keep &= match
    return keep, each


def _select_rows(
    source: SourceFrame, spec: Mapping[str, Any], key: str, notes: list[str], required: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The source rows a table map reads (`where`, `session_from`) and their session tokens.

    When no row is selected, says which condition matched nothing and the values its column
    holds (structural columns only: never a value that may be data): as a StudyError when the
    map is `required` to give rows, else as a note.
    """
    where = spec.get("where") or {}
    keep, each = _where_masks(source, where, f"{key}.where")
    sessions = None
    origin = spec.get("session_from")
    if origin is not None:
        sessions = _session_tokens(source, origin, f"{key}.session_from")
        each["session_from"] = np.array([s is not None for s in sessions], dtype=bool)
        keep &= each["session_from"]
    rows = np.flatnonzero(keep)
    if len(rows) == 0 and len(source.frame):
        empty = [c for c, mask in each.items() if not mask.any()]
        if not empty:
            why = "no row meets all of its conditions together (each alone matches some rows)"
        elif empty[0] == "session_from":
            column = str(origin["column"])
            why = f"no value of {column} matches its session_from pattern ({_seen(source, column)})"
        else:
            column = empty[0]
            why = f"no row has {column} = {where[column]!r} ({_seen(source, column)})"
        message = f"{source.label}: the table map at config key '{key}' selects no rows: {why}."
        if required:
            raise StudyError(
                message,
                file=source.label,
                column=empty[0] if empty and empty[0] != "session_from" else None,
            )
        notes.append(message)
    return rows, None if sessions is None else sessions[rows]


def _values_seen(source: SourceFrame, where: Mapping[str, Any]) -> str:
    return "; ".join(_seen(source, str(column)) for column in where) or "no condition"


def _seen(source: SourceFrame, column: str) -> str:
    """The distinct values of a column, for a message: listed only for a structural column
    (events, instruments) or a coded one (whose codes come from the file's metadata)."""
    cells = source.frame[column].to_numpy(dtype=object)
    distinct = list(dict.fromkeys(c for c in cells if c is not None))
    if not distinct:
        return f"{column} is empty in every row"
    if not _listable(source, column):
        return f"{column} holds {len(distinct)} distinct value(s), not shown: they may be data"
    shown = ", ".join(repr(v) for v in distinct[:_SHOWN_VALUES])
    more = f" and {len(distinct) - _SHOWN_VALUES} more" if len(distinct) > _SHOWN_VALUES else ""
    return f"values seen in {column}: {shown}{more}"


def _listable(source: SourceFrame, column: str) -> bool:
    return column in _STRUCTURAL or column in source.value_labels


def _session_tokens(source: SourceFrame, origin: Any, key: str) -> np.ndarray:
    """Each row's session number read from a column by pattern(s); None where none matches."""
    if not isinstance(origin, Mapping) or "column" not in origin or "pattern" not in origin:
        raise ConfigError(f"config key '{key}': give column and pattern (with {{session}}).")
    column = str(origin["column"])
    _require_column(source, column, f"{key}.column")
    texts = origin["pattern"] if isinstance(origin["pattern"], list) else [origin["pattern"]]
    patterns = []
    for n, text in enumerate(texts):
        if "{session}" not in str(text) or re.search(r"\{(item|goal)\}", str(text)):
            raise ConfigError(f"config key '{key}.pattern': the pattern needs {{session}} only.")
        patterns.append(_pattern(str(text), f"{key}.pattern[{n}]"))
    by_token = {text_key(k): v for k, v in (origin.get("sessions") or {}).items()}
    cells = source.frame[column].to_numpy(dtype=object)
    out = np.full(len(cells), None, dtype=object)
    for i, cell in enumerate(cells):
        found = next((m for p in patterns if cell is not None and (m := p.match(cell))), None)
        if found is not None:
            out[i] = _session_number(
                found.group("session"),
                by_token,
                source,
                f"a value of {column}",
                key,
                show=_listable(source, column),
            )
    return out


def _session_number(
    token: str,
    by_token: Mapping[str, Any],
    source: SourceFrame,
    what: str,
    key: str,
    show: bool = True,
) -> str:
    """A session token as a session number: through `by_token` when given, else its digits.

    `what` says where the token was read (a column's name, or a column's values); a token read
    from values that may be data is not repeated (``show`` False)."""
    shown = token if show else "(not shown)"
    if by_token:
        if token not in by_token:
            raise StudyError(
                f"{source.label}: {what} matches the pattern of config key '{key}', but its "
                f"session '{shown}' is not in '{key}.sessions'.",
                file=source.label,
            )
        return text_key(by_token[token])
    if not token.isdigit():
        raise StudyError(
            f"{source.label}: {what}: the session '{shown}' is not a number; map it under "
            f"config key '{key}.sessions'.",
            file=source.label,
        )
    return str(int(token))


def _is_label_column(table: str, column: str) -> bool:
    spec = contract.columns(table).get(column)
    return spec is not None and spec.kind == "string"


def _translate(
    cells: np.ndarray,
    value_map: Mapping[Any, Any] | None,
    labels: Mapping[str, str] | None,
    use_labels: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Source cells to contract values; returns the values and the unmapped-value mask."""
    out = cells.copy()
    unmapped = np.zeros(len(cells), dtype=bool)
    if value_map is not None:
        lookup = {
            text_key(k).casefold(): (None if v is None else text_key(v))
            for k, v in value_map.items()
        }
        for i, cell in enumerate(cells):
            if cell is None:
                continue
            candidates = [cell] + ([labels[cell]] if labels and cell in labels else [])
            for candidate in candidates:
                if candidate.casefold() in lookup:
                    out[i] = lookup[candidate.casefold()]
                    break
            else:
                out[i], unmapped[i] = None, True
    elif labels and use_labels:
        out = np.array([labels.get(c, c) if c is not None else None for c in cells], dtype=object)
    return out, unmapped


def _source_cell_issues(
    source: SourceFrame, column: str, rows: np.ndarray
) -> dict[str, np.ndarray]:
    issues = source.cell_issues.get(column)
    if not issues:
        return {}
    masks: dict[str, np.ndarray] = {}
    for i, row in enumerate(rows):
        rule = issues.get(int(row))
        if rule is not None:
            masks.setdefault(rule, np.zeros(len(rows), dtype=bool))[i] = True
    return masks


def _pattern(text: str, key: str) -> re.Pattern[str]:
    parts = re.split(r"(\{item\}|\{session\}|\{goal\})", text)
    if not {"{item}", "{session}", "{goal}"} & set(parts):
        raise ConfigError(
            f"config key '{key}': the pattern needs {{item}}, {{goal}} and/or {{session}}."
        )
    if "{item}" in parts and "{goal}" in parts:
        raise ConfigError(f"config key '{key}': {{goal}} is the item of a GAS rating; use one.")
    tokens = {
        "{item}": r"(?P<item>[0-9]+)",
        "{session}": rf"(?P<session>{_TOKEN})",
        "{goal}": rf"(?P<goal>{_TOKEN})",
    }
    regex = "".join(tokens.get(part, re.escape(part)) for part in parts)
    return re.compile(f"^{regex}$")


def _reshape(
    source: SourceFrame,
    rows: np.ndarray,
    base: dict[str, np.ndarray],
    parsed: _TableMap,
    table: str,
    key: str,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list, dict[str, int], frozenset[str]]:
    """One output row per filled wide cell (measures) or per session and goal token (other
    tables: a wide attendance record, a block of goals ``goal{goal}_by``, ...)."""
    cells_out: list[tuple[int, int, str, dict[str, Any]]] = []  # (row, order, column, values)
    targets: set[str] = set()
    per_slot: dict[tuple[int, str, str], dict[str, Any]] = {}
    issue_rows: list[tuple[tuple[int, int], str, str]] = []
    missing: dict[str, int] = {}
    order = 0
    session_target = _session_target(table)
    for b, block in enumerate(parsed.wide):
        block_key = f"{key}.wide[{b}]"
        instrument, target, matched = _block_columns(source, block, table, block_key)
        targets.add(target)
        text = str(block.get("pattern"))
        if instrument is not None:
            targets.add("item")
        if "{session}" in text:
            targets.add(session_target)
        if "{goal}" in text and instrument is None:
            targets.add("goal_id")
        for column, session, parts in matched:
            translated, rules_of = _block_cells(source, column, rows, target, parsed, table)
            raw = source.frame[column].to_numpy(dtype=object)[rows]
            hit = source.user_missing.get(column)
            if hit is not None:
                missing[target] = missing.get(target, 0) + int(hit[rows].sum())
            for i in range(len(rows)):
                rules = rules_of(i)
                if translated[i] is None and not rules:
                    continue
                if instrument is not None:
                    extra = {
                        "instrument": str(instrument),
                        "item": parts.get("item")
                        or parts.get("goal")
                        or text_key(block.get("item", "total")),
                        "value": translated[i],
                    }
                    if block.get("rater") is not None:
                        extra["rater"] = str(block["rater"])
                    if session is not None:
                        extra["session_number"] = session
                    cells_out.append((i, order, column, extra))
                    issue_rows.extend(((i, order), rule, target) for rule in rules)
                    order += 1
                    continue
                slot = per_slot.setdefault(
                    (i, session or "", parts.get("goal") or ""), {"__order": order}
                )
                if slot["__order"] == order:
                    order += 1
                slot[target] = translated[i]
                slot.setdefault("__columns", {})[target] = column
                # An unchecked checkbox alone (a goal slot left empty) makes no row.
                unchecked = column in source.checkboxes and raw[i] == "0" and not rules
                slot["__filled"] = slot.get("__filled", False) or not unchecked
                issue_rows.extend(((i, slot["__order"]), rule, target) for rule in rules)
                if session is not None:
                    slot[session_target] = session
                if parts.get("goal") is not None:
                    slot["goal_id"] = parts["goal"]
    for (i, _session, _goal), slot in per_slot.items():
        columns = slot.pop("__columns")
        rank = slot.pop("__order")
        if not slot.pop("__filled"):
            continue
        cells_out.append((i, rank, ";".join(f"{t}={c}" for t, c in columns.items()), slot))
    out, picked, cell_column, issues = _wide_rows(cells_out, base, targets, issue_rows)
    return out, picked, cell_column, issues, missing, frozenset(targets)


def _wide_rows(
    cells_out: list[tuple[int, int, str, dict[str, Any]]],
    base: dict[str, np.ndarray],
    targets: set[str],
    issue_rows: list[tuple[tuple[int, int], str, str]],
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[pd.DataFrame]]:
    """The rows made from wide cells, in source order: their columns (the cells' values over
    the source row's base columns), source rows, cell columns and issues."""
    cells_out.sort(key=lambda entry: (entry[0], entry[1]))
    position = {(i, rank): n for n, (i, rank, _, _) in enumerate(cells_out)}
    picked = np.array([i for i, _, _, _ in cells_out], dtype=np.int64)
    names = list(base) + [
        c for c in ("session_number", "instrument", "rater", "item") if c not in base
    ]
    names += [t for t in sorted(targets) if t not in names]
    out = {}
    for name in names:
        column = np.full(len(cells_out), None, dtype=object)
        for n, (i, _, _, extra) in enumerate(cells_out):
            if name in extra:
                column[n] = extra[name]
            elif name in base:
                column[n] = base[name][i]
        if any(v is not None for v in column) or name in base or name in targets:
            out[name] = column
    cell_column = np.array([c for _, _, c, _ in cells_out], dtype=object)
    issues = [
        _issues(np.array([position[where]]), rule, column) for where, rule, column in issue_rows
    ]
    return out, picked, cell_column, issues


def _block_columns(
    source: SourceFrame, block: Mapping[str, Any], table: str, block_key: str
) -> tuple[Any, str, list[tuple[str, str | None, dict[str, str]]]]:
    """A wide block's instrument, target column and matching source columns with their
    session number and tokens."""
    pattern = _pattern(str(block.get("pattern", "")), f"{block_key}.pattern")
    instrument = block.get("instrument")
    target = "value" if instrument is not None else block.get("column")
    if instrument is not None and table != "measures":
        raise ConfigError(f"config key '{block_key}.instrument': only measures have items.")
    if target is None:
        raise ConfigError(f"config key '{block_key}': give 'instrument' or 'column'.")
    if target not in contract.columns(table):
        raise ConfigError(
            f"config key '{block_key}.column': '{target}' is not a column of {table}."
        )
    text = str(block.get("pattern"))
    if "{item}" in text and instrument is None:
        raise ConfigError(f"config key '{block_key}.pattern': {{item}} needs 'instrument'.")
    if "{goal}" in text and instrument is None and "goal_id" not in contract.columns(table):
        raise ConfigError(f"config key '{block_key}.pattern': {table} have no goal_id.")
    items = {text_key(i) for i in block.get("items") or []}
    by_token = {text_key(k): v for k, v in (block.get("sessions") or {}).items()}
    matched = []
    for column in source.frame.columns:
        found = pattern.match(str(column))
        if not found:
            continue
        parts = found.groupdict()
        if items and parts.get("item") not in items:
            continue
        session = None
        if "session" in parts:
            what = f"column '{column}'"
            session = _session_number(parts["session"], by_token, source, what, block_key)
        matched.append((str(column), session, parts))
    if not matched:
        raise StudyError(
            f"{source.label}: no column matches the pattern '{block.get('pattern')}' "
            f"(config key '{block_key}.pattern').",
            file=source.label,
        )
    return instrument, target, matched


def _block_cells(
    source: SourceFrame,
    column: str,
    rows: np.ndarray,
    target: str,
    parsed: _TableMap,
    table: str,
):
    """A wide column's cells as contract values, and a function giving each cell's issues."""
    cells = source.frame[column].to_numpy(dtype=object)[rows]
    translated, unmapped = _translate(
        cells,
        parsed.values.get(target),
        source.value_labels.get(column),
        _is_label_column(table, target),
    )
    translated = _rescaled(translated, parsed.rescale.get(target))
    flagged = _source_cell_issues(source, column, rows)

    def rules_of(i: int) -> list[str]:
        rules = [r for r, mask in flagged.items() if mask[i]]
        return [*rules, "unmapped_value"] if unmapped[i] else rules

    return translated, rules_of


def _issues(rows: np.ndarray, rule: str, column: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"row": np.asarray(rows, dtype=np.int64), "rule": rule, "column": column},
        columns=["row", "rule", "column"],
    )


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return _issues(np.array([], dtype=np.int64), "", "")
    return pd.concat(parts, ignore_index=True)
