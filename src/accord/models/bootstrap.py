"""Bootstrap replicates spread over jobs (scatter), pooled by the model's own job (gather).

A model with a bootstrap (the therapist ICC, mediation) declares its number of replicates as
the option ``n_boot``; the workflow splits replicates 0 .. n_boot - 1 into
``analysis.bootstrap_chunks`` contiguous chunks, each its own job (rule bootstrap_model), and the
model's job (rule fit_model) reads the chunks' replicate tables and computes the intervals.
With one chunk there is no separate job: the model's own job draws its replicates. The default,
``auto``, sizes the chunks to the study (`study_bootstrap_chunks`): one for a study under
5,000 clients, where a job's start-up would cost more than the replicates, then one more per
5,000 clients up to 8.

Replicate r of model m draws from its own generator,

    np.random.default_rng([seed, crc32(m), r])

(`replicate_rng`; seed is the study seed ``analysis.seed``, crc32 of the model id in UTF-8), so a
replicate does not depend on which chunk it falls in, on how many chunks there are, on the
order the jobs run in or on the number of cores: the pooled table, and so every interval, is the
same for any chunk count and the same as fitting the model in one process (`fit_therapist`,
`fit_mediation` without precomputed replicates).

A mediation model may instead be fitted by the quasi-Bayesian (asymptotic) Monte Carlo form
(its option ``method``: bootstrap, quasi_bayesian or auto, the default; `choose_method`):
``auto`` bootstraps a study of up to ``analysis.mediation.bootstrap_max_clients`` clients (the
rows of its client measures) and draws quasi-Bayesian above it, where refitting both models on
a million clients hundreds of times would buy nothing the normal approximation does not give.
A model fitted quasi-Bayesian has no replicates, so no bootstrap_model jobs
(`scattered_chunks` with the study's client count).

A replicate table has one row per replicate, its index in the column ``replicate`` first; the
other columns are the kind's own (`accord.models.therapist.therapist_icc_replicates`,
`accord.models.mediation.mediation_replicates`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from accord.core.errors import AccordError, ConfigError
from accord.models.spec import (
    DEFAULT_BOOTSTRAP_MAX_CLIENTS,
    ModelContext,
    ModelSpec,
    check_mediation_method,
    mediation_method,
)

DEFAULT_CHUNKS = "auto"
#: ``auto``: one chunk per this many clients, at most MAX_AUTO_CHUNKS.
CLIENTS_PER_CHUNK = 5_000
MAX_AUTO_CHUNKS = 8
# kind -> (default number of replicates, "module:function" drawing replicates for a spec).
BOOTSTRAP_KINDS: Mapping[str, tuple[int, str]] = {
    "therapist": (200, "accord.models.therapist:therapist_replicates_spec"),
    "mediation": (500, "accord.models.mediation:mediation_replicates_spec"),
}

ReplicateFunction = Callable[
    [pd.DataFrame, pd.DataFrame, ModelSpec, ModelContext, range], pd.DataFrame
]


def replicate_rng(seed: int, model_id: str, replicate: int) -> np.random.Generator:
    """The generator of bootstrap replicate `replicate` of model `model_id` (module docstring)."""
    return np.random.default_rng([int(seed), zlib.crc32(model_id.encode("utf-8")), int(replicate)])


def replicate_indices(replicates: int | Iterable[int]) -> list[int]:
    """`replicates` as a list of replicate indices: an int n stands for 0 .. n - 1."""
    if isinstance(replicates, int | np.integer):
        return list(range(int(replicates)))
    return [int(r) for r in replicates]


def n_replicates(spec: ModelSpec) -> int:
    """The number of bootstrap replicates of a model: its option n_boot or the kind's default;
    0 for a kind without a bootstrap."""
    if spec.kind not in BOOTSTRAP_KINDS:
        return 0
    return int(spec.options.get("n_boot", BOOTSTRAP_KINDS[spec.kind][0]))


def chunk_ranges(n: int, n_chunks: int) -> list[range]:
    """Replicates 0 .. n - 1 in at most `n_chunks` contiguous, non-empty chunks whose sizes
    differ by at most one (the first n mod chunks chunks take one more)."""
    if n_chunks < 1:
        raise ConfigError(f"analysis.bootstrap_chunks: must be at least 1, not {n_chunks}")
    k = min(int(n_chunks), max(int(n), 0))
    size, extra = divmod(int(n), k) if k else (0, 0)
    ranges, start = [], 0
    for chunk in range(k):
        stop = start + size + (chunk < extra)
        ranges.append(range(start, stop))
        start = stop
    return ranges


def model_chunks(spec: ModelSpec, n_chunks: int) -> list[range]:
    """The replicate chunks of a model, one job each: none for a model without a bootstrap."""
    return chunk_ranges(n_replicates(spec), n_chunks)


def bootstrap_chunks_setting(config: Mapping[str, Any]) -> int | str:
    """The config's ``analysis.bootstrap_chunks``: a number of chunks, or ``auto``."""
    setting = config.get("analysis", {}).get("bootstrap_chunks", DEFAULT_CHUNKS)
    return "auto" if setting == "auto" else int(setting)


