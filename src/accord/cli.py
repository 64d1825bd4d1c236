"""The `accord` command: start a study's config, validate a study, run the workflow, simulate.

Snakemake stays the engine: `accord run` calls it with the study's config, so everything the
README says about Snakemake still holds; the command is for people who would rather not learn it.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from accord import __version__
from accord.core.errors import AccordError

if TYPE_CHECKING:
    import pandas as pd

    from accord.validate import StudyInput, ValidationResult

EXIT_CODES = """exit codes:
  0  success
  1  the study or the config broke a rule (the message names the file, column or key)
  2  the command line itself was wrong (unknown option, missing argument)"""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (see EXIT_CODES)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s: %(message)s")
    try:
        return args.func(args)
    except AccordError as exc:
        print(f"accord: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # A file that cannot be opened or written: one line naming it, never a traceback.
        from accord.core.io import describe_os_error

        where = f"{Path(exc.filename).name}: " if exc.filename else ""
        print(f"accord: {where}{describe_os_error(exc)}.", file=sys.stderr)
        return 1


def _command(commands, name: str, help: str, description: str) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=help,
        description=textwrap.fill(description, 88),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# Long: one declarative table of every command and its options, read top to bottom as --help is.
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accord",
        description=__doc__.splitlines()[0],
        epilog=EXIT_CODES + "\n\nRun 'accord COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"accord {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    init = _command(
        commands,
        "init",
        "write a commented study config to start from",
        "Write DIR/config.yaml, a commented config for one study, and DIR/README.md with the "
        "next steps. Fill in the study's path (and, for --format mapped or redcap, the source "
        "columns), then run 'accord validate'.",
    )
    init.add_argument("folder", type=Path, metavar="DIR", help="the folder to write into")
    init.add_argument(
        "--format",
        choices=["contract", "mapped", "redcap"],
        default="contract",
        help="contract: tables already in the contract's shape; mapped: your own CSV, Excel, "
        "SPSS or Parquet files; redcap: a REDCap export with its data dictionary "
        "(default: contract)",
    )
    init.add_argument("--study", default="mystudy", help="the study's name (default: mystudy)")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.set_defaults(func=_init)

    validate = _command(
        commands,
        "validate",
        "run ingest, the identifier guard and validation on one study, and summarise",
        "Read one study (mapping its own files onto the data contract if it declares a "
        "format), run the identifier guard and validation, and print what was accepted and "
        "what was quarantined and why. Nothing is written unless --out is given.",
    )
    validate.add_argument("study", help="the study's name under `studies:` in the config")
    validate.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    validate.add_argument(
        "--out", type=Path, default=None, help="also write the validation outputs here"
    )
    validate.set_defaults(func=_validate)

    run = _command(
        commands,
        "run",
        "run the workflow (Snakemake) for one or every study, up to the report",
        "Run the workflow for one study (reports/STUDY/report.html) or every configured study. "
        "Snakemake shows its progress as it goes; relative study paths are read from the "
        "current folder, where results/ and reports/ are written.",
    )
    run.add_argument("study", nargs="?", help="one study; default: every configured study")
    run.add_argument(
        "--config",
        type=Path,
        default=None,
        help="the config (default: ./config/config.yaml, else the demo config shipped with accord)",
    )
    run.add_argument("--cores", type=int, default=2, help="cores to use (default: 2)")
    run.add_argument(
        "--snakefile",
        type=Path,
        default=None,
        help="the workflow (default: ./Snakefile, else the one shipped with accord)",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="list the jobs that would run, run none"
    )
    run.add_argument(
        "--rerun-incomplete",
        action="store_true",
        help="redo the outputs a stopped run left half-written (after a kill or power cut)",
    )
    run.add_argument(
        "--unlock",
        action="store_true",
        help="release the lock a stopped run left on the folder, then stop; run again after",
    )
    run.add_argument(
        "--keep-going", action="store_true", help="go on with independent jobs after one fails"
    )
    run.set_defaults(func=_run)

    plan = _command(
        commands,
        "plan",
        "write the analysis plan (the models: list) that would run for one study",
        "Read one study as `accord validate` does, build its measures, and check every model "
        "of the config (or of the default plan) against what the study has. Print the plan as "
        "a `models:` list for the config, each entry with its status (planned, not estimable, "
        "not applicable) and the reason as comments; edit it and paste it into the config.",
    )
    plan.add_argument("study", help="the study's name under `studies:` in the config")
    plan.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    plan.add_argument("--out", type=Path, default=None, help="write the plan to this file")
    plan.set_defaults(func=_plan)

    simulate = _command(
        commands,
        "simulate",
        "write a synthetic study with known effects (truth.json)",
        "Write a synthetic study in the contract's format, with the parameters that generated "
        "it in truth.json (see accord.simulate).",
    )
    simulate.add_argument("folder", type=Path, help="where to write the study's tables")
    simulate.add_argument("--clients", type=int, default=400)
    simulate.add_argument("--therapists", type=int, default=25)
    simulate.add_argument("--sites", type=int, default=3)
    simulate.add_argument("--max-sessions", type=int, default=12)
    simulate.add_argument("--seed", type=int, default=2026)
    simulate.add_argument("--format", choices=["csv", "parquet"], default="csv")
    simulate.set_defaults(func=_simulate)
    return parser


def _init(args: argparse.Namespace) -> int:
    from accord.models.plan import plan_yaml
    from accord.models.spec import DEFAULT_MODELS
    from accord.starter import write_starter

    written = write_starter(args.folder, args.format, args.study, force=args.force)
    header = (
        "The analysis plan: the models fitted for the study. Delete an entry to drop its "
        "model. Before fitting, the workflow checks each one against the study's data: one "
        "that does not apply (an instrument the study lacks, no therapist IDs, no arm) is "
        "left out with its reason. `accord plan "
        f"{args.study} --config {written[0]}` shows the plan checked against the data."
    )
    with written[0].open("a", encoding="utf-8") as config:
        config.write("\n" + plan_yaml(DEFAULT_MODELS, None, header))
    for path in written:
        print(f"wrote {path}")
    print(f"Next: edit {written[0]}, then: accord validate {args.study} --config {written[0]}")
    return 0


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
    from accord.core.instruments import load_registry
    from accord.validate import validate_study, write_validation

    config = load_config(args.config)
    # Relative study paths are read from the working directory, as Snakemake does.
    study = study_input(config, args.study, root=Path.cwd())
    print(f"Study '{args.study}' ({study.path}, format {study.format})")
    try:
        result = validate_study(study, load_registry(config.get("instruments")))
    except AccordError as exc:
        print(f"Stopped before validation finished:\n{exc}", file=sys.stderr)
        return 1
    _print_summary(result)
    if args.out:
        _write_outputs(result, args.out, write_validation)
        print(f"Validation outputs written under {args.out}")
    limit = config.get("validation", {}).get("max_quarantined_share", 0.5)
    verdict = _quarantine_verdict(result, limit)
    if verdict:
        print(f"accord: {verdict}", file=sys.stderr)
        return 1
    return 0


def _quarantine_verdict(result: ValidationResult, limit: float) -> str | None:
    """One line naming the tables that lost more than `limit` of their rows, or None.

    Losing most of a table is a mapping that does not fit the files (a wrong event, a key that
    repeats), not a few bad rows; it fails here rather than in the report."""
    lost = []
    for table, counts in result.summary["tables"].items():
        if counts["rows_in"] and counts["rows_quarantined"] / counts["rows_in"] > limit:
            lost.append(
                f"{table} {counts['rows_quarantined']} of {counts['rows_in']} "
                f"({counts['rows_quarantined'] / counts['rows_in']:.0%})"
            )
    if not lost:
        return None
    return (
        f"study fails validation: quarantined rows: {', '.join(lost)}, more than "
        f"validation.max_quarantined_share ({limit:g}); see the reasons above."
    )


def _write_outputs(result: ValidationResult, out: Path, write_validation) -> None:
    """The validation outputs under `out`, all of them or (on a fault) none."""
    from accord.core.io import describe_os_error, staged_folder

    try:
        with staged_folder(out) as stage:
            paths = {t: stage / "validated" / f"{t}.parquet" for t in result.tables}
            paths |= {"goals": stage / "validated" / "goals.parquet"}
            paths |= {
                "quarantine": stage / "validation" / "quarantine.csv",
                "summary": stage / "validation" / "summary.json",
            }
            write_validation(result, paths)
    except OSError as exc:
        raise AccordError(
            f"{out}: the validation outputs could not be written: {describe_os_error(exc)}; "
            "nothing was written there."
        ) from None


def _print_summary(result: ValidationResult, examples: int = 10) -> None:
    """Counts per table, reasons per rule, the first quarantined rows, notes and warnings."""
    summary = result.summary
    for source, rows in summary.get("source_rows", {}).items():
        print(f"source {source}: {rows} data rows")
    print(f"{'table':<10}{'rows in':>10}{'accepted':>10}{'quarantined':>13}{'missing codes':>15}")
    for table, counts in summary["tables"].items():
        print(
            f"{table:<10}{counts['rows_in']:>10}{counts['rows_accepted']:>10}"
            f"{counts['rows_quarantined']:>13}{counts['missing_codes_replaced']:>15}"
        )
        for reason in counts["quarantine_reasons"]:
            print(f"    {reason['rows']:>6} rows: {reason['rule']} ({reason['column']})")
    quarantine = result.quarantine
    if len(quarantine):
        print(f"First quarantined rows (of {len(quarantine)} reasons):")
        for row in quarantine.head(examples).itertuples(index=False):
            where = f"{row.source} row {row.row_number}"
            column = f", column '{row.source_column}'" if row.source_column else ""
            print(f"    {where}{column}: {row.rule} ({row.table}.{row.column})")
    for note in summary["notes"]:
        print(f"note: {note}")
    for warning in result.guard.warnings:
        print(f"warning: {warning.describe()}")
    total = sum(c["rows_quarantined"] for c in summary["tables"].values())
    print("All rows accepted." if total == 0 else f"{total} rows quarantined (see above).")


def default_snakefile() -> Path:
    """./Snakefile if there is one, else the workflow of the accord checkout."""
    here = Path("Snakefile")
    if here.exists():
        return here
    return Path(__file__).resolve().parents[2] / "Snakefile"


def default_config() -> Path:
    """./config/config.yaml if there is one, else the demo config of the accord checkout."""
    here = Path("config") / "config.yaml"
    if here.exists():
        return here
    return Path(__file__).resolve().parents[2] / "config" / "config.yaml"


def snakemake_command(
    args: argparse.Namespace, snakefile: Path, config_file: Path, memory_mb: int | None = None
) -> list[str]:
    """The Snakemake command of `accord run`: targets come before the options, and the config
    file is given as --configfile=FILE (--configfile takes every value that follows it).
    `memory_mb` is the memory the running jobs share (``--resources mem_mb=``; each job
    declares its own from the study's size, accord.core.job_memory)."""
    target = [f"reports/{args.study}/report.html"] if args.study else []
    flags = {
        "--dry-run": args.dry_run,
        "--rerun-incomplete": args.rerun_incomplete,
        "--unlock": args.unlock,
        "--keep-going": args.keep_going,
    }
    return [
        sys.executable,
        "-m",
        "snakemake",
        *target,
        f"--snakefile={snakefile}",
        f"--cores={args.cores}",
        f"--configfile={config_file}",
        *([f"--resources=mem_mb={int(memory_mb)}"] if memory_mb is not None else []),
        *(flag for flag, on in flags.items() if on),
    ]


def _run(args: argparse.Namespace) -> int:
    from accord.config import load_config

    args.config = args.config or default_config()
    config = load_config(args.config)
    if args.study and args.study not in config["studies"]:
        known = ", ".join(sorted(config["studies"]))
        raise AccordError(f"config key 'studies.{args.study}': no such study (configured: {known})")
    snakefile = args.snakefile or default_snakefile()
    if not snakefile.exists():
        raise AccordError(f"The workflow {snakefile} does not exist; give --snakefile.")
    from accord.core.job_memory import memory_budget_mb

    command = snakemake_command(args, snakefile, args.config, memory_budget_mb(config))
    print(f"Running the workflow for {args.study or 'every study'} ({' '.join(command[2:])})")
    code = subprocess.call(command)
    if code != 0:
        print(
            "accord: the workflow stopped; the message above names the step. After a kill, "
            "run again with --unlock, then with --rerun-incomplete.",
            file=sys.stderr,
        )
        return 1
    return 0


def _plan(args: argparse.Namespace) -> int:
    from accord.config import load_config, study_input
    from accord.models.plan import plan_models, plan_yaml
    from accord.models.spec import DEFAULT_MODELS, model_context, model_specs

    config = load_config(args.config)
    study = study_input(config, args.study, root=Path.cwd())
    panel, client_measures = study_measures(config, study)
    plan = plan_models(model_specs(config), panel, client_measures, model_context(config))
    header = (
        f"The analysis plan for study '{args.study}', checked against its data by "
        f"`accord plan {args.study}`. Each entry's status and reason are the comment above "
        "it. Delete an entry to drop its model; the workflow checks every entry again."
    )
    text = plan_yaml(config.get("models", DEFAULT_MODELS), plan, header)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote the plan for '{args.study}' to {args.out}")
    else:
        print(text, end="")
    return 0


def study_measures(config: dict, study: StudyInput) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The session panel and client measures of one study, built as the workflow builds them
    (validation, scoring, measures), in a temporary folder."""
    import tempfile

    from accord.core.contract import TABLES
    from accord.core.instruments import load_registry
    from accord.core.stages import read_validated
    from accord.measures.build import build_measures
    from accord.measures.scoring import score_measures_with_summary
    from accord.settings import measure_settings, scoring_settings
    from accord.validate import validate_study, write_validation

    registry = load_registry(config.get("instruments"))
    result = validate_study(study, registry)
    with tempfile.TemporaryDirectory() as folder:
        paths = {table: Path(folder) / f"{table}.parquet" for table in TABLES}
        paths |= {"quarantine": Path(folder) / "q.csv", "summary": Path(folder) / "s.json"}
        write_validation(result, paths)
        measures = read_validated(paths["measures"], categorical=True)
        tables = {table: read_validated(paths[table]) for table in TABLES}
    scores = score_measures_with_summary(
        measures, registry, settings=scoring_settings(config), goals=tables["goals"]
    ).scores
    built = build_measures(
        tables["clients"],
        tables["sessions"],
        tables["goals"],
        scores,
        registry,
        measure_settings(config),
    )
    return built.session_panel, built.client_measures


if __name__ == "__main__":
    raise SystemExit(main())
