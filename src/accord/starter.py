"""`accord init`: a commented study config to start from, for each way data arrive.

The config written is valid against the schema as it stands; the researcher replaces the
path and the source column names (``accord validate`` names any that are not in the files).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from accord.core.errors import AccordError

STUDY_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*"

_HEADER = """\
# accord study configuration, written by `accord init`.
# Check the study with:   accord validate {study} --config {config}
# Run it to a report:     accord run {study} --config {config}
# Relative paths are read from the folder you run accord in.
# Every key is described in the JSON Schema shipped with accord
# (src/accord/schemas/config.schema.yaml) and the data contract in docs/data-contract.md.

studies:
  {study}:
"""

_CONTRACT = """\
    # The folder holding clients.csv, sessions.csv, measures.csv and, for the goal-setting
    # measures, goals.csv (CSV in UTF-8, or Parquet), in the data contract's columns.
    path: data/{study}
    # Values that mean "missing" in any column (e.g. -99 for a skipped item).
    missing_codes: []
    # Columns beyond the contract, per table, that belong in the study (covariates, say).
    extra_columns: {{}}
    # Columns a person cleared after a privacy review (table.column), which the identifier
    # guard would otherwise refuse.
    acknowledged_columns: []
"""

_MAPPED = """\
    # The folder holding the study's own files: CSV, Parquet, Excel (.xlsx) or SPSS
    # (.sav, .zsav). SPSS value labels and user-defined missing values are kept.
    path: data/{study}
    format: mapped
    missing_codes: []
    mapping:
      # Per contract table: the file (and sheet), then contract_column: source_column.
      clients:
        file: clients.xlsx
        sheet: Clients            # a workbook's sheet (default: the first)
        header_row: 1             # the row holding the column names
        columns:
          client_id: ClientID     # replace the right-hand side with your column names
          therapist_id: Therapist
          end_reason: Ending
        values:
          # Your codes or value labels onto the contract's labels; a value without an
          # entry is quarantined as unmapped_value, never guessed.
          end_reason: {{1: completed, 2: dropout, 3: referred, 4: ongoing, 5: other}}
      sessions:
        file: sessions.csv
        columns:
          client_id: ClientID
          session_number: Visit
          status: Attendance
        values:
          status: {{1: attended, 2: cancelled, 3: no_show}}   # 3 = did not attend (DNA)
      measures:
        # Wide questionnaires (one column per item and visit) become one row per answer:
        # {{item}} is the item number and {{session}} the session in the column name
        # (PHQ9_1_T0 ... PHQ9_9_T8 here); map visit labels with `sessions: {{T1: 0, T2: 4}}`
        # and a pattern like PHQ9_{{item}}_{{session}}.
        file: questionnaires.sav
        columns:
          client_id: ClientID
        wide:
          - {{instrument: phq9, pattern: "PHQ9_{{item}}_T{{session}}"}}
      # goals: {{file: goals.csv, columns: {{client_id: ClientID, goal_id: Goal, ...}}}}
"""

_REDCAP = """\
    # The folder holding the REDCap export: the records (CSV, raw or labels) and the
    # project's data dictionary. The dictionary's choices, validation ranges and
    # identifier flags are used; fields flagged as identifiers are refused unless listed
    # under acknowledged_columns. With the event list (events: events.csv, from Project
    # Setup > Define My Events), a labels export's event labels read as unique event names.
    path: data/{study}
    format: redcap
    redcap:
      records: records.csv
      dictionary: dictionary.csv
    missing_codes: []
    acknowledged_columns: []
    mapping:
      # `where` picks the rows of an event or a repeating instrument; `columns` maps
      # contract_column: REDCap variable (checkbox choices are var___code).
      clients:
        where: {{redcap_event_name: baseline_arm_1, redcap_repeat_instrument: null}}
        columns:
          client_id: record_id
          therapist_id: therapist
        # Fields recorded at another event of the same record, joined on the record.
        join:
          - where: {{redcap_event_name: end_of_treatment_arm_1}}
            columns: {{end_reason: end_reason}}
        values:
          end_reason: {{1: completed, 2: dropout, 3: referred, 4: ongoing, 5: other}}
      # A session per event instead of a repeating instrument: read the session number
      # from the event name (and label), e.g.
      #   session_from:
      #     column: redcap_event_name
      #     pattern: ["session_{{session}}_arm_1", "Session {{session}} (Arm 1: Arm 1)"]
      sessions:
        where: {{redcap_repeat_instrument: session_log}}
        columns:
          client_id: record_id
          session_number: redcap_repeat_instance
          status: attendance
        values:
          status: {{1: attended, 2: cancelled, 3: no_show}}
      measures:
        - where: {{redcap_event_name: baseline_arm_1, redcap_repeat_instrument: null}}
          columns: {{client_id: record_id}}
          constants: {{session_number: 0}}       # intake questionnaires
          wide:
            - {{instrument: phq9, pattern: "phq9_{{item}}"}}
"""

_FOOTER = """\

# Fit only these models (remove the list to fit the whole analysis plan).
models:
  - {{id: growth, kind: growth, primary: true}}

privacy:
  min_cell: 11
"""

_README = """\
# {study}

1. Put the study's files in `data/{study}/` (or change `path` in config.yaml).
2. Edit `config.yaml`: every key has a comment. For `format: mapped` or `redcap`, replace the
   example source column names with your own.
3. Check it: `accord validate {study} --config config.yaml` prints what was accepted, what was
   quarantined and why (file, row and column; never a value).
4. Run it: `accord run {study} --config config.yaml` writes `reports/{study}/report.html`.

Exit codes: 0 success; 1 the study or config broke a rule (the message names it); 2 usage.
"""

_BODIES = {"contract": _CONTRACT, "mapped": _MAPPED, "redcap": _REDCAP}


def starter_config(fmt: str, study: str = "mystudy", config: str = "config.yaml") -> str:
    """The text of a commented config for one study given as `fmt` (contract, mapped, redcap)."""
    if fmt not in _BODIES:
        raise AccordError(f"unknown format {fmt!r}: use one of {', '.join(_BODIES)}")
    values = {"study": study, "config": config}
    return (_HEADER + _BODIES[fmt] + _FOOTER).format(**values)


def write_starter(
    folder: str | Path, fmt: str = "contract", study: str = "mystudy", *, force: bool = False
) -> list[Path]:
    """Write `folder`/config.yaml and `folder`/README.md; refuse to overwrite unless `force`."""
    from accord.config import validate_config

    if not re.fullmatch(STUDY_NAME, study):
        raise AccordError(
            f"study name '{study}': use letters, digits, '_' and '-' (starting with a letter "
            "or digit)."
        )
    folder = Path(folder)
    config, readme = folder / "config.yaml", folder / "README.md"
    existing = [p for p in (config, readme) if p.exists()]
    if existing and not force:
        raise AccordError(
            f"{existing[0]} already exists; use --force to overwrite it, or choose another folder."
        )
    text = starter_config(fmt, study, str(config))
    # The starter must itself be a valid config (this also checks the study's name).
    validate_config(yaml.safe_load(text))
    folder.mkdir(parents=True, exist_ok=True)
    config.write_text(text, encoding="utf-8")
    readme.write_text(_README.format(study=study), encoding="utf-8")
    return [config, readme]
