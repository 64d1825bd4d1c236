import json
from pathlib import Path

import pandas as pd

from accord.core.logs import run_step
from accord.report.pooled import render_pooled_report

with run_step(snakemake.log[0]) as log:
    one_stage = snakemake.input.get("one_stage")
    record = json.loads(Path(snakemake.input.record).read_text(encoding="utf-8"))
    render_pooled_report(
        snakemake.output.report,
        name=snakemake.params.consortium,
        pooled=pd.read_csv(snakemake.input.pooled),
        sites=pd.read_csv(snakemake.input.sites, keep_default_na=False, na_values=[""]),
        one_stage=pd.read_csv(one_stage) if one_stage else None,
        notes=record["notes"],
        record=record,
        min_cell=snakemake.config["privacy"]["min_cell"],
        forest_svg_path=snakemake.output.forest_svg,
        forest_png_path=snakemake.output.forest_png,
        simulated=snakemake.params.simulated or None,
    )
    log.info("pooled report written to %s", snakemake.output.report)
