from accord.core.instruments import load_registry
from accord.core.io import write_json, write_parquet
from accord.core.logs import run_step
from accord.core.stages import read_validated
from accord.measures.build import build_measures
from accord.settings import measure_settings

with run_step(snakemake.log[0]) as log:
    registry = load_registry(snakemake.config["instruments"])
    tables = {
        name: read_validated(getattr(snakemake.input, name))
        for name in ("clients", "sessions", "goals", "scores")
    }
    result = build_measures(
        tables["clients"],
        tables["sessions"],
        tables["goals"],
        tables["scores"],
        registry,
        measure_settings(snakemake.config),
    )
    write_parquet(snakemake.output.client_measures, result.client_measures, result.metadata)
    write_parquet(snakemake.output.session_panel, result.session_panel, result.metadata)
    write_json(snakemake.output.metadata, result.metadata)
    log.info("%d clients, %d panel rows", len(result.client_measures), len(result.session_panel))
