"""The study report: one self-contained HTML file of aggregates, built from a results folder."""

from accord.report.render import render_report

__all__ = ["render_report"]
