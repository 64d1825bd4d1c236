from pathlib import Path

from accord.logs import run_step
from accord.report.render import render_report

with run_step(snakemake.log[0]) as log:
    results_dir = Path(snakemake.input.summary).parent.parent
    render_report(
        results_dir,
        Path(snakemake.output[0]),
        study=snakemake.params.study,
        config=snakemake.config,
        min_cell=snakemake.config["privacy"]["min_cell"],
    )
    log.info("report written to %s", snakemake.output[0])
