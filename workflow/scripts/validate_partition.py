from accord.config import study_input
from accord.core.instruments import load_registry
from accord.core.logs import run_step
from accord.validate.gather import write_part
from accord.validate.split import validate_partition

with run_step(snakemake.log[0]) as log:
    study = study_input(snakemake.config, snakemake.params.study)
    registry = load_registry(snakemake.config["instruments"])
    part = validate_partition(study, registry, snakemake.input.split, int(snakemake.params.part))
    write_part(part, snakemake.output.part)
    for table, counts in part.tally["tables"].items():
        log.info("%s: %d rows, %d accepted", table, counts["rows_in"], counts["rows_accepted"])
