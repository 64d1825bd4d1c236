from accord.config import study_input
from accord.core.logs import run_step
from accord.validate.split import split_study

with run_step(snakemake.log[0]) as log:
    study = study_input(snakemake.config, snakemake.params.study)
    manifest = split_study(study, snakemake.params.partitions, snakemake.output.split)
    for table, entry in manifest["tables"].items():
        log.info("%s: %d rows in %d partitions", table, entry["rows"], manifest["partitions"])
