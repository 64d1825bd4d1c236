"""Stage 1 (run by rule ``validate_study``): REDCap, SPSS, Excel, CSV and Parquet sources.

Reads the files a study declares and maps them onto the contract's four tables in memory.

`ingest_study` turns a study declared with ``format: mapped`` or ``format: redcap`` into the
contract's tables; `accord.validate.validate_study` then validates them like any other study.
"""

from accord.ingest.sources import SOURCE_SUFFIXES, SourceFrame, read_source
from accord.ingest.study import FORMATS, IngestResult, client_rows, ingest_study, source_files

__all__ = [
    "FORMATS",
    "SOURCE_SUFFIXES",
    "IngestResult",
    "SourceFrame",
    "client_rows",
    "ingest_study",
    "read_source",
    "source_files",
]
