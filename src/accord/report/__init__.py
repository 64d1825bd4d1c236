"""Stage 5, rule ``render_report``: the study report, built from a results folder.

Reads ``results/<study>/`` (validation summary, scores, measures, models) and writes
``reports/<study>/report.html`` (one self-contained file of aggregates), its figures and tables;
every published number passes `accord.core.disclosure` and the cross-table audit in `ledger`.
"""

from accord.report.render import render_report

__all__ = ["render_report"]
