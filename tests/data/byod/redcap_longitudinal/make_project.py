"""Write a small longitudinal REDCap project's exports, laid out as REDCap writes them.

The project a new user brings: 40 clients, 3 therapists, no trial arm, PHQ-9 and WAI-SR (no
GAD-7). Events: ``baseline_arm_1``, ``session_1_arm_1`` ... ``session_8_arm_1`` and
``end_of_treatment_arm_1`` (one arm, "Treatment"). Forms: ``intake`` and ``goal_plan`` (a wide
block of up to three goals, ``goal1_by`` ... with a SMART checkbox per goal) at baseline;
``session`` at every session event (attendance, minutes, a checkbox, a 0-100 homework slider,
PHQ-9, WAI-SR); ``goal_rating``, a repeating instrument at the last session (one GAS rating
per goal); ``end_of_treatment`` at the end event. Unchecked checkboxes are 0 wherever their
form was opened, as REDCap exports them.

Written with the standard library only, from a fixed seed, so the files are the same on every
machine: ``python make_project.py [FOLDER]`` (default: this script's folder).
"""

from __future__ import annotations

import csv
import random
import string
import sys
from pathlib import Path

ARM = "Treatment"
SESSIONS = 8
N_CLIENTS = 40
THERAPISTS = ("THR-K2P", "THR-M7Q", "THR-Z4W")
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
PHQ = "0, Not at all | 1, Several days | 2, More than half the days | 3, Nearly every day"
WAI = "1, Seldom | 2, Sometimes | 3, Fairly often | 4, Very often | 5, Always"
SMART = "1, Specific | 2, Measurable | 3, Achievable | 4, Relevant | 5, Time-bound"
FORM_LABELS = {"goal_rating": "Goal Rating"}


def dictionary() -> list[dict[str, str]]:
    """The fields: name, form, type, label, choices, validation, min, max."""

    def f(name, form, kind, label, choices="", validation="", lo="", hi=""):
        return dict(
            name=name, form=form, type=kind, label=label, choices=choices,
            validation=validation, min=lo, max=hi,
        )  # fmt: skip

    fields = [
        f("record_id", "intake", "text", "Record ID"),
        f("therapist", "intake", "text", "Therapist pseudonym"),
        f(
            "age_band",
            "intake",
            "dropdown",
            "Age band",
            "1, 18-24 | 2, 25-44 | 3, 45-64 | 4, 65-89",
        ),
        f("gender", "intake", "radio", "Gender", "1, Female | 2, Male | 3, Non-binary"),
    ]
    fields += [
        f(f"phq9_{i}", "intake", "radio", f"PHQ-9 item {i} (intake)", PHQ) for i in range(1, 10)
    ]
    for g in (1, 2, 3):
        fields += [
            f(f"goal{g}_by", "goal_plan", "radio", f"Goal {g} set by",
              "1, client | 2, therapist | 3, together (joint)"),
            f(f"goal{g}_imp_client", "goal_plan", "text", f"Goal {g} importance (client)",
              validation="integer", lo="1", hi="5"),
            f(f"goal{g}_imp_therapist", "goal_plan", "text", f"Goal {g} importance (therapist)",
              validation="integer", lo="1", hi="5"),
            f(f"goal{g}_smart", "goal_plan", "checkbox", f"Goal {g} is", SMART),
        ]  # fmt: skip
    fields += [
        f("attendance", "session", "radio", "Attendance",
          "1, Attended | 2, Cancelled | 3, Did not attend (DNA)"),
        f("minutes", "session", "text", "Session length (minutes)", validation="integer",
          lo="0", hi="180"),
        f("content", "session", "checkbox", "In this session",
          "1, Homework assigned | 2, Goals reviewed"),
        f("homework_done", "session", "slider", "Homework done (%)", "None | Half | All",
          validation="number"),
    ]  # fmt: skip
    fields += [f(f"sphq9_{i}", "session", "radio", f"PHQ-9 item {i}", PHQ) for i in range(1, 10)]
    fields += [f(f"wai_{i}", "session", "radio", f"WAI-SR item {i}", WAI) for i in range(1, 13)]
    fields += [
        f("gas_goal", "goal_rating", "text", "Goal number", validation="integer", lo="1", hi="3"),
        f("gas_score", "goal_rating", "radio", "Goal attainment",
          "-2, Much less than expected | -1, Less than expected | 0, As expected | "
          "1, More than expected | 2, Much more than expected"),
        f("end_reason", "end_of_treatment", "dropdown", "Reason for ending",
          "1, Planned ending | 2, Client stopped attending | 3, Referred on | 4, Other"),
    ]  # fmt: skip
    return fields


