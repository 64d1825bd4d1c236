from accord.logs import run_step
from accord.models.growth import fit_growth
from accord.models.tidy import write_model_result
from accord.stages import read_validated

with run_step(snakemake.log[0]) as log:
    analysis = snakemake.config["analysis"]
    result = fit_growth(
        read_validated(snakemake.input.session_panel),
        read_validated(snakemake.input.client_measures),
        outcome=analysis["primary_outcome"],
        exposure=analysis["primary_exposure"],
        time_coding=analysis["time_coding"],
    )
    write_model_result(result, snakemake.output.coefficients, snakemake.output.diagnostics)
    log.info("growth model converged: %s", result.diagnostics.get("converged"))
