from accord.core.instruments import load_registry
from accord.core.logs import run_step
from accord.core.stages import read_validated
from accord.measures.build import build_measures
from accord.measures.build_parts import write_gathered_measures, write_measures
from accord.settings import measure_settings

with run_step(snakemake.log[0]) as log:
    registry = load_registry(snakemake.config["instruments"])
    settings = measure_settings(snakemake.config)
    if hasattr(snakemake.input, "parts"):  # a study in partitions: gather them
        metadata = write_gathered_measures(
            snakemake.input.parts, snakemake.input.statistics, snakemake.output, registry, settings
        )
    else:
        tables = {
            name: read_validated(getattr(snakemake.input, name))
            for name in ("clients", "sessions", "goals", "scores")
        }
        result = build_measures(*tables.values(), registry, settings)
        write_measures(result, snakemake.output)
        metadata = result.metadata
    log.info("%d clients, %d panel rows", metadata["n_clients"], metadata["n_panel_rows"])