def events() -> list[tuple[str, str]]:
    """(event name, unique event name), in project order."""
    out = [("Baseline", "baseline_arm_1")]
    out += [(f"Session {s}", f"session_{s}_arm_1") for s in range(1, SESSIONS + 1)]
    return [*out, ("End of treatment", "end_of_treatment_arm_1")]


def columns(fields: list[dict[str, str]]) -> list[str]:
    """The records export's columns: the record, REDCap's own, each form's fields, complete."""
    out = ["record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"]
    for form in dict.fromkeys(x["form"] for x in fields):
        for x in fields:
            if x["form"] != form or x["name"] == "record_id":
                continue
            if x["type"] == "checkbox":
                out += [f"{x['name']}___{c.split(',')[0].strip()}" for c in x["choices"].split("|")]
            else:
                out.append(x["name"])
        out.append(f"{form}_complete")
    return out


def client_rows(rng: random.Random, record: str, therapist: str) -> list[dict[str, str]]:
    """One client's rows: baseline, each scheduled session, the goal ratings, the ending."""
    severity = rng.uniform(0.8, 2.4)
    rows = [
        {"redcap_event_name": "baseline_arm_1", "therapist": therapist,
         "age_band": str(rng.randint(1, 4)), "gender": str(rng.choice([1, 1, 2, 2, 3])),
         "intake_complete": "2", "goal_plan_complete": "2"}
    ]  # fmt: skip
    for i in range(1, 10):
        rows[0][f"phq9_{i}"] = _item(rng, severity)
    n_goals = rng.choice([1, 2, 2, 3, 3])
    for g in (1, 2, 3):
        for c in range(1, 6):
            rows[0][f"goal{g}_smart___{c}"] = str(int(g <= n_goals and rng.random() < 0.7))
        if g <= n_goals:
            rows[0][f"goal{g}_by"] = str(rng.choice([1, 2, 3, 3]))
            rows[0][f"goal{g}_imp_client"] = str(rng.randint(3, 5))
            rows[0][f"goal{g}_imp_therapist"] = str(rng.randint(2, 5))
    scheduled = rng.randint(2, SESSIONS)
    alliance = rng.uniform(2.8, 4.6)
    for s in range(1, scheduled + 1):
        status = 1 if s == 1 or s == scheduled else rng.choice([1] * 8 + [2, 3])
        row = {"redcap_event_name": f"session_{s}_arm_1", "attendance": str(status),
               "content___1": "0", "content___2": "0", "session_complete": "2"}  # fmt: skip
        if status == 1:
            row["minutes"] = str(rng.choice([45, 50, 50, 55, 60]))
            severity = max(0.0, severity - rng.uniform(0.0, 0.25))
            for i in range(1, 10):
                row[f"sphq9_{i}"] = _item(rng, severity)
            if s <= 3:
                for i in range(1, 13):
                    score = round(alliance + rng.uniform(-0.8, 0.8))
                    row[f"wai_{i}"] = str(min(5, max(1, score)))
            if rng.random() < 0.6:
                row["content___1"] = "1"
                row["homework_done"] = str(rng.randrange(0, 101, 10))
            row["content___2"] = str(int(rng.random() < 0.5))
        rows.append(row)
    last = f"session_{scheduled}_arm_1"
    for g in range(1, n_goals + 1):
        rows.append(
            {"redcap_event_name": last, "redcap_repeat_instrument": "goal_rating",
             "redcap_repeat_instance": str(g), "gas_goal": str(g),
             "gas_score": str(rng.choice([-1, 0, 0, 1, 2])), "goal_rating_complete": "2"}
        )  # fmt: skip
    ending = "1" if scheduled >= 6 else rng.choice(["2", "2", "3", "4"])
    rows.append(
        {"redcap_event_name": "end_of_treatment_arm_1", "end_reason": ending,
         "end_of_treatment_complete": "2"}
    )  # fmt: skip
    for row in rows:
        row["record_id"] = record
    return rows


