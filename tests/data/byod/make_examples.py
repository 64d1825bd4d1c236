"""Write the example studies in researchers' own formats, from one small simulated study.

    .venv/bin/python tests/data/byod/make_examples.py

- redcap/: a longitudinal REDCap project (events baseline and treatment; repeating
  instruments session_log and goals; checkbox fields; form-complete columns), exported twice:
  records.csv (raw codes, variable names) and records_labels.csv (labels, field labels as
  headers), with its data dictionary dictionary.csv;
- spss/: clients.sav, sessions.sav, goals.sav and outcomes.zsav (questionnaires wide as
  PHQ9_1_T0 .. GAD7_7_T8), with value labels and user-defined missing values 99 and 999;
- excel/: workbook.xlsx with a cover sheet, a header row below a title, a wide attendance
  sheet (attend_s1 ..), questionnaires one row per visit, and -99 for a skipped item.

Each folder has a config.yaml mapping it onto the data contract. The tables come from
`accord.simulate.simulate_study` with a fixed seed, so the expected contract rows are known.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from accord.simulate import simulate_study

HERE = Path(__file__).resolve().parent
SEED = 20260
N_CLIENTS = 48
MAX_SESSIONS = 8
PHQ9_ITEMS, GAD7_ITEMS, WAI_ITEMS = 9, 7, 12

STATUS_CODES = {"attended": 1, "cancelled": 2, "no_show": 3}
MODALITY_CODES = {"in_person": 1, "video": 2, "phone": 3, "other": 4}
END_CODES = {"completed": 1, "dropout": 2, "referred": 3, "ongoing": 4, "other": 5}
SET_BY_CODES = {"client": 1, "therapist": 2, "joint": 3}
GOAL_STATUS_CODES = {"active": 1, "achieved": 2, "revised": 3, "abandoned": 4}
SMART = ["specific", "measurable", "achievable", "relevant", "time_bound"]


def study():
    """The simulated study every example is made from."""
    return simulate_study(
        n_clients=N_CLIENTS, n_therapists=6, n_sites=2, seed=SEED, max_sessions=MAX_SESSIONS
    )


def item_table(measures: pd.DataFrame, instrument: str, rater: str = "client") -> pd.DataFrame:
    """One row per client and session, one column per item (absent responses are NaN)."""
    rows = measures[(measures["instrument"] == instrument) & (measures["rater"] == rater)]
    wide = rows.pivot_table(
        index=["client_id", "session_number"], columns="item", values="value", aggfunc="first"
    )
    return wide.rename(columns=lambda item: int(item))


def _text(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_text(v) for v in row] for row in rows])
    path.write_text(buffer.getvalue(), encoding="utf-8")


# --------------------------------------------------------------------------- REDCap


def redcap_dictionary() -> list[dict[str, str]]:
    """The data dictionary: (field, form, type, label, choices, validation, min, max, id?)."""
    likert4 = "0, Not at all | 1, Several days | 2, More than half the days | 3, Nearly every day"
    five = " | ".join(
        f"{i}, {label}"
        for i, label in enumerate(
            ["Seldom", "Sometimes", "Fairly often", "Very often", "Always"], start=1
        )
    )
    fields = [
        ("record_id", "intake", "text", "Record ID", "", "", "", "", ""),
        ("therapist", "intake", "text", "Therapist pseudonym", "", "", "", "", ""),
        ("site", "intake", "text", "Site pseudonym", "", "", "", "", ""),
        ("contact_email", "intake", "text", "Contact e-mail", "", "email", "", "", "y"),
        (
            "arm",
            "intake",
            "radio",
            "Trial arm",
            "1, Collaborative goal setting | 2, Usual care",
            "",
            "",
            "",
            "",
        ),
        ("intake_year", "intake", "text", "Year of intake", "", "integer", "2000", "2030", ""),
        ("age", "intake", "text", "Age (years)", "", "integer", "18", "89", ""),
        ("age_band", "intake", "text", "Age band", "", "", "", "", ""),
        (
            "gender",
            "intake",
            "dropdown",
            "Gender",
            "1, female | 2, male | 3, non-binary",
            "",
            "",
            "",
            "",
        ),
    ]
    fields += [
        (f"phq9_{i}", "intake", "radio", f"PHQ-9 item {i} (intake)", likert4, "", "", "", "")
        for i in range(1, PHQ9_ITEMS + 1)
    ]
    fields += [
        (f"gad7_{i}", "intake", "radio", f"GAD-7 item {i} (intake)", likert4, "", "", "", "")
        for i in range(1, GAD7_ITEMS + 1)
    ]
    fields += [
        (
            "end_reason",
            "treatment_end",
            "dropdown",
            "How treatment ended",
            "1, completed | 2, dropout | 3, referred | 4, ongoing | 5, other",
            "",
            "",
            "",
            "",
        ),
        ("goal_id", "goals", "text", "Goal", "", "", "", "", ""),
        (
            "goal_set_session",
            "goals",
            "text",
            "Session the goal was agreed",
            "",
            "integer",
            "0",
            "100",
            "",
        ),
        (
            "goal_set_by",
            "goals",
            "radio",
            "Who set the goal",
            "1, client | 2, therapist | 3, together (joint)",
            "",
            "",
            "",
            "",
        ),
        (
            "importance_client",
            "goals",
            "radio",
            "Importance to the client",
            "1, 1 | 2, 2 | 3, 3 | 4, 4 | 5, 5",
            "",
            "",
            "",
            "",
        ),
        (
            "importance_therapist",
            "goals",
            "radio",
            "Importance to the therapist",
            "1, 1 | 2, 2 | 3, 3 | 4, 4 | 5, 5",
            "",
            "",
            "",
            "",
        ),
        (
            "smart",
            "goals",
            "checkbox",
            "SMART criteria met",
            "1, Specific | 2, Measurable | 3, Achievable | 4, Relevant | 5, Time-bound",
            "",
            "",
            "",
            "",
        ),
        (
            "goal_status",
            "goals",
            "dropdown",
            "Goal status",
            "1, active | 2, achieved | 3, revised | 4, abandoned",
            "",
            "",
            "",
            "",
        ),
        (
            "goal_revised_session",
            "goals",
            "text",
            "Session the goal was revised",
            "",
            "integer",
            "0",
            "100",
            "",
        ),
        (
            "session_status",
            "session_log",
            "radio",
            "Attendance",
            "1, attended | 2, cancelled | 3, did not attend (DNA)",
            "",
            "",
            "",
            "",
        ),
        (
            "session_day",
            "session_log",
            "text",
            "Days since first appointment",
            "",
            "integer",
            "0",
            "3650",
            "",
        ),
        (
            "session_minutes",
            "session_log",
            "text",
            "Duration (minutes)",
            "",
            "number",
            "0",
            "600",
            "",
        ),
        (
            "session_mode",
            "session_log",
            "dropdown",
            "Modality",
            "1, in person | 2, video | 3, phone | 4, other",
            "",
            "",
            "",
            "",
        ),
        (
            "session_content",
            "session_log",
            "checkbox",
            "In this session",
            "1, Homework assigned | 2, Goals reviewed",
            "",
            "",
            "",
            "",
        ),
        (
            "homework_done",
            "session_log",
            "text",
            "Share of homework done",
            "",
            "number",
            "0",
            "1",
            "",
        ),
    ]
    fields += [
        (f"sphq9_{i}", "session_log", "radio", f"PHQ-9 item {i} (session)", likert4, "", "", "", "")
        for i in range(1, PHQ9_ITEMS + 1)
    ]
    fields += [
        (f"sgad7_{i}", "session_log", "radio", f"GAD-7 item {i} (session)", likert4, "", "", "", "")
        for i in range(1, GAD7_ITEMS + 1)
    ]
    fields += [
        (f"wai_{i}", "session_log", "radio", f"WAI-SR item {i}", five, "", "", "", "")
        for i in range(1, WAI_ITEMS + 1)
    ]
    keys = ["field", "form", "type", "label", "choices", "validation", "min", "max", "identifier"]
    return [dict(zip(keys, f, strict=True)) for f in fields]


DICTIONARY_HEADER = [
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
]
FORMS = ["intake", "treatment_end", "goals", "session_log"]
EVENTS = {
    "baseline_arm_1": "Baseline (Arm 1: Arm 1)",
    "treatment_arm_1": "Treatment (Arm 1: Arm 1)",
}
FORM_LABELS = {"goals": "Goals", "session_log": "Session Log"}


def write_redcap(folder: Path) -> None:
    """records.csv (raw), records_labels.csv (labels) and dictionary.csv."""
    s = study()
    fields = redcap_dictionary()
    folder.mkdir(parents=True, exist_ok=True)
    _write_csv(
        folder / "dictionary.csv",
        DICTIONARY_HEADER,
        [
            [
                f["field"],
                f["form"],
                "",
                f["type"],
                f["label"],
                f["choices"],
                "",
                f["validation"],
                f["min"],
                f["max"],
                f["identifier"],
                "",
                "",
                "",
                "",
                "",
                "",
                "",
            ]
            for f in fields
        ],
    )
    columns = [
        "record_id",
        "redcap_event_name",
        "redcap_repeat_instrument",
        "redcap_repeat_instance",
    ]
    for form in FORMS:
        for f in fields:
            if f["form"] != form or f["field"] in ("record_id", "contact_email"):
                continue
            if f["type"] == "checkbox":
                columns += [
                    f"{f['field']}___{c.split(',')[0].strip()}" for c in f["choices"].split("|")
                ]
            else:
                columns.append(f["field"])
        columns.append(f"{form}_complete")

    phq9, gad7 = item_table(s.measures, "phq9"), item_table(s.measures, "gad7")
    wai = item_table(s.measures, "wai_sr")
    goals = s.goals.set_index("client_id")
    sessions = s.sessions.set_index("client_id")
    records = []
    for client in s.clients.itertuples(index=False):
        row = {
            "record_id": client.client_id,
            "redcap_event_name": "baseline_arm_1",
            "therapist": client.therapist_id,
            "site": client.site_id,
            "arm": 1 if client.arm == "collaborative" else 2,
            "intake_year": client.intake_year,
            "age": client.age,
            "age_band": client.age_band,
            "gender": {"female": 1, "male": 2}.get(client.gender, 3),
            "end_reason": END_CODES[client.end_reason],
            "intake_complete": 2,
            "treatment_end_complete": 2,
        }
        for items, prefix in ((phq9, "phq9"), (gad7, "gad7")):
            if (client.client_id, 0) in items.index:
                for item, value in items.loc[(client.client_id, 0)].items():
                    row[f"{prefix}_{item}"] = value
        records.append(row)
        own_goals = goals.loc[[client.client_id]] if client.client_id in goals.index else []
        for n, goal in enumerate(getattr(own_goals, "itertuples", lambda: [])(), start=1):
            g = {
                "record_id": client.client_id,
                "redcap_event_name": "baseline_arm_1",
                "redcap_repeat_instrument": "goals",
                "redcap_repeat_instance": n,
                "goal_id": goal.goal_id,
                "goal_set_session": goal.set_session,
                "goal_set_by": SET_BY_CODES[goal.set_by],
                "importance_client": goal.client_importance,
                "importance_therapist": goal.therapist_importance,
                "goal_status": GOAL_STATUS_CODES[goal.status],
                "goal_revised_session": goal.revised_session,
                "goals_complete": 2,
            }
            for code, name in enumerate(SMART, start=1):
                g[f"smart___{code}"] = int(bool(getattr(goal, f"smart_{name}")))
            records.append(g)
        for sess in sessions.loc[[client.client_id]].itertuples():
            r = {
                "record_id": client.client_id,
                "redcap_event_name": "treatment_arm_1",
                "redcap_repeat_instrument": "session_log",
                "redcap_repeat_instance": sess.session_number,
                "session_status": STATUS_CODES[sess.status],
                "session_day": sess.day,
                "session_minutes": sess.duration_min,
                "session_mode": MODALITY_CODES.get(sess.modality, ""),
                "session_content___1": int(sess.homework_assigned is True),
                "session_content___2": int(sess.goal_review is True),
                "homework_done": sess.homework_completion,
                "session_log_complete": 2,
            }
            key = (client.client_id, sess.session_number)
            for items, prefix in ((phq9, "sphq9"), (gad7, "sgad7"), (wai, "wai")):
                if key in items.index:
                    for item, value in items.loc[key].items():
                        r[f"{prefix}_{item}"] = value
            records.append(r)
    _write_csv(folder / "records.csv", columns, [[r.get(c) for c in columns] for r in records])
    _write_labels_export(folder / "records_labels.csv", columns, records, fields)


def _write_labels_export(path: Path, columns: list[str], records: list[dict], fields) -> None:
    """The same records as REDCap's labels export: field labels as headers, choice labels."""
    by_name = {f["field"]: f for f in fields}
    header, decoders = [], []
    for column in columns:
        base, _, code = column.partition("___")
        if column in ("record_id",):
            header.append("Record ID")
            decoders.append(lambda v: v)
        elif column == "redcap_event_name":
            header.append("Event Name")
            decoders.append(lambda v: EVENTS.get(v, v))
        elif column == "redcap_repeat_instrument":
            header.append("Repeat Instrument")
            decoders.append(lambda v: FORM_LABELS.get(v, v))
        elif column == "redcap_repeat_instance":
            header.append("Repeat Instance")
            decoders.append(lambda v: v)
        elif column.endswith("_complete"):
            header.append("Complete?")
            decoders.append(lambda v: {2: "Complete", 0: "Incomplete"}.get(v, v))
        elif code:
            f = by_name[base]
            choices = dict(c.split(",", 1) for c in f["choices"].split("|"))
            choices = {k.strip(): v.strip() for k, v in choices.items()}
            header.append(f"{f['label']} (choice={choices[code]})")
            decoders.append(lambda v: {1: "Checked", 0: "Unchecked"}.get(v, v))
        else:
            f = by_name[column]
            header.append(f["label"])
            if f["choices"]:
                choices = {
                    int(k): v.strip() for k, v in (c.split(",", 1) for c in f["choices"].split("|"))
                }
                decoders.append(lambda v, c=choices: c.get(int(v), v) if _text(v) else v)
            else:
                decoders.append(lambda v: v)
    rows = [[d(r.get(c)) for c, d in zip(columns, decoders, strict=True)] for r in records]
    _write_csv(path, header, rows)


