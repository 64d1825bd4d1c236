"""The report's tables as tidy numeric CSV (reports/<study>/tidy/<name>.csv), read back the way
a researcher reads them: pandas and R's read.csv must see numbers, not text.

Expected values are the hand-made results of test_report_outputs (the growth model's exposure
term is b = -0.25, 95% CI [-0.40, -0.10], p = .002) and cells worked out by hand below.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report_outputs import CONFIG, RUN_DATE, write_hand_results

from accord.report import render_report
from accord.report.parts import table
from accord.report.tidy import Cell, read_cell, tidy_frame

# Display text that must never reach a tidy CSV.
DISPLAY_MARKS = ("<11", "\u2212", "\u2013", "[", "%")


@pytest.fixture(scope="module")
def tidy_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tidy")
    root = write_hand_results(folder / "results")
    out = folder / "report" / "report.html"
    render_report(root, out, study="hand", config=CONFIG, run_date=RUN_DATE)
    return out.parent / "tidy"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", Cell((("", 12.0),))),
        ("\u22120.250", Cell((("", -0.25),))),
        (".05", Cell((("", 0.05),))),
        ("1,204", Cell((("", 1204.0),))),
        ("52.0%", Cell((("_pct", 52.0),))),
        ("34.8 (5.1)", Cell((("", 34.8), ("_sd", 5.1)))),
        ("12 (48.0%)", Cell((("", 12.0), ("_pct", 48.0)))),
        ("[\u22120.400, \u22120.100]", Cell((("_low", -0.4), ("_high", -0.1)))),
        ("0.61 [0.30, 1.22]", Cell((("", 0.61), ("_low", 0.3), ("_high", 1.22)))),
        ("< .001", Cell((("_upper_bound", 0.001),))),
        ("\u2264 .005", Cell((("_upper_bound", 0.005),))),
        ("<11", Cell(withheld=True)),
        ("*", Cell(withheld=True)),
        ("140\u2013149", Cell(withheld=True)),
        ("\u2013", Cell()),
        ("", Cell()),
        ("not given", Cell()),
        ("REML", None),
        ("2.4.6", None),
    ],
)
def test_display_cells_read_back_as_numbers(text, expected):
    assert read_cell(text, 11) == expected


LAST = ["0.61 [0.30, 1.22]", "3 [2, 4]"]


def test_a_display_table_becomes_one_number_per_cell_with_suppression_flags():
    t = table(
        "t",
        "T",
        ["Group", "n", "Mean (SD)", "95% CI", "p", "OR [95% CI]", "Median [IQR]"],
        [
            ["a \u00d7 b", "25", "\u22121.5 (0.5)", "[\u22122.0, \u22121.0]", "< .001", *LAST],
            ["\u2003c", "<11", "\u2013", "\u2013", ".042", "\u2013", "*"],
        ],
    )
    frame = tidy_frame(t, 11)
    assert list(frame.columns) == [
        "group",
        "n",
        "n_suppressed",
        "mean",
        "sd",
        "ci_low",
        "ci_high",
        "p",
        "p_upper_bound",
        "or",
        "or_ci_low",
        "or_ci_high",
        "median_iqr",
        "median_iqr_low",
        "median_iqr_high",
        "median_iqr_suppressed",
    ]
    assert frame["group"].tolist() == ["a x b", "c"]
    assert frame["n"].tolist()[0] == 25 and np.isnan(frame["n"][1])
    assert frame["n_suppressed"].tolist() == [0, 1]
    assert frame.loc[0, ["mean", "sd", "ci_low", "ci_high"]].tolist() == [-1.5, 0.5, -2.0, -1.0]
    assert np.isnan(frame["p"][0]) and frame["p"][1] == 0.042
    assert frame["p_upper_bound"][0] == 0.001 and np.isnan(frame["p_upper_bound"][1])
    assert frame.loc[0, ["or", "or_ci_low", "or_ci_high"]].tolist() == [0.61, 0.3, 1.22]
    assert frame.loc[0, ["median_iqr", "median_iqr_low", "median_iqr_high"]].tolist() == [3, 2, 4]
    assert frame["median_iqr_suppressed"].tolist() == [0, 1]


def test_model_tables_hold_the_estimates_as_numbers(tidy_dir: Path):
    growth = pd.read_csv(tidy_dir / "models_growth.csv")
    row = growth.loc[growth["term"] == "time:joint_goal_share"].iloc[0]
    assert row[["b", "ci_low", "ci_high", "p"]].tolist() == [-0.25, -0.4, -0.1, 0.002]
    assert row["primary"] == 1 and row["suppressed"] == 0
    # SE = (0.4 - 0.1) / (2 x 1.96) = 0.0765306..., kept to four significant digits.
    assert row["se"] == 0.07653
    # The intercept's p reads "< .001" in the report and 1e-9 here.
    assert growth.loc[growth["term"] == "Intercept", "p"].iloc[0] == pytest.approx(1e-9)
    every = pd.read_csv(tidy_dir / "models_coefficients.csv")
    dropout = every.loc[every["model"] == "dropout"].iloc[0]
    assert dropout[["ratio", "ratio_ci_low", "ratio_ci_high"]].tolist() == [0.61, 0.3, 1.22]


def test_a_model_of_too_few_clients_is_empty_and_flagged():
    from accord.report.tidy import coefficient_data

    part = pd.DataFrame(
        {"term": ["x"], "estimate": [1.0], "std_error": [0.1], "ci_low": [0.8], "ci_high": [1.2]}
        | {"p_value": [0.01], "primary": ["True"]}
    )
    data = coefficient_data(part, ["x"], withheld=True, ratio=False)
    assert data["suppressed"].tolist() == [1]
    assert data[["b", "se", "ci_low", "ci_high", "p"]].isna().all(axis=None)


def test_tidy_tables_and_the_word_document_are_byte_identical_on_a_second_run(
    tidy_dir: Path, tmp_path: Path
):
    again = tmp_path / "report.html"
    render_report(
        tidy_dir.parent.parent / "results", again, study="hand", config=CONFIG, run_date=RUN_DATE
    )
    assert (tmp_path / "report.docx").read_bytes() == (tidy_dir.parent / "report.docx").read_bytes()
    for path in tidy_dir.iterdir():
        assert (tmp_path / "tidy" / path.name).read_bytes() == path.read_bytes(), path.name


def test_every_tidy_csv_is_ascii_and_reads_as_numbers_in_pandas(tidy_dir: Path):
    assert read_back_problems(tidy_dir) == []


def test_read_csv_in_r_sees_the_same_numeric_columns(tidy_dir: Path):
    assert r_disagreements(tidy_dir) == []


@pytest.mark.e2e
def test_the_workflow_writes_tidy_tables_that_read_as_numbers(workflow_run: Path):
    folder = workflow_run / "reports" / "small" / "tidy"
    assert read_back_problems(folder) == []
    assert r_disagreements(folder) == []


#: Columns that always hold numbers, by name or by the end of their name.
NUMERIC_NAMES = ("b", "se", "p", "ci_low", "ci_high", "estimate")
NUMERIC_ENDINGS = ("_low", "_high", "_suppressed", "_pct", "_sd", "_upper_bound")


def read_back_problems(folder: Path) -> list[str]:
    """What keeps the tidy CSVs in `folder` from reading as numbers in pandas."""
    paths = sorted(folder.glob("*.csv"))
    tables = {p.stem for p in (folder.parent / "tables").glob("*.csv")}
    problems = [] if {p.stem for p in paths} == tables else ["not every table has a tidy CSV"]
    for path in paths:
        if not path.read_bytes().isascii():
            problems.append(f"{path.name} is not ASCII")
        frame = pd.read_csv(path)
        for name in frame.columns:
            numeric = pd.api.types.is_numeric_dtype(frame[name])
            if (name in NUMERIC_NAMES or name.endswith(NUMERIC_ENDINGS)) and not numeric:
                problems.append(f"{path.name}: {name} reads as {frame[name].dtype}")
            if not numeric:
                marks = [c for c in frame[name].dropna().astype(str) if c in ("<11", "*")]
                if marks:
                    problems.append(f"{path.name}: {name} holds display marks {marks[:3]}")
    return problems


def r_disagreements(folder: Path) -> list[tuple[str, str, str]]:
    """Columns that R's read.csv reads as text where pandas reads numbers, or the reverse."""
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not installed")
    script = (
        "for (f in commandArgs(TRUE)) { d <- read.csv(f); "
        "for (n in names(d)) cat(paste(basename(f), n, class(d[[n]])[1], "
        "all(is.na(d[[n]])), sep = '\\t'), '\\n', sep = '') }"
    )
    paths = sorted(folder.glob("*.csv"))
    done = subprocess.run(
        ["Rscript", "-e", script, *map(str, paths)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    r_classes = {}
    for line in done.stdout.splitlines():
        file, column, kind, empty = line.split("\t")
        r_classes[(file, column)] = (kind, empty == "TRUE")
    disagree = []
    for path in paths:
        frame = pd.read_csv(path)
        for name in frame.columns:
            kind, empty = r_classes[(path.name, _r_name(name))]
            numeric_in_r = kind in ("numeric", "integer") or (kind == "logical" and empty)
            if numeric_in_r != pd.api.types.is_numeric_dtype(frame[name]):
                disagree.append((path.name, name, kind))
    return disagree


def _r_name(name: str) -> str:
    """The name R's read.csv gives a column (check.names: a leading digit gets an X)."""
    return f"X{name}" if name[:1].isdigit() else name