def _item(rng: random.Random, severity: float) -> str:
    return str(min(3, max(0, round(severity + rng.uniform(-1.0, 1.0)))))


def records() -> list[dict[str, str]]:
    rng = random.Random(1407)
    out = []
    ids: set[str] = set()
    for n in range(N_CLIENTS):
        record = "".join(rng.choices(string.ascii_uppercase, k=8))
        while record in ids:
            record = "".join(rng.choices(string.ascii_uppercase, k=8))
        ids.add(record)
        out += client_rows(rng, record, THERAPISTS[n % len(THERAPISTS)])
    return out


def labelled(row: dict[str, str], fields: dict[str, dict[str, str]], names: dict[str, str]) -> dict:
    """A raw row as the labels export writes it: choice labels, event and instrument labels."""
    out = {}
    for column, value in row.items():
        field = fields.get(column.partition("___")[0])
        if column == "redcap_event_name":
            value = f"{names[value]} (Arm 1: {ARM})"
        elif column == "redcap_repeat_instrument":
            value = FORM_LABELS[value]
        elif column.endswith("_complete"):
            value = {"0": "Incomplete", "1": "Unverified", "2": "Complete"}[value]
        elif field is not None and field["type"] == "checkbox":
            value = "Checked" if value == "1" else "Unchecked"
        elif field is not None and field["type"] in ("radio", "dropdown"):
            choices = dict(
                (c.split(",", 1)[0].strip(), c.split(",", 1)[1].strip())
                for c in field["choices"].split("|")
            )
            value = choices[value]
        out[column] = value
    return out


def header_labels(order: list[str], fields: dict[str, dict[str, str]]) -> list[str]:
    special = {
        "redcap_event_name": "Event Name",
        "redcap_repeat_instrument": "Repeat Instrument",
        "redcap_repeat_instance": "Repeat Instance",
    }
    out = []
    for column in order:
        name, _, code = column.partition("___")
        if column in special:
            out.append(special[column])
        elif column.endswith("_complete") and name not in fields:
            out.append("Complete?")
        elif code:
            choices = dict(
                (c.split(",", 1)[0].strip(), c.split(",", 1)[1].strip())
                for c in fields[name]["choices"].split("|")
            )
            out.append(f"{fields[name]['label']} (choice={choices[code]})")
        else:
            out.append(fields[name]["label"])
    return out


def write(folder: Path) -> None:
    """dictionary.csv, events.csv, records.csv (raw) and records_labels.csv (labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    fields = dictionary()
    keys = ["name", "form", "", "type", "label", "choices", "", "validation", "min", "max"]
    _write(
        folder / "dictionary.csv",
        DICTIONARY_HEADER,
        [[x.get(k, "") if k else "" for k in keys] + [""] * 8 for x in fields],
    )
    _write(
        folder / "events.csv",
        ["event_name", "arm_num", "unique_event_name", "custom_event_label", "event_id",
         "days_offset", "offset_min", "offset_max"],
        [[name, "1", unique, "", str(100 + n), str(7 * n), "0", "0"]
         for n, (name, unique) in enumerate(events())],
    )  # fmt: skip
    order = columns(fields)
    rows = records()
    _write(folder / "records.csv", order, [[r.get(c, "") for c in order] for r in rows])
    by_name = {x["name"]: x for x in fields}
    names = {unique: name for name, unique in events()}
    labels = [labelled(r, by_name, names) for r in rows]
    _write(
        folder / "records_labels.csv",
        header_labels(order, by_name),
        [[r.get(c, "") for c in order] for r in labels],
    )


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
