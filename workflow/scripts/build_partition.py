from accord.core.instruments import load_registry
from accord.core.logs import run_step
from accord.measures.build_parts import build_partition_folder
from accord.settings import measure_settings

with run_step(snakemake.log[0]) as log:
    n_clients, n_rows = build_partition_folder(
        snakemake.input.part,
        snakemake.input.scored,
        snakemake.input.statistics,
        snakemake.output.part,
        load_registry(snakemake.config["instruments"]),
        measure_settings(snakemake.config),
    )
    log.info("%d clients, %d panel rows", n_clients, n_rows)
