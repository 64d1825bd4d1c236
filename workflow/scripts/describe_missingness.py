from accord.core.io import write_csv
from accord.core.logs import run_step
from accord.core.stages import read_validated
from accord.models.missingness import missing_by_session, missingness_vs_exposure

with run_step(snakemake.log[0]) as log:
    panel = read_validated(snakemake.input.session_panel)
    client_measures = read_validated(snakemake.input.client_measures)
    analysis = snakemake.config["analysis"]
    instruments = list(
        dict.fromkeys(
            [analysis["primary_outcome"], *analysis["secondary_outcomes"], analysis["alliance"]]
        )
    )
    write_csv(snakemake.output.by_session, missing_by_session(panel, instruments))
    write_csv(
        snakemake.output.vs_exposure,
        missingness_vs_exposure(panel, client_measures, instruments, analysis["primary_exposure"]),
    )
    log.info("missingness described for %s", ", ".join(instruments))
