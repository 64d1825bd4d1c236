"""Column and value maps, and the reshape of wide questionnaire columns into long rows.

One *table map* (a study's ``mapping.<table>`` entry, or one element of a list of them) turns
the rows of one source into rows of one contract table:

``where``
    keep only the source rows whose columns hold these values (a list allows several; ``null``
    means an empty cell), e.g. one REDCap event or repeating instrument;
``columns``
    ``contract_column: source_column``;
``values``
    ``contract_column: {source_value: contract_value}``; a source value may be given as the
    code or as its value label (SPSS value labels, REDCap choices). A value without an entry is
    quarantined as ``unmapped_value``, never guessed. Without a map, a text column whose source
    carries value labels takes the label (``1 = attended`` gives ``attended``);
``constants``
    ``contract_column: value`` for every row;
``wide``
    blocks that make one row per filled cell of a family of columns. A block with
    ``instrument`` (measures) reads ``pattern`` such as ``phq9_{item}_t{session}``: ``{item}``
    (digits, so ``phq9_complete`` is not an item) becomes the item, ``{session}`` (letters or
    digits) the session number (through ``sessions``, a map from the
    token in the column name to a session number, when the names use visit labels). A block
    with ``column`` (any table) fills that contract column, one row per session token, e.g.
    ``{pattern: "status_s{session}", column: status}`` for a wide attendance record.

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

from accord import contract
from accord.errors import ConfigError, StudyError
from accord.guard import looks_identifying
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


def text_key(value: Any) -> str:
    """A config value as the text a source cell would hold (1 and 1.0 are both ``1``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def map_part(
    source: SourceFrame,
    spec: Mapping[str, Any],
    table: str,
    key: str,
    extra_columns: Sequence[str] = (),
) -> MappedPart:
    """Apply one table map (`spec`, found at config key `key`) to `source`."""
    known = contract.columns(table)
    allowed = set(known) | set(extra_columns)
    columns = {str(k): str(v) for k, v in (spec.get("columns") or {}).items()}
    constants = {str(k): v for k, v in (spec.get("constants") or {}).items()}
    values = {str(k): v for k, v in (spec.get("values") or {}).items()}
    wide = list(spec.get("wide") or [])
    for name, where in (("columns", columns), ("constants", constants), ("values", values)):
        for column in where:
            if column not in allowed:
                raise ConfigError(
                    f"config key '{key}.{name}.{column}': '{column}' is not a column of the "
                    f"contract's {table} table; declare it under extra_columns.{table} if it "
                    "belongs in the study."
                )
    for column in values:
        from_wide = any(b.get("column") == column for b in wide) or (
            column == "value" and table == "measures" and bool(wide)
        )
        if column not in columns and not from_wide:
            raise ConfigError(
                f"config key '{key}.values.{column}': a value map for a column that is not "
                "mapped from the source."
            )
    frame = source.frame
    for contract_column, source_column in columns.items():
        _require_column(source, source_column, f"{key}.columns.{contract_column}")

    rows = _select(source, spec.get("where") or {}, key)
    base: dict[str, np.ndarray] = {}
    issues: list[pd.DataFrame] = []
    missing: dict[str, int] = {}
    base_issue_rows: dict[str, dict[str, np.ndarray]] = {}
    for contract_column, source_column in columns.items():
        cells = frame[source_column].to_numpy(dtype=object)[rows]
        translated, unmapped = _translate(
            cells,
            values.get(contract_column),
            source.value_labels.get(source_column),
            _is_label_column(table, contract_column),
        )
        base[contract_column] = translated
        flagged = {"unmapped_value": unmapped}
        for rule, mask in _source_cell_issues(source, source_column, rows).items():
            flagged[rule] = flagged.get(rule, np.zeros(len(rows), bool)) | mask
        base_issue_rows[contract_column] = flagged
        hit = source.user_missing.get(source_column)
        if hit is not None and hit[rows].any():
            missing[contract_column] = missing.get(contract_column, 0) + int(hit[rows].sum())
    for contract_column, value in constants.items():
        base[contract_column] = np.full(len(rows), None if value is None else text_key(value))

    if not wide:
        out = dict(base)
        source_row = rows
        cell_column = np.full(len(rows), None, dtype=object)
        picked = np.arange(len(rows))
        wide_targets: frozenset[str] = frozenset()
    else:
        out, picked, cell_column, wide_issues, wide_missing, wide_targets = _reshape(
            source, rows, base, wide, values, table, key
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
        column_sources=dict(columns),
        wide_targets=wide_targets,
        issues=_concat(issues),
        missing_replaced=missing,
        rows_selected=rows,
    )


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


def _select(source: SourceFrame, where: Mapping[str, Any], key: str) -> np.ndarray:
    frame = source.frame
    keep = np.ones(len(frame), dtype=bool)
    for column, wanted in where.items():
        _require_column(source, str(column), f"{key}.where.{column}")
        options = wanted if isinstance(wanted, list) else [wanted]
        texts = {text_key(v) for v in options if v is not None}
        cells = frame[str(column)].to_numpy(dtype=object)
        match = np.array([c is not None and c in texts for c in cells], dtype=bool)
        if any(v is None for v in options):
            match |= pd.isna(cells)
        keep &= match
    return np.flatnonzero(keep)


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
    parts = re.split(r"(\{item\}|\{session\})", text)
    if "{item}" not in parts and "{session}" not in parts:
        raise ConfigError(f"config key '{key}': the pattern needs {{item}} and/or {{session}}.")
    tokens = {"{item}": r"(?P<item>[0-9]+)", "{session}": rf"(?P<session>{_TOKEN})"}
    regex = "".join(tokens.get(part, re.escape(part)) for part in parts)
    return re.compile(f"^{regex}$")


def _reshape(
    source: SourceFrame,
    rows: np.ndarray,
    base: dict[str, np.ndarray],
    blocks: list[Mapping[str, Any]],
    values: Mapping[str, Any],
    table: str,
    key: str,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list, dict[str, int], frozenset[str]]:
    """One output row per filled wide cell (measures) or per session token (other tables)."""
    frame = source.frame
    cells_out: list[tuple[int, int, str, dict[str, Any]]] = []  # (row, order, column, values)
    targets: set[str] = set()
    per_session: dict[tuple[int, str], dict[str, Any]] = {}
    issue_rows: list[tuple[tuple[int, int], str, str]] = []
    missing: dict[str, int] = {}
    order = 0
    for b, block in enumerate(blocks):
        block_key = f"{key}.wide[{b}]"
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
        if "{item}" in str(block.get("pattern")) and instrument is None:
            raise ConfigError(f"config key '{block_key}.pattern': {{item}} needs 'instrument'.")
        targets.add(target)
        if instrument is not None:
            targets.add("item")
        if "{session}" in str(block.get("pattern")):
            targets.add("session_number")
        items = {text_key(i) for i in block.get("items") or []}
        sessions = {text_key(k): v for k, v in (block.get("sessions") or {}).items()}
        matched = []
        for column in frame.columns:
            found = pattern.match(str(column))
            if not found:
                continue
            parts = found.groupdict()
            if items and parts.get("item") not in items:
                continue
            matched.append((str(column), parts))
        if not matched:
            raise StudyError(
                f"{source.label}: no column matches the pattern '{block.get('pattern')}' "
                f"(config key '{block_key}.pattern').",
                file=source.label,
            )
        value_map = values.get(target)
        for column, parts in matched:
            session = None
            if "session" in parts:
                token = parts["session"]
                if sessions:
                    if token not in sessions:
                        raise StudyError(
                            f"{source.label}: column '{column}' matches the pattern of config "
                            f"key '{block_key}', but its session '{token}' is not in "
                            f"'{block_key}.sessions'.",
                            file=source.label,
                            column=column,
                        )
                    session = text_key(sessions[token])
                elif token.isdigit():
                    session = str(int(token))
                else:
                    raise StudyError(
                        f"{source.label}: column '{column}': the session '{token}' is not a "
                        f"number; map it under config key '{block_key}.sessions'.",
                        file=source.label,
                        column=column,
                    )
            cells = frame[column].to_numpy(dtype=object)[rows]
            translated, unmapped = _translate(
                cells,
                value_map,
                source.value_labels.get(column),
                _is_label_column(table, target),
            )
            flagged = _source_cell_issues(source, column, rows)
            hit = source.user_missing.get(column)
            if hit is not None:
                missing[target] = missing.get(target, 0) + int(hit[rows].sum())
            for i in range(len(rows)):
                rules = [r for r, mask in flagged.items() if mask[i]]
                if unmapped[i]:
                    rules.append("unmapped_value")
                if translated[i] is None and not rules:
                    continue
                if instrument is not None:
                    extra = {
                        "instrument": str(instrument),
                        "item": parts.get("item") or text_key(block.get("item", "total")),
                        "value": translated[i],
                    }
                    if block.get("rater") is not None:
                        extra["rater"] = str(block["rater"])
                    if session is not None:
                        extra["session_number"] = session
                    cells_out.append((i, order, column, extra))
                    for rule in rules:
                        issue_rows.append(((i, order), rule, target))
                    order += 1
                else:
                    slot = per_session.setdefault((i, session or ""), {"__order": order})
                    if slot["__order"] == order:
                        order += 1
                    slot[target] = translated[i]
                    slot.setdefault("__columns", {})[target] = column
                    for rule in rules:
                        issue_rows.append(((i, slot["__order"]), rule, target))
                    if session is not None:
                        slot["session_number"] = session
    for (i, _session), slot in per_session.items():
        columns = slot.pop("__columns")
        rank = slot.pop("__order")
        cells_out.append((i, rank, ";".join(f"{t}={c}" for t, c in columns.items()), slot))
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
    return out, picked, cell_column, issues, missing, frozenset(targets)


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
