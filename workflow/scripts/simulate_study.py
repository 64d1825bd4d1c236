from accord.core.logs import run_step
from accord.simulate import simulate_study, write_study

with run_step(snakemake.log[0]) as log:
    settings = dict(snakemake.params.settings)
    effects = settings.pop("effects", {})
    study = simulate_study(**settings, **effects)
    write_study(study, snakemake.output.truth.rsplit("/", 1)[0])
    log.info(
        "simulated %d clients with settings %s and effects %s",
        len(study.clients),
        settings,
        effects,
    )
