from accord.config import study_input
from accord.core.instruments import load_registry
from accord.core.logs import run_step
from accord.validate import validate_study, write_validation
from accord.validate.gather import write_gathered

with run_step(snakemake.log[0]) as log:
    study = study_input(snakemake.config, snakemake.params.study)
    if snakemake.params.partitions > 1:
        result = write_gathered(study, snakemake.input.parts, snakemake.output)
    else:
        registry = load_registry(snakemake.config["instruments"])
        result = validate_study(study, registry)
        write_validation(result, snakemake.output)
    for table, counts in result.summary["tables"].items():
        log.info("%s: %s", table, counts)
