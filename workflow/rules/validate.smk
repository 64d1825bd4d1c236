# Ingest, identifier guard and validation with quarantine.


rule validate_study:
    input:
        unpack(study_tables),
    output:
        clients="results/{study}/validated/clients.parquet",
        sessions="results/{study}/validated/sessions.parquet",
        measures="results/{study}/validated/measures.parquet",
        goals="results/{study}/validated/goals.parquet",
        quarantine="results/{study}/validation/quarantine.csv",
        summary="results/{study}/validation/summary.json",
    conda:
        "../envs/accord.yaml"
    log:
        "logs/{study}/validate_study.log",
    params:
        study="{study}",
        settings=study_settings,
    script:
        "../scripts/validate_study.py"
