"""Provenance: accord and package versions, the config, the SHA-256 of the input files and of
every results file read, and the run date."""

from __future__ import annotations

from importlib import metadata

import yaml

import accord
from accord.report.context import ReportContext
from accord.report.parts import Heading, Preformatted, Section, Text, table
from accord.report.text import plain

PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "matplotlib", "pyarrow", "jinja2")


def build(ctx: ReportContext) -> Section:
    """The Provenance section. Call it last: it lists every file the other sections read."""
    section = Section("provenance", "Provenance")
    section.add(Text(f"accord {accord.__version__}; run date {ctx.run_date}."))
    checksums = (ctx.summary or {}).get("input_checksums_sha256") or {}
    if checksums:
        section.add(
            table(
                "provenance_input_files",
                "Input files of the study (SHA-256)",
                ["File", "SHA-256"],
                [(name, digest) for name, digest in sorted(checksums.items())],
                text_columns=frozenset({1}),
            )
        )
    section.add(
        table(
            "provenance_results_files",
            "Results files read by the report (SHA-256)",
            ["File", "SHA-256"],
            [(name, digest) for name, digest in sorted(ctx.inputs.read.items())],
            text_columns=frozenset({1}),
        )
    )
    section.add(
        table(
            "provenance_packages",
            "Package versions",
            ["Package", "Version"],
            [(name, _version(name)) for name in PACKAGES],
        )
    )
    section.add(Heading("Configuration", "configuration"))
    section.add(Preformatted(yaml.safe_dump(plain(ctx.config), sort_keys=True, allow_unicode=True)))
    return section


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
