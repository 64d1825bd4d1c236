from accord.core.instruments import load_registry
from accord.core.io import write_csv, write_parquet
from accord.core.logs import run_step
from accord.core.stages import read_validated
from accord.measures.reliability import reliability_table
from accord.measures.scoring import score_measures_with_summary
from accord.settings import scoring_settings

with run_step(snakemake.log[0]) as log:
    registry = load_registry(snakemake.config["instruments"])
    measures = read_validated(snakemake.input.measures, categorical=True)
    goals = read_validated(snakemake.input.goals)
    settings = scoring_settings(snakemake.config)
    result = score_measures_with_summary(measures, registry, settings=settings, goals=goals)
    metadata = {"scoring": settings.as_dict(), "summary": result.summary.to_dict("records")}
    write_parquet(snakemake.output.scores, result.scores, metadata=metadata)
    write_csv(snakemake.output.disagreements, result.total_disagreements)
    write_csv(snakemake.output.reliability, reliability_table(measures, registry))
    log.info("scored %d scale scores", len(result.scores))
