# Ingest, identifier guard and validation with quarantine; a large study in partitions of
# clients (performance.partitions): split, one job per partition, gathered by validate_study.


rule validate_study:
    input:
        unpack(validation_inputs),
    output:
        clients="results/{study}/validated/clients.parquet",
        sessions="results/{study}/validated/sessions.parquet",
        measures="results/{study}/validated/measures.parquet",
        goals="results/{study}/validated/goals.parquet",
        quarantine="results/{study}/validation/quarantine.csv",
        summary="results/{study}/validation/summary.json",
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/validate_study.benchmark.tsv",
    resources:
        mem_mb=job_memory("validate_study"),
    log:
        "logs/{study}/validate_study.log",
    params:
        study="{study}",
        settings=study_settings,
        partitions=partition_count,
    script:
        "../scripts/validate_study.py"


rule split_study:
    input:
        unpack(study_tables),
    output:
        split=temp(directory("results/{study}/partitions/split")),
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/split_study.benchmark.tsv",
    resources:
        mem_mb=job_memory("split_study"),
    log:
        "logs/{study}/split_study.log",
    params:
        study="{study}",
        settings=study_settings,
        partitions=partition_count,
    script:
        "../scripts/split_study.py"


rule validate_partition:
    input:
        split="results/{study}/partitions/split",
    output:
        part=temp(directory("results/{study}/partitions/validated_{part}")),
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/validate_partition_{part}.benchmark.tsv",
    resources:
        mem_mb=job_memory("validate_partition"),
    log:
        "logs/{study}/validate_partition_{part}.log",
    params:
        study="{study}",
        settings=study_settings,
        part="{part}",
    script:
        "../scripts/validate_partition.py"
