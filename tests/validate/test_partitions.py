"""Validation in partitions of clients gives the bytes of validation in one job."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from accord.core import contract
from accord.core.errors import IdentifierError
from accord.core.instruments import load_registry
from accord.core.io import write_parquet
from accord.core.partitions import auto_partitions, count_rows, partition_of, study_partitions
from accord.simulate import simulate_study, write_study
from accord.validate import StudyInput, validate_study, write_validation
from accord.validate.gather import gather_parts, read_part, write_gathered, write_part
from accord.validate.quarantine import empty_table
from accord.validate.split import read_partition, split_study, validate_partition

REGISTRY = load_registry()
OUTPUTS = ("clients", "sessions", "measures", "goals", "quarantine", "summary")
METADATA = {"contract_version": contract.CONTRACT_VERSION}


def test_auto_partitions_keep_small_studies_in_one_job() -> None:
    assert auto_partitions(0) == 1
    assert auto_partitions(199_999) == 1
    assert auto_partitions(200_000) == 4
    assert auto_partitions(1_000_000) == 20
    assert auto_partitions(1_000_001) == 21


def test_partition_is_a_stable_hash_of_the_trimmed_client_id() -> None:
    ids = [f"C{i:05d}" for i in range(2000)]
    parts = partition_of(ids, 7)
    assert parts.min() == 0 and parts.max() == 6
    # every partition gets about a seventh of the clients (2000 / 7 = 286)
    assert np.all(np.abs(np.bincount(parts, minlength=7) - 2000 / 7) < 60)
    assert np.array_equal(partition_of([f" {i} " for i in ids], 7), parts)
    assert np.array_equal(partition_of(ids, 1), np.zeros(2000, dtype=np.int32))
    assert partition_of([None], 3).tolist() == [0]
    # BLAKE2b-64 of "C00000", little-endian, modulo 7: the same on every machine
    digest = hashlib.blake2b(b"C00000", digest_size=8).digest()
    assert parts[0] == int.from_bytes(digest, "little") % 7


def test_count_rows(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("client_id\nA\nB\nC")
    (tmp_path / "b.csv").write_text("client_id\nA\nB\n")
    assert count_rows(tmp_path / "a.csv") == 3
    assert count_rows(tmp_path / "b.csv") == 2
    assert count_rows(tmp_path / "none.csv") == 0
    pd.DataFrame({"client_id": ["A", "B", "C", "D"]}).to_parquet(tmp_path / "c.parquet")
    assert count_rows(tmp_path / "c.parquet") == 4


def test_auto_counts_the_clients_of_a_study_folder(tmp_path: Path) -> None:
    rows = "".join(f"C{i}\n" for i in range(200_000))
    (tmp_path / "clients.csv").write_text("client_id\n" + rows)
    config = {"studies": {"big": {"path": str(tmp_path)}, "other": {"path": str(tmp_path)}}}
    config["studies"]["other"]["format"] = "mapped"
    assert study_partitions(config, "big") == 4
    assert study_partitions({**config, "performance": {"partitions": 5}}, "big") == 5
    assert study_partitions(config, "other") == 1  # a mapped study is one job


def _edit(path: Path, edit) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(frame)
    frame.to_csv(path, index=False, lineterminator="\n")


def _dirty_study(folder: Path) -> Path:
    """A small simulated study with a fault of each kind validation counts or refuses."""
    write_study(simulate_study(n_clients=40, n_therapists=5, n_sites=2, seed=5), folder)
    ids = pd.read_csv(folder / "clients.csv", dtype=str)["client_id"].tolist()

    def clients(frame: pd.DataFrame) -> None:
        frame.loc[1, "gender"] = "Female "  # normalised label
        frame.loc[2, "age"] = "forty"  # type fault
        frame.loc[3, "client_id"] = f" {ids[3]}"  # spaces around an ID
        frame.loc[4, "site_id"] = "NA"  # missing-value marker in an ID column
        frame.loc[len(frame)] = frame.loc[5]  # duplicated client: quarantined with its rows

    def sessions(frame: pd.DataFrame) -> None:
        frame.loc[0, "homework_completion"] = "0,5"  # decimal comma: cell emptied
        frame.loc[1, "homework_completion"] = "NA"
        frame.loc[2, "duration_min"] = "long"
        frame.loc[3, "client_id"] = "CUNKNOWN1"  # a client not in clients.csv
        frame.loc[len(frame)] = frame.loc[7]  # duplicated session key

    def measures(frame: pd.DataFrame) -> None:
        frame.loc[frame.index[:40], "rater"] = ""  # filled with the default
        frame.loc[frame.index[::3], "phase"] = ""
        frame.loc[10, "value"] = "99"  # outside the item's range
        frame.loc[11, "session_number"] = "77"  # a session not in sessions.csv
        frame.loc[12, "client_id"] = ""

    def goals(frame: pd.DataFrame) -> None:
        frame.loc[0, "set_by"] = "Joint"
        frame.loc[1, "set_by"] = "someone"

    for table, edit in (
        ("clients", clients),
        ("sessions", sessions),
        ("measures", measures),
        ("goals", goals),
    ):
        _edit(folder / f"{table}.csv", edit)
    return folder


def _written(result, folder: Path) -> dict[str, bytes]:
    paths = {t: folder / f"{t}.parquet" for t in ("clients", "sessions", "measures", "goals")}
    paths |= {"quarantine": folder / "quarantine.csv", "summary": folder / "summary.json"}
    write_validation(result, paths)
    return {name: paths[name].read_bytes() for name in OUTPUTS}


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> tuple[StudyInput, dict[str, bytes]]:
    folder = _dirty_study(tmp_path_factory.mktemp("dirty") / "study")
    study = StudyInput("dirty", folder, missing_codes=(-99,))
    whole = validate_study(study, REGISTRY)
    assert len(whole.quarantine) > 10  # the faults are there to be gathered
    return study, _written(whole, folder.parent / "whole")


def _gathered(study: StudyInput, partitions: int, folder: Path, **sizes: int) -> dict[str, bytes]:
    """The files `write_gathered` writes for the study validated in `partitions`, through the
    files the workflow's jobs pass on (folders given in reverse: their order is no matter)."""
    split_study(study, partitions, folder / "split")
    folders = [folder / f"part_{part}" for part in range(partitions)]
    for part, out in enumerate(folders):
        write_part(validate_partition(study, REGISTRY, folder / "split", part), out)
    paths = {name: folder / "out" / name for name in OUTPUTS}
    paths |= {t: folder / "out" / f"{t}.parquet" for t in OUTPUTS[:4]}
    write_gathered(study, folders[::-1], paths, **sizes)
    return {name: paths[name].read_bytes() for name in OUTPUTS}


