"""Benchmarks: time and peak memory of each stage on simulated studies of growing size.

`make bench` runs ``python -m accord.bench``: for 1,000, 10,000 and 100,000 clients (or the
sizes given with ``--clients``; ``--quick`` is 1,000 only) it simulates a study (cached under
`benchmarks/out/`, one folder per size and seed) and runs each stage in a fresh process, as
the workflow's jobs run:

* ``validate``: validation of the four tables and the identifier guard, written as parquet;
* ``score``: questionnaire scores and the reliability table (in a study validated in
  partitions, one ``score:part:<k>`` job per partition and ``score:gather``, as the workflow
  runs them);
* ``measures``: per-client measures and the session panel (in a study validated in
  partitions, ``measures:statistics:<k>`` and ``measures:part:<k>`` per partition and
  ``measures:gather``);
* ``model:<id>``: each model of the analysis plan (`accord.models.spec.DEFAULT_MODELS`, or
  ``--models``), the goal models (congruence, goal attainment, not on track) among them,
  timing the fit alone (reading the panel and the validated tables a kind reads is not
  timed);
* ``report``: missingness tables, the gathered model tables and the rendered report;
* ``workflow``: the whole Snakemake workflow, validation to report with every default model,
  in a fresh working folder with ``--cores`` (default: all), timed from Snakemake's start to
  its end. Its peak memory is the largest total resident memory of Snakemake and all its jobs
  together (sampled five times a second), the figure that must fit in the machine. A row
  per rule (``workflow:<rule>``) and per model (``workflow:fit_model:<id>``) comes first,
  read from the Snakemake benchmark file each job writes beside its log (`workflow_jobs`).

Each stage's wall time is measured inside its process (imports excluded) and its peak
resident memory is the process's own (``wait4``'s ``ru_maxrss``, imports included). Linux
carries a process's peak over from before its ``exec``, that is from the forking parent, so
the parent here imports nothing heavy (no pandas) and leaves even the simulation to a child:
its own footprint, a few tens of MB, is the floor of every figure. Where R
with lme4 is installed, the primary growth model is also fitted with ``lmer`` on the same
rows (`benchmarks/lme4_growth.R`, timing the fit alone) and the ratio of accord's growth time
to lme4's is printed. Results are printed and written to `benchmarks/summary.csv` (size,
stage, seconds, peak_mb, rows, note).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DATA_STAGES = ("validate", "score", "measures")
STAGES = (*DATA_STAGES, "models", "report", "workflow")
SNAKEFILE = Path(__file__).resolve().parents[2] / "Snakefile"
DEFAULT_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000,)
SUMMARY_COLUMNS = ["size", "stage", "seconds", "peak_mb", "rows", "note"]
LME4_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lme4_growth.R"
PRIMARY_GROWTH = "growth"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks (see the module docstring); returns the exit status."""
    args = _parser().parse_args(argv)
    if args.stage:
        print(json.dumps(_run_stage(args.stage, args.folder, seed=args.seed)))
        return 0

    sizes = args.clients or list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    models = args.models or _default_model_ids()
    rows: list[dict[str, Any]] = []
    status = 0
    for n in sizes:
        status = max(status, _bench_size(n, args, models, rows))
    write_summary(rows, args.summary)
    print()
    print(format_table(rows))
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m accord.bench", description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", help="sizes (default 1000 10000 100000)")
    parser.add_argument("--quick", action="store_true", help="1,000 clients only")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--models", nargs="+", help="model ids (default: the analysis plan)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--summary", type=Path, default=Path("benchmarks/summary.csv"))
    parser.add_argument("--no-lme4", action="store_true", help="skip the lme4 comparison")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="for workflow")
    parser.add_argument(
        "--partitions",
        default="auto",
        help="partitions of clients validation, scoring and measures run in: a number, or auto "
        "(the default: 1 below 200,000 clients)",
    )
    parser.add_argument(
        "--memory-mb",
        default="auto",
        help="memory (MB) the workflow's running jobs share (performance.memory_mb): a number, "
        "or auto (the default: two thirds of this machine's)",
    )
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    return parser


