"""Stage 2, rule ``validate_study``: the study's tables checked against the data contract.

Reads the study's input files (through `accord.ingest` for mapped and REDCap studies); writes
``results/<study>/validated/{clients,sessions,measures,goals}.parquet``,
``validation/quarantine.csv`` (every refused row with file, row, column and rule) and
``validation/summary.json`` (reconciled counts, notes, input checksums).

`study` runs the steps in order: `parsing` reads cells as the contract's types, `guard` refuses
identifiable data before anything is written, `categories` keeps published labels to a
vocabulary, `checks` applies the contract's rules, `quarantine` keeps refused rows and
reconciles the counts.
"""

from accord.validate.quarantine import write_validation
from accord.validate.study import validate_study
from accord.validate.tables import StudyInput, ValidationResult

__all__ = ["StudyInput", "ValidationResult", "validate_study", "write_validation"]
