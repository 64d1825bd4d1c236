from accord.core.io import write_csv, write_json
from accord.core.logs import run_step
from accord.multisite.consortium import consortia
from accord.multisite.pooling import pool_consortium

with run_step(snakemake.log[0]) as log:
    consortium = consortia(snakemake.config)[snakemake.params.consortium]
    pooled, sites, record = pool_consortium(
        consortium, min_cell=snakemake.config["privacy"]["min_cell"]
    )
    write_csv(snakemake.output.pooled, pooled)
    write_csv(snakemake.output.sites, sites)
    write_json(snakemake.output.record, record)
    for note in record["notes"]:
        log.info(note)
    log.info(
        "%s: pooled %d term(s) over %d site(s) (%s)",
        consortium.name,
        len(pooled),
        len(consortium.sites),
        consortium.method,
    )
