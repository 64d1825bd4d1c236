import json
from pathlib import Path

import pandas as pd

from accord.core.disclosure import shareable_coefficients, shareable_record
from accord.core.io import write_csv, write_json
from accord.core.logs import run_step

with run_step(snakemake.log[0]) as log:
    min_cell = snakemake.config["privacy"]["min_cell"]
    coefficients = pd.read_csv(snakemake.input.coefficients)
    diagnostics = json.loads(Path(snakemake.input.diagnostics).read_text(encoding="utf-8"))
    write_csv(snakemake.output.coefficients, shareable_coefficients(coefficients, min_cell))
    write_json(snakemake.output.diagnostics, shareable_record(diagnostics, min_cell))
    log.info("model results fit to share written beside %s", snakemake.output.diagnostics)
