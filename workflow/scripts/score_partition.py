from accord.core.instruments import load_registry
from accord.core.logs import run_step
from accord.measures.partitions import score_validated_part, write_scored_part
from accord.settings import scoring_settings

with run_step(snakemake.log[0]) as log:
    registry = load_registry(snakemake.config["instruments"])
    settings = scoring_settings(snakemake.config)
    scored = score_validated_part(snakemake.input.part, registry, settings)
    write_scored_part(scored, snakemake.output.scored)
    log.info("scored %d scale scores", len(scored.result.scores))
    log.info("%d reliability cells' sums", len(scored.reliability))
