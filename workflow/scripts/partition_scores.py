from accord.core.logs import run_step
from accord.measures.build_parts import write_partition_scores

with run_step(snakemake.log[0]) as log:
    rows = write_partition_scores(
        snakemake.input.scores,
        snakemake.output.scores,
        int(snakemake.params.part),
        int(snakemake.params.partitions),
    )
    log.info("partition %s: %d score rows", snakemake.params.part, rows)
