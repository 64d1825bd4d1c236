import pyarrow.parquet as pq

from accord.core.io import write_csv
from accord.core.logs import run_step
from accord.core.stages import read_validated
from accord.models.missingness import missing_by_session, missingness_vs_exposure

with run_step(snakemake.log[0]) as log:
    analysis = snakemake.config["analysis"]
    instruments = list(
        dict.fromkeys(
            [analysis["primary_outcome"], *analysis["secondary_outcomes"], analysis["alliance"]]
        )
    )
    exposure = analysis["primary_exposure"]
    # Only the columns described: a panel of millions of sessions has dozens more.
    wanted = ["client_id", "session_number", "attended", *instruments]
    present = set(pq.read_schema(snakemake.input.session_panel).names)
    panel = read_validated(
        snakemake.input.session_panel, columns=[name for name in wanted if name in present]
    )
    present = set(pq.read_schema(snakemake.input.client_measures).names)
    client_measures = read_validated(
        snakemake.input.client_measures,
        columns=[name for name in ("client_id", exposure) if name in present],
    )
    write_csv(snakemake.output.by_session, missing_by_session(panel, instruments))
    write_csv(
        snakemake.output.vs_exposure,
        missingness_vs_exposure(panel, client_measures, instruments, exposure),
    )
    log.info("missingness described for %s", ", ".join(instruments))