def _written_in_row_groups(study: StudyInput, folder: Path, row_group_size: int) -> dict:
    """The one-job validation's files, its tables in row groups of `row_group_size`."""
    whole = validate_study(study, REGISTRY)
    written = _written(whole, folder)
    for table in OUTPUTS[:4]:
        frame = whole.tables.get(table, empty_table(table))
        path = folder / f"{table}.parquet"
        write_parquet(path, frame, METADATA, row_group_size=row_group_size)
        written[table] = path.read_bytes()
    return written


@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_partitions_give_the_bytes_of_one_job(dirty, partitions: int, tmp_path: Path) -> None:
    study, expected = dirty
    got = _gathered(study, partitions, tmp_path)
    assert [name for name in OUTPUTS if got[name] != expected[name]] == []
    folders = [tmp_path / f"part_{part}" for part in range(partitions)]
    in_memory = _written(gather_parts(study, [read_part(f) for f in folders]), tmp_path / "mem")
    assert in_memory == expected


@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_partitions_in_many_row_groups_give_the_bytes_of_one_job(
    dirty, partitions: int, tmp_path: Path
) -> None:
    # the dirty study's 8,000-odd measures in row groups of 150, read 37 rows at a time
    study, _ = dirty
    expected = _written_in_row_groups(study, tmp_path / "whole", 150)
    got = _gathered(study, partitions, tmp_path, batch_rows=37, row_group_size=150)
    assert [name for name in OUTPUTS if got[name] != expected[name]] == []
    groups = pq.ParquetFile(tmp_path / "out" / "measures.parquet").metadata.num_row_groups
    assert groups > 10