def _bench_size(n: int, args: argparse.Namespace, models: Sequence[str], rows: list) -> int:
    """Every chosen stage on the simulated study of `n` clients, its rows appended to `rows`
    and printed; returns 1 when a data stage or the workflow failed, else 0."""
    folder = args.out / f"clients_{n}_seed_{args.seed}"
    _add(rows, {"size": n, **_run_child("simulate", folder, seed=args.seed)})
    partitions = _partitions(args.partitions, n)
    stages = [
        stage
        for name in args.stages
        if name != "workflow"
        for stage in _stage_names(name, models, partitions)
    ]
    for stage in stages:
        row = _add(rows, {"size": n, **_run_child(stage, folder)})
        if row["note"].startswith("failed") and stage.split(":")[0] in DATA_STAGES:
            return 1
        if stage in ("validate:gather", "score:gather", "measures:gather"):
            _add(rows, _partitioned_total(rows, n, partitions, stage.split(":")[0]))
    growth = next(
        (r for r in rows if r["size"] == n and r["stage"] == f"model:{PRIMARY_GROWTH}"), None
    )
    if growth is not None and not args.no_lme4 and not growth["note"]:
        _compare_lme4(folder, n, growth, rows)
    if "workflow" not in args.stages:
        return 0
    memory = args.memory_mb if args.memory_mb == "auto" else int(args.memory_mb)
    row = run_workflow(folder, n, cores=args.cores, partitions=partitions, memory_mb=memory)
    for job in workflow_jobs(folder / "workflow" / "logs" / "bench"):
        _add(rows, {"size": n, **job})
    _add(rows, {"size": n, **row})
    return 1 if row["note"].startswith("failed") else 0


def _add(rows: list, row: dict[str, Any]) -> dict[str, Any]:
    rows.append(row)
    print(_line(row), flush=True)
    return row


def _compare_lme4(folder: Path, n: int, growth: dict[str, Any], rows: list) -> None:
    """The lme4 growth fit on the same rows, where R has lme4, and the ratio of the times."""
    lme4 = _lme4_growth(folder, n)
    if lme4 is None:
        return
    _add(rows, {"size": n, **lme4})
    if math.isfinite(lme4["seconds"]) and lme4["seconds"] > 0:
        print(
            f"{n:>8} clients  growth: accord / lme4 time = "
            f"{growth['seconds'] / lme4['seconds']:.2f}",
            flush=True,
        )


def write_summary(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The rows as CSV with `SUMMARY_COLUMNS`, floats to 3 decimals, missing as empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(SUMMARY_COLUMNS)
        for row in rows:
            writer.writerow([_cell(row.get(column, "")) for column in SUMMARY_COLUMNS])


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as an aligned text table."""
    cells = [SUMMARY_COLUMNS] + [
        [_cell(row.get(column, ""), digits=2) for column in SUMMARY_COLUMNS] for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(SUMMARY_COLUMNS))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i != 1 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    )


def _cell(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else ""
    return str(value)


def _partitions(setting: str, n: int) -> int:
    from accord.core.partitions import auto_partitions

    return auto_partitions(n) if setting == "auto" else int(setting)


def _stage_names(name: str, models: Sequence[str], partitions: int) -> list[str]:
    """The child stages of one stage: validation in partitions is split, each partition and
    the gather; scoring in partitions is each partition and the gather; measures in partitions
    are each partition's statistics and build, and the gather (they read the partitions
    validation and scoring left)."""
    parts = range(partitions)
    if name == "models":
        return [f"model:{m}" for m in models]
    if name == "validate" and partitions > 1:
        split = [f"validate:split:{partitions}"]
        return [*split, *(f"validate:part:{k}" for k in parts), "validate:gather"]
    if name == "score" and partitions > 1:
        return [*(f"score:part:{k}" for k in parts), "score:gather"]
    if name == "measures" and partitions > 1:
        steps = ("statistics", "part")
        jobs = [f"measures:{step}:{k}" for step in steps for k in parts]
        return [*jobs, "measures:gather"]
    return [name]


def _partitioned_total(
    rows: Sequence[dict[str, Any]], n: int, partitions: int, stage: str = "validate"
) -> dict[str, Any]:
    """A stage run in partitions as one row: the jobs' seconds added up (one job at a time)
    and the largest peak of any of them."""
    jobs = [r for r in rows if r["size"] == n and r["stage"].startswith(f"{stage}:")]
    return {
        "size": n,
        "stage": stage,
        "seconds": sum(r["seconds"] for r in jobs),
        "peak_mb": max(r["peak_mb"] for r in jobs),
        "rows": jobs[-1]["rows"],
        "note": f"{partitions} partitions, one job at a time; peak of the largest job",
    }


def _default_model_ids() -> list[str]:
    from accord.models.spec import DEFAULT_MODELS

    return [entry["id"] for entry in DEFAULT_MODELS]


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['size']:>8} clients  {row['stage']:<36} {row['seconds']:9.2f} s  "
        f"{row['peak_mb']:8.0f} MB  {row['rows']}  {row['note']}"
    )


def _run_child(stage: str, folder: Path, *, seed: int = 2026) -> dict[str, Any]:
    """Run one stage in a fresh process; its own peak RSS comes from wait4."""
    command = [sys.executable, "-m", "accord.bench", "--stage", stage, "--folder", str(folder)]
    command += ["--seed", str(seed)]
    status, peak_mb, out, err = _measured(command)
    if status != 0:
        last = (err.strip().splitlines() or ["no message"])[-1]
        return {
            "stage": stage,
            "seconds": float("nan"),
            "peak_mb": peak_mb,
            "rows": "",
            "note": f"failed: {last[:200]}",
        }
    result = json.loads(out.strip().splitlines()[-1])
    return {"stage": stage, **result, "peak_mb": peak_mb}


def _measured(command: list[str]) -> tuple[int, float, str, str]:
    """Run `command`; returns (exit status, peak RSS in MB, stdout, stderr)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, wait_status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(wait_status)
        out.seek(0)
        err.seek(0)
        return process.returncode, usage.ru_maxrss / 1024, out.read(), err.read()


