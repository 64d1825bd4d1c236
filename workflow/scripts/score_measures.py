from accord.core.instruments import load_registry
from accord.core.logs import run_step
from accord.core.stages import read_validated
from accord.measures.partitions import gather_scored, score_study, write_scoring
from accord.settings import scoring_settings

with run_step(snakemake.log[0]) as log:
    registry = load_registry(snakemake.config["instruments"])
    settings = scoring_settings(snakemake.config)
    if snakemake.params.partitions > 1:
        scored = gather_scored(snakemake.input.parts, settings)
    else:
        measures = read_validated(snakemake.input.measures, categorical=True)
        goals = read_validated(snakemake.input.goals)
        scored = score_study(measures, registry, settings=settings, goals=goals)
    write_scoring(scored, registry, snakemake.output)
    log.info("scored %d scale scores", len(scored.result.scores))