@pytest.fixture(scope="module")
def larger(tmp_path_factory: pytest.TempPathFactory) -> StudyInput:
    folder = tmp_path_factory.mktemp("larger") / "study"
    write_study(simulate_study(n_clients=300, n_therapists=12, n_sites=3, seed=11), folder)
    return StudyInput("larger", folder)


@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_a_larger_study_in_row_groups_gives_the_bytes_of_one_job(
    larger: StudyInput, partitions: int, tmp_path: Path
) -> None:
    expected = _written_in_row_groups(larger, tmp_path / "whole", 10_000)
    got = _gathered(larger, partitions, tmp_path, batch_rows=1_000, row_group_size=10_000)
    assert [name for name in OUTPUTS if got[name] != expected[name]] == []
    meta = pq.ParquetFile(tmp_path / "out" / "measures.parquet").metadata
    assert meta.num_row_groups == -(-meta.num_rows // 10_000) > 3


@pytest.mark.parametrize("partitions", [1, 2])
def test_a_default_label_no_row_took_is_not_kept(partitions: int, tmp_path: Path) -> None:
    """Every measure's phase given as treatment: the default label intake, added for empty
    cells, is used by no row, and the one job drops it; so do the partitions, one or more."""
    folder = tmp_path / "study"
    write_study(simulate_study(n_clients=30, n_therapists=4, n_sites=2, seed=3), folder)
    _edit(folder / "measures.csv", lambda frame: frame.__setitem__("phase", "treatment"))
    study = StudyInput("phases", folder)
    expected = _written(validate_study(study, REGISTRY), tmp_path / "whole")
    got = _gathered(study, partitions, tmp_path)
    assert [name for name in OUTPUTS if got[name] != expected[name]] == []
    phase = pd.read_parquet(tmp_path / "out" / "measures.parquet")["phase"]
    assert list(phase.cat.categories) == ["treatment"]


def test_every_row_of_a_client_is_in_its_partition(dirty, tmp_path: Path) -> None:
    study, _ = dirty
    split_study(study, 3, tmp_path)
    seen: dict[str, set[int]] = {}
    for part in range(3):
        inputs, rows = read_partition(tmp_path, part)
        for frame in inputs.raw.values():
            for client in frame["client_id"].dropna().astype(str).str.strip().unique():
                seen.setdefault(client, set()).add(part)
    assert all(len(parts) == 1 for parts in seen.values())
    assert rows["clients"] == count_rows(study.path / "clients.csv")


def test_an_identifier_stops_the_gather_with_the_whole_study_counts(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    write_study(simulate_study(n_clients=30, n_therapists=4, n_sites=2, seed=8), folder)

    def emails(frame: pd.DataFrame) -> None:
        frame.loc[frame.index[::4], "modality"] = "someone@example.org"

    _edit(folder / "sessions.csv", emails)
    study = StudyInput("leaky", folder)
    with pytest.raises(IdentifierError) as whole:
        validate_study(study, REGISTRY)
    split_study(study, 3, tmp_path / "split")
    folders = [tmp_path / f"part_{part}" for part in range(3)]
    for part, out in enumerate(folders):
        write_part(validate_partition(study, REGISTRY, tmp_path / "split", part), out)
    paths = {name: tmp_path / "out" / name for name in OUTPUTS}
    paths |= {t: tmp_path / "out" / f"{t}.parquet" for t in OUTPUTS[:4]}
    with pytest.raises(IdentifierError) as gathered:
        write_gathered(study, folders, paths)
    assert str(gathered.value) == str(whole.value)
    assert not any(path.exists() for path in paths.values())