def run_workflow(
    folder: Path, n: int, *, cores: int, partitions: int = 1, memory_mb: int | str = "auto"
) -> dict[str, Any]:
    """The whole workflow on the study in `folder` (see the module docstring), its jobs
    sharing `memory_mb` (``performance.memory_mb``); its working folder is `folder`/workflow,
    rebuilt each time, with Snakemake's log in it."""
    import psutil

    workdir = folder / "workflow"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    config = workdir / "config.yaml"
    settings = {
        "studies": {"bench": {"path": str(folder.resolve())}},
        "performance": {"partitions": partitions, "memory_mb": memory_mb},
    }
    config.write_text(json.dumps(settings))
    from accord.core.job_memory import memory_budget_mb

    budget = memory_budget_mb(settings)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE)]
    command += ["--directory", str(workdir), "--configfile", str(config), "--cores", str(cores)]
    command += ["--resources", f"mem_mb={budget}"]
    log_path = workdir / "snakemake.log"
    peak = 0
    start = time.perf_counter()
    with log_path.open("w") as log:
        process = psutil.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        while process.poll() is None:
            peak = max(peak, _tree_rss(process))
            time.sleep(0.2)
    seconds = time.perf_counter() - start
    text = log_path.read_text()
    jobs = text.count("Finished jobid")
    note = (
        f"{jobs} jobs, --cores {cores}, {partitions} partition(s), jobs sharing {budget:,} MB; "
        "peak: all processes together"
    )
    if process.returncode != 0:
        note = f"failed (exit {process.returncode}); see {log_path}"
    return {
        "stage": "workflow",
        "seconds": seconds,
        "peak_mb": peak / 2**20,
        "rows": n,
        "note": note,
    }


