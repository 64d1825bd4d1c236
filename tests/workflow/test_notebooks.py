"""The exploration notebooks: committed without outputs, and each runs against a study's results."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
STUDY = "small"


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_carry_no_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {number} has outputs"
            assert cell.execution_count is None, f"{path.name}: cell {number} has a count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_parameters_come_from_the_environment(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "parameters" in first_code.metadata.get("tags", [])
    for name in ("ACCORD_STUDY", "ACCORD_ROOT", "ACCORD_CONFIG"):
        assert name in first_code.source


def identifiers_shown(notebook, workflow_run: Path) -> int:
    """How many client or therapist pseudonyms of the study appear in the notebook's outputs.

    Only the count leaves this function, so a failing test never prints a pseudonym.
    """
    clients = pd.read_csv(workflow_run / "data" / STUDY / "clients.csv", dtype=str)
    pseudonyms = set(clients["client_id"].dropna()) | set(clients["therapist_id"].dropna())
    shown = set(re.findall(r"[A-Za-z0-9][A-Za-z0-9_.-]*", output_text(notebook)))
    return len(shown & pseudonyms)


def run_notebook(
    path: Path, workflow_run: Path, monkeypatch: pytest.MonkeyPatch, study: str = STUDY
):
    """Execute a copy of the notebook in a fresh kernel of this environment."""
    monkeypatch.setenv("ACCORD_STUDY", study)
    monkeypatch.setenv("ACCORD_ROOT", str(workflow_run))
    config = workflow_run / "config.yaml"
    if not config.exists():
        config = workflow_run / "config" / "config.yaml"
    monkeypatch.setenv("ACCORD_CONFIG", str(config))
    # The kernel imports accord from this checkout, installed or not; figures are drawn inline.
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(path, as_version=4)
    # "python3" is this interpreter's own kernel (jupyter_client runs it with sys.executable).
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return notebook


def output_text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            for mime, value in output.get("data", {}).items():
                if mime.startswith("text/") or mime.endswith("json"):
                    parts.append(str(value))
    return "\n".join(parts)


@pytest.mark.e2e
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_the_results_and_shows_no_identifier(
    path: Path, workflow_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = run_notebook(path, workflow_run, monkeypatch)
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
    # Aggregates only: no pseudonym of a client or therapist in anything the notebook shows.
    assert identifiers_shown(notebook, workflow_run) == 0
    if "figure" in path.stem:
        images = [
            output
            for cell in code
            for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})
        ]
        assert len(images) == 1
