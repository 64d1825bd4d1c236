# Scores, reliability, per-client measures and the session panel. A study validated in
# partitions of clients is scored in them too: score_partition per partition, gathered by
# score_measures (the rows in one-job order, the counts and reliability sums added). Its
# measures are built in the same partitions: each partition's statistics, each partition built
# with the study's scalars, gathered by build_measures.


rule score_measures:
    input:
        unpack(scoring_inputs),
    output:
        scores="results/{study}/scores.parquet",
        reliability="results/{study}/reliability.csv",
        disagreements="results/{study}/validation/total_disagreements.csv",
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/score_measures.benchmark.tsv",
    resources:
        mem_mb=job_memory("score_measures"),
    log:
        "logs/{study}/score_measures.log",
    params:
        partitions=partition_count,
    script:
        "../scripts/score_measures.py"


rule score_partition:
    input:
        part="results/{study}/partitions/validated_{part}",
    output:
        scored=temp(directory("results/{study}/partitions/scored_{part}")),
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/score_partition_{part}.benchmark.tsv",
    resources:
        mem_mb=job_memory("score_partition"),
    log:
        "logs/{study}/score_partition_{part}.log",
    script:
        "../scripts/score_partition.py"


rule build_measures:
    input:
        unpack(measures_inputs),
    output:
        client_measures="results/{study}/client_measures.parquet",
        session_panel="results/{study}/session_panel.parquet",
        metadata="results/{study}/measures_metadata.json",
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/build_measures.benchmark.tsv",
    resources:
        mem_mb=job_memory("build_measures"),
    log:
        "logs/{study}/build_measures.log",
    script:
        "../scripts/build_measures.py"


rule measures_statistics:
    input:
        part="results/{study}/partitions/validated_{part}",
        scored="results/{study}/partitions/scored_{part}",
    output:
        statistics=temp("results/{study}/partitions/measures_statistics_{part}.json"),
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/measures_statistics_{part}.benchmark.tsv",
    resources:
        mem_mb=job_memory("measures_statistics"),
    log:
        "logs/{study}/measures_statistics_{part}.log",
    script:
        "../scripts/measures_statistics.py"


rule build_partition:
    input:
        part="results/{study}/partitions/validated_{part}",
        scored="results/{study}/partitions/scored_{part}",
        statistics=measures_statistics,
    output:
        part=temp(directory("results/{study}/partitions/measures_{part}")),
    conda:
        "../envs/accord.yaml"
    benchmark:
        "logs/{study}/build_partition_{part}.benchmark.tsv",
    resources:
        mem_mb=job_memory("build_partition"),
    log:
        "logs/{study}/build_partition_{part}.log",
    script:
        "../scripts/build_partition.py"
