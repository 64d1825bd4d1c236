from pathlib import Path

from accord.core.logs import run_step
from accord.report.render import render_report

with run_step(snakemake.log[0]) as log:
    sections = render_report(
        Path(snakemake.input.summary).parent.parent,
        Path(snakemake.output.html),
        study=snakemake.params.study,
        config=snakemake.config,
        min_cell=snakemake.config["privacy"]["min_cell"],
        tables_dir=Path(snakemake.output.tables),
        figures_dir=Path(snakemake.output.figures),
        tidy_dir=Path(snakemake.output.tidy),
        out_docx=Path(snakemake.output.docx),
    )
    log.info(
        "report written to %s: %d sections, %d tables, %d figures",
        snakemake.output.html,
        len(sections),
        sum(len(s.tables) for s in sections),
        sum(len(s.figures) for s in sections),
    )
