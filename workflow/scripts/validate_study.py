from accord.config import study_input
from accord.core.instruments import load_registry
from accord.core.logs import run_step
from accord.validate import validate_study, write_validation

with run_step(snakemake.log[0]) as log:
    study = study_input(snakemake.config, snakemake.params.study)
    registry = load_registry(snakemake.config["instruments"])
    result = validate_study(study, registry)
    write_validation(result, snakemake.output)
    for table, counts in result.summary["tables"].items():
        log.info("%s: %s", table, counts)
