"""Snakemake's own report bundle (`snakemake --report report.zip`) of a finished run.

The study report's outputs are tagged with `report(...)` in workflow/rules/report.smk, so the
bundle holds the study report, its tables and its figures, each under its caption from
workflow/report/*.rst.
"""

from __future__ import annotations

import hashlib
import html
import re
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, snakemake

pytestmark = pytest.mark.e2e

REPORT_RULES = ROOT / "workflow" / "rules" / "report.smk"
# The captions the study report's rule uses (other rules, such as a pooled report, have their own).
CAPTIONS = sorted(
    ROOT / "workflow" / "report" / name
    for name in set(re.findall(r"report/([\w-]+\.rst)", REPORT_RULES.read_text()))
)


@pytest.fixture(scope="module")
def bundle(workflow_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The members of the report bundle of the shared workflow run, by name."""
    out = tmp_path_factory.mktemp("snakemake_report") / "report.zip"
    done = snakemake(workflow_run, "--configfile", "config.yaml", "--report", str(out))
    assert done.returncode == 0, done.stderr[-4000:]
    assert zipfile.is_zipfile(out), f"snakemake --report exited 0 but wrote no zip at {out}"
    with zipfile.ZipFile(out) as archive:
        return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _page_text(bundle: dict[str, bytes]) -> str:
    """The words of the bundle's own page (report/report.html), with the JSON, HTML and
    typographic escapes of the embedded captions undone and quotation marks left out."""
    pages = [name for name in bundle if name.count("/") <= 1 and name.endswith("report.html")]
    assert pages, f"no report.html at the top of the bundle: {sorted(bundle)[:10]}"
    page = bundle[min(pages, key=len)].decode("utf-8")
    page = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), page)
    page = page.replace("\\n", " ").replace('\\"', '"').replace("\\/", "/")
    # Tags first: an escaped "<11" in a caption must not read as the start of a tag.
    return _words(html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _words(text: str) -> str:
    return " ".join(re.sub("[\"'\u201c\u201d\u2018\u2019]", "", text).split())


def _caption_phrases(path: Path) -> list[str]:
    """Runs of plain words from a caption, without Jinja placeholders or RST markup."""
    text = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "\n", path.read_text(encoding="utf-8"))
    text = re.sub(r"[`*|_]+", "", text)
    phrases = []
    for piece in re.split(r"[\n.:;()]", text):
        words = _words(piece)
        if len(words.split()) >= 3:
            phrases.append(words)
    return phrases


def test_bundle_holds_the_study_report(workflow_run: Path, bundle: dict[str, bytes]):
    study_report = (workflow_run / "reports" / "small" / "report.html").read_bytes()
    digests = {_digest(data) for data in bundle.values()}
    assert _digest(study_report) in digests, "reports/small/report.html is not in the bundle"


def test_bundle_holds_every_table_and_figure(workflow_run: Path, bundle: dict[str, bytes]):
    folder = workflow_run / "reports" / "small"
    tables = sorted((folder / "tables").glob("*.csv"))
    figures = sorted((folder / "figures").glob("*.svg")) + sorted(
        (folder / "figures").glob("*.png")
    )
    assert tables, f"no table CSVs in {folder / 'tables'}"
    assert figures, f"no figures in {folder / 'figures'}"
    digests = {_digest(data) for data in bundle.values()}
    missing_tables = [p.name for p in tables if _digest(p.read_bytes()) not in digests]
    assert missing_tables == [], f"tables not in the bundle: {missing_tables}"
    # Each figure is in the bundle in at least one of its formats.
    bundled = {p.stem for p in figures if _digest(p.read_bytes()) in digests}
    missing_figures = sorted({p.stem for p in figures} - bundled)
    assert missing_figures == [], f"figures not in the bundle: {missing_figures}"


@pytest.mark.parametrize("caption", CAPTIONS, ids=[p.stem for p in CAPTIONS])
def test_captions_appear_in_the_bundle(bundle: dict[str, bytes], caption: Path):
    assert caption.is_file(), f"{REPORT_RULES.name} names a caption that does not exist"
    text = _page_text(bundle)
    phrases = _caption_phrases(caption)
    assert phrases, f"{caption.name} has no text"
    missing = [p for p in phrases if p not in text]
    assert missing == [], f"{caption.name}: not in the bundle's page: {missing}"


def test_the_study_report_rule_has_captions():
    assert CAPTIONS, f"{REPORT_RULES.name} tags no output with a caption"