def auto_chunks(n_clients: int | None) -> int:
    """The ``auto`` chunk count for a study of about `n_clients` clients (1 when unknown)."""
    if not n_clients:
        return 1
    return min(MAX_AUTO_CHUNKS, max(1, math.ceil(n_clients / CLIENTS_PER_CHUNK)))


def study_bootstrap_chunks(config: Mapping[str, Any], study: str) -> int:
    """The number of chunks a study's bootstraps are drawn in: the setting, or for ``auto`` the
    count its size calls for (a simulated study's ``n_clients``, else `client_rows` of its
    files)."""
    setting = bootstrap_chunks_setting(config)
    if setting != "auto":
        return int(setting)
    from accord.ingest.study import client_rows

    entry = config["studies"][study]
    if "simulate" in entry:
        return auto_chunks(int(entry["simulate"].get("n_clients", 400)))
    return auto_chunks(client_rows(entry["path"], entry))


@dataclass(frozen=True)
class MethodChoice:
    """How a model with a choice of method is fitted (``bootstrap`` or ``quasi_bayesian``) and
    why, in words for the diagnostics."""

    method: str
    reason: str


def choose_method(
    setting: str,
    n_clients: int | None,
    max_clients: int = DEFAULT_BOOTSTRAP_MAX_CLIENTS,
    *,
    model_id: str = "mediation",
) -> MethodChoice:
    """The method option ``setting`` (bootstrap, quasi_bayesian or auto) resolved for a study
    of `n_clients` clients: ``auto`` bootstraps up to `max_clients` clients and draws
    quasi-Bayesian above; an unknown count (None) bootstraps."""
    setting = check_mediation_method(setting, model_id)
    if setting != "auto":
        return MethodChoice(setting, f"as options.method is {setting}")
    if n_clients is None:
        return MethodChoice("bootstrap", "as the number of clients is not known")
    if n_clients > max_clients:
        return MethodChoice(
            "quasi_bayesian",
            f"as the study has {n_clients:,} clients (above bootstrap_max_clients {max_clients:,})",
        )
    return MethodChoice(
        "bootstrap",
        f"as the study has {n_clients:,} clients (at most bootstrap_max_clients {max_clients:,})",
    )


def needs_client_count(spec: ModelSpec) -> bool:
    """Whether a model's method depends on the study's number of clients (a mediation model
    with ``method: auto``)."""
    return spec.kind == "mediation" and mediation_method(spec) == "auto"


def scattered_chunks(
    spec: ModelSpec,
    n_chunks: int,
    *,
    n_clients: int | None = None,
    max_clients: int = DEFAULT_BOOTSTRAP_MAX_CLIENTS,
) -> list[range]:
    """The replicate chunks drawn in jobs of their own (rule bootstrap_model): none for a model
    without a bootstrap or fitted quasi-Bayesian in a study of `n_clients` clients
    (`choose_method`), and none when there is a single chunk, which the model's job draws."""
    if spec.kind == "mediation":
        choice = choose_method(mediation_method(spec), n_clients, max_clients, model_id=spec.id)
        if choice.method == "quasi_bayesian":
            return []
    chunks = model_chunks(spec, n_chunks)
    return chunks if len(chunks) > 1 else []


def replicate_function(kind: str) -> ReplicateFunction:
    """The function that draws bootstrap replicates for models of `kind`."""
    if kind not in BOOTSTRAP_KINDS:
        raise ConfigError(f"models: the kind {kind!r} has no bootstrap")
    module, name = BOOTSTRAP_KINDS[kind][1].split(":")
    return getattr(import_module(module), name)


def write_replicates(frame: pd.DataFrame, path: str | Path) -> None:
    """Write one chunk's replicate table (Parquet: the floats round-trip exactly)."""
    frame.reset_index(drop=True).to_parquet(path, index=False)


def read_replicates(paths: Sequence[str | Path]) -> pd.DataFrame:
    """The chunks' replicate tables pooled and in replicate order."""
    if not paths:
        raise AccordError("bootstrap: no replicate tables to pool")
    frames = [pd.read_parquet(path) for path in paths]
    pooled = pd.concat(frames, ignore_index=True)
    return pooled.sort_values("replicate", kind="stable").reset_index(drop=True)


def check_replicates(replicates: pd.DataFrame, expected: int, model_id: str) -> None:
    """Raise AccordError unless `replicates` holds replicates 0 .. expected - 1 once each."""
    if "replicate" not in replicates.columns:
        raise AccordError(
            f"bootstrap of model {model_id!r}: the replicate tables have no column 'replicate'"
        )
    found = replicates["replicate"].to_numpy(dtype=np.int64)
    if len(found) != expected or not np.array_equal(np.sort(found), np.arange(expected)):
        raise AccordError(
            f"bootstrap of model {model_id!r}: the replicate tables hold {len(found)} "
            f"replicate(s), not replicates 0..{expected - 1}; rerun its bootstrap_model jobs"
        )
