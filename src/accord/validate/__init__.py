"""Stage 2, rule ``validate_study``: the study's tables checked against the data contract.

Reads the study's input files (through `accord.ingest` for mapped and REDCap studies); writes
``results/<study>/validated/{clients,sessions,measures,goals}.parquet``,
``validation/quarantine.csv`` (every refused row with file, row, column and rule) and
``validation/summary.json`` (reconciled counts, notes, input checksums). ``guard`` refuses
identifiable data before anything is written; ``categories`` keeps published labels to a
vocabulary; ``checks`` holds the rules across rows and tables; ``quarantine`` the refused rows.
"""

from accord.validate.study import StudyInput, ValidationResult, validate_study, write_validation

__all__ = ["StudyInput", "ValidationResult", "validate_study", "write_validation"]
