import json
from pathlib import Path

from accord.core.logs import run_step
from accord.core.stages import read_validated
from accord.models.bootstrap import read_replicates
from accord.models.plan import fit_planned, planned_entry
from accord.models.spec import find_spec, model_context, model_specs, read_kind_tables
from accord.models.tidy import write_model_result

with run_step(snakemake.log[0]) as log:
    spec = find_spec(model_specs(snakemake.config), snakemake.params.model)
    planned_entry(json.loads(Path(snakemake.input.plan).read_text()), spec.id)
    # A model with a bootstrap pools the replicates its bootstrap_model jobs drew.
    chunks = list(snakemake.input.replicates)
    pooled = {"replicates": read_replicates(chunks)} if chunks else {}
    # Validated tables the kind reads besides the panel and client measures (KIND_TABLES).
    tables = read_kind_tables(spec.kind, snakemake.input)
    result = fit_planned(
        spec,
        read_validated(snakemake.input.session_panel),
        read_validated(snakemake.input.client_measures),
        model_context(snakemake.config),
        **pooled,
        **tables,
    )
    write_model_result(result, snakemake.output.coefficients, snakemake.output.diagnostics)
    status = result.diagnostics["status"]
    log.info("%s (%s): %s %s", spec.id, spec.kind, status, result.diagnostics.get("reason", ""))
