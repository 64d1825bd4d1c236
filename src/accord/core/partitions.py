"""Partitions of clients: which part of a large study a client's rows are validated in.

A client's partition is a stable hash of its ``client_id`` (the label with surrounding spaces
removed, as validation reads it), so every table's rows of one client land in the same
partition and keys, references and the cascade can be checked within it. The hash is
BLAKE2b, not Python's ``hash``, so it is the same in every process and on every machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# `performance.partitions: auto` keeps one job below this many clients ...
AUTO_FROM_CLIENTS = 200_000
# ... and above it gives each partition about this many (a job of 100,000 clients of a
# million-client study peaks at 5.9 GB; two such jobs run at once on two cores).
CLIENTS_PER_PARTITION = 50_000


def partition_of(labels: Iterable[object], partitions: int) -> np.ndarray:
    """The partition (0 .. partitions - 1) of each client_id label; a missing label is in 0."""
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    out = []
    for label in labels:
        if label is None or partitions == 1:
            out.append(0)
            continue
        digest = hashlib.blake2b(str(label).strip().encode("utf-8"), digest_size=8).digest()
        out.append(int.from_bytes(digest, "little") % partitions)
    return np.asarray(out, dtype=np.int32)


def auto_partitions(n_clients: int) -> int:
    """Partitions for a study of `n_clients`: 1 below `AUTO_FROM_CLIENTS`, else one per
    `CLIENTS_PER_PARTITION` clients (rounded up)."""
    if n_clients < AUTO_FROM_CLIENTS:
        return 1
    return -(-n_clients // CLIENTS_PER_PARTITION)


def study_partitions(config: Mapping[str, Any], study: str) -> int:
    """The number of partitions a study is validated in (``performance.partitions``).

    Only a study in the contract's shape is partitioned; a mapped or REDCap study, read
    through its mapping, is always one job. `auto` counts the clients table's rows (or takes
    the simulated study's size).
    """
    entry = config["studies"][study]
    if entry.get("format", "contract") != "contract":
        return 1
    setting = config.get("performance", {}).get("partitions", "auto")
    if setting != "auto":
        return int(setting)
    return auto_partitions(study_clients(config, study))


def study_clients(config: Mapping[str, Any], study: str) -> int:
    """The rows of a study's clients table before validation (a simulated study's size); 0 for
    a mapped or REDCap study, whose clients are known only once its mapping has been read."""
    entry = config["studies"][study]
    if entry.get("format", "contract") != "contract":
        return 0
    if "simulate" in entry:
        return int(entry["simulate"].get("n_clients", 0))
    folder = Path(entry["path"])
    return max(count_rows(folder / f"clients{s}") for s in (".csv", ".parquet"))


def count_rows(path: Path) -> int:
    """Data rows of a CSV (lines after the header) or a Parquet file; 0 when there is none."""
    if not path.is_file():
        return 0
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"
    return max(lines - 1, 0)


def gather_columns(frames: list[pd.DataFrame], order: np.ndarray) -> pd.DataFrame:
    """The partitions' `frames` end to end, their rows taken in `order`, a column at a time:
    each frame's column is let go once gathered (the frames are emptied), so about one table
    is held, not three."""
    gathered = {}
    for column in list(frames[0].columns):
        values = pd.concat([frame.pop(column) for frame in frames], ignore_index=True)
        gathered[column] = values.take(order).reset_index(drop=True)
        del values
    return pd.DataFrame(gathered)