# --------------------------------------------------------------------------- SPSS


def write_spss(folder: Path) -> None:
    """clients.sav, sessions.sav, goals.sav and outcomes.zsav with labels and user missing."""
    import pyreadstat

    s = study()
    folder.mkdir(parents=True, exist_ok=True)
    clients = pd.DataFrame(
        {
            "id": s.clients["client_id"].astype(str),
            "therapist": s.clients["therapist_id"].astype(str),
            "site": s.clients["site_id"].astype(str),
            "condition": np.where(s.clients["arm"] == "collaborative", 1.0, 2.0),
            "year": s.clients["intake_year"].astype(float),
            "age": s.clients["age"].astype(float),
            "ageband": s.clients["age_band"].astype(str),
            "sex": s.clients["gender"].map({"female": 1.0, "male": 2.0}).fillna(3.0),
            "ending": s.clients["end_reason"].map(END_CODES).astype(float),
        }
    )
    # Three ages were not asked (999) and two refused (99): user-defined missing, not ages.
    clients.loc[[3, 11, 27], "age"] = 999.0
    clients.loc[[5, 30], "age"] = 99.0
    pyreadstat.write_sav(
        clients,
        folder / "clients.sav",
        variable_value_labels={
            "condition": {1.0: "collaborative", 2.0: "usual_care"},
            "sex": {1.0: "female", 2.0: "male", 3.0: "another gender"},
            "ending": {float(v): k for k, v in END_CODES.items()},
            "age": {99.0: "refused", 999.0: "not asked"},
        },
        missing_ranges={"age": [99.0, 999.0]},
    )
    sessions = pd.DataFrame(
        {
            "id": s.sessions["client_id"].astype(str),
            "visit": s.sessions["session_number"].astype(float),
            "attend": s.sessions["status"].map(STATUS_CODES).astype(float),
            "day": s.sessions["day"].astype(float),
            "minutes": s.sessions["duration_min"].astype("Float64").astype(float),
            "mode": s.sessions["modality"].map(MODALITY_CODES).astype(float),
            "hw": s.sessions["homework_assigned"].astype("Float64").astype(float),
            "hwdone": s.sessions["homework_completion"].astype(float),
            "review": s.sessions["goal_review"].astype("Float64").astype(float),
        }
    )
    # Unknown durations were coded 999 at these clinics.
    unknown = sessions["minutes"].isna()
    sessions.loc[unknown, "minutes"] = 999.0
    pyreadstat.write_sav(
        sessions,
        folder / "sessions.sav",
        variable_value_labels={
            "attend": {1.0: "attended", 2.0: "cancelled", 3.0: "DNA"},
            "mode": {float(v): k for k, v in MODALITY_CODES.items()},
            "hw": {0.0: "no", 1.0: "yes"},
            "review": {0.0: "no", 1.0: "yes"},
        },
        missing_ranges={"minutes": [999.0]},
    )
    goals = pd.DataFrame(
        {
            "id": s.goals["client_id"].astype(str),
            "goal": s.goals["goal_id"].astype(str),
            "setat": s.goals["set_session"].astype(float),
            "setby": s.goals["set_by"].map(SET_BY_CODES).astype(float),
            "imp_c": s.goals["client_importance"].astype(float),
            "imp_t": s.goals["therapist_importance"].astype(float),
            **{f"smart_{k}": s.goals[f"smart_{k}"].astype(float) for k in SMART},
            "gstatus": s.goals["status"].map(GOAL_STATUS_CODES).astype(float),
            "revised": s.goals["revised_session"].astype("Float64").astype(float),
        }
    )
    pyreadstat.write_sav(
        goals,
        folder / "goals.sav",
        variable_value_labels={
            "setby": {1.0: "client", 2.0: "therapist", 3.0: "joint"},
            "gstatus": {float(v): k for k, v in GOAL_STATUS_CODES.items()},
        },
    )
    ids = pd.Index(s.clients["client_id"].astype(str), name="id")
    columns = {}
    for instrument, name, k in (("phq9", "PHQ9", PHQ9_ITEMS), ("gad7", "GAD7", GAD7_ITEMS)):
        items = item_table(s.measures, instrument)
        for session in range(MAX_SESSIONS + 1):
            at = (
                items.xs(session, level="session_number")
                if session in items.index.get_level_values(1)
                else pd.DataFrame(columns=range(1, k + 1))
            )
            for item in range(1, k + 1):
                columns[f"{name}_{item}_T{session}"] = at[item].reindex(ids).astype(float)
    outcomes = pd.DataFrame(columns, index=ids)
    # A handful of items were skipped and coded 99.
    skipped = [("PHQ9_3_T0", 2), ("PHQ9_7_T0", 9), ("GAD7_2_T0", 14)]
    for column, row in skipped:
        outcomes.iloc[row, outcomes.columns.get_loc(column)] = 99.0
    outcomes = outcomes.reset_index()
    item_columns = [c for c in outcomes.columns if c != "id"]
    pyreadstat.write_sav(
        outcomes,
        folder / "outcomes.zsav",
        compress=True,
        missing_ranges={c: [99.0] for c in item_columns},
        variable_value_labels={c: {99.0: "skipped"} for c in item_columns},
    )