def workflow_jobs(logs: Path) -> list[dict[str, Any]]:
    """One row per rule of a workflow run from the jobs' Snakemake benchmark files under
    `logs` (``<job>.benchmark.tsv``: wall seconds and peak resident MB of each job), sorted
    by rule: ``workflow:<rule>`` for a rule run once or once per partition or bootstrap chunk
    (seconds summed over its jobs, the largest job's peak), ``workflow:fit_model:<id>`` for
    each model. Jobs of a rule can run at the same time, so the seconds of the rows add up to
    more than the workflow's."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for path in sorted(logs.rglob("*.benchmark.tsv")):
        with path.open(encoding="utf-8") as handle:
            record = next(csv.DictReader(handle, delimiter="\t"), None)
        if record is None:
            continue
        groups.setdefault(_job_rule(path.relative_to(logs)), []).append(
            (float(record["s"]), _number(record.get("max_rss")))
        )
    rows = []
    for rule, jobs in sorted(groups.items()):
        note = f"{len(jobs)} jobs; peak of the largest" if len(jobs) > 1 else ""
        rows.append(
            {
                "stage": f"workflow:{rule}",
                "seconds": sum(seconds for seconds, _ in jobs),
                "peak_mb": max((peak for _, peak in jobs if math.isfinite(peak)), default=math.nan),
                "rows": len(jobs),
                "note": note,
            }
        )
    return rows


def _job_rule(relative: Path) -> str:
    """The rule (and model) a benchmark file belongs to: ``fit_model/growth.benchmark.tsv`` is
    fit_model:growth, ``bootstrap_model/therapist/chunk_3...`` is bootstrap_model:therapist and
    ``score_partition_7...`` is score_partition."""
    parts = list(relative.parts)
    name = parts.pop().removesuffix(".benchmark.tsv")
    if name.startswith("chunk_"):
        name = ""
    stem, _, tail = name.rpartition("_")
    if tail.isdigit() and stem:
        name = stem
    return ":".join([*parts, name] if name else parts)


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "", "NA", "-") else math.nan
    except ValueError:
        return math.nan


def _tree_rss(process: Any) -> int:
    """Resident bytes of `process` and all its descendants now (0 for any that just ended)."""
    import psutil

    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in members:
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


# Studies larger than this are copies of a simulated study of this size (see `_replicate`).
REPLICATED_FROM = 100_000


def _simulate(folder: Path, seed: int) -> dict[str, Any]:
    """Simulate the study of `folder` (named clients_<n>_seed_<seed>) unless it is cached."""
    from accord.simulate import simulate_study, write_study

    n = int(folder.name.split("_")[1])
    cached = (folder / "truth.json").exists()
    start = time.perf_counter()
    note = "cached" if cached else ""
    if not cached and n > REPLICATED_FROM and n % REPLICATED_FROM == 0:
        base = folder.parent / f"clients_{REPLICATED_FROM}_seed_{seed}"
        if not (base / "truth.json").exists():
            study = simulate_study(
                n_clients=REPLICATED_FROM, n_therapists=REPLICATED_FROM // 16, seed=seed
            )
            write_study(study, base)
        _replicate(base, n // REPLICATED_FROM, folder)
        note = f"{n // REPLICATED_FROM} copies of {REPLICATED_FROM:,} simulated clients"
    elif not cached:
        write_study(simulate_study(n_clients=n, n_therapists=max(5, n // 16), seed=seed), folder)
    return {"seconds": time.perf_counter() - start, "rows": n, "note": note}


def _replicate(base: Path, copies: int, folder: Path) -> None:
    """`copies` copies of the study in `base` as one study: copy k's client IDs end in -k.

    The simulator holds a whole study in memory (about 3 GB per 100,000 clients), so a
    million clients are drawn as copies of 100,000; each table's first column is client_id,
    rewritten by sed as the files stream through (a copy's therapists are the base's).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for table in ("clients", "sessions", "measures", "goals"):
        source = base / f"{table}.csv"
        target = folder / f".{table}.csv.tmp"
        with target.open("wb") as out:
            with source.open("rb") as handle:
                out.write(handle.readline())
            out.flush()
            for k in range(copies):
                subprocess.run(
                    ["sed", "-e", "1d", "-e", f"s/^\\([^,]*\\),/\\1-{k},/", str(source)],
                    stdout=out,
                    check=True,
                )
        target.replace(folder / f"{table}.csv")
    truth = json.loads((base / "truth.json").read_text())
    truth["replicated"] = {"copies": copies, "base": base.name}
    (folder / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")


def _config(folder: Path) -> dict[str, Any]:
    from accord.config import validate_config

    return validate_config({"studies": {"bench": {"path": str(folder)}}})


def _run_stage(stage: str, folder: Path, *, seed: int) -> dict[str, Any]:
    """One stage's work in this process: its seconds, rows and note."""
    if stage == "simulate":
        return _simulate(folder, seed)
    if stage == "lme4_rows":
        return _lme4_rows(folder)
    from accord.core.instruments import load_registry
    from accord.core.io import write_json, write_parquet
    from accord.core.stages import read_validated

    config = _config(folder)
    registry = load_registry(config["instruments"])
    out = folder / "results"
    validated = out / "validated"
    note = ""
    start = time.perf_counter()
    if stage == "validate":
        from accord.validate import StudyInput, validate_study, write_validation

        paths = {
            t: validated / f"{t}.parquet" for t in ("clients", "sessions", "measures", "goals")
        }
        paths |= {
            "quarantine": out / "validation" / "quarantine.csv",
            "summary": out / "validation" / "summary.json",
        }
        result = validate_study(StudyInput("bench", folder), registry)
        write_validation(result, paths)
        rows = result.summary["tables"]["measures"]["rows_in"]
    elif stage.startswith("validate:"):
        rows = _partitioned_validation(stage, folder, registry)
    elif stage.startswith("measures:"):
        rows = _partitioned_measures(stage, folder, registry, config)
    elif stage == "score":
        from accord.measures.partitions import score_study, write_scoring
        from accord.settings import scoring_settings

        measures = read_validated(validated / "measures.parquet", categorical=True)
        goals = read_validated(validated / "goals.parquet")
        settings = scoring_settings(config)
        scored = score_study(measures, registry, settings=settings, goals=goals)
        write_scoring(scored, registry, _scoring_paths(out))
        rows = len(measures)
    elif stage.startswith("score:"):
        rows = _partitioned_scoring(stage, out, registry, config)
    elif stage == "measures":
        from accord.measures.build import build_measures
        from accord.settings import measure_settings

        tables = {t: read_validated(validated / f"{t}.parquet") for t in ("clients", "sessions")}
        tables["goals"] = read_validated(validated / "goals.parquet")
        scores = read_validated(out / "scores.parquet")
        result = build_measures(
            tables["clients"],
            tables["sessions"],
            tables["goals"],
            scores,
            registry,
            measure_settings(config),
        )
        write_parquet(out / "client_measures.parquet", result.client_measures, result.metadata)
        write_parquet(out / "session_panel.parquet", result.session_panel, result.metadata)
        write_json(out / "measures_metadata.json", result.metadata)
        rows = len(result.session_panel)
    elif stage.startswith("model:"):
        return _fit_model_stage(stage.removeprefix("model:"), out, config)
    elif stage == "report":
        rows = _report(folder, config)
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    return {"seconds": time.perf_counter() - start, "rows": rows, "note": note}


def _fit_model_stage(model_id: str, out: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Fit one model of the plan on the study's results, timing the fit alone: the panel, the
    client measures and the validated tables its kind reads (`KIND_TABLES`) are read first."""
    import statsmodels.api  # noqa: F401  (imports are not timed; fit functions import it late)

    from accord.core.stages import read_validated
    from accord.models.spec import (
        KIND_TABLES,
        find_spec,
        fit_function,
        fit_model,
        model_context,
        model_specs,
        read_kind_tables,
    )
    from accord.models.tidy import write_model_result

    spec = find_spec(model_specs(config), model_id)
    fit_function(spec.kind)  # imports the kind's module
    panel = read_validated(out / "session_panel.parquet")
    client_measures = read_validated(out / "client_measures.parquet")
    tables = read_kind_tables(
        spec.kind,
        {name: out / "validated" / f"{name}.parquet" for name in KIND_TABLES.get(spec.kind, ())},
    )
    start = time.perf_counter()
    result = fit_model(panel, client_measures, spec, model_context(config), **tables)
    seconds = time.perf_counter() - start
    folder_out = out / "models" / spec.id
    folder_out.mkdir(parents=True, exist_ok=True)
    write_model_result(result, folder_out / "coefficients.csv", folder_out / "diagnostics.json")
    converged = result.diagnostics.get("converged")
    return {
        "seconds": seconds,
        "rows": result.diagnostics.get("n_obs", ""),
        "note": "" if converged else "did not converge",
    }


def _partitioned_validation(stage: str, folder: Path, registry: Any) -> int:
    """One job of validation in partitions: the split, a partition or the gather; returns the
    rows it handled."""
    from accord.validate import StudyInput
    from accord.validate.gather import write_gathered, write_part
    from accord.validate.split import split_study, validate_partition

    study = StudyInput("bench", folder)
    out = folder / "results"
    work = out / "partitions"
    step, _, number = stage.removeprefix("validate:").partition(":")
    if step == "split":
        shutil.rmtree(work, ignore_errors=True)
        manifest = split_study(study, int(number), work / "split")
        return manifest["tables"]["measures"]["rows"]
    if step == "part":
        part = validate_partition(study, registry, work / "split", int(number))
        write_part(part, work / f"validated_{number}")
        return part.tally["tables"]["measures"]["rows_in"]
    parts = sorted(work.glob("validated_*"), key=lambda p: int(p.name.split("_")[1]))
    tables = ("clients", "sessions", "measures", "goals")
    paths = {t: out / "validated" / f"{t}.parquet" for t in tables}
    paths |= {
        "quarantine": out / "validation" / "quarantine.csv",
        "summary": out / "validation" / "summary.json",
    }
    result = write_gathered(study, parts, paths)
    return result.summary["tables"]["measures"]["rows_in"]


def _scoring_paths(out: Path) -> dict[str, Path]:
    return {
        "scores": out / "scores.parquet",
        "disagreements": out / "validation" / "total_disagreements.csv",
        "reliability": out / "reliability.csv",
    }


def _partitioned_scoring(stage: str, out: Path, registry: Any, config: dict[str, Any]) -> int:
    """One job of scoring in partitions (of a study validated in them): a partition or the
    gather; returns the score rows it wrote."""
    from accord.measures.partitions import (
        gather_scored,
        score_validated_part,
        write_scored_part,
        write_scoring,
    )
    from accord.settings import scoring_settings

    work = out / "partitions"
    settings = scoring_settings(config)
    step, _, number = stage.removeprefix("score:").partition(":")
    if step == "part":
        scored = score_validated_part(work / f"validated_{number}", registry, settings)
        write_scored_part(scored, work / f"scored_{number}")
        return len(scored.result.scores)
    parts = sorted(work.glob("scored_*"), key=lambda p: int(p.name.split("_")[1]))
    scored = gather_scored(parts, settings)
    write_scoring(scored, registry, _scoring_paths(out))
    return len(scored.result.scores)


def _partitioned_measures(stage: str, folder: Path, registry: Any, config: dict) -> int:
    """One job of the measures in partitions (of a study validated and scored in them): a
    partition's statistics or build, or the gather; returns the rows it wrote (clients, panel
    rows)."""
    from types import SimpleNamespace

    from accord.measures import build_parts as parts
    from accord.settings import measure_settings

    out = folder / "results"
    work = out / "partitions"
    settings = measure_settings(config)
    step, _, number = stage.removeprefix("measures:").partition(":")
    n_parts = len(list(work.glob("validated_*")))
    validated, scored = work / f"validated_{number}", work / f"scored_{number}"
    statistics = [work / f"measures_statistics_{k}.json" for k in range(n_parts)]
    if step == "statistics":
        found = parts.measure_statistics_file(validated, scored, statistics[int(number)], settings)
        return found.n_clients
    if step == "part":
        folder_out = work / f"measures_{number}"
        built = parts.build_partition_folder(
            validated, scored, statistics, folder_out, registry, settings
        )
        return built[1]
    paths = SimpleNamespace(
        client_measures=out / "client_measures.parquet",
        session_panel=out / "session_panel.parquet",
        metadata=out / "measures_metadata.json",
    )
    folders = [work / f"measures_{k}" for k in range(n_parts)]
    return parts.write_gathered_measures(folders, statistics, paths, registry, settings)[
        "n_panel_rows"
    ]


def _report(folder: Path, config: dict[str, Any]) -> int:
    """Missingness tables, gathered model tables and the report; returns the report's size in
    bytes."""
    from accord.core.io import write_csv, write_json
    from accord.core.stages import read_validated
    from accord.models.gather import gather_models
    from accord.models.missingness import missing_by_session, missingness_vs_exposure
    from accord.report.render import render_report

    out = folder / "results"
    models = out / "models"
    analysis = config["analysis"]
    panel = read_validated(out / "session_panel.parquet")
    client_measures = read_validated(out / "client_measures.parquet")
    instruments = list(
        dict.fromkeys(
            [analysis["primary_outcome"], *analysis["secondary_outcomes"], analysis["alliance"]]
        )
    )
    models.mkdir(parents=True, exist_ok=True)
    write_csv(models / "missing_by_session.csv", missing_by_session(panel, instruments))
    write_csv(
        models / "missingness_vs_exposure.csv",
        missingness_vs_exposure(panel, client_measures, instruments, analysis["primary_exposure"]),
    )
    fitted = sorted(p.parent for p in models.glob("*/coefficients.csv"))
    coefficients, diagnostics = gather_models(
        [p / "coefficients.csv" for p in fitted],
        [p / "diagnostics.json" for p in fitted],
    )
    write_csv(models / "coefficients.csv", coefficients)
    write_json(models / "diagnostics.json", diagnostics)
    html = folder / "report" / "report.html"
    html.parent.mkdir(parents=True, exist_ok=True)
    render_report(
        out,
        html,
        study="bench",
        config=config,
        min_cell=config["privacy"]["min_cell"],
        tables_dir=folder / "report" / "tables",
        figures_dir=folder / "report" / "figures",
    )
    return html.stat().st_size


def lme4_available() -> bool:
    """Whether Rscript runs and has lme4."""
    if shutil.which("Rscript") is None:
        return False
    done = subprocess.run(
        ["Rscript", "-e", 'quit(status = as.integer(!requireNamespace("lme4", quietly = TRUE)))'],
        capture_output=True,
    )
    return done.returncode == 0


def _lme4_rows(folder: Path) -> dict[str, Any]:
    """Write the rows accord's primary growth model uses as CSV for lme4 (not timed)."""
    import pandas as pd

    from accord.core.stages import read_validated
    from accord.models.lrt import model_design
    from accord.models.spec import find_spec, model_specs

    spec = find_spec(model_specs(_config(folder)), PRIMARY_GROWTH)
    out = folder / "results"
    design = model_design(
        read_validated(out / "session_panel.parquet"),
        read_validated(out / "client_measures.parquet"),
        {
            "id": spec.id,
            "kind": spec.kind,
            "outcome": spec.outcome,
            "exposure": spec.exposure,
            "covariates": list(spec.covariates),
            "time_coding": spec.time_coding,
            "therapist_effect": spec.therapist_effect,
            "options": dict(spec.options),
        },
    )
    rows = pd.DataFrame(
        {
            "client": pd.factorize(design.data["client"])[0],
            "therapist": pd.factorize(design.data["therapist"])[0],
            "time": design.data["time"],
            "exposure": design.data[spec.exposure],
            "y": design.data[spec.outcome],
        }
    )
    rows.to_csv(out / "lme4_growth_rows.csv", index=False)
    return {"seconds": 0.0, "rows": len(rows), "note": ""}


def _lme4_growth(folder: Path, n: int) -> dict[str, Any] | None:
    """Fit the primary growth model with lme4 on the rows accord's growth model uses.

    None (with a message) when Rscript or lme4 is missing."""
    if not lme4_available():
        print("lme4 comparison skipped: Rscript with lme4 not found", flush=True)
        return None
    prepared = _run_child("lme4_rows", folder)
    row = {"stage": "lme4:growth", "rows": prepared["rows"]}
    if prepared["note"].startswith("failed"):
        return {**row, "seconds": float("nan"), "peak_mb": float("nan"), "note": prepared["note"]}
    csv_path = folder / "results" / "lme4_growth_rows.csv"
    status, peak_mb, stdout, stderr = _measured(["Rscript", str(LME4_SCRIPT), str(csv_path)])
    if status != 0:
        last = (stderr.strip().splitlines() or ["no message"])[-1]
        return {**row, "seconds": float("nan"), "peak_mb": peak_mb, "note": f"failed: {last[:200]}"}
    result = json.loads(stdout.strip().splitlines()[-1])
    return {
        **row,
        "seconds": float(result["seconds"]),
        "peak_mb": peak_mb,
        "note": f"lme4 {result['lme4']}, REML",
    }


if __name__ == "__main__":
    raise SystemExit(main())
