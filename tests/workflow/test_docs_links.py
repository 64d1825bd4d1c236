"""Every relative link in README.md and docs/*.md points at a file of the repository, and every
anchor at a heading of that file (headings slugged as GitHub does)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "data" / "schemas" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^(```|~~~)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(lines)


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(path.read_text(encoding="utf-8")).splitlines():
        found = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not found:
            continue
        base = slug(found.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def _links(path: Path) -> list[str]:
    targets = _LINK.findall(_prose(path.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def test_slugs_follow_github() -> None:
    assert slug("Rows that break a rule") == "rows-that-break-a-rule"
    assert slug("Reading results from Python: `accord.results`") == (
        "reading-results-from-python-accordresults"
    )
    assert slug("Running on a cluster (SLURM)") == "running-on-a-cluster-slurm"


def broken_links(document: Path) -> list[str]:
    """The relative links of `document` whose file or heading is not there."""
    broken = []
    for target in _links(document):
        file, _, anchor = target.partition("#")
        path = (document.parent / file).resolve() if file else document
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with this anchor")
    return broken


def test_a_missing_file_or_heading_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Title\n\n## Rows that break a rule\n")
    (tmp_path / "doc.md").write_text(
        "# Doc\n[ok](other.md#rows-that-break-a-rule) [self](#doc) [web](https://x.org/a.md)\n"
        "[gone](measures.md) [bad](other.md#rows) `[code](nowhere.md)`\n"
        "```\n[fenced](nowhere.md)\n```\n"
    )
    assert broken_links(tmp_path / "doc.md") == [
        "measures.md: no such file",
        "other.md#rows: no heading with this anchor",
    ]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(document: Path) -> None:
    assert broken_links(document) == [], document.relative_to(ROOT)


def test_the_documents_the_code_cites_exist() -> None:
    # Docstrings cite measures.md, privacy.md and data-contract.md by name.
    for name in ("measures.md", "privacy.md", "data-contract.md"):
        assert (ROOT / "docs" / name).is_file(), name