# --------------------------------------------------------------------------- Excel


def write_excel(folder: Path) -> None:
    """workbook.xlsx: a cover sheet, then Clients, Appointments, Questionnaires and Goals."""
    import datetime

    import openpyxl

    s = study()
    folder.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    cover = book.active
    cover.title = "Read me"
    cover.append(["Outcome study workbook (synthetic example for accord)"])
    cover.append(["Sheets: Clients, Appointments, Questionnaires, Goals"])

    sheet = book.create_sheet("Clients")
    sheet.append(["Client register"])
    sheet.append([])
    sheet.append(
        [
            "Client",
            "Therapist",
            "Site",
            "Condition",
            "Intake year",
            "Age",
            "Age band",
            "Gender",
            "Ending",
        ]
    )
    for c in s.clients.itertuples(index=False):
        sheet.append(
            [
                c.client_id,
                c.therapist_id,
                c.site_id,
                "CGS" if c.arm == "collaborative" else "TAU",
                int(c.intake_year),
                int(c.age),
                c.age_band,
                c.gender,
                c.end_reason.capitalize(),
            ]
        )

    sheet = book.create_sheet("Appointments")
    header = ["Client"]
    header += [f"attend_s{n}" for n in range(1, MAX_SESSIONS + 1)]
    header += [f"day_s{n}" for n in range(1, MAX_SESSIONS + 1)]
    sheet.append(header)
    by_client = s.sessions.set_index(["client_id", "session_number"])
    for client in s.clients["client_id"]:
        row = [client]
        for field in ("status", "day"):
            for n in range(1, MAX_SESSIONS + 1):
                if (client, n) not in by_client.index:
                    row.append(None)
                    continue
                value = by_client.loc[(client, n), field]
                row.append(
                    {"attended": "A", "cancelled": "C", "no_show": "DNA"}[value]
                    if field == "status"
                    else int(value)
                )
        sheet.append(row)

    sheet = book.create_sheet("Questionnaires")
    sheet.append(["Questionnaires, one row per visit"])
    header = ["Client", "Visit"]
    header += [f"PHQ9_{i}" for i in range(1, PHQ9_ITEMS + 1)]
    header += [f"GAD7_{i}" for i in range(1, GAD7_ITEMS + 1)]
    sheet.append(header)
    phq9, gad7 = item_table(s.measures, "phq9"), item_table(s.measures, "gad7")
    visits = sorted(set(phq9.index) | set(gad7.index))
    for n, (client, session) in enumerate(visits):
        row = [client, "Intake" if session == 0 else f"Session {session}"]
        for items, k in ((phq9, PHQ9_ITEMS), (gad7, GAD7_ITEMS)):
            values = items.loc[(client, session)] if (client, session) in items.index else {}
            for item in range(1, k + 1):
                value = values.get(item, np.nan) if len(values) else np.nan
                row.append(None if pd.isna(value) else int(value))
        if n in (4, 40):
            row[2 + 4] = -99  # PHQ-9 item 5 skipped: the clinic's missing code
        sheet.append(row)

    sheet = book.create_sheet("Goals")
    sheet.append(
        [
            "Client",
            "Goal",
            "Agreed at session",
            "Set by",
            "Importance (client)",
            "Importance (therapist)",
            "Specific",
            "Measurable",
            "Achievable",
            "Relevant",
            "Time-bound",
            "Status",
            "Revised at session",
        ]
    )
    for g in s.goals.itertuples(index=False):
        sheet.append(
            [
                g.client_id,
                g.goal_id,
                int(g.set_session),
                g.set_by,
                int(g.client_importance),
                int(g.therapist_importance),
                *["yes" if getattr(g, f"smart_{k}") else "no" for k in SMART],
                g.status,
                None if pd.isna(g.revised_session) else int(g.revised_session),
            ]
        )
    fixed = datetime.datetime(2026, 1, 1)
    book.properties.created = fixed
    book.properties.modified = fixed
    book.save(folder / "workbook.xlsx")


def main() -> None:
    write_redcap(HERE / "redcap")
    write_spss(HERE / "spss")
    write_excel(HERE / "excel")


if __name__ == "__main__":
    main()
