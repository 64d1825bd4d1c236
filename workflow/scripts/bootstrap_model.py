"""One chunk of a model's bootstrap replicates (accord.models.bootstrap)."""

import pandas as pd

from accord.core.errors import NotEstimableError
from accord.core.logs import run_step
from accord.core.stages import read_validated
from accord.models.bootstrap import model_chunks, replicate_function, write_replicates
from accord.models.spec import find_spec, model_context, model_specs

with run_step(snakemake.log[0]) as log:
    spec = find_spec(model_specs(snakemake.config), snakemake.params.model)
    chunk = int(snakemake.params.chunk)
    replicates = model_chunks(spec, int(snakemake.params.chunks))[chunk]
    draw = replicate_function(spec.kind)
    try:
        frame = draw(
            read_validated(snakemake.input.session_panel),
            read_validated(snakemake.input.client_measures),
            spec,
            model_context(snakemake.config),
            replicates,
        )
    except NotEstimableError as exc:
        # The model's own job records it as not estimable, with this reason.
        log.info("%s: not estimable (%s); no replicates drawn", spec.id, exc)
        frame = pd.DataFrame({"replicate": pd.Series([], dtype="int64")})
    write_replicates(frame, snakemake.output.replicates)
    log.info("%s (%s): replicates %d-%d", spec.id, spec.kind, replicates.start, replicates.stop - 1)
