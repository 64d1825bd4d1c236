from accord.io import write_csv
from accord.logs import run_step
from accord.missingness import missing_by_session, missingness_vs_exposure
from accord.stages import read_validated

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
