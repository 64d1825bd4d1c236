"""The `accord` command: simulate a study, validate one, or run the workflow.

Exit codes: 0 success; 1 the study or config broke a rule (the message says which);
2 the command line itself was wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

from accord import __version__
from accord.errors import AccordError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return args.func(args)
    except AccordError as exc:
        print(f"accord: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accord", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"accord {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    simulate = commands.add_parser(
        "simulate", help="write a synthetic study with known effects (truth.json)"
    )
    simulate.add_argument("folder", type=Path, help="where to write the study's tables")
    simulate.add_argument("--clients", type=int, default=400)
    simulate.add_argument("--therapists", type=int, default=25)
    simulate.add_argument("--sites", type=int, default=3)
    simulate.add_argument("--max-sessions", type=int, default=12)
    simulate.add_argument("--seed", type=int, default=2026)
    simulate.add_argument("--format", choices=["csv", "parquet"], default="csv")
    simulate.set_defaults(func=_simulate)

    validate = commands.add_parser(
        "validate", help="run the identifier guard and validation on one study and summarise"
    )
    validate.add_argument("study", help="the study's name under `studies:` in the config")
    validate.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    validate.add_argument(
        "--out", type=Path, default=None, help="also write the validation outputs here"
    )
    validate.set_defaults(func=_validate)

    run = commands.add_parser("run", help="run the workflow (snakemake) for one or every study")
    run.add_argument("study", nargs="?", help="one study; default: every configured study")
    run.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    run.add_argument("--cores", type=int, default=2)
    run.set_defaults(func=_run)
    return parser


def _simulate(args: argparse.Namespace) -> int:
    from accord.simulate import simulate_study, write_study

    study = simulate_study(
        n_clients=args.clients,
        n_therapists=args.therapists,
        n_sites=args.sites,
        max_sessions=args.max_sessions,
        seed=args.seed,
    )
    write_study(study, args.folder, fmt=args.format)
    print(f"Wrote a synthetic study of {len(study.clients)} clients to {args.folder}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from accord.config import load_config, study_input
    from accord.instruments import load_registry
    from accord.validate import validate_study, write_validation

    config = load_config(args.config)
    # Relative study paths are read from the working directory, as Snakemake does.
    study = study_input(config, args.study, root=Path.cwd())
    result = validate_study(study, load_registry(config.get("instruments")))
    print(f"Study '{args.study}' ({study.path})")
    print(f"{'table':<10}{'rows in':>10}{'accepted':>10}{'quarantined':>13}{'missing codes':>15}")
    for table, counts in result.summary["tables"].items():
        print(
            f"{table:<10}{counts['rows_in']:>10}{counts['rows_accepted']:>10}"
            f"{counts['rows_quarantined']:>13}{counts['missing_codes_replaced']:>15}"
        )
        for reason in counts["quarantine_reasons"]:
            print(f"    {reason['rows']:>6} rows: {reason['rule']} ({reason['column']})")
    for note in result.summary["notes"]:
        print(f"note: {note}")
    for warning in result.guard.warnings:
        print(f"warning: {warning.describe()}")
    if args.out:
        out = args.out
        paths = {t: out / "validated" / f"{t}.parquet" for t in result.tables}
        paths |= {"goals": out / "validated" / "goals.parquet"}
        paths |= {
            "quarantine": out / "validation" / "quarantine.csv",
            "summary": out / "validation" / "summary.json",
        }
        write_validation(result, paths)
        print(f"Validation outputs written under {out}")
    else:
        print(
            json.dumps(
                {
                    "rows_quarantined": sum(
                        c["rows_quarantined"] for c in result.summary["tables"].values()
                    )
                }
            )
        )
    return 0


def _run(args: argparse.Namespace) -> int:
    target = [f"reports/{args.study}/report.html"] if args.study else []
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        str(args.cores),
        "--configfile",
        str(args.config),
        *target,
    ]
    return subprocess.call(command)


if __name__ == "__main__":
    raise SystemExit(main())
