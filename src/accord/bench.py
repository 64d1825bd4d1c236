"""Benchmarks: time and peak memory of each stage on simulated studies of growing size.

`make bench` runs `python -m accord.bench`; each stage runs in a fresh process so its peak
memory is its own. Studies are generated once per size and seed under `benchmarks/out/`.
Results are printed and written to `benchmarks/summary.csv`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

STAGES = ("validate", "score", "measures")
DEFAULT_SIZES = (1_000, 10_000, 100_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m accord.bench", description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--summary", type=Path, default=Path("benchmarks/summary.csv"))
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        print(json.dumps(_run_stage(args.stage, args.folder)))
        return 0

    rows = []
    for n in args.clients:
        folder = args.out / f"clients_{n}_seed_{args.seed}"
        rows.append(_simulate(n, args.seed, folder))
        for stage in args.stages:
            done = subprocess.run(
                [sys.executable, "-m", "accord.bench", "--stage", stage, "--folder", str(folder)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            rows.append({"clients": n, **json.loads(done.stdout.strip().splitlines()[-1])})
            print(_line(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.summary, index=False, float_format="%.3f")
    print()
    print(table.to_string(index=False))
    return 0


def _line(row: dict) -> str:
    return (
        f"{row['clients']:>8} clients  {row['stage']:<10} {row['seconds']:8.1f} s  "
        f"{row['peak_gb']:6.2f} GB  {row.get('rows', '')}"
    )


def _simulate(n: int, seed: int, folder: Path) -> dict:
    from accord.simulate import simulate_study, write_study

    cached = (folder / "truth.json").exists()
    start = time.perf_counter()
    if not cached:
        write_study(simulate_study(n_clients=n, n_therapists=max(5, n // 16), seed=seed), folder)
    row = {
        "clients": n,
        "stage": "simulate",
        "seconds": time.perf_counter() - start,
        "peak_gb": _peak_gb(),
        "rows": "cached" if cached else "",
    }
    print(_line(row), flush=True)
    return row


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _run_stage(stage: str, folder: Path) -> dict:
    from accord.instruments import load_registry
    from accord.validate import StudyInput, validate_study, write_validation

    registry = load_registry()
    out = folder / "results"
    paths = {t: out / "validated" / f"{t}.parquet" for t in ("clients", "sessions", "measures")}
    paths |= {
        "goals": out / "validated" / "goals.parquet",
        "quarantine": out / "validation" / "quarantine.csv",
        "summary": out / "validation" / "summary.json",
    }
    start = time.perf_counter()
    if stage == "validate":
        result = validate_study(StudyInput("bench", folder), registry)
        write_validation(result, paths)
        rows = result.summary["tables"]["measures"]["rows_in"]
    elif stage == "score":
        from accord.io import write_parquet
        from accord.scoring import score_measures
        from accord.stages import read_validated

        measures = read_validated(paths["measures"], categorical=True)
        scores, _ = score_measures(measures, registry)
        write_parquet(out / "scores.parquet", scores)
        rows = len(measures)
    else:
        from accord.io import write_parquet
        from accord.measures import build_measures
        from accord.stages import read_validated

        tables = {t: read_validated(paths[t]) for t in ("clients", "sessions", "goals")}
        scores = read_validated(out / "scores.parquet")
        result = build_measures(
            tables["clients"], tables["sessions"], tables["goals"], scores, registry
        )
        write_parquet(out / "client_measures.parquet", result.client_measures)
        write_parquet(out / "session_panel.parquet", result.session_panel)
        rows = len(result.session_panel)
    return {
        "stage": stage,
        "seconds": time.perf_counter() - start,
        "peak_gb": _peak_gb(),
        "rows": rows,
    }


if __name__ == "__main__":
    raise SystemExit(main())
