from accord.logs import run_step
from accord.models.bootstrap import read_replicates
from accord.models.spec import KIND_TABLES, find_spec, fit_function, model_context, model_specs
from accord.models.tidy import write_model_result
from accord.stages import read_validated

with run_step(snakemake.log[0]) as log:
    spec = find_spec(model_specs(snakemake.config), snakemake.params.model)
    fit = fit_function(spec.kind)
    # A model with a bootstrap pools the replicates its bootstrap_model jobs drew.
    chunks = list(snakemake.input.replicates)
    pooled = {"replicates": read_replicates(chunks)} if chunks else {}
    # Validated tables the kind reads besides the panel and client measures (KIND_TABLES).
    tables = {
        name: read_validated(snakemake.input[name]) for name in KIND_TABLES.get(spec.kind, ())
    }
    result = fit(
        read_validated(snakemake.input.session_panel),
        read_validated(snakemake.input.client_measures),
        spec,
        model_context(snakemake.config),
        **pooled,
        **tables,
    )
    write_model_result(result, snakemake.output.coefficients, snakemake.output.diagnostics)
    log.info("%s (%s): converged %s", spec.id, spec.kind, result.diagnostics.get("converged"))
