"""The study's analysis plan: each configured model planned, not estimable or not applicable."""

from accord.core.io import write_json
from accord.core.logs import run_step
from accord.core.stages import read_validated
from accord.models.plan import plan_models
from accord.models.spec import model_context, model_specs

with run_step(snakemake.log[0]) as log:
    plan = plan_models(
        model_specs(snakemake.config),
        read_validated(snakemake.input.session_panel),
        read_validated(snakemake.input.client_measures),
        model_context(snakemake.config),
    )
    write_json(snakemake.output.plan, {"models": [entry.as_dict() for entry in plan]})
    for entry in plan:
        log.info("%s (%s): %s %s", entry.id, entry.kind, entry.status, entry.reason)
