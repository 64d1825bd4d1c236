"""The errors accord raises on purpose: each carries a message a researcher can act on."""

from __future__ import annotations


class AccordError(Exception):
    """Base of every error accord raises deliberately (never a bare traceback for bad input)."""


class ConfigError(AccordError):
    """The configuration breaks a rule; the message names the key."""


class StudyError(AccordError):
    """A table-level fault in a study's input: the message names the file and the column.

    Messages never quote cell values, so a suspected identifier cannot leak through them.
    """

    def __init__(self, message: str, *, file: str | None = None, column: str | None = None):
        super().__init__(message)
        self.file = file
        self.column = column


class IdentifierError(StudyError):
    """Input looks identifiable; raised by the identifier guard before anything is written."""


class NotEstimableError(AccordError):
    """A model applies to the study but its data cannot estimate it (too few therapists, no
    events, an outcome that does not vary). The workflow records the model as not estimable
    with this message as the reason instead of stopping the run."""
