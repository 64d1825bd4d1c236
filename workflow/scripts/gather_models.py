import json
from pathlib import Path

from accord.core.io import write_csv, write_json
from accord.core.logs import run_step
from accord.models.gather import gather_models

with run_step(snakemake.log[0]) as log:
    coefficients, diagnostics = gather_models(
        snakemake.input.coefficients,
        snakemake.input.diagnostics,
        plan=json.loads(Path(snakemake.input.plan).read_text())["models"],
    )
    write_csv(snakemake.output.coefficients, coefficients)
    write_json(snakemake.output.diagnostics, diagnostics)
    log.info("gathered %d models", len(diagnostics))
