from accord.core.logs import run_step
from accord.measures.build_parts import measure_statistics_file
from accord.settings import measure_settings

with run_step(snakemake.log[0]) as log:
    statistics = measure_statistics_file(
        snakemake.input.part,
        snakemake.input.scored,
        snakemake.output.statistics,
        measure_settings(snakemake.config),
    )
    log.info("%d clients", statistics.n_clients)
